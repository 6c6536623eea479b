//! A store written without syncs, whose content a replicated log also holds, cannot trust its
//! files after the machine (not just the process) stopped without a clean close: the page cache
//! that made its files consistent was lost, and they may hold any mix of what was written. Such
//! a store is emptied at open, for its owner to rebuild from the log.
//!
//! The store tells a machine restart from a process restart by the kernel's boot id
//! (`/proc/sys/kernel/random/boot_id`), which it records in `DIR/boot.id` at every open: a
//! different one, or none readable, after an unclean stop means the machine may have lost power.
//! `boot.id` is replaced durably (temporary file, fsync, rename, directory fsync).

use std::path::Path;

use crate::fs::{self, names};
use crate::names::{REPLICATION_MARK_FILE, STREAMS_DIR, TRANSACTION_FILE};

/// The file the boot id is recorded in.
pub const BOOT_ID_FILE: &str = "boot.id";
const KERNEL_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The kernel's boot id, if it can be read.
fn current_boot() -> Option<String> {
    std::fs::read_to_string(KERNEL_BOOT_ID)
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// Empties the store in `dir` if it was not closed cleanly (`clean` false) and the machine may
/// have restarted since it was last open; records the current boot. Returns whether it emptied
/// the store.
pub(crate) fn discard_after_machine_crash(dir: &Path, clean: bool) -> std::io::Result<bool> {
    let boot = current_boot();
    let recorded_path = dir.join(BOOT_ID_FILE);
    let recorded = std::fs::read_to_string(&recorded_path)
        .ok()
        .map(|id| id.trim().to_owned());
    let held = dir.join(STREAMS_DIR).is_dir() || dir.join(REPLICATION_MARK_FILE).exists();
    let same_boot = boot.is_some() && recorded == boot;
    let discard = held && !clean && !same_boot;
    if discard {
        let streams = dir.join(STREAMS_DIR);
        if streams.is_dir() {
            fs::remove_dir_all(&streams)?;
        }
        for file in [TRANSACTION_FILE, REPLICATION_MARK_FILE] {
            fs::remove_if_exists(&dir.join(file))?;
        }
        fs::sync_dir(dir)?;
    }
    if let Some(boot) = boot.filter(|boot| recorded.as_ref() != Some(boot)) {
        fs::replace_durably(
            &recorded_path,
            &names::tmp_path(&recorded_path),
            boot.as_bytes(),
        )?;
    }
    Ok(discard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclean_store_of_another_boot_is_emptied_and_one_of_this_boot_kept() {
        let Some(boot) = current_boot() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(STREAMS_DIR).join("1-s")).unwrap();
        std::fs::write(dir.path().join(REPLICATION_MARK_FILE), [1; 64]).unwrap();
        std::fs::write(dir.path().join(BOOT_ID_FILE), "another boot").unwrap();
        assert!(
            !discard_after_machine_crash(dir.path(), true).unwrap(),
            "a clean store is kept"
        );
        std::fs::write(dir.path().join(BOOT_ID_FILE), "another boot").unwrap();
        assert!(discard_after_machine_crash(dir.path(), false).unwrap());
        assert!(!dir.path().join(STREAMS_DIR).exists());
        assert!(!dir.path().join(REPLICATION_MARK_FILE).exists());
        let recorded = std::fs::read_to_string(dir.path().join(BOOT_ID_FILE)).unwrap();
        assert_eq!(recorded, boot);
        std::fs::create_dir_all(dir.path().join(STREAMS_DIR)).unwrap();
        assert!(
            !discard_after_machine_crash(dir.path(), false).unwrap(),
            "same boot: kept"
        );
    }
}
