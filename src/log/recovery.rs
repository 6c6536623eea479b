//! Opening a log: finding its files, trusting what the checkpoint says is on disk, scanning what
//! follows it, cutting a torn tail, skipping damaged records and reporting exactly what was lost.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::{Mutex, RwLock};

use super::analysis::{
    Continuity, Found, OpenFailure, OpenedSegment, SegmentAnalysis, continuity,
    missing_before_point, open_segment, unfinished_creation,
};
use super::meta_analysis::{meta_events, meta_journal_generation, read_checkpoint, replay_meta};
use super::{
    CHECKPOINT_FILE, CHECKPOINT_KIND, Checkpoint, LastRecord, Log, LogError, LogOptions,
    META_JOURNAL_KIND, MetaEvent, MetaJournal, MetaState, Prefaulted, RecoveryPoint, SegmentIndex,
    Slot, Tip, Writer, create_slot, index_file_name, meta_journal_name, segment_file_name,
};
use crate::fs::{self, names};
use crate::id::StreamId;
use crate::journal::{self, Journal, JournalDamage};
use crate::record;
use crate::segment::SegmentError;
use crate::segment::{self, ScanItem, Scanner, Segment, SegmentAppender};

/// Records that recovery found damaged or missing and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    /// The segment holding the damage.
    pub file: PathBuf,
    /// Byte position of the damage in that file.
    pub pos: u64,
    /// Offsets of the lost records.
    pub offsets: Range<u64>,
    /// What was wrong.
    pub reason: String,
}

/// A partial write at the end of the log, cut off so its space is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment whose end was cut.
    pub file: PathBuf,
    /// Byte position of the cut: the end of the last valid record.
    pub pos: u64,
    /// Bytes of garbage zeroed after `pos`.
    pub bytes: u64,
    /// Why the bytes at `pos` are not a record.
    pub reason: String,
}

/// A segment whose damaged header recovery rebuilt from its file name, its size and its
/// records (recovery.md, section 1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltHeader {
    /// The segment (or meta journal) whose header was rebuilt.
    pub file: PathBuf,
    /// What was wrong with the header.
    pub reason: String,
}

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The log was closed cleanly: nothing was scanned.
    pub clean: bool,
    /// Segment files opened.
    pub segments: usize,
    /// Bytes of records scanned and checked.
    pub scanned_bytes: u64,
    /// Live entries after recovery.
    pub entries: u64,
    /// Records skipped because they were damaged or never reached the disk.
    pub lost: Vec<LostRange>,
    /// A torn write cut from the end.
    pub torn_tail: Option<TornTail>,
    /// Damage at the end of the meta journal (changes after it are lost).
    pub journal_damage: Option<JournalDamage>,
    /// Segment headers found damaged and rewritten; no record was lost to them.
    pub rebuilt_headers: Vec<RebuiltHeader>,
}

impl RecoveryReport {
    /// Whether anything was lost or cut.
    pub fn found_damage(&self) -> bool {
        !self.lost.is_empty()
            || self.torn_tail.is_some()
            || self.journal_damage.is_some()
            || !self.rebuilt_headers.is_empty()
    }

    /// Number of records lost.
    pub fn lost_records(&self) -> u64 {
        self.lost
            .iter()
            .map(|l| l.offsets.end - l.offsets.start)
            .sum()
    }
}

struct Recovered {
    slot: Slot,
    appender: Option<SegmentAppender>,
    /// The index was rebuilt by scanning: its file should be rewritten.
    rescanned: bool,
}

impl Log {
    /// Opens (or creates) the log in `dir`. `clean_shutdown` says the store was closed cleanly,
    /// so the checkpoint marks the exact end of the log and nothing needs scanning.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        clean_shutdown: bool,
        now_ms: u64,
    ) -> Result<(Log, RecoveryReport), LogError> {
        fs::create_dir_all(dir).map_err(LogError::io("create directory", dir))?;
        remove_leftovers(dir)?;
        let bases = segment_bases(dir)?;
        let checkpoint = read_checkpoint(&dir.join(CHECKPOINT_FILE))?
            .map(|decoded| {
                decoded.map_err(|error| LogError::Corrupt {
                    path: dir.join(CHECKPOINT_FILE),
                    detail: format!("{error}: move the file away to rebuild from the segments alone (the stream's deletions, trims, XSETID values and retention settings are then lost)"),
                })
            })
            .transpose()?;
        if checkpoint.is_none() && bases.is_empty() {
            return Self::create(dir, options, now_ms);
        }
        let trusted_end = clean_shutdown && checkpoint.as_ref().is_some_and(|c| c.clean);
        if checkpoint.is_none() {
            tracing::warn!(dir = %dir.display(), "no checkpoint: scanning every segment");
        }
        let checkpoint = checkpoint.unwrap_or_default();
        let mut report = RecoveryReport {
            clean: trusted_end,
            ..RecoveryReport::default()
        };
        let (journal, mut meta) = open_meta_journal(dir, &checkpoint, &mut report)?;
        let point = checkpoint.recovery_point;
        let recovered = recover_segments(
            dir,
            &options,
            &bases,
            &point,
            &meta,
            trusted_end,
            &mut report,
        )?;
        let rescanned: Vec<u64> = recovered
            .iter()
            .filter(|r| r.rescanned)
            .map(|r| r.slot.base())
            .collect();
        let (tip, slots, appender) =
            assemble(recovered, &point, &meta, now_ms, dir, &options, &mut report)?;
        clamp_meta(&mut meta, &tip, &slots);
        report.lost = without_known_gone(std::mem::take(&mut report.lost), &meta);
        let writer = Writer {
            slot: slots.last().cloned().ok_or_else(|| LogError::Corrupt {
                path: dir.to_path_buf(),
                detail: "no segment after recovery".into(),
            })?,
            appender,
            unflushed: Vec::new(),
            prefaulted: Prefaulted::default(),
            tip,
        };
        let log = Log {
            dir: dir.to_path_buf(),
            options,
            slots: RwLock::new(slots),
            writer: Mutex::new(writer),
            tip: RwLock::new(tip),
            meta: RwLock::new(meta),
            journal: Mutex::new(MetaJournal {
                sync: journal.sync_handle(),
                journal,
            }),
            durable: Mutex::new(point),
            checkpointed: Mutex::new(point),
            damage_seen: Mutex::new(Vec::new()),
            damage_unrecorded: Mutex::new(Vec::new()),
            checkpoint_due: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
            names_unsynced: AtomicBool::new(false),
        };
        log.settle_after_recovery(&report, trusted_end, &rescanned)?;
        report.entries = log.len();
        log_report(dir, &report);
        Ok((log, report))
    }

    fn create(
        dir: &Path,
        options: LogOptions,
        now_ms: u64,
    ) -> Result<(Log, RecoveryReport), LogError> {
        let (slot, appender) =
            create_slot(dir, &options, 0, options.initial_segment_bytes, now_ms)?;
        let generation = 1;
        let journal = Journal::create(
            &dir.join(meta_journal_name(generation)),
            META_JOURNAL_KIND,
            generation,
        )?;
        let checkpoint = Checkpoint {
            clean: false,
            journal_generation: generation,
            recovery_point: RecoveryPoint {
                segment_base: 0,
                pos: segment::HEADER_LEN as u64,
                next_offset: 0,
                last_id: StreamId::MIN,
            },
            meta: MetaState::default(),
        };
        journal::write_snapshot(
            dir,
            CHECKPOINT_FILE,
            CHECKPOINT_KIND,
            generation,
            &checkpoint.encode(),
        )?;
        let log = Log {
            dir: dir.to_path_buf(),
            options,
            slots: RwLock::new(vec![slot.clone()]),
            writer: Mutex::new(Writer {
                unflushed: vec![(Arc::clone(&slot.segment), segment::HEADER_LEN)],
                slot,
                appender,
                prefaulted: Prefaulted::default(),
                tip: Tip::EMPTY,
            }),
            tip: RwLock::new(Tip::EMPTY),
            meta: RwLock::new(MetaState::default()),
            journal: Mutex::new(MetaJournal {
                sync: journal.sync_handle(),
                journal,
            }),
            durable: Mutex::new(checkpoint.recovery_point),
            checkpointed: Mutex::new(checkpoint.recovery_point),
            damage_seen: Mutex::new(Vec::new()),
            damage_unrecorded: Mutex::new(Vec::new()),
            checkpoint_due: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
            names_unsynced: AtomicBool::new(false),
        };
        Ok((log, RecoveryReport::default()))
    }

    /// Makes recovery's conclusions durable: lost records (the report holds none the metadata
    /// already holds as gone) are recorded as deleted, the scanned tail is flushed, and a new
    /// checkpoint moves the recovery point to the end, so that a second open finds exactly the
    /// same state without scanning again.
    fn settle_after_recovery(
        &self,
        report: &RecoveryReport,
        trusted_end: bool,
        rescanned: &[u64],
    ) -> Result<(), LogError> {
        let lost: Vec<u64> = report
            .lost
            .iter()
            .flat_map(|range| range.offsets.clone())
            .filter(|&offset| offset < self.next_offset())
            .collect();
        if !lost.is_empty() {
            self.record_meta(MetaEvent::Delete {
                offsets: lost,
                max_deleted_id: StreamId::MIN,
            })?;
        }
        {
            let mut guard = self.writer.lock();
            let writer = &mut *guard;
            let slots = self.slots.read();
            let durable_base = self.durable.lock().segment_base;
            writer.unflushed = slots
                .iter()
                .filter(|slot| slot.base() >= durable_base)
                .map(|slot| (Arc::clone(&slot.segment), segment::HEADER_LEN))
                .collect();
            if writer.unflushed.is_empty() {
                writer
                    .unflushed
                    .push((Arc::clone(&writer.slot.segment), segment::HEADER_LEN));
            }
        }
        if !trusted_end {
            self.checkpoint()?;
        }
        let slots = self.slots.read().clone();
        for slot in slots.iter().rev().skip(1) {
            if rescanned.contains(&slot.base()) {
                self.write_index_file(slot);
            }
        }
        Ok(())
    }
}

fn open_meta_journal(
    dir: &Path,
    checkpoint: &Checkpoint,
    report: &mut RecoveryReport,
) -> Result<(Journal, MetaState), LogError> {
    let generation = meta_journal_generation(checkpoint);
    let path = dir.join(meta_journal_name(generation));
    let (journal, meta) = if path.exists() {
        let (journal, replay, rebuilt) =
            Journal::open_repairing(&path, META_JOURNAL_KIND, generation)?;
        if let Some(reason) = rebuilt {
            report.rebuilt_headers.push(RebuiltHeader {
                file: path.clone(),
                reason,
            });
        }
        let events = meta_events(replay);
        if let Some(undecodable) = events.undecodable {
            return Err(LogError::Corrupt {
                path,
                detail: format!(
                    "{}: the journal holds a change this version cannot read; run the version that wrote it",
                    undecodable.detail
                ),
            });
        }
        let meta = replay_meta(&checkpoint.meta, &events);
        report.journal_damage = events.damage;
        (journal, meta)
    } else {
        let journal = Journal::create(&path, META_JOURNAL_KIND, generation)?;
        (journal, checkpoint.meta.clone())
    };
    remove_other_journals(dir, generation)?;
    Ok((journal, meta))
}

fn recover_segments(
    dir: &Path,
    options: &LogOptions,
    bases: &[u64],
    point: &RecoveryPoint,
    meta: &MetaState,
    trusted_end: bool,
    report: &mut RecoveryReport,
) -> Result<Vec<Recovered>, LogError> {
    let mut recovered: Vec<Recovered> = Vec::with_capacity(bases.len());
    let mut expected: Option<Previous> = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(segment_file_name(base));
        let is_last = i + 1 == bases.len();
        let next_base = bases.get(i + 1).copied().unwrap_or(u64::MAX);
        let mut segment = match open_segment(&path, Some(base..next_base), true) {
            Ok(OpenedSegment::Sound(segment)) => segment,
            Ok(OpenedSegment::Rebuilt { segment, reason }) => {
                report.rebuilt_headers.push(RebuiltHeader {
                    file: path.clone(),
                    reason,
                });
                segment
            }
            Err(OpenFailure::BadHeader {
                rebuild: SegmentError::BadHeader { detail, .. },
                ..
            }) if unfinished_creation(base, is_last, point.segment_base) => {
                // A bad header and no record on the newest segment past the recovery point:
                // a roll that never finished; such a file never held a record.
                tracing::warn!(path = %path.display(), %detail, "removing a segment whose creation never finished");
                fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
                continue;
            }
            Err(OpenFailure::BadHeader { rebuild: error, .. } | OpenFailure::Unreadable(error)) => {
                return Err(error.into());
            }
        };
        if segment.base_offset() != base {
            return Err(LogError::Corrupt {
                path,
                detail: format!(
                    "header says base offset {}, the file name says {base}",
                    segment.base_offset()
                ),
            });
        }
        if let Some(previous) = &expected {
            check_continuity(base, previous, point, meta, &path, report)?;
        }
        let durable = base < point.segment_base || (trusted_end && base == point.segment_base);
        let cached = durable
            .then(|| {
                let check = trusted_end.then_some(point);
                load_index_file(dir, &mut segment, options, check, IndexCovers::Whole)
            })
            .flatten();
        let rescanned = cached.is_none();
        let (index, dirty_end, clean_end) = match cached {
            Some(index) => {
                let end = index.end_pos();
                (index, end, true)
            }
            None => {
                // After a crash, the checkpoint's segment is known to be on disk up to the
                // recovery point: its index as of that point (written by the checkpoint) spares
                // scanning those bytes again.
                let durable_prefix = (!trusted_end && base == point.segment_base)
                    .then(|| {
                        load_index_file(
                            dir,
                            &mut segment,
                            options,
                            Some(point),
                            IndexCovers::Prefix,
                        )
                    })
                    .flatten();
                let start = durable_prefix.unwrap_or_else(|| {
                    SegmentIndex::new(options.index_interval_bytes, segment::HEADER_LEN)
                });
                scan_segment(&mut segment, start, is_last, report)
            }
        };
        let end = index.end_pos();
        debug_assert!(
            (segment::HEADER_LEN..=segment.capacity()).contains(&end),
            "{}: recovered end {end} outside the file",
            path.display()
        );
        debug_assert!(
            index.first().is_none_or(|first| first.offset >= base),
            "{}: index starts before the segment's base offset",
            path.display()
        );
        let appender = if is_last {
            Some(segment.recover_appender(end, dirty_end)?)
        } else {
            segment.set_committed(end);
            None
        };
        let next = index.last().map_or(base, |last| last.offset + 1);
        // Offsets only grow from one segment to the next (`check_continuity` refused overlaps).
        debug_assert!(
            expected
                .as_ref()
                .is_none_or(|previous| next >= previous.next)
        );
        expected = Some(Previous {
            next,
            path,
            end: end as u64,
            clean_end,
        });
        recovered.push(Recovered {
            slot: Slot {
                segment: Arc::new(segment),
                index: Arc::new(RwLock::new(index)),
            },
            appender,
            rescanned,
        });
    }
    report.segments = recovered.len();
    Ok(recovered)
}

/// What the segment before the current one ended with.
struct Previous {
    next: u64,
    path: PathBuf,
    end: u64,
    /// Its records ended with zeroed space, not with damage.
    clean_end: bool,
}

fn check_continuity(
    base: u64,
    previous: &Previous,
    point: &RecoveryPoint,
    meta: &MetaState,
    path: &Path,
    report: &mut RecoveryReport,
) -> Result<(), LogError> {
    match continuity(previous.next, base, meta) {
        Continuity::Continues => Ok(()),
        Continuity::Overlaps { previous_next } => Err(LogError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "segment starts at offset {base} but the previous segment ends at {previous_next}: move the overlapping file out of the data directory"
            ),
        }),
        Continuity::Missing(offsets) if base <= point.segment_base && previous.clean_end => {
            Err(LogError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "a segment holding offsets {}..{base} is missing before this file: restore {} from a backup",
                    offsets.start,
                    segment_file_name(offsets.start)
                ),
            })
        }
        Continuity::Missing(offsets) => {
            report.lost.push(LostRange {
                file: previous.path.clone(),
                pos: previous.end,
                offsets,
                reason: "records at the end of the segment are damaged or never reached the disk"
                    .into(),
            });
            Ok(())
        }
    }
}

/// What part of its segment an index file is trusted to describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexCovers {
    /// Every record of the segment: no record may follow the index's end.
    Whole,
    /// The records before the recovery point: the records after it are scanned.
    Prefix,
}

/// Reads a segment's index file and checks it against the segment: the records from its last
/// index point must end exactly where the index says, with the last record it names (offset
/// and ID). With `expected_end`, the index must also end at that recovery point, when the point
/// lies in this segment.
fn load_index_file(
    dir: &Path,
    segment: &mut Segment,
    options: &LogOptions,
    expected_end: Option<&RecoveryPoint>,
    covers: IndexCovers,
) -> Option<SegmentIndex> {
    let base = segment.base_offset();
    let bytes = std::fs::read(dir.join(index_file_name(base))).ok()?;
    let index = SegmentIndex::decode(&bytes, base, options.index_interval_bytes).ok()?;
    let end = index.end_pos();
    if end > segment.capacity() || end % record::ALIGN != 0 || end < segment::HEADER_LEN {
        return None;
    }
    if let Some(point) = expected_end
        && point.segment_base == base
        && (point.pos != end as u64
            || point.next_offset != index.last().map_or(base, |l| l.offset + 1))
    {
        return None;
    }
    let (from, expect) = index
        .entries()
        .last()
        .map_or((segment::HEADER_LEN, base), |p| (p.pos, p.offset));
    let whole = segment.recovery_bytes();
    if covers == IndexCovers::Whole && record::peek(&whole[end..]).is_some() {
        // A record follows the end the index names: the index is older than the segment.
        return None;
    }
    let bytes = &whole[..end];
    let mut scanner = Scanner::new(bytes, from, expect);
    let mut last = None;
    for item in scanner.by_ref() {
        match item {
            ScanItem::Record { record, .. } => last = Some((record.offset, record.id)),
            ScanItem::Damaged { .. } => return None,
        }
    }
    let ends_right = scanner.end().is_some_and(|e| e.end == end);
    (ends_right && last == index.last().map(|l| (l.offset, l.id))).then_some(index)
}

/// Scans a segment from where `index` ends (the first record for an empty index, making it a
/// full scan), continuing the index. The scan goes on exactly as a full scan would past that
/// point: same expected offset, same previous ID. Returns the index, the end of any garbage after
/// the last record, and whether the records ended cleanly (zeroed space after them).
fn scan_segment(
    segment: &mut Segment,
    mut index: SegmentIndex,
    is_last: bool,
    report: &mut RecoveryReport,
) -> (SegmentIndex, usize, bool) {
    let base = segment.base_offset();
    let path = segment.path().to_path_buf();
    let bytes = segment.recovery_bytes();
    let expected = index.last().map_or(base, |last| last.offset + 1);
    let after = index.last().map(|last| last.id);
    let mut analysis = SegmentAnalysis::new(bytes, index.end_pos(), expected, after);
    for found in analysis.by_ref() {
        match found {
            Found::Record {
                pos,
                record,
                missing_before,
            } => {
                if let Some(offsets) = missing_before {
                    report.lost.push(LostRange {
                        file: path.clone(),
                        pos: pos as u64,
                        offsets,
                        reason: "offsets missing between two valid records".into(),
                    });
                }
                index.add(
                    pos,
                    record.padded_len,
                    LastRecord {
                        offset: record.offset,
                        id: record.id,
                        timestamp_ms: record.timestamp_ms,
                    },
                );
            }
            Found::Damaged {
                pos, lost, error, ..
            } => report.lost.push(LostRange {
                file: path.clone(),
                pos: pos as u64,
                offsets: lost,
                reason: error.to_string(),
            }),
        }
    }
    let scan_end = analysis.end();
    let end = scan_end.map_or(bytes.len(), |e| e.end);
    let dirty_end = scan_end.map_or(end, |e| e.dirty_end);
    let clean_end = scan_end.is_some_and(|e| e.is_clean());
    report.scanned_bytes += analysis.walked_bytes().unwrap_or_default();
    if dirty_end > end && is_last {
        let reason = scan_end.map_or_else(String::new, |e| e.reason.to_string());
        report.torn_tail = Some(TornTail {
            file: path,
            pos: end as u64,
            bytes: (dirty_end - end) as u64,
            reason,
        });
    }
    (index, dirty_end, clean_end)
}

type Assembled = (Tip, Vec<Slot>, SegmentAppender);

fn assemble(
    recovered: Vec<Recovered>,
    point: &RecoveryPoint,
    meta: &MetaState,
    now_ms: u64,
    dir: &Path,
    options: &LogOptions,
    report: &mut RecoveryReport,
) -> Result<Assembled, LogError> {
    let mut tip = Tip {
        next_offset: recovered.first().map_or(0, |r| r.slot.base()),
        last_id: point.last_id.max(meta.last_id_floor),
    };
    let mut slots = Vec::with_capacity(recovered.len());
    let mut appender = None;
    for r in recovered {
        tip.next_offset = tip.next_offset.max(r.slot.base());
        if let Some(last) = r.slot.index.read().last() {
            tip.next_offset = last.offset + 1;
            tip.last_id = tip.last_id.max(last.id);
        }
        appender = r.appender;
        slots.push(r.slot);
    }
    if let Some(offsets) = missing_before_point(tip.next_offset, point) {
        // Records the checkpoint says were on disk are gone (damaged, or files removed): their
        // offsets and IDs must never be handed out again.
        let file = slots
            .last()
            .map_or_else(|| dir.to_path_buf(), |s| s.segment.path().to_path_buf());
        report.lost.push(LostRange {
            file,
            pos: point.pos,
            offsets,
            reason: "records before the checkpoint's recovery point are missing or damaged".into(),
        });
        tip.next_offset = point.next_offset;
    }
    let appender = match appender {
        Some(appender) => appender,
        None => {
            let (slot, appender) = create_slot(
                dir,
                options,
                tip.next_offset,
                options.initial_segment_bytes,
                now_ms,
            )?;
            slots.push(slot);
            appender
        }
    };
    Ok((tip, slots, appender))
}

/// Consumer-facing metadata can never point past what the log recovered.
fn clamp_meta(meta: &mut MetaState, tip: &Tip, slots: &[Slot]) {
    meta.deleted.retain(|&offset| offset < tip.next_offset);
    let first_file = slots.first().map_or(0, Slot::base);
    meta.first_offset = meta.first_offset.max(first_file).min(tip.next_offset);
    meta.deleted = meta.deleted.split_off(&meta.first_offset);
}

/// `lost` without the offsets `meta` already holds as gone. Damaged bytes of a record stay on
/// disk after the open that found them recorded the record as deleted, and a later scan of the
/// segment meets them again: that record was lost then, not now, and an open reports only what
/// it newly lost (so that a clean close reopens with nothing lost).
fn without_known_gone(lost: Vec<LostRange>, meta: &MetaState) -> Vec<LostRange> {
    let mut kept = Vec::new();
    for range in lost {
        let mut from = None;
        for offset in range.offsets.clone() {
            match (meta.is_gone(offset), from) {
                (false, None) => from = Some(offset),
                (true, Some(start)) => {
                    kept.push(LostRange {
                        offsets: start..offset,
                        ..range.clone()
                    });
                    from = None;
                }
                _ => {}
            }
        }
        if let Some(start) = from {
            kept.push(LostRange {
                offsets: start..range.offsets.end,
                ..range
            });
        }
    }
    kept
}

fn log_report(dir: &Path, report: &RecoveryReport) {
    for lost in &report.lost {
        tracing::error!(
            dir = %dir.display(),
            file = %lost.file.display(),
            pos = lost.pos,
            offsets = ?lost.offsets,
            reason = %lost.reason,
            "recovery skipped lost records"
        );
    }
    if let Some(tail) = &report.torn_tail {
        tracing::warn!(file = %tail.file.display(), pos = tail.pos, bytes = tail.bytes, reason = %tail.reason, "recovery cut a torn tail");
    }
    if let Some(damage) = &report.journal_damage {
        tracing::error!(%damage, "meta journal damaged: changes after the damage are lost");
    }
    for rebuilt in &report.rebuilt_headers {
        tracing::error!(file = %rebuilt.file.display(), reason = %rebuilt.reason, "damaged segment header rebuilt from the file name, its size and its records; no record lost");
    }
}

pub(super) fn segment_bases(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = names::segment_base(name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn remove_leftovers(dir: &Path) -> Result<(), LogError> {
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let leftover = entry
            .file_name()
            .to_str()
            .is_some_and(names::is_log_leftover);
        if leftover {
            let path = entry.path();
            fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
        }
    }
    Ok(())
}

fn remove_other_journals(dir: &Path, keep: u64) -> Result<(), LogError> {
    let keep_name = meta_journal_name(keep);
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if names::is_meta_journal(name) && name != keep_name {
            let path = entry.path();
            fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::*;
    use crate::log::{IdSpec, NewEntry};

    const NOW: u64 = 1_700_000_000_000;

    fn options() -> LogOptions {
        LogOptions {
            max_segment_bytes: 256 << 10,
            initial_segment_bytes: 64 << 10,
            index_interval_bytes: 512,
        }
    }

    fn open(dir: &Path) -> (Log, RecoveryReport) {
        Log::open(dir, options(), false, NOW).unwrap()
    }

    fn append(log: &Log, count: u64) {
        for n in 0..count {
            let body = format!("entry {n:06} {}", "x".repeat(200 + (n % 7) as usize * 30));
            let entry = NewEntry {
                id: IdSpec::Auto,
                headers: &[] as &[(&[u8], &[u8])],
                body: body.as_bytes(),
                idempotency: None,
            };
            log.append(&[entry], NOW + n).unwrap();
        }
    }

    /// Writes `durable` entries, checkpoints, writes `tail` more and drops the log without
    /// closing it, as a crash leaves it. Returns the log's directory and the checkpoint's point.
    fn crashed(durable: u64, tail: u64) -> (tempfile::TempDir, RecoveryPoint) {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path());
        append(&log, durable);
        let point = log.checkpoint().unwrap();
        append(&log, tail);
        drop(log);
        (dir, point)
    }

    /// A copy of `from` without the index of the checkpoint's segment: its open rescans it whole.
    fn copy_without_index(from: &Path, point: &RecoveryPoint) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.path().join(path.file_name().unwrap())).unwrap();
        }
        std::fs::remove_file(to.path().join(index_file_name(point.segment_base))).unwrap();
        to
    }

    type Seen = Vec<(u64, StreamId, Vec<u8>)>;

    fn seen(entries: Vec<super::super::Entry>) -> Seen {
        entries
            .into_iter()
            .map(|e| (e.offset, e.id, e.body().to_vec()))
            .collect()
    }

    /// Everything a reader can observe: entries by offset, by ID range both ways, and the tip.
    fn observe(log: &Log) -> (Seen, Seen, Seen, u64, StreamId, u64) {
        let all = seen(log.read_from(0, usize::MAX).unwrap());
        let mid = all[all.len() / 2].1;
        let by_id = seen(
            log.range(Bound::Excluded(mid), Bound::Unbounded, usize::MAX)
                .unwrap(),
        );
        let reversed = seen(
            log.range_rev(Bound::Included(mid), Bound::Unbounded, 40)
                .unwrap(),
        );
        let one_by_one: Seen = all
            .iter()
            .filter_map(|(offset, ..)| log.read(*offset).unwrap())
            .map(|e| (e.offset, e.id, e.body().to_vec()))
            .collect();
        assert_eq!(one_by_one, all);
        (
            all,
            by_id,
            reversed,
            log.next_offset(),
            log.last_id(),
            log.len(),
        )
    }

    /// Losses (position, offsets) and the cut (position, bytes).
    type Damage = (Vec<(u64, Range<u64>)>, Option<(u64, u64)>);

    /// Losses and cuts, without the directory they were found in.
    fn damage(report: &RecoveryReport) -> Damage {
        let lost = report
            .lost
            .iter()
            .map(|l| (l.pos, l.offsets.clone()))
            .collect();
        let torn = report.torn_tail.as_ref().map(|t| (t.pos, t.bytes));
        (lost, torn)
    }

    /// Opens the crashed directory and a copy of it without the persisted index: both must
    /// recover exactly the same log. Returns the report of the open that had the index.
    fn assert_same_as_rescan(dir: &Path, point: &RecoveryPoint) -> RecoveryReport {
        let rescan_dir = copy_without_index(dir, point);
        let (rescanned, full) = open(rescan_dir.path());
        let (log, report) = open(dir);
        assert_eq!(observe(&log), observe(&rescanned));
        assert_eq!(damage(&report), damage(&full));
        assert_eq!(report.entries, full.entries);
        assert_eq!(log.meta(), rescanned.meta());
        report
    }

    fn segment_end(dir: &Path, point: &RecoveryPoint) -> u64 {
        let bytes = std::fs::read(dir.join(index_file_name(point.segment_base))).unwrap();
        SegmentIndex::decode(&bytes, point.segment_base, 1)
            .unwrap()
            .end_pos() as u64
    }

    /// Byte positions of the records of a segment file.
    fn record_positions(path: &Path) -> Vec<usize> {
        let bytes = std::fs::read(path).unwrap();
        Scanner::new(&bytes, segment::HEADER_LEN, 0)
            .filter_map(|item| match item {
                ScanItem::Record { pos, .. } => Some(pos),
                ScanItem::Damaged { .. } => None,
            })
            .collect()
    }

    fn overwrite(path: &Path, at: usize, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, at as u64).unwrap();
    }

    #[test]
    fn a_crash_scans_only_what_follows_the_recovery_point() {
        for (durable, tail) in [(40, 30), (700, 30), (700, 0), (0, 20)] {
            let (dir, point) = crashed(durable, tail);
            assert_eq!(segment_end(dir.path(), &point), point.pos);
            let rescan_dir = copy_without_index(dir.path(), &point);
            let full = open(rescan_dir.path()).1.scanned_bytes;
            let report = assert_same_as_rescan(dir.path(), &point);
            assert!(!report.found_damage(), "{report:?}");
            assert_eq!(
                report.scanned_bytes,
                full - (point.pos - segment::HEADER_LEN as u64),
                "{durable} durable entries, {tail} after them"
            );
            // The open checkpointed with the index of its new recovery point: a second crash
            // open scans nothing and finds the same log.
            let (again, second) = open(dir.path());
            assert_eq!(second.scanned_bytes, 0);
            assert_eq!(again.next_offset(), durable + tail);
        }
    }

    #[test]
    fn a_bad_persisted_index_falls_back_to_the_full_scan() {
        type Spoil = fn(&Path, &RecoveryPoint, &[u8]);
        let spoilers: [(&str, Spoil); 5] = [
            ("flipped byte", |path, _, bytes| {
                overwrite(path, bytes.len() / 2, &[bytes[bytes.len() / 2] ^ 0x10])
            }),
            ("truncated", |path, _, bytes| {
                std::fs::write(path, &bytes[..bytes.len() - 9]).unwrap()
            }),
            ("empty", |path, _, _| std::fs::write(path, b"").unwrap()),
            ("last record's ID differs", |path, point, bytes| {
                let index = SegmentIndex::decode(bytes, point.segment_base, 1).unwrap();
                let mut wrong = SegmentIndex::new(512, segment::HEADER_LEN);
                let points = index.entries();
                let last = index.last().unwrap();
                // Same points and end, but the last record named with another ID.
                for (k, p) in points.iter().enumerate() {
                    let next = points.get(k + 1).map_or(index.end_pos(), |n| n.pos);
                    let id = if k + 1 == points.len() { last.id } else { p.id };
                    let record = LastRecord {
                        offset: if k + 1 == points.len() {
                            last.offset
                        } else {
                            p.offset
                        },
                        id: StreamId::new(id.ms, id.seq + 1),
                        timestamp_ms: 0,
                    };
                    wrong.add(p.pos, next - p.pos, record);
                }
                assert_eq!(wrong.end_pos(), index.end_pos());
                std::fs::write(path, wrong.encode(point.segment_base)).unwrap();
            }),
            ("stale: from an earlier checkpoint", |_, _, _| {}),
        ];
        for (what, spoil) in spoilers {
            let (dir, point) = crashed(300, 40);
            let path = dir.path().join(index_file_name(point.segment_base));
            let bytes = std::fs::read(&path).unwrap();
            if what.starts_with("stale") {
                // Checkpoint again further on, then put the first checkpoint's index back.
                let (log, _) = open(dir.path());
                append(&log, 25);
                log.checkpoint().unwrap();
                append(&log, 10);
                drop(log);
                std::fs::write(&path, &bytes).unwrap();
            } else {
                spoil(&path, &point, &bytes);
            }
            let rescan_dir = copy_without_index(dir.path(), &point);
            let full = open(rescan_dir.path()).1.scanned_bytes;
            let report = assert_same_as_rescan(dir.path(), &point);
            assert_eq!(report.scanned_bytes, full, "{what}");
            assert!(!report.found_damage(), "{what}: {report:?}");
        }
    }

    #[test]
    fn damage_after_the_recovery_point_is_cut_or_skipped_as_before() {
        for victim_from_end in [1usize, 3] {
            for torn in [false, true] {
                let (dir, point) = crashed(300, 40);
                let path = dir.path().join(segment_file_name(point.segment_base));
                let positions = record_positions(&path);
                let tail: Vec<usize> = positions
                    .iter()
                    .copied()
                    .filter(|&pos| pos as u64 >= point.pos)
                    .collect();
                let victim = tail[tail.len() - victim_from_end];
                let victim_offset = point.next_offset + (tail.len() - victim_from_end) as u64;
                if torn {
                    let len = std::fs::metadata(&path).unwrap().len() as usize;
                    overwrite(&path, victim + 24, &vec![0; len - victim - 24]);
                } else {
                    overwrite(&path, victim + 70, b"damage");
                }
                let report = assert_same_as_rescan(dir.path(), &point);
                let lost: Vec<Range<u64>> = report.lost.iter().map(|l| l.offsets.clone()).collect();
                if torn {
                    assert!(report.lost.is_empty(), "{report:?}");
                    assert_eq!(report.torn_tail.as_ref().unwrap().pos, victim as u64);
                } else if victim_from_end == 1 {
                    // The last record damaged: nothing valid follows, so it is a torn tail.
                    assert!(lost.is_empty(), "{report:?}");
                    assert_eq!(report.torn_tail.as_ref().unwrap().pos, victim as u64);
                } else {
                    assert_eq!(lost, vec![victim_offset..victim_offset + 1], "{report:?}");
                    assert!(report.torn_tail.is_none());
                }
                assert!(report.scanned_bytes < point.pos, "{report:?}");
            }
        }
    }

    #[test]
    fn a_checkpoint_falls_due_once_enough_of_the_active_segment_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions {
            max_segment_bytes: 16 << 20,
            initial_segment_bytes: 16 << 20,
            index_interval_bytes: 4096,
        };
        let (log, _) = Log::open(dir.path(), options, false, NOW).unwrap();
        let body = vec![b'x'; 64 << 10];
        let append_mib = |mib: usize| {
            for _ in 0..mib * 16 {
                let entry = NewEntry {
                    id: IdSpec::Auto,
                    headers: &[] as &[(&[u8], &[u8])],
                    body: &body,
                    idempotency: None,
                };
                log.append(&[entry], NOW).unwrap();
            }
        };
        append_mib(3);
        log.flush().unwrap();
        assert!(!log.take_checkpoint_due(), "3 MiB durable");
        append_mib(2);
        assert!(!log.take_checkpoint_due(), "5 MiB written, 3 MiB durable");
        log.flush().unwrap();
        assert!(log.take_checkpoint_due(), "5 MiB durable");
        log.checkpoint().unwrap();
        assert!(
            !log.take_checkpoint_due(),
            "nothing durable past the checkpoint"
        );
        assert_eq!(log.slots.read().len(), 1, "no roll made it due");
    }
}
