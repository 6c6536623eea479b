//! Telling a service manager how the server is doing: systemd's notification protocol.
//!
//! Under a unit with `Type=notify`, systemd starts the server with `NOTIFY_SOCKET` naming a
//! datagram socket and waits for `READY=1` on it before it counts the service as started (and
//! starts the units ordered after it). With `WatchdogSec=`, it also sets `WATCHDOG_USEC` and
//! restarts the service when no `WATCHDOG=1` arrives within that time. Each message is one
//! datagram of `KEY=value` lines. Without `NOTIFY_SOCKET` every call does nothing, so the server
//! behaves the same under any other supervisor.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go: a socket path, or a Linux abstract socket name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// A connection to the service manager, when there is one.
#[derive(Debug)]
pub struct ServiceNotifier {
    socket: Option<(UnixDatagram, Target)>,
    watchdog: Option<Duration>,
}

impl ServiceNotifier {
    /// The notifier the environment asks for: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when
    /// `WATCHDOG_PID` is absent or names this process (as systemd's own library checks).
    pub fn from_env() -> io::Result<ServiceNotifier> {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|value| parse_target(&value));
        let watchdog_pid = std::env::var("WATCHDOG_PID").ok();
        let for_us = watchdog_pid.is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .filter(|_| for_us)
            .and_then(|usec| parse_watchdog(&usec));
        let socket = match target {
            Some(target) => Some((UnixDatagram::unbound()?, target)),
            None => None,
        };
        Ok(ServiceNotifier { socket, watchdog })
    }

    /// How often to send `WATCHDOG=1`: half the manager's timeout, as systemd advises, so that
    /// one late tick does not get the server killed. `None` without a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        self.watchdog.map(|timeout| timeout / 2)
    }

    /// The server accepts clients: `READY=1`, with a status line.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!(
            "READY=1\nSTATUS={}\nMAINPID={}\n",
            one_line(status),
            std::process::id()
        ))
    }

    /// The server is alive and serving: `WATCHDOG=1`.
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1\n")
    }

    /// The server is shutting down: `STOPPING=1`, so the manager does not count the stop as a
    /// failure while the store closes.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1\nSTATUS=closing the store\n")
    }

    fn send(&self, message: &str) -> io::Result<()> {
        let Some((socket, target)) = &self.socket else {
            return Ok(());
        };
        match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path)?,
            Target::Abstract(name) => send_abstract(socket, name, message.as_bytes())?,
        };
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &address)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract notification sockets exist only on Linux",
    ))
}

fn parse_target(value: &std::ffi::OsStr) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    match value.as_bytes() {
        [] => None,
        [b'@', name @ ..] => Some(Target::Abstract(name.to_vec())),
        _ => Some(Target::Path(PathBuf::from(value))),
    }
}

fn parse_watchdog(usec: &str) -> Option<Duration> {
    usec.trim()
        .parse::<u64>()
        .ok()
        .filter(|&usec| usec > 0)
        .map(Duration::from_micros)
}

/// A status is one line of the message: line breaks in it would start new keys.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier_for(path: &std::path::Path, watchdog: Option<Duration>) -> ServiceNotifier {
        ServiceNotifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                Target::Path(path.to_path_buf()),
            )),
            watchdog,
        }
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 512];
        let len = socket.recv(&mut buffer).unwrap();
        String::from_utf8(buffer[..len].to_vec()).unwrap()
    }

    #[test]
    fn messages_arrive_as_key_value_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        let notifier = notifier_for(&path, Some(Duration::from_secs(10)));
        notifier.ready("serving on 127.0.0.1:6379\nx").unwrap();
        let ready = receive(&manager);
        assert!(
            ready.starts_with("READY=1\nSTATUS=serving on 127.0.0.1:6379 x\n"),
            "{ready}"
        );
        assert!(ready.contains(&format!("MAINPID={}\n", std::process::id())));
        notifier.watchdog().unwrap();
        assert_eq!(receive(&manager), "WATCHDOG=1\n");
        notifier.stopping().unwrap();
        assert!(receive(&manager).starts_with("STOPPING=1\n"));
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_runs() {
        let notifier = ServiceNotifier {
            socket: None,
            watchdog: Some(Duration::from_secs(10)),
        };
        notifier.ready("x").unwrap();
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn environment_values_parse_as_systemd_sets_them() {
        assert_eq!(parse_target("".as_ref()), None);
        assert_eq!(
            parse_target("@weir/notify".as_ref()),
            Some(Target::Abstract(b"weir/notify".to_vec()))
        );
        assert_eq!(
            parse_target("/run/systemd/notify".as_ref()),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(parse_watchdog("30000000"), Some(Duration::from_secs(30)));
        assert_eq!(parse_watchdog("0"), None);
        assert_eq!(parse_watchdog("soon"), None);
    }
}
