//! Which shard holds a slot: the 16,384 slots are cut into `shards` consecutive ranges of equal
//! size (the first ranges one slot longer when the count does not divide 16,384), fixed when the
//! cluster is formed. Shard `k` holds the slots `s` with `s * shards / 16384 == k`.

use super::keyslot::SLOTS as SLOT_COUNT;

const SLOTS: usize = SLOT_COUNT as usize;

/// The shard that holds `slot`, among `shards`.
pub(crate) fn shard_of_slot(slot: u16, shards: u16) -> usize {
    debug_assert!(shards >= 1 && usize::from(slot) < SLOTS);
    usize::from(slot) * usize::from(shards) / SLOTS
}

/// The first and last slot of shard `shard`, among `shards`.
pub(crate) fn slots_of_shard(shard: usize, shards: u16) -> (u16, u16) {
    let shards = usize::from(shards);
    debug_assert!(shard < shards);
    // The smallest slot s with s * shards >= shard * SLOTS.
    let first = (shard * SLOTS).div_ceil(shards);
    let next = ((shard + 1) * SLOTS).div_ceil(shards);
    (first as u16, (next - 1) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_SHARDS: u16 = 1024;

    #[test]
    fn one_shard_holds_every_slot() {
        assert_eq!(slots_of_shard(0, 1), (0, 16383));
        assert_eq!(shard_of_slot(16383, 1), 0);
    }

    #[test]
    fn ranges_cover_the_slots_once_and_agree_with_the_lookup() {
        for shards in [1, 2, 3, 5, 7, 16, 100, MAX_SHARDS] {
            let mut next = 0u32;
            for shard in 0..usize::from(shards) {
                let (first, last) = slots_of_shard(shard, shards);
                assert_eq!(u32::from(first), next, "{shards} shards, shard {shard}");
                assert!(first <= last);
                for slot in [first, last] {
                    assert_eq!(shard_of_slot(slot, shards), shard);
                }
                next = u32::from(last) + 1;
            }
            assert_eq!(next as usize, SLOTS);
        }
        assert_eq!(slots_of_shard(0, 16), (0, 1023));
        assert_eq!(slots_of_shard(15, 16), (15360, 16383));
        assert_eq!(slots_of_shard(1, 3), (5462, 10922));
    }
}
