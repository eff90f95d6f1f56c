//! One level of the wheel: 64 slot lists and the bitmap of which are
//! non-empty, plus the tick arithmetic that maps deadlines to levels and
//! slots.

use slab::Slab;

use crate::entry::Entry;
use crate::list::{Chain, List};
use crate::{LEVELS, SLOTS_PER_LEVEL, SLOT_BITS};

/// The top level's slot 0 holds the parked far-future entries.
///
/// An in-range entry at the top level always sits in a slot strictly after
/// the current one, so it can never be in slot 0: the slot is free to stand
/// for "the next rotation", the last slot the top level comes round to.
pub(crate) const WRAP_SLOT: usize = 0;

/// The level and slot where an entry with `deadline` belongs when the wheel
/// has reached `elapsed`. Requires `deadline > elapsed`.
///
/// The level is picked by the highest bit in which the two ticks differ, in
/// groups of [`SLOT_BITS`]: above that group they agree, so the deadline
/// lies inside the current block of that level, and its slot index there is
/// strictly greater than the current one. Deadlines that differ from
/// `elapsed` above the top level are parked in the wrap-around slot.
pub(crate) fn slot_for(elapsed: u64, deadline: u64) -> (usize, usize) {
    debug_assert!(deadline > elapsed);
    let highest_differing_bit = 63 - (elapsed ^ deadline).leading_zeros();
    let level = (highest_differing_bit / SLOT_BITS) as usize;
    if level >= LEVELS {
        (LEVELS - 1, WRAP_SLOT)
    } else {
        (level, slot_index(deadline, level))
    }
}

/// The index of the slot of `level` that contains `tick`.
pub(crate) fn slot_index(tick: u64, level: usize) -> usize {
    ((tick >> (level as u32 * SLOT_BITS)) & (SLOTS_PER_LEVEL as u64 - 1)) as usize
}

/// The first tick of the block of `level` (64 slots) that contains `tick`.
fn block_start(tick: u64, level: usize) -> u64 {
    let block_bits = (level as u32 + 1) * SLOT_BITS;
    tick & !((1u64 << block_bits) - 1)
}

/// The first tick covered by `slot` of `level` in the block that contains
/// `elapsed`.
pub(crate) fn slot_start(elapsed: u64, level: usize, slot: usize) -> u64 {
    block_start(elapsed, level) + ((slot as u64) << (level as u32 * SLOT_BITS))
}

/// Bits for the slots strictly after `current`.
fn slots_after(current: usize) -> u64 {
    // Shifting in two steps keeps `current == 63` from shifting by 64.
    (!0u64 << current) << 1
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Level {
    /// Bit `s` is set exactly when `slots[s]` is non-empty; it lets the
    /// wheel find the next occupied slot with one mask and `trailing_zeros`
    /// instead of walking 64 list heads.
    occupied: u64,
    pub(crate) slots: [List; SLOTS_PER_LEVEL],
}

impl Level {
    pub(crate) const EMPTY: Level = Level {
        occupied: 0,
        slots: [List::EMPTY; SLOTS_PER_LEVEL],
    };

    pub(crate) fn push<T>(&mut self, slot: usize, entries: &mut Slab<Entry<T>>, index: u32) {
        self.slots[slot].push_back(entries, index);
        self.occupied |= 1 << slot;
    }

    pub(crate) fn unlink<T>(&mut self, slot: usize, entries: &mut Slab<Entry<T>>, index: u32) {
        let list = &mut self.slots[slot];
        list.unlink(entries, index);
        if list.is_empty() {
            self.occupied &= !(1 << slot);
        }
    }

    /// Empties `slot`, returning its entries for cascading.
    /// The entries of `slot`, left in place.
    pub(crate) fn walk(&self, slot: usize) -> Chain {
        self.slots[slot].walk()
    }

    pub(crate) fn take(&mut self, slot: usize) -> Chain {
        self.occupied &= !(1 << slot);
        self.slots[slot].take()
    }

    /// The first occupied slot strictly after `current`, if any.
    pub(crate) fn first_occupied_after(&self, current: usize) -> Option<usize> {
        let ahead = self.occupied & slots_after(current);
        (ahead != 0).then(|| ahead.trailing_zeros() as usize)
    }

    pub(crate) fn is_occupied(&self, slot: usize) -> bool {
        self.occupied & (1 << slot) != 0
    }

    /// Whether any slot at or before `current` is occupied; only the top
    /// level's wrap-around slot may be, so this backs a debug check.
    pub(crate) fn occupied_at_or_before(&self, current: usize) -> bool {
        self.occupied & !slots_after(current) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_picked_by_highest_differing_bit_group() {
        assert_eq!(slot_for(0, 1), (0, 1));
        assert_eq!(slot_for(0, 63), (0, 63));
        assert_eq!(slot_for(0, 64), (1, 1));
        assert_eq!(slot_for(0, 4095), (1, 63));
        assert_eq!(slot_for(0, 4096), (2, 1));
        // Same level-1 block, different level-0 digit: level 0.
        assert_eq!(slot_for(64, 100), (0, 36));
        // Crossing a 64-tick boundary by one tick still needs level 1.
        assert_eq!(slot_for(63, 64), (1, 1));
        assert_eq!(slot_for(0, (1 << 36) - 1), (5, 63));
        assert_eq!(slot_for(0, 1 << 36), (5, WRAP_SLOT));
        assert_eq!(slot_for(5, u64::MAX), (5, WRAP_SLOT));
    }

    #[test]
    fn slot_after_current_is_found_by_mask() {
        let mut level = Level::EMPTY;
        level.occupied = (1 << 3) | (1 << 40) | (1 << 63);
        assert_eq!(level.first_occupied_after(0), Some(3));
        assert_eq!(level.first_occupied_after(3), Some(40));
        assert_eq!(level.first_occupied_after(40), Some(63));
        assert_eq!(level.first_occupied_after(63), None);
        assert!(level.occupied_at_or_before(3));
        assert!(!level.occupied_at_or_before(2));
    }

    #[test]
    fn slot_start_is_inside_the_current_block() {
        assert_eq!(slot_start(70, 0, 10), 74);
        assert_eq!(slot_start(70, 1, 2), 128);
        assert_eq!(slot_start(5000, 2, 3), 3 * 4096);
        assert_eq!(slot_start(u64::MAX - 1, 0, 63), u64::MAX);
    }
}
