//! Opening a log: finding its files, trusting what the checkpoint says is on disk, scanning what
//! follows it, cutting a torn tail, skipping damaged records and reporting exactly what was lost.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::{Mutex, RwLock};

use super::{
    CHECKPOINT_FILE, CHECKPOINT_KIND, Checkpoint, LastRecord, Log, LogError, LogOptions,
    META_JOURNAL_KIND, MetaEvent, MetaJournal, MetaState, RecoveryPoint, SegmentIndex, Slot, Tip,
    Writer, create_slot, index_file_name, meta_journal_name, segment_file_name,
};
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
    pub file: PathBuf,
    pub pos: u64,
    /// Bytes of garbage zeroed after `pos`.
    pub bytes: u64,
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
}

impl RecoveryReport {
    /// Whether anything was lost or cut.
    pub fn found_damage(&self) -> bool {
        !self.lost.is_empty() || self.torn_tail.is_some() || self.journal_damage.is_some()
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
        std::fs::create_dir_all(dir).map_err(LogError::io("create directory", dir))?;
        remove_leftovers(dir)?;
        let bases = segment_bases(dir)?;
        let checkpoint = journal::read_snapshot(&dir.join(CHECKPOINT_FILE), CHECKPOINT_KIND)?
            .map(|snapshot| {
                Checkpoint::decode(&snapshot.payload).map_err(|error| LogError::Corrupt {
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
        let writer = Writer {
            slot: slots.last().cloned().ok_or_else(|| LogError::Corrupt {
                path: dir.to_path_buf(),
                detail: "no segment after recovery".into(),
            })?,
            appender,
            unflushed: Vec::new(),
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
            damage_seen: Mutex::new(Vec::new()),
            checkpoint_due: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
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
            }),
            tip: RwLock::new(Tip {
                next_offset: 0,
                last_id: StreamId::MIN,
            }),
            meta: RwLock::new(MetaState::default()),
            journal: Mutex::new(MetaJournal {
                sync: journal.sync_handle(),
                journal,
            }),
            durable: Mutex::new(checkpoint.recovery_point),
            damage_seen: Mutex::new(Vec::new()),
            checkpoint_due: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
        };
        Ok((log, RecoveryReport::default()))
    }

    /// Makes recovery's conclusions durable: lost records are recorded as deleted, the scanned
    /// tail is flushed, and a new checkpoint moves the recovery point to the end, so that a
    /// second open finds exactly the same state without scanning again.
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
            .filter(|&offset| !self.meta.read().is_gone(offset) && offset < self.next_offset())
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
    let generation = checkpoint.journal_generation.max(1);
    let path = dir.join(meta_journal_name(generation));
    let mut meta = checkpoint.meta.clone();
    let journal = if path.exists() {
        let (journal, replay) = Journal::open(&path, META_JOURNAL_KIND)?;
        for frame in &replay.frames {
            // A frame that passed its CRC but does not decode was written by another version
            // or a bug: replaying around it could apply later changes without it.
            let event = MetaEvent::decode(frame).map_err(|error| LogError::Corrupt {
                path: path.clone(),
                detail: format!("{error}: the journal holds a change this version cannot read; run the version that wrote it"),
            })?;
            meta.apply(&event);
        }
        if replay.damage.is_some() {
            report.journal_damage = replay.damage;
        }
        journal
    } else {
        Journal::create(&path, META_JOURNAL_KIND, generation)?
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
        let mut segment = match Segment::open(&path) {
            Ok(segment) => segment,
            Err(SegmentError::BadHeader { detail, .. }) if is_last && base > point.segment_base => {
                // Segments are created under a temporary name and renamed once their header is
                // on disk; a bad header on the newest segment past the recovery point can only
                // be a roll that never finished, and such a file never held a record.
                tracing::warn!(path = %path.display(), %detail, "removing a segment whose creation never finished");
                std::fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
                continue;
            }
            Err(error) => return Err(error.into()),
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
            .then(|| load_index_file(dir, &mut segment, options, trusted_end.then_some(point)))
            .flatten();
        let rescanned = cached.is_none();
        let (index, dirty_end, clean_end) = match cached {
            Some(index) => {
                let end = index.end_pos();
                (index, end, true)
            }
            None => scan_segment(&mut segment, options, is_last, report),
        };
        let end = index.end_pos();
        let appender = if is_last {
            Some(segment.recover_appender(end, dirty_end)?)
        } else {
            segment.set_committed(end);
            None
        };
        let next = index.last().map_or(base, |last| last.offset + 1);
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
    let expected = previous.next;
    if base < expected {
        return Err(LogError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "segment starts at offset {base} but the previous segment ends at {expected}: move the overlapping file out of the data directory"
            ),
        });
    }
    if base > expected && all_gone(meta, expected..base) {
        // An earlier open already recorded these offsets as lost (or they were deleted or
        // trimmed): nothing live is missing, and the settled state opens again unchanged.
        return Ok(());
    }
    if base > expected {
        if base <= point.segment_base && previous.clean_end {
            return Err(LogError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "a segment holding offsets {expected}..{base} is missing before this file: restore {} from a backup",
                    segment_file_name(expected)
                ),
            });
        }
        report.lost.push(LostRange {
            file: previous.path.clone(),
            pos: previous.end,
            offsets: expected..base,
            reason: "records at the end of the segment are damaged or never reached the disk"
                .into(),
        });
    }
    Ok(())
}

/// Whether every offset in `offsets` is deleted or below the first offset.
fn all_gone(meta: &MetaState, offsets: Range<u64>) -> bool {
    let from = offsets.start.max(meta.first_offset);
    from >= offsets.end || meta.deleted_between(from, offsets.end) as u64 == offsets.end - from
}

/// Reads a segment's index file and checks it against the segment: the records from its last
/// index point must end exactly where the index says, with the last record it names.
fn load_index_file(
    dir: &Path,
    segment: &mut Segment,
    options: &LogOptions,
    expected_end: Option<&RecoveryPoint>,
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
    if record::peek(&whole[end..]).is_some() {
        // A record follows the end the index names: the index is older than the segment.
        return None;
    }
    let bytes = &whole[..end];
    let mut scanner = Scanner::new(bytes, from, expect);
    let mut last = None;
    for item in scanner.by_ref() {
        match item {
            ScanItem::Record { record, .. } => last = Some(record.offset),
            ScanItem::Damaged { .. } => return None,
        }
    }
    let ends_right = scanner.end().is_some_and(|e| e.end == end);
    (ends_right && last == index.last().map(|l| l.offset)).then_some(index)
}

/// Scans a whole segment, rebuilding its index. Returns the index, the end of any garbage after
/// the last record, and whether the records ended cleanly (zeroed space after them).
fn scan_segment(
    segment: &mut Segment,
    options: &LogOptions,
    is_last: bool,
    report: &mut RecoveryReport,
) -> (SegmentIndex, usize, bool) {
    let base = segment.base_offset();
    let path = segment.path().to_path_buf();
    let bytes = segment.recovery_bytes();
    let mut index = SegmentIndex::new(options.index_interval_bytes, segment::HEADER_LEN);
    let mut scanner = Scanner::new(bytes, segment::HEADER_LEN, base);
    let mut expected = base;
    for item in scanner.by_ref() {
        match item {
            ScanItem::Record { pos, record } => {
                if record.offset > expected && index.record_count() > 0 {
                    report.lost.push(LostRange {
                        file: path.clone(),
                        pos: pos as u64,
                        offsets: expected..record.offset,
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
                expected = record.offset + 1;
            }
            ScanItem::Damaged { pos, resume, error } => {
                let resumed = record::peek(&bytes[resume..]).map_or(expected, |p| p.offset);
                report.lost.push(LostRange {
                    file: path.clone(),
                    pos: pos as u64,
                    offsets: expected..resumed,
                    reason: error.to_string(),
                });
                // These offsets are reported: the record at `resume` continues from them.
                expected = resumed;
            }
        }
    }
    let end = scanner.end().map_or(bytes.len(), |e| e.end);
    let dirty_end = scanner.end().map_or(end, |e| e.dirty_end);
    let clean_end = scanner
        .end()
        .is_some_and(|e| e.dirty_end == e.end && e.reason == record::DecodeError::Empty);
    report.scanned_bytes += (end - segment::HEADER_LEN) as u64;
    if dirty_end > end && is_last {
        let reason = scanner
            .end()
            .map_or_else(String::new, |e| e.reason.to_string());
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
    if tip.next_offset < point.next_offset {
        // Records the checkpoint says were on disk are gone (damaged, or files removed): their
        // offsets and IDs must never be handed out again.
        let file = slots
            .last()
            .map_or_else(|| dir.to_path_buf(), |s| s.segment.path().to_path_buf());
        report.lost.push(LostRange {
            file,
            pos: point.pos,
            offsets: tip.next_offset..point.next_offset,
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
}

fn segment_bases(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".seg")
            && stem.len() == 20
            && let Ok(base) = stem.parse::<u64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn remove_leftovers(dir: &Path) -> Result<(), LogError> {
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let leftover = entry.file_name().to_str().is_some_and(|n| {
            n.ends_with(".index.tmp")
                || n.ends_with(".seg.tmp")
                || (n.starts_with("meta.") && n.ends_with(".journal.tmp"))
        });
        if leftover {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
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
        if name.starts_with("meta.") && name.ends_with(".journal") && name != keep_name {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
        }
    }
    Ok(())
}
