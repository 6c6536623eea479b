//! Fault injection for tests: makes a chosen file-system call under a chosen directory fail.
//!
//! A test installs a [`Plan`] for its own temporary directory; every call of [`super`] on a path
//! below that directory is numbered from 0, and the call numbered `at` fails with the plan's
//! [`Fault`]. Tests running in parallel use different directories and never see each other's
//! faults. A plan that never fires counts the calls an operation makes, so a test can run the
//! operation again with a fault at each of them in turn.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::Op;

/// What the chosen call does instead of its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Fails with `ENOSPC`, once.
    NoSpace,
    /// The disk fills at the chosen call and stays full: every call from there on that needs
    /// space (create, preallocate, write, extend, make a directory or a link) fails with
    /// `ENOSPC`, while syncs, renames and removals still work.
    DiskFull,
    /// Fails with `EIO`, once.
    Io,
    /// A write writes the first half of its bytes, then fails with `EIO`; any other call fails
    /// with `EIO`. Once.
    ShortWrite,
    /// The process dies at the chosen call: it and every later call fail, so nothing after it
    /// reaches the disk through the file system (bytes already written to a map stay, as they
    /// would in the page cache of a killed process).
    Crash,
}

/// One test's faults for one directory.
#[derive(Debug)]
pub(crate) struct Plan {
    root: PathBuf,
    at: u64,
    fault: Fault,
    calls: AtomicU64,
    fired: AtomicBool,
    log: Mutex<Vec<(Op, PathBuf)>>,
}

/// Keeps a plan installed; removing it on drop.
#[must_use = "the plan is removed when the guard is dropped"]
pub(crate) struct Installed(Arc<Plan>);

impl Installed {
    /// Calls numbered so far under the plan's directory.
    pub(crate) fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::SeqCst)
    }

    /// Whether the fault has fired.
    pub(crate) fn fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Every call numbered so far, in order: what a failing test prints.
    pub(crate) fn log(&self) -> Vec<(Op, PathBuf)> {
        self.0.log.lock().clone()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let mut plans = PLANS.lock();
        plans.retain(|plan| !Arc::ptr_eq(plan, &self.0));
        INSTALLED.store(plans.len(), Ordering::SeqCst);
    }
}

static PLANS: Mutex<Vec<Arc<Plan>>> = Mutex::new(Vec::new());
/// How many plans are installed: the check costs one load while none is.
static INSTALLED: AtomicUsize = AtomicUsize::new(0);

/// Makes call number `at` under `root` fail with `fault`.
pub(crate) fn inject(root: &Path, at: u64, fault: Fault) -> Installed {
    let plan = Arc::new(Plan {
        root: root.to_path_buf(),
        at,
        fault,
        calls: AtomicU64::new(0),
        fired: AtomicBool::new(false),
        log: Mutex::new(Vec::new()),
    });
    let mut plans = PLANS.lock();
    plans.push(Arc::clone(&plan));
    INSTALLED.store(plans.len(), Ordering::SeqCst);
    Installed(plan)
}

/// Numbers the calls under `root` without failing any.
pub(crate) fn count(root: &Path) -> Installed {
    inject(root, u64::MAX, Fault::Io)
}

fn plan_for(path: &Path) -> Option<Arc<Plan>> {
    if INSTALLED.load(Ordering::SeqCst) == 0 {
        return None;
    }
    PLANS
        .lock()
        .iter()
        .find(|plan| path.starts_with(&plan.root))
        .cloned()
}

/// What a call should do: go on (`None`), or fail with the fault.
fn decide(op: Op, path: &Path) -> Option<(Arc<Plan>, Fault)> {
    let plan = plan_for(path)?;
    let number = plan.calls.fetch_add(1, Ordering::SeqCst);
    plan.log.lock().push((op, path.to_path_buf()));
    let fires = match plan.fault {
        Fault::Crash => number >= plan.at,
        Fault::DiskFull => number >= plan.at && needs_space(op),
        Fault::NoSpace | Fault::Io | Fault::ShortWrite => number == plan.at,
    };
    if !fires {
        return None;
    }
    plan.fired.store(true, Ordering::SeqCst);
    let fault = plan.fault;
    Some((plan, fault))
}

fn needs_space(op: Op) -> bool {
    matches!(
        op,
        Op::Create | Op::Preallocate | Op::Write | Op::SetLen | Op::CreateDir | Op::Link
    )
}

fn error_of(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace | Fault::DiskFull => io::Error::from_raw_os_error(enospc()),
        Fault::Io | Fault::ShortWrite => io::Error::from_raw_os_error(eio()),
        Fault::Crash => io::Error::other("injected crash: the process is considered dead"),
    }
}

fn enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

fn eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}

/// The check before a call other than a write.
pub(crate) fn check(op: Op, path: &Path) -> io::Result<()> {
    match decide(op, path) {
        None => Ok(()),
        Some((_, fault)) => Err(error_of(fault)),
    }
}

/// The check before a write of `bytes`: a short write writes the first half through
/// `write_part` before failing.
pub(crate) fn check_write(
    path: &Path,
    bytes: &[u8],
    write_part: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    match decide(Op::Write, path) {
        None => Ok(()),
        Some((_, Fault::ShortWrite)) => {
            write_part(&bytes[..bytes.len() / 2])?;
            Err(error_of(Fault::ShortWrite))
        }
        Some((_, fault)) => Err(error_of(fault)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chosen_call_under_the_root_fails() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let plan = inject(dir.path(), 1, Fault::Io);
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        assert!(crate::fs::create_new(&a).is_ok());
        assert!(crate::fs::create_new(&other.path().join("c")).is_ok());
        let error = crate::fs::create_new(&b).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(eio()));
        assert!(crate::fs::sync_dir(dir.path()).is_ok());
        assert!(plan.fired());
        assert_eq!(plan.calls(), 3);
        assert!(!b.exists());
    }

    #[test]
    fn a_crash_fails_every_later_call_and_a_short_write_leaves_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = crate::fs::create_new(&path).unwrap();
        let plan = inject(dir.path(), 0, Fault::ShortWrite);
        assert!(crate::fs::write_all_at(&file, &path, b"abcdef", 0).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        drop(plan);
        let plan = inject(dir.path(), 1, Fault::Crash);
        assert!(crate::fs::sync_data(&file, &path).is_ok());
        assert!(crate::fs::sync_data(&file, &path).is_err());
        assert!(crate::fs::remove_file(&path).is_err());
        assert!(path.exists());
        drop(plan);
        assert!(crate::fs::remove_file(&path).is_ok());
    }

    #[test]
    fn a_full_disk_refuses_space_but_not_syncs_or_removals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = crate::fs::create_new(&path).unwrap();
        let _plan = inject(dir.path(), 0, Fault::DiskFull);
        let error = crate::fs::preallocate(&file, &path, 4096).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(enospc()));
        assert!(crate::fs::write_all(&file, &path, b"x").is_err());
        assert!(crate::fs::sync_data(&file, &path).is_ok());
        assert!(crate::fs::remove_file(&path).is_ok());
    }
}
