//! The process's own figures for `INFO`: memory and CPU time as the kernel accounts them
//! (`/proc` on Linux), and the operating system's name. Elsewhere, or when `/proc` cannot be
//! read, the figures are 0: INFO reports what it cannot measure as zero rather than failing.

use std::time::Duration;

/// Memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Memory {
    /// Resident set size: everything in RAM, the pages of memory-mapped segments included.
    pub(crate) rss: u64,
    /// Resident anonymous memory: the heap and the threads' stacks, without the segments'
    /// pages, which the page cache holds and can drop. The closest figure to Redis's
    /// `used_memory` (what the allocator holds).
    pub(crate) heap: u64,
}

/// The process's memory now.
pub(crate) fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Memory {
        rss: kib_field(&status, "VmRSS:"),
        heap: kib_field(&status, "RssAnon:"),
    }
}

/// The machine's memory in bytes.
pub(crate) fn total_system_memory() -> u64 {
    kib_field(
        &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
        "MemTotal:",
    )
}

/// A `Name:   123 kB` line of a `/proc` file, in bytes; 0 if missing.
fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// CPU time used by the process and by its waited-for children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTime {
    pub(crate) user: Duration,
    pub(crate) system: Duration,
    pub(crate) children_user: Duration,
    pub(crate) children_system: Duration,
}

/// The process's CPU time now.
pub(crate) fn cpu_time() -> CpuTime {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    parse_cpu_time(&stat, rustix::param::clock_ticks_per_second())
}

/// CPU times from `/proc/self/stat`: fields 14 to 17, counted after the command name, which is
/// in parentheses and may itself hold spaces and parentheses.
fn parse_cpu_time(stat: &str, ticks_per_second: u64) -> CpuTime {
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| {
        let ticks = fields
            .get(field - 3)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0);
        let micros = u128::from(ticks) * 1_000_000 / u128::from(ticks_per_second.max(1));
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    };
    CpuTime {
        user: ticks(14),
        system: ticks(15),
        children_user: ticks(16),
        children_system: ticks(17),
    }
}

/// The operating system as Redis names it: kernel name, release and machine
/// (`Linux 6.1.0 x86_64`).
pub(crate) fn os_name() -> String {
    let read = |path| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    let (kernel, release) = (
        read("/proc/sys/kernel/ostype"),
        read("/proc/sys/kernel/osrelease"),
    );
    if kernel.is_empty() {
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
    } else {
        format!("{kernel} {release} {}", std::env::consts::ARCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        let stat = "42 (queue (server) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 3 1 20 0 9";
        assert_eq!(
            parse_cpu_time(stat, 100),
            CpuTime {
                user: Duration::from_millis(2500),
                system: Duration::from_millis(750),
                children_user: Duration::from_millis(30),
                children_system: Duration::from_millis(10),
            }
        );
        assert_eq!(parse_cpu_time("", 100), CpuTime::default());
    }

    #[test]
    fn memory_fields_are_kibibytes() {
        let status = "Name:\tqueue-server\nVmRSS:\t    2048 kB\nRssAnon:\t 512 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), 2048 * 1024);
        assert_eq!(kib_field(status, "RssAnon:"), 512 * 1024);
        assert_eq!(kib_field(status, "VmSwap:"), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_has_memory_on_linux() {
        let memory = memory();
        assert!(memory.rss > 0 && memory.heap > 0 && memory.heap <= memory.rss);
        assert!(total_system_memory() >= memory.rss);
    }
}
