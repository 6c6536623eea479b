//! Every name in a data directory, declared once: the store's files, the stream directories,
//! and the files inside a stream directory (`storage-format.md` section 2). Writers build names
//! with these functions and readers (recovery, inspection, `queue-dump`) recognise them with the
//! parsers here, so the two can never disagree.
//!
//! Stream directories: arbitrary stream names (any bytes: Redis keys) map to directory names that
//! can never escape the data directory or collide, even on case-insensitive file systems.
//!
//! A stream directory is named `<n>-<escaped prefix>`: `n` is a number unique in the store, the
//! prefix only makes listings readable. Bytes `a-z` and `0-9` are kept; every other byte,
//! upper-case letters included, becomes `_` and two lower-case hex digits. The real name is kept
//! verbatim in the directory's `NAME` file, so the directory name is never parsed back.

use std::path::{Path, PathBuf};

/// The store's lock file, held with `flock` while the store is open.
pub const LOCK_FILE: &str = "LOCK";
/// The clean-shutdown marker.
pub const CLEAN_FILE: &str = "CLEAN";
/// The directory holding one directory per stream.
pub const STREAMS_DIR: &str = "streams";
/// The undo records of the store transaction in progress.
pub const TRANSACTION_FILE: &str = "transaction.journal";
/// The store file holding the position of the last replicated command the store applied.
pub const REPLICATION_MARK_FILE: &str = "replication.mark";
/// Prefix of a stream directory being created (`tmp-<n>`).
pub const CREATING_PREFIX: &str = "tmp-";
/// Prefix of a stream directory being deleted (`trash-<dir>`).
pub const TRASH_PREFIX: &str = "trash-";

/// A stream's name, verbatim, inside its directory.
pub const NAME_FILE: &str = "NAME";
/// A log's checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The consumer groups' snapshot.
pub const GROUP_SNAPSHOT_FILE: &str = "groups.snapshot";
/// A stream's idempotency windows.
pub const IDEMPOTENCY_SNAPSHOT_FILE: &str = "idempotency.snapshot";
/// Extension of segment files.
pub const SEGMENT_EXTENSION: &str = "seg";
/// The directory of a sharded cluster node's shards, inside the data directory: one directory a
/// shard, named by its number (`0`, `1`, ...), each laid out as a one-shard node's data
/// directory (its store, and its Raft log under [`RAFT_DIR`]).
pub const SHARDS_DIR: &str = "shards";
/// The directory of a replicated node's Raft log and snapshot files, inside the data directory.
pub const RAFT_DIR: &str = "raft";
/// A replicated node's vote, commit point and purge point, beside its Raft log files.
pub const RAFT_META_FILE: &str = "raft.meta";
/// A replicated node's commit point, written in place at each commit (two slots).
pub const RAFT_COMMIT_FILE: &str = "raft.commit";
/// A replicated node's last state-machine snapshot.
pub const RAFT_SNAPSHOT_FILE: &str = "raft.snapshot";
/// A replicated node's snapshot being built, before it becomes a snapshot data file.
pub const RAFT_SNAPSHOT_BUILDING_FILE: &str = "snapshot.building";
/// A replicated node's snapshot being received from its leader.
pub const RAFT_SNAPSHOT_RECEIVING_FILE: &str = "snapshot.receiving";
const RAFT_SNAPSHOT_DATA_PREFIX: &str = "snapshot.";
const RAFT_SNAPSHOT_DATA_SUFFIX: &str = ".data";
/// Suffix of every temporary file: a file is prepared under `<name>.tmp`, then renamed or linked
/// to `<name>` once complete.
pub const TMP_SUFFIX: &str = ".tmp";

/// The temporary name a file is prepared under before it becomes `path`: `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Digits of the zero-padded numbers in file names: the width of `u64::MAX`, so that sorting
/// the names as strings sorts the numbers.
const NUMBER_DIGITS: usize = 20;
const _: () = assert!(u64::MAX.ilog10() as usize + 1 == NUMBER_DIGITS);

const SEGMENT_SUFFIX: &str = ".seg";
const INDEX_SUFFIX: &str = ".index";
const JOURNAL_SUFFIX: &str = ".journal";
const RAFT_LOG_PREFIX: &str = "raft.";
const RAFT_LOG_SUFFIX: &str = ".wal";
const META_JOURNAL_PREFIX: &str = "meta.";
const GROUP_JOURNAL_PREFIX: &str = "groups.";

/// File name of the segment whose first offset is `base_offset`.
pub fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}{SEGMENT_SUFFIX}")
}

/// The base offset a segment file name holds: exactly 20 decimal digits then `.seg`; `None`
/// for any other name (`<base>.seg.tmp` included).
pub fn segment_base(file_name: &str) -> Option<u64> {
    padded_number(file_name.strip_suffix(SEGMENT_SUFFIX)?)
}

/// The number `digits` spells as exactly [`NUMBER_DIGITS`] decimal digits, as file names pad
/// them; `None` for anything else.
fn padded_number(digits: &str) -> Option<u64> {
    if digits.len() != NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// File name of the Raft log file whose first entry has index `first_index`.
pub fn raft_log_file_name(first_index: u64) -> String {
    format!("{RAFT_LOG_PREFIX}{first_index:020}{RAFT_LOG_SUFFIX}")
}

/// The first index a Raft log file name holds: `raft.`, exactly 20 decimal digits, then `.wal`;
/// `None` for any other name (`raft.<index>.wal.tmp` included).
pub fn raft_log_first_index(file_name: &str) -> Option<u64> {
    padded_number(
        file_name
            .strip_prefix(RAFT_LOG_PREFIX)?
            .strip_suffix(RAFT_LOG_SUFFIX)?,
    )
}

/// File name of a replicated node's snapshot data file number `sequence`.
pub fn raft_snapshot_data_name(sequence: u64) -> String {
    format!("{RAFT_SNAPSHOT_DATA_PREFIX}{sequence:020}{RAFT_SNAPSHOT_DATA_SUFFIX}")
}

/// The number of a snapshot data file name: `snapshot.`, exactly 20 decimal digits, then
/// `.data`; `None` for any other name.
pub fn raft_snapshot_data_sequence(file_name: &str) -> Option<u64> {
    padded_number(
        file_name
            .strip_prefix(RAFT_SNAPSHOT_DATA_PREFIX)?
            .strip_suffix(RAFT_SNAPSHOT_DATA_SUFFIX)?,
    )
}

/// File name of the sparse index of the segment whose first offset is `base_offset`.
pub fn index_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}{INDEX_SUFFIX}")
}

/// The temporary name of the active segment's index written by a checkpoint: its own, because
/// a roll may write the same segment's sealed index meanwhile.
pub fn active_index_tmp_name(base_offset: u64) -> String {
    format!("{base_offset:020}.active{INDEX_SUFFIX}{TMP_SUFFIX}")
}

/// The segment an index file (`<20 digits>.index`) belongs to, by its segment file name;
/// `None` for a name that does not end in `.index`.
pub fn index_segment_name(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(INDEX_SUFFIX)?;
    Some(format!("{stem}{SEGMENT_SUFFIX}"))
}

/// File name of the meta journal of a generation.
pub fn meta_journal_name(generation: u64) -> String {
    format!("{META_JOURNAL_PREFIX}{generation:020}{JOURNAL_SUFFIX}")
}

/// File name of the group journal of a generation.
pub fn group_journal_name(generation: u64) -> String {
    format!("{GROUP_JOURNAL_PREFIX}{generation:020}{JOURNAL_SUFFIX}")
}

/// Whether `file_name` is a meta journal's (`meta.*.journal`).
pub fn is_meta_journal(file_name: &str) -> bool {
    file_name.starts_with(META_JOURNAL_PREFIX) && file_name.ends_with(JOURNAL_SUFFIX)
}

/// Whether `file_name` is a group journal's (`groups.*.journal`).
pub fn is_group_journal(file_name: &str) -> bool {
    file_name.starts_with(GROUP_JOURNAL_PREFIX) && file_name.ends_with(JOURNAL_SUFFIX)
}

/// Whether `file_name` is a group journal's or one's leftover (`groups.*.journal*`, so
/// `groups.*.journal.tmp` too): the files the consumer groups own beside their snapshot.
pub fn is_group_journal_or_leftover(file_name: &str) -> bool {
    file_name.starts_with(GROUP_JOURNAL_PREFIX) && file_name.contains(JOURNAL_SUFFIX)
}

/// The generation of a meta journal's file name (`meta.N.journal`, any number of digits).
pub fn meta_journal_generation(file_name: &str) -> Option<u64> {
    journal_generation(file_name, META_JOURNAL_PREFIX)
}

/// The generation of a group journal's file name (`groups.N.journal`, any number of digits).
pub fn group_journal_generation(file_name: &str) -> Option<u64> {
    journal_generation(file_name, GROUP_JOURNAL_PREFIX)
}

fn journal_generation(file_name: &str, prefix: &str) -> Option<u64> {
    file_name
        .strip_prefix(prefix)?
        .strip_suffix(JOURNAL_SUFFIX)?
        .parse()
        .ok()
}

/// Whether `file_name` is a temporary file a log leaves when a crash interrupts it (a segment,
/// an index or a meta journal being written), removed when the log opens.
pub fn is_log_leftover(file_name: &str) -> bool {
    let Some(stem) = file_name.strip_suffix(TMP_SUFFIX) else {
        return false;
    };
    stem.ends_with(INDEX_SUFFIX)
        || stem.ends_with(SEGMENT_SUFFIX)
        || (stem.starts_with(META_JOURNAL_PREFIX) && stem.ends_with(JOURNAL_SUFFIX))
}

/// The temporary directory a stream is created in before it gets its final name.
pub fn creating_dir_name(number: u64) -> String {
    format!("{CREATING_PREFIX}{number}")
}

/// The directory a deleted stream's directory `dir_name` is moved to.
pub fn trash_dir_name(dir_name: &str) -> String {
    format!("{TRASH_PREFIX}{dir_name}")
}

/// Whether a name in `streams/` is the leftover of an interrupted stream creation or deletion.
pub fn is_stream_leftover(dir_name: &str) -> bool {
    dir_name.starts_with(CREATING_PREFIX) || dir_name.starts_with(TRASH_PREFIX)
}

/// Longest escaped prefix kept in a directory name.
pub const MAX_PREFIX_BYTES: usize = 48;

/// The directory name for stream number `number` called `name`.
///
/// ```
/// use weir::names::directory_name;
/// assert_eq!(directory_name(7, b"orders:EU"), "7-orders_3a_45_55");
/// assert_eq!(directory_name(8, b"../../x"), "8-_2e_2e_2f_2e_2e_2fx");
/// ```
pub fn directory_name(number: u64, name: &[u8]) -> String {
    let mut out = format!("{number}-");
    let start = out.len();
    for &byte in name {
        let piece_len = if byte.is_ascii_lowercase() || byte.is_ascii_digit() {
            1
        } else {
            3
        };
        if out.len() - start + piece_len > MAX_PREFIX_BYTES {
            break;
        }
        if piece_len == 1 {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02x}"));
        }
    }
    out
}

/// The number at the start of a stream directory's name.
pub fn directory_number(dir_name: &str) -> Option<u64> {
    dir_name.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_log_names_round_trip_and_nothing_else_parses() {
        for index in [0, 1, 42, u64::MAX] {
            assert_eq!(
                raft_log_first_index(&raft_log_file_name(index)),
                Some(index)
            );
        }
        let name = raft_log_file_name(7);
        assert_eq!(name, "raft.00000000000000000007.wal");
        assert_eq!(raft_log_first_index(&format!("{name}.tmp")), None);
        assert_eq!(raft_log_first_index("raft.7.wal"), None);
        assert_eq!(raft_log_first_index(RAFT_META_FILE), None);
        let data = raft_snapshot_data_name(3);
        assert_eq!(data, "snapshot.00000000000000000003.data");
        assert_eq!(raft_snapshot_data_sequence(&data), Some(3));
        for other in [
            RAFT_SNAPSHOT_BUILDING_FILE,
            RAFT_SNAPSHOT_RECEIVING_FILE,
            "snapshot.3.data",
        ] {
            assert_eq!(raft_snapshot_data_sequence(other), None);
        }
    }

    #[test]
    fn hostile_names_stay_inside_one_safe_component() {
        let long = vec![b'A'; 10_000];
        let names: [&[u8]; 9] = [
            b"../x", b"/", b"\0", b"..", b".", b"a/b", b"Orders", b"orders", &long,
        ];
        let mut seen = std::collections::HashSet::new();
        for (number, name) in names.iter().enumerate() {
            let dir = directory_name(number as u64, name);
            assert!(dir.len() <= 20 + 1 + MAX_PREFIX_BYTES, "{dir}");
            assert!(
                dir.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
                "{dir}"
            );
            assert!(seen.insert(dir.to_ascii_lowercase()), "collision for {dir}");
            assert_eq!(directory_number(&dir), Some(number as u64));
        }
    }

    #[test]
    fn file_names_parse_back() {
        for base in [0, 1234, u64::MAX] {
            assert_eq!(segment_base(&segment_file_name(base)), Some(base));
            let tmp = |name: String| tmp_path(Path::new(&name)).display().to_string();
            assert!(is_log_leftover(&tmp(segment_file_name(base))));
            assert!(is_log_leftover(&tmp(index_file_name(base))));
            assert!(is_log_leftover(&active_index_tmp_name(base)));
            assert_eq!(
                index_segment_name(&index_file_name(base)),
                Some(segment_file_name(base))
            );
            assert_eq!(
                meta_journal_generation(&meta_journal_name(base)),
                Some(base)
            );
            assert_eq!(
                group_journal_generation(&group_journal_name(base)),
                Some(base)
            );
        }
        assert_eq!(segment_file_name(1234), "00000000000000001234.seg");
        assert_eq!(meta_journal_name(1), "meta.00000000000000000001.journal");
        assert_eq!(group_journal_name(2), "groups.00000000000000000002.journal");
        for not_a_segment in [
            "1.seg",
            "+0000000000000000001.seg",
            "00000000000000000001.seg.tmp",
        ] {
            assert_eq!(segment_base(not_a_segment), None, "{not_a_segment}");
        }
        assert!(is_meta_journal(&meta_journal_name(3)));
        assert!(!is_meta_journal(&format!(
            "{}{TMP_SUFFIX}",
            meta_journal_name(3)
        )));
        assert!(is_group_journal_or_leftover(&format!(
            "{}{TMP_SUFFIX}",
            group_journal_name(3)
        )));
        assert!(!is_log_leftover(&format!(
            "{}{TMP_SUFFIX}",
            group_journal_name(3)
        )));
        assert!(
            is_stream_leftover(&creating_dir_name(4)) && is_stream_leftover(&trash_dir_name("4-x"))
        );
    }
}
