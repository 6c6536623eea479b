//! The windows: each producer's recently appended keys, oldest first, bounded by time and by
//! size, and the producers ordered by their oldest key so that expiry finds what is due.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::codec::{CodecError, Decoder, Encoder};
use crate::id::StreamId;

/// Default time a key stays in its window: 100 seconds, Redis's `IDMP-DURATION` default.
pub const DEFAULT_DURATION_MS: u64 = 100_000;
/// Shortest valid window: 1 second, the lower bound Redis accepts for `IDMP-DURATION`.
pub const MIN_DURATION_MS: u64 = 1_000;
/// Longest valid window: 1 day (86 400 seconds), the upper bound Redis accepts for
/// `IDMP-DURATION`.
pub const MAX_DURATION_MS: u64 = 86_400_000;
/// Default number of keys kept per producer: 100, Redis's `IDMP-MAXSIZE` default.
pub const DEFAULT_MAX_SIZE: usize = 100;
/// Smallest valid number of keys per producer, as Redis's `IDMP-MAXSIZE`.
pub const MIN_MAX_SIZE: usize = 1;
/// Largest valid number of keys per producer, as Redis's `IDMP-MAXSIZE`.
pub const MAX_MAX_SIZE: usize = 10_000;

/// Version byte that starts a snapshot payload.
const SNAPSHOT_FORMAT: u8 = 1;
/// Names the snapshot payload in decoding errors.
const SNAPSHOT_WHAT: &str = "idempotency snapshot";
/// Smallest encoded producer: an empty name and a key count.
const MIN_PRODUCER_LEN: usize = 4 + 8;
/// Smallest encoded key: an empty iid, an ID and a time.
const MIN_KEY_LEN: usize = 4 + 16 + 8;

/// The idempotency settings of one stream (Redis's `XCFGSET key IDMP-DURATION .. IDMP-MAXSIZE ..`,
/// with the duration in milliseconds rather than seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyConfig {
    /// How long a key is remembered after its append, in milliseconds.
    pub duration_ms: u64,
    /// How many keys each producer keeps at most.
    pub max_size: usize,
}

impl Default for IdempotencyConfig {
    /// Redis's defaults: 100 seconds and 100 keys per producer.
    fn default() -> Self {
        IdempotencyConfig {
            duration_ms: DEFAULT_DURATION_MS,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

impl IdempotencyConfig {
    /// Checks the ranges Redis accepts: a duration from 1 second to 1 day (any millisecond value
    /// in between is fine) and 1 to 10 000 keys per producer.
    pub fn validate(&self) -> Result<(), IdempotencyError> {
        if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&self.duration_ms) {
            return Err(IdempotencyError::Duration {
                duration_ms: self.duration_ms,
            });
        }
        if !(MIN_MAX_SIZE..=MAX_MAX_SIZE).contains(&self.max_size) {
            return Err(IdempotencyError::MaxSize {
                max_size: self.max_size,
            });
        }
        Ok(())
    }
}

/// Why an [`IdempotencyConfig`] is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    /// The duration is outside [`MIN_DURATION_MS`]`..=`[`MAX_DURATION_MS`].
    #[error(
        "idempotency duration of {duration_ms} ms is outside {min}..={max} ms",
        min = MIN_DURATION_MS,
        max = MAX_DURATION_MS
    )]
    Duration {
        /// The rejected duration.
        duration_ms: u64,
    },
    /// The size is outside [`MIN_MAX_SIZE`]`..=`[`MAX_MAX_SIZE`].
    #[error(
        "idempotency max size of {max_size} keys per producer is outside {min}..={max}",
        min = MIN_MAX_SIZE,
        max = MAX_MAX_SIZE
    )]
    MaxSize {
        /// The rejected size.
        max_size: usize,
    },
}

/// One remembered key, in its producer's queue.
#[derive(Debug, Clone)]
struct Slot {
    iid: Arc<[u8]>,
    id: StreamId,
    appended_ms: u64,
}

/// The keys of one producer: a map for lookups and a queue, oldest first, for forgetting. Both
/// share the iid bytes. Times in the queue never decrease (see [`IdempotencyWindows::remember`]),
/// so the front is both the oldest by time and the first to be evicted by size.
#[derive(Debug, Clone, Default)]
struct Window {
    ids: HashMap<Arc<[u8]>, StreamId>,
    order: VecDeque<Slot>,
}

impl Window {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn oldest_ms(&self) -> Option<u64> {
        self.order.front().map(|slot| slot.appended_ms)
    }

    fn newest_ms(&self) -> Option<u64> {
        self.order.back().map(|slot| slot.appended_ms)
    }

    fn push(&mut self, iid: Arc<[u8]>, id: StreamId, appended_ms: u64) {
        self.ids.insert(Arc::clone(&iid), id);
        self.order.push_back(Slot {
            iid,
            id,
            appended_ms,
        });
    }

    /// Forgets `iid`. Linear in the window, but only reached when a key is remembered again with
    /// a different ID, which the append path never does.
    fn remove(&mut self, iid: &[u8]) {
        if self.ids.remove(iid).is_some() {
            if let Some(at) = self.order.iter().position(|slot| *slot.iid == *iid) {
                self.order.remove(at);
            }
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(slot) = self.order.pop_front() {
            self.ids.remove(&slot.iid);
        }
    }

    /// Forgets the oldest keys until at most `max_size` are left.
    fn truncate(&mut self, max_size: usize) {
        while self.order.len() > max_size {
            self.pop_oldest();
        }
    }

    /// Forgets every key appended at or before `cutoff_ms`, returning how many.
    fn drop_through(&mut self, cutoff_ms: u64) -> usize {
        let before = self.order.len();
        while self.oldest_ms().is_some_and(|ms| ms <= cutoff_ms) {
            self.pop_oldest();
        }
        before - self.order.len()
    }
}

/// The idempotency windows of one stream: for every producer, the keys it appended recently and
/// the IDs those appends got.
///
/// Layout, and why expiry never scans every producer: each producer has a map and a queue of its
/// keys, oldest first, and `by_oldest` orders the producers by the time of their oldest key, one
/// entry per producer. [`expire`](Self::expire) looks at the first entry only, so when nothing is
/// due it costs `O(log P)`; otherwise it drops the due keys of each producer it visits and
/// re-files that producer under its new oldest key. Memory is proportional to the keys tracked
/// plus one index entry per producer; producers without keys are removed. (A single queue of
/// every append, ordered by time, would be simpler but would also hold entries for keys already
/// pushed out by the size bound, so its memory would follow the append rate, not the keys kept.)
#[derive(Debug, Clone)]
pub struct IdempotencyWindows {
    config: IdempotencyConfig,
    windows: HashMap<Arc<[u8]>, Window>,
    /// `(oldest appended_ms, producer)` for every producer in `windows`.
    by_oldest: BTreeSet<(u64, Arc<[u8]>)>,
    /// Keys across all producers.
    tracked: usize,
    /// The largest time seen: the `now_ms` every age is measured against.
    clock_ms: u64,
}

impl Default for IdempotencyWindows {
    fn default() -> Self {
        Self::new(IdempotencyConfig::default())
    }
}

impl IdempotencyWindows {
    /// Bytes the windows hold in memory: each producer's name, keys and queue (elements only;
    /// allocator and table overhead not included).
    pub fn heap_bytes(&self) -> usize {
        let producers: usize = self
            .windows
            .iter()
            .map(|(producer, window)| {
                let keys: usize = window.order.iter().map(|slot| slot.iid.len()).sum();
                producer.len()
                    + keys
                    + window.order.capacity() * std::mem::size_of::<Slot>()
                    + window.ids.capacity() * std::mem::size_of::<(Arc<[u8]>, StreamId)>()
            })
            .sum();
        producers + self.by_oldest.len() * std::mem::size_of::<(u64, Arc<[u8]>)>()
    }

    /// Empty windows with `config`. The config is not validated (see
    /// [`IdempotencyConfig::validate`]); out-of-range values still behave consistently: a zero
    /// duration forgets every key at once and a zero size remembers none.
    pub fn new(config: IdempotencyConfig) -> Self {
        IdempotencyWindows {
            config,
            windows: HashMap::new(),
            by_oldest: BTreeSet::new(),
            tracked: 0,
            clock_ms: 0,
        }
    }

    /// The current settings.
    pub fn config(&self) -> IdempotencyConfig {
        self.config
    }

    /// Changes the settings; a smaller size or a shorter duration applies at once, forgetting the
    /// keys now outside the window. Keys still inside are kept: unlike Redis's `XCFGSET`, which
    /// clears every producer's map, changing the settings does not reopen the door to duplicates
    /// (call [`clear`](Self::clear) as well to get Redis's behaviour). Not validated, as in
    /// [`new`](Self::new).
    pub fn set_config(&mut self, config: IdempotencyConfig, now_ms: u64) {
        let shrunk = config.max_size < self.config.max_size;
        self.config = config;
        if shrunk {
            let max_size = config.max_size;
            self.windows.retain(|_, window| {
                window.truncate(max_size);
                window.len() > 0
            });
            self.rebuild_index();
        }
        self.expire(now_ms);
    }

    /// Forgets every key, keeping the settings.
    pub fn clear(&mut self) {
        self.windows.clear();
        self.by_oldest.clear();
        self.tracked = 0;
    }

    /// The ID an earlier append with this key got, if it is still in the window (keys past the
    /// window are forgotten first).
    pub fn lookup(&mut self, producer: &[u8], iid: &[u8], now_ms: u64) -> Option<StreamId> {
        self.expire(now_ms);
        self.windows.get(producer)?.ids.get(iid).copied()
    }

    /// Remembers that an append with this key got `id` at `appended_ms`. Called after the append
    /// succeeded, and during recovery for every record carrying a key, in log order, with the
    /// record's own timestamp.
    ///
    /// - Remembering a key again with the same ID (a replay) changes nothing.
    /// - Remembering a key again with a different ID replaces it: the later append wins and
    ///   becomes the producer's newest key. In a replay this happens when the first append had
    ///   left the window before the second was made.
    /// - A key already past the window (an old record replayed) is not remembered.
    /// - An `appended_ms` ahead of the clock (the largest `now_ms` seen; a record stamped by a
    ///   wall clock that was ahead before a restart) is lowered to it, so the key gets its full
    ///   duration as this clock measures it. One behind the producer's newest key is raised to
    ///   that key's time, which only lengthens its stay and keeps each producer's queue in time
    ///   order.
    pub fn remember(
        &mut self,
        producer: &[u8],
        iid: &[u8],
        id: StreamId,
        appended_ms: u64,
        now_ms: u64,
    ) {
        self.expire(now_ms);
        let (newest_ms, known) = match self.windows.get(producer) {
            Some(window) => (window.newest_ms(), window.ids.get(iid).copied()),
            None => (None, None),
        };
        if known == Some(id) {
            return;
        }
        let appended_ms = appended_ms.min(self.clock_ms).max(newest_ms.unwrap_or(0));
        if self.cutoff_ms().is_some_and(|cutoff| appended_ms <= cutoff) {
            // Any earlier key with this iid is at least as old, so it is already gone too.
            return;
        }
        let name = match self.windows.get_key_value(producer) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(producer),
        };
        let max_size = self.config.max_size;
        let window = self.windows.entry(Arc::clone(&name)).or_default();
        let (before_len, before_ms) = (window.len(), window.oldest_ms());
        if known.is_some() {
            window.remove(iid);
        }
        window.push(Arc::from(iid), id, appended_ms);
        window.truncate(max_size);
        let (after_len, after_ms) = (window.len(), window.oldest_ms());
        if after_len == 0 {
            self.windows.remove(&name);
        }
        self.tracked = self.tracked - before_len + after_len;
        if before_ms != after_ms {
            if let Some(ms) = before_ms {
                self.by_oldest.remove(&(ms, Arc::clone(&name)));
            }
            if let Some(ms) = after_ms {
                self.by_oldest.insert((ms, name));
            }
        }
    }

    /// Producers with at least one key in their window.
    pub fn producers(&self) -> usize {
        self.windows.len()
    }

    /// Keys in all windows.
    pub fn tracked(&self) -> usize {
        self.tracked
    }

    /// Forgets every key past the window. Cheap to call often: `O(log P)` when nothing is due.
    pub fn expire(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        let Some(cutoff) = self.cutoff_ms() else {
            return;
        };
        while self
            .by_oldest
            .first()
            .is_some_and(|(oldest, _)| *oldest <= cutoff)
        {
            let Some((_, name)) = self.by_oldest.pop_first() else {
                break;
            };
            let Some(window) = self.windows.get_mut(&name) else {
                continue;
            };
            self.tracked -= window.drop_through(cutoff);
            match window.oldest_ms() {
                Some(ms) => {
                    self.by_oldest.insert((ms, name));
                }
                None => {
                    self.windows.remove(&name);
                }
            }
        }
    }

    /// Keys appended at or before this time are past the window; `None` while none can be.
    fn cutoff_ms(&self) -> Option<u64> {
        self.clock_ms.checked_sub(self.config.duration_ms)
    }

    /// Recomputes `by_oldest` and `tracked` from `windows`.
    fn rebuild_index(&mut self) {
        self.by_oldest = self
            .windows
            .iter()
            .filter_map(|(name, window)| Some((window.oldest_ms()?, Arc::clone(name))))
            .collect();
        self.tracked = self.windows.values().map(Window::len).sum();
    }

    /// The snapshot payload, little-endian:
    ///
    /// ```text
    /// u8  format              1
    /// u64 duration_ms
    /// u64 max_size
    /// u64 producer count      then, per producer, in byte order of the names:
    ///     u32 len, producer
    ///     u64 key count       at least 1; then, per key, oldest first:
    ///         u32 len, iid
    ///         u64 id_ms, u64 id_seq
    ///         u64 appended_ms (never decreasing within a producer)
    /// ```
    ///
    /// The same state always encodes to the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut producers: Vec<_> = self.windows.iter().collect();
        producers.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Encoder::new();
        out.u8(SNAPSHOT_FORMAT)
            .u64(self.config.duration_ms)
            .u64(self.config.max_size as u64)
            .u64(producers.len() as u64);
        for (name, window) in producers {
            out.bytes(name).u64(window.len() as u64);
            for slot in &window.order {
                out.bytes(&slot.iid).id(slot.id).u64(slot.appended_ms);
            }
        }
        out.finish()
    }

    /// Parses a payload made by [`encode`](Self::encode). Never panics; rejects trailing bytes,
    /// producers out of order or twice, keys twice, empty producers, producers holding more keys
    /// than the size bound and keys out of time order, so only canonical payloads decode. The clock resumes at the newest key's time; keys past the
    /// window are dropped by the next call that passes the current time.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let malformed = |detail| CodecError {
            what: SNAPSHOT_WHAT,
            detail,
        };
        let mut input = Decoder::new(bytes, SNAPSHOT_WHAT);
        if input.u8()? != SNAPSHOT_FORMAT {
            return Err(malformed("has an unknown format"));
        }
        let duration_ms = input.u64()?;
        let max_size = usize::try_from(input.u64()?)
            .map_err(|_| malformed("max size does not fit in memory"))?;
        let mut out = Self::new(IdempotencyConfig {
            duration_ms,
            max_size,
        });
        let mut previous: Option<&[u8]> = None;
        for _ in 0..input.count(MIN_PRODUCER_LEN)? {
            let name = input.bytes()?;
            if previous.is_some_and(|previous| previous >= name) {
                return Err(malformed("holds producers out of order or twice"));
            }
            previous = Some(name);
            let keys = input.count(MIN_KEY_LEN)?;
            if keys == 0 {
                return Err(malformed("holds a producer without keys"));
            }
            if keys > max_size {
                return Err(malformed("holds a producer with more keys than max size"));
            }
            let mut window = Window::default();
            for _ in 0..keys {
                let iid = input.bytes()?;
                let id = input.id()?;
                let appended_ms = input.u64()?;
                if window
                    .newest_ms()
                    .is_some_and(|newest| appended_ms < newest)
                {
                    return Err(malformed("holds keys out of time order"));
                }
                if window.ids.contains_key(iid) {
                    return Err(malformed("holds a key twice"));
                }
                window.push(Arc::from(iid), id, appended_ms);
            }
            out.clock_ms = out.clock_ms.max(window.newest_ms().unwrap_or(0));
            out.windows.insert(Arc::from(name), window);
        }
        input.finish()?;
        out.rebuild_index();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: &[u8] = b"producer-1";
    const P2: &[u8] = b"producer-2";

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    fn config(duration_ms: u64, max_size: usize) -> IdempotencyConfig {
        IdempotencyConfig {
            duration_ms,
            max_size,
        }
    }

    /// Checks the bookkeeping against a recount.
    fn check_invariants(windows: &IdempotencyWindows) {
        let recount: usize = windows.windows.values().map(Window::len).sum();
        assert_eq!(windows.tracked(), recount);
        assert_eq!(windows.by_oldest.len(), windows.windows.len());
        for (name, window) in &windows.windows {
            assert!(window.len() > 0);
            assert!(window.len() <= windows.config.max_size);
            assert_eq!(window.ids.len(), window.len());
            let oldest = window.oldest_ms().unwrap();
            assert!(windows.by_oldest.contains(&(oldest, Arc::clone(name))));
            let times: Vec<_> = window.order.iter().map(|slot| slot.appended_ms).collect();
            assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
            for slot in &window.order {
                assert_eq!(window.ids.get(&slot.iid), Some(&slot.id));
            }
        }
    }

    #[test]
    fn config_defaults_and_ranges_follow_redis() {
        let default = IdempotencyConfig::default();
        assert_eq!(default, config(100_000, 100));
        assert_eq!(default.validate(), Ok(()));
        assert_eq!(config(1_000, 1).validate(), Ok(()));
        assert_eq!(config(86_400_000, 10_000).validate(), Ok(()));
        assert_eq!(config(1_500, 7).validate(), Ok(()));
        assert_eq!(
            config(999, 1).validate(),
            Err(IdempotencyError::Duration { duration_ms: 999 })
        );
        assert!(config(86_400_001, 1).validate().is_err());
        assert_eq!(
            config(1_000, 0).validate(),
            Err(IdempotencyError::MaxSize { max_size: 0 })
        );
        assert!(config(1_000, 10_001).validate().is_err());
        let message = config(0, 1).validate().unwrap_err().to_string();
        assert!(message.contains("1000..=86400000"), "{message}");
    }

    #[test]
    fn lookup_finds_a_remembered_key() {
        let mut windows = IdempotencyWindows::default();
        assert_eq!(windows.lookup(P1, b"a", 1_000), None);
        windows.remember(P1, b"a", id(1_000), 1_000, 1_000);
        assert_eq!(windows.lookup(P1, b"a", 1_001), Some(id(1_000)));
        assert_eq!(windows.lookup(P1, b"b", 1_001), None);
        assert_eq!(windows.lookup(b"producer-", b"a", 1_001), None);
        assert_eq!((windows.producers(), windows.tracked()), (1, 1));
        check_invariants(&windows);
    }

    #[test]
    fn keys_expire_after_the_duration() {
        let mut windows = IdempotencyWindows::new(config(10_000, 100));
        windows.remember(P1, b"a", id(1_000), 1_000, 1_000);
        windows.remember(P1, b"b", id(5_000), 5_000, 5_000);
        // Kept while younger than the duration, forgotten once it has fully elapsed.
        assert_eq!(windows.lookup(P1, b"a", 10_999), Some(id(1_000)));
        assert_eq!(windows.lookup(P1, b"a", 11_000), None);
        assert_eq!(windows.lookup(P1, b"b", 11_000), Some(id(5_000)));
        assert_eq!(windows.tracked(), 1);
        windows.expire(15_000);
        assert_eq!((windows.producers(), windows.tracked()), (0, 0));
        assert!(windows.by_oldest.is_empty());
        // A forgotten key may be used again.
        windows.remember(P1, b"a", id(20_000), 20_000, 20_000);
        assert_eq!(windows.lookup(P1, b"a", 20_000), Some(id(20_000)));
        check_invariants(&windows);
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut windows = IdempotencyWindows::new(config(10_000, 100));
        windows.remember(P1, b"a", id(1_000), 1_000, 1_000);
        windows.remember(P1, b"b", id(5_000), 5_000, 5_000);
        assert_eq!(windows.lookup(P1, b"a", 11_000), None);
        // An earlier `now_ms` brings nothing back, and ages stay measured from the latest time.
        assert_eq!(windows.lookup(P1, b"a", 2_000), None);
        assert_eq!(windows.lookup(P1, b"b", 2_000), Some(id(5_000)));
        windows.expire(3_000);
        assert_eq!(windows.lookup(P1, b"b", 14_999), Some(id(5_000)));
        assert_eq!(windows.lookup(P1, b"b", 15_000), None);
        check_invariants(&windows);
    }

    #[test]
    fn appended_times_are_kept_in_order_and_not_ahead_of_the_clock() {
        let mut windows = IdempotencyWindows::new(config(10_000, 100));
        // A record stamped ahead of the clock (the wall clock was behind after a restart) gets
        // its full duration from the clock's time.
        windows.remember(P1, b"future", id(50_000), 50_000, 10_000);
        assert_eq!(windows.lookup(P1, b"future", 19_999), Some(id(50_000)));
        assert_eq!(windows.lookup(P1, b"future", 20_000), None);
        // A key stamped before the producer's newest is filed at the newest time.
        windows.remember(P1, b"c", id(60_000), 30_000, 30_000);
        windows.remember(P1, b"d", id(60_001), 25_000, 30_000);
        assert_eq!(windows.lookup(P1, b"d", 39_999), Some(id(60_001)));
        assert_eq!(windows.lookup(P1, b"c", 40_000), None);
        assert_eq!(windows.lookup(P1, b"d", 40_000), None);
        check_invariants(&windows);
    }

    #[test]
    fn the_size_bound_evicts_the_producers_oldest_keys() {
        let mut windows = IdempotencyWindows::new(config(100_000, 3));
        windows.remember(P2, b"other", id(1), 1, 1);
        for n in 0..5u64 {
            windows.remember(P1, &n.to_le_bytes(), id(10 + n), 10 + n, 10 + n);
            check_invariants(&windows);
        }
        for n in 0..2u64 {
            assert_eq!(windows.lookup(P1, &n.to_le_bytes(), 20), None);
        }
        for n in 2..5u64 {
            assert_eq!(windows.lookup(P1, &n.to_le_bytes(), 20), Some(id(10 + n)));
        }
        assert_eq!(windows.lookup(P2, b"other", 20), Some(id(1)));
        assert_eq!((windows.producers(), windows.tracked()), (2, 4));
    }

    #[test]
    fn producers_are_isolated() {
        let mut windows = IdempotencyWindows::new(config(10_000, 2));
        windows.remember(P1, b"same", id(1_000), 1_000, 1_000);
        windows.remember(P2, b"same", id(2_000), 2_000, 2_000);
        assert_eq!(windows.lookup(P1, b"same", 2_000), Some(id(1_000)));
        assert_eq!(windows.lookup(P2, b"same", 2_000), Some(id(2_000)));
        // Filling one producer's window evicts nothing from the other.
        windows.remember(P2, b"x", id(2_001), 2_001, 2_001);
        windows.remember(P2, b"y", id(2_002), 2_002, 2_002);
        assert_eq!(windows.lookup(P2, b"same", 2_002), None);
        assert_eq!(windows.lookup(P1, b"same", 2_002), Some(id(1_000)));
        // A producer whose keys all expired is removed.
        assert_eq!(windows.lookup(P2, b"y", 11_000), Some(id(2_002)));
        assert_eq!(windows.producers(), 1);
        assert_eq!(windows.lookup(P1, b"same", 11_000), None);
        check_invariants(&windows);
    }

    #[test]
    fn expiry_visits_only_producers_with_due_keys() {
        let mut windows = IdempotencyWindows::new(config(1_000, 10));
        for n in 0..1_000u64 {
            windows.remember(&n.to_le_bytes(), b"k", id(n + 1), n, n);
        }
        assert_eq!(windows.tracked(), 1_000);
        windows.expire(1_500);
        assert_eq!((windows.producers(), windows.tracked()), (499, 499));
        assert_eq!(windows.by_oldest.first().map(|entry| entry.0), Some(501));
        check_invariants(&windows);
    }

    #[test]
    fn remembering_the_same_key_twice_keeps_one() {
        let mut windows = IdempotencyWindows::new(config(10_000, 3));
        windows.remember(P1, b"a", id(1_000), 1_000, 1_000);
        windows.remember(P1, b"b", id(1_001), 1_001, 1_001);
        // A replay of the same record changes nothing, not even the key's age or position.
        windows.remember(P1, b"a", id(1_000), 1_000, 1_500);
        assert_eq!(windows.tracked(), 2);
        windows.remember(P1, b"c", id(1_002), 1_002, 1_500);
        windows.remember(P1, b"d", id(1_003), 1_003, 1_500);
        assert_eq!(windows.lookup(P1, b"a", 1_500), None);
        assert_eq!(windows.tracked(), 3);
        check_invariants(&windows);

        // The same key with a later ID (an append made after the first left the window): the
        // later one wins and becomes the newest.
        windows.remember(P1, b"b", id(1_004), 1_004, 1_500);
        assert_eq!(windows.lookup(P1, b"b", 1_500), Some(id(1_004)));
        assert_eq!(windows.tracked(), 3);
        windows.remember(P1, b"e", id(1_005), 1_005, 1_500);
        assert_eq!(windows.lookup(P1, b"c", 1_500), None);
        assert_eq!(windows.lookup(P1, b"b", 1_500), Some(id(1_004)));
        check_invariants(&windows);
    }

    #[test]
    fn replaying_old_records_remembers_only_those_in_the_window() {
        let mut windows = IdempotencyWindows::new(config(10_000, 100));
        let now = 100_000;
        windows.remember(P1, b"old", id(50_000), 50_000, now);
        windows.remember(P1, b"edge", id(90_000), 90_000, now);
        windows.remember(P1, b"recent", id(95_000), 95_000, now);
        assert_eq!(windows.lookup(P1, b"old", now), None);
        assert_eq!(windows.lookup(P1, b"edge", now), None);
        assert_eq!(windows.lookup(P1, b"recent", now), Some(id(95_000)));
        assert_eq!(windows.tracked(), 1);
        check_invariants(&windows);
    }

    #[test]
    fn shrinking_the_config_applies_at_once() {
        let mut windows = IdempotencyWindows::new(config(100_000, 10));
        for n in 0..5u64 {
            windows.remember(
                P1,
                &n.to_le_bytes(),
                id(1_000 * (n + 1)),
                1_000 * (n + 1),
                5_000,
            );
        }
        windows.remember(P2, b"p2", id(5_000), 5_000, 5_000);
        windows.set_config(config(100_000, 2), 5_000);
        assert_eq!(windows.config(), config(100_000, 2));
        assert_eq!(windows.tracked(), 3);
        assert_eq!(windows.lookup(P1, &2u64.to_le_bytes(), 5_000), None);
        assert_eq!(
            windows.lookup(P1, &3u64.to_le_bytes(), 5_000),
            Some(id(4_000))
        );
        check_invariants(&windows);

        windows.set_config(config(1_000, 2), 5_500);
        assert_eq!(windows.lookup(P1, &3u64.to_le_bytes(), 5_500), None);
        assert_eq!(
            windows.lookup(P1, &4u64.to_le_bytes(), 5_500),
            Some(id(5_000))
        );
        assert_eq!((windows.producers(), windows.tracked()), (2, 2));
        check_invariants(&windows);

        // Growing keeps what is there; clearing forgets it all.
        windows.set_config(config(100_000, 100), 5_500);
        assert_eq!(windows.tracked(), 2);
        windows.clear();
        assert_eq!((windows.producers(), windows.tracked()), (0, 0));
        assert_eq!(windows.config(), config(100_000, 100));
        check_invariants(&windows);
    }

    #[test]
    fn degenerate_configs_stay_consistent() {
        let mut windows = IdempotencyWindows::new(config(0, 10));
        windows.remember(P1, b"a", id(1), 1, 1);
        assert_eq!(windows.lookup(P1, b"a", 1), None);
        let mut windows = IdempotencyWindows::new(config(1_000, 0));
        windows.remember(P1, b"a", id(1), 1, 1);
        assert_eq!((windows.producers(), windows.tracked()), (0, 0));
        check_invariants(&windows);
    }

    fn sample() -> IdempotencyWindows {
        let mut windows = IdempotencyWindows::new(config(60_000, 4));
        windows.remember(P1, b"a", StreamId::new(1_000, 0), 1_000, 1_000);
        windows.remember(P1, b"", StreamId::new(1_000, 1), 1_000, 1_000);
        windows.remember(P2, b"b", StreamId::new(2_000, 0), 2_000, 2_000);
        windows.remember(b"", b"c", StreamId::new(3_000, 7), 3_000, 3_000);
        windows
    }

    #[test]
    fn snapshot_round_trips() {
        let windows = sample();
        let bytes = windows.encode();
        let mut decoded = IdempotencyWindows::decode(&bytes).unwrap();
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(decoded.config(), windows.config());
        assert_eq!(decoded.clock_ms, 3_000);
        assert_eq!((decoded.producers(), decoded.tracked()), (3, 4));
        check_invariants(&decoded);
        assert_eq!(
            decoded.lookup(P1, b"", 3_000),
            Some(StreamId::new(1_000, 1))
        );
        assert_eq!(
            decoded.lookup(b"", b"c", 3_000),
            Some(StreamId::new(3_000, 7))
        );
        // Expiry carries on from the restored times.
        assert_eq!(decoded.lookup(P1, b"a", 61_000), None);
        assert_eq!(
            decoded.lookup(P2, b"b", 61_000),
            Some(StreamId::new(2_000, 0))
        );

        let empty = IdempotencyWindows::default();
        let decoded = IdempotencyWindows::decode(&empty.encode()).unwrap();
        assert_eq!(decoded.config(), IdempotencyConfig::default());
        assert_eq!(decoded.tracked(), 0);
    }

    #[test]
    fn decode_rejects_malformed_snapshots() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(IdempotencyWindows::decode(&bytes[..len]).is_err(), "{len}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(IdempotencyWindows::decode(&trailing).is_err());
        let mut version = bytes.clone();
        version[0] = 2;
        assert!(IdempotencyWindows::decode(&version).is_err());

        /// A producer name and its `(iid, time)` keys.
        type Producer<'a> = (&'a [u8], &'a [(&'a [u8], u64)]);
        let snapshot = |max_size: u64, producers: &[Producer]| {
            let mut out = Encoder::new();
            out.u8(SNAPSHOT_FORMAT)
                .u64(1_000)
                .u64(max_size)
                .u64(producers.len() as u64);
            for (name, keys) in producers {
                out.bytes(name).u64(keys.len() as u64);
                for (iid, ms) in *keys {
                    out.bytes(iid).id(id(*ms)).u64(*ms);
                }
            }
            out.finish()
        };
        let good = snapshot(2, &[(P1, &[(b"a", 1), (b"b", 1)]), (P2, &[(b"a", 0)])]);
        assert!(IdempotencyWindows::decode(&good).is_ok());
        let malformed = [
            snapshot(2, &[(P1, &[(b"a", 1)]), (P1, &[(b"b", 2)])]),
            snapshot(2, &[(P2, &[(b"a", 1)]), (P1, &[(b"b", 2)])]),
            snapshot(2, &[(P1, &[(b"a", 1), (b"a", 2)])]),
            snapshot(2, &[(P1, &[(b"a", 2), (b"b", 1)])]),
            snapshot(2, &[(P1, &[])]),
            snapshot(1, &[(P1, &[(b"a", 1), (b"b", 2)])]),
        ];
        for bytes in malformed {
            assert!(IdempotencyWindows::decode(&bytes).is_err());
        }
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = sample().encode();
        for round in 0..20_000 {
            let bytes = if round % 2 == 0 {
                let mut bytes = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << (next() % 8);
                }
                bytes
            } else {
                let len = (next() % 96) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if let Some(first) = bytes.first_mut() {
                    *first = SNAPSHOT_FORMAT;
                }
                bytes
            };
            if let Ok(mut decoded) = IdempotencyWindows::decode(&bytes) {
                check_invariants(&decoded);
                assert_eq!(decoded.encode(), bytes);
                decoded.expire(u64::MAX);
                check_invariants(&decoded);
            }
        }
    }
}
