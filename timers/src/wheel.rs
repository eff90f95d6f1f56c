//! The wheel itself: placement, cancellation, and the walk that moves time
//! forward.

use core::fmt;
use core::num::NonZeroU64;

use slab::Slab;

use crate::entry::{Entry, Location, TimerKey, NONE};
use crate::level::{slot_for, slot_index, slot_start, Level, WRAP_SLOT};
use crate::list::List;
use crate::EXACT_SCAN;
use crate::LEVELS;

const TOP_LEVEL: usize = LEVELS - 1;

/// A hierarchical timing wheel holding timers with payloads of type `T`.
///
/// See the [crate documentation](crate) for the design. In short: insert,
/// cancel, reset and [`next_expiration`](Self::next_expiration) are O(1)
/// (at most six bitmap probes), and moving time forward costs O(levels) per
/// occupied slot passed plus O(1) per entry fired or cascaded, however far
/// time jumps.
///
/// ```
/// use uringo_timers::TimerWheel;
///
/// let mut wheel = TimerWheel::new();
/// let a = wheel.insert(5, 'a');
/// wheel.insert(300, 'b');
/// wheel.insert(70, 'c');
/// assert_eq!(wheel.cancel(a), Some('a'));
///
/// let mut fired = Vec::new();
/// wheel.advance(1_000, &mut fired);
/// let values: Vec<char> = fired.into_iter().map(|(_, v)| v).collect();
/// assert_eq!(values, ['c', 'b']);
/// assert!(wheel.is_empty());
/// ```
#[derive(Clone)]
pub struct TimerWheel<T> {
    entries: Slab<Entry<T>>,
    levels: [Level; LEVELS],
    /// Entries whose deadline is at or before `elapsed`, in firing order.
    /// Both late inserts and entries reached by cascading wait here, which
    /// is what lets [`poll`](Self::poll) hand them out one at a time.
    due: List,
    elapsed: u64,
    next_generation: NonZeroU64,
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel whose time starts at tick 0.
    ///
    /// ```
    /// let wheel = uringo_timers::TimerWheel::<()>::new();
    /// assert_eq!(wheel.elapsed(), 0);
    /// assert!(wheel.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_start(0)
    }

    /// Creates an empty wheel whose time starts at `now_tick`.
    ///
    /// Useful when ticks count from a fixed origin (such as the runtime's
    /// start) and a wheel is created later.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::with_start(1_000);
    /// assert_eq!(wheel.elapsed(), 1_000);
    /// wheel.insert(1_010, ());
    /// assert_eq!(wheel.next_expiration(), Some(1_010));
    /// ```
    pub fn with_start(now_tick: u64) -> Self {
        TimerWheel {
            entries: Slab::new(),
            levels: [Level::EMPTY; LEVELS],
            due: List::EMPTY,
            elapsed: now_tick,
            next_generation: NonZeroU64::MIN,
        }
    }

    /// The number of armed timers, due ones included.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// wheel.insert(10, ());
    /// wheel.insert(20, ());
    /// assert_eq!(wheel.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is armed.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// assert!(wheel.is_empty());
    /// let key = wheel.insert(10, ());
    /// assert!(!wheel.is_empty());
    /// wheel.cancel(key);
    /// assert!(wheel.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tick the wheel has processed up to.
    ///
    /// It only moves forward, and only through [`advance`](Self::advance)
    /// and [`poll`](Self::poll). While a `poll` loop is in progress it may
    /// lag behind the `now` being polled for: it is the deadline slot being
    /// fired.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::<()>::new();
    /// wheel.advance(42, &mut Vec::new());
    /// assert_eq!(wheel.elapsed(), 42);
    /// wheel.advance(7, &mut Vec::new()); // backwards: treated as 42
    /// assert_eq!(wheel.elapsed(), 42);
    /// ```
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Arms a timer that fires at tick `deadline`, returning its key.
    ///
    /// A deadline at or before [`elapsed`](Self::elapsed) is already due: the
    /// next `advance` or `poll` yields it, whatever `now` it is given.
    /// Deadlines beyond the wheel's range are kept exactly; see the crate
    /// documentation on far-future deadlines.
    ///
    /// Allocation-free unless the wheel holds more timers than ever before.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 1` timers are armed at once.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::with_start(100);
    /// let later = wheel.insert(150, "later");
    /// let late = wheel.insert(90, "late"); // already due
    /// let mut fired = Vec::new();
    /// wheel.advance(100, &mut fired);
    /// assert_eq!(fired, [(late, "late")]);
    /// assert_eq!(wheel.deadline(later), Some(150));
    /// ```
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let generation = self.next_generation;
        // 2^64 inserts would take centuries even at a billion per second.
        self.next_generation = generation
            .checked_add(1)
            .expect("timer generation counter overflowed");
        let vacant = self.entries.vacant_entry();
        let index = u32::try_from(vacant.key())
            .ok()
            .filter(|&index| index != NONE)
            .expect("more than u32::MAX - 1 timers armed at once");
        vacant.insert(Entry {
            value,
            deadline,
            generation,
            prev: NONE,
            next: NONE,
            location: Location::Due,
        });
        self.place(index);
        TimerKey { generation, index }
    }

    /// Disarms the timer named by `key` and returns its payload, or returns
    /// `None` if the key is stale (the timer already fired, was cancelled or
    /// drained). A stale key never affects another timer.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// let key = wheel.insert(10, "payload");
    /// assert_eq!(wheel.cancel(key), Some("payload"));
    /// assert_eq!(wheel.cancel(key), None);
    /// ```
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.live_entry(key)?;
        self.unlink(key.index);
        Some(self.entries.remove(key.index as usize).value)
    }

    /// Moves the timer named by `key` to `new_deadline`, keeping its key and
    /// slab entry; returns `false`, changing nothing, if the key is stale.
    ///
    /// A `new_deadline` at or before [`elapsed`](Self::elapsed) makes the
    /// timer due, exactly as for [`insert`](Self::insert).
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// let key = wheel.insert(10, ());
    /// assert!(wheel.reset(key, 500));
    /// assert_eq!(wheel.deadline(key), Some(500));
    /// wheel.cancel(key);
    /// assert!(!wheel.reset(key, 20));
    /// ```
    pub fn reset(&mut self, key: TimerKey, new_deadline: u64) -> bool {
        if self.live_entry(key).is_none() {
            return false;
        }
        self.unlink(key.index);
        self.entries[key.index as usize].deadline = new_deadline;
        self.place(key.index);
        true
    }

    /// The deadline of the timer named by `key`, as given to `insert` or
    /// `reset`, or `None` if the key is stale.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// let key = wheel.insert(u64::MAX, ());
    /// assert_eq!(wheel.deadline(key), Some(u64::MAX));
    /// wheel.cancel(key);
    /// assert_eq!(wheel.deadline(key), None);
    /// ```
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.live_entry(key).map(|entry| entry.deadline)
    }

    /// The earliest tick at which [`advance`](Self::advance) or
    /// [`poll`](Self::poll) could yield something, or `None` if the wheel
    /// is empty.
    ///
    /// - If a timer is already due, this is [`elapsed`](Self::elapsed).
    /// - Otherwise it is the first tick of the earliest occupied slot. For a
    ///   level-0 slot that is the exact deadline of the timers in it. For a
    ///   higher-level slot it is where the slot cascades, which may be
    ///   *earlier* than any deadline in it; advancing there yields nothing
    ///   or only part of the slot, and the caller asks again. It is never
    ///   later than the earliest deadline.
    ///
    /// The executor parks until this tick. Cost: at most one mask and
    /// `trailing_zeros` per level.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// assert_eq!(wheel.next_expiration(), None);
    /// wheel.insert(40, ());
    /// assert_eq!(wheel.next_expiration(), Some(40)); // level 0: exact
    ///
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// wheel.insert(100, ());
    /// // 100 is in level 1's slot covering 64..128: it cascades at 64.
    /// assert_eq!(wheel.next_expiration(), Some(64));
    /// wheel.advance(64, &mut Vec::new());
    /// assert_eq!(wheel.next_expiration(), Some(100));
    /// ```
    pub fn next_expiration(&self) -> Option<u64> {
        if !self.due.is_empty() {
            return Some(self.elapsed);
        }
        self.next_occupied_slot().map(|(_, _, start)| start)
    }

    /// The tick to sleep until: the earliest deadline when it can be found in
    /// O(1), else [`next_expiration`](Self::next_expiration).
    ///
    /// When the earliest occupied slot is above level 0, `next_expiration` is
    /// where that slot cascades, possibly well before any deadline in it: a
    /// caller that parks until then wakes only to move timers down a level and
    /// sleeps again. A 10-tick ticker crosses a 64-tick block boundary one
    /// time in six and would pay that extra wake-up each time. So if the slot
    /// holds at most [`EXACT_SCAN`] timers, this walks them and returns the
    /// earliest deadline instead; advancing there cascades the slot and fires
    /// it in one step. No other slot can start before that deadline: slots of
    /// the same level cover disjoint later ranges and higher levels start after
    /// this level's block ends. A crowded slot (a storm of timers) keeps the
    /// cascade point, where one wake-up is shared by all of them.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// wheel.insert(100, ());
    /// assert_eq!(wheel.next_expiration(), Some(64)); // where level 1 cascades
    /// assert_eq!(wheel.next_wake(), Some(100)); // one timer there: its deadline
    /// ```
    pub fn next_wake(&self) -> Option<u64> {
        if !self.due.is_empty() {
            return Some(self.elapsed);
        }
        let (level, slot, start) = self.next_occupied_slot()?;
        if level == 0 {
            return Some(start);
        }
        let mut walk = self.levels[level].walk(slot);
        let mut earliest = u64::MAX;
        for _ in 0..=EXACT_SCAN {
            match walk.pop(&self.entries) {
                Some(index) => earliest = earliest.min(self.entries[index as usize].deadline),
                None => return Some(earliest.max(start)),
            }
        }
        Some(start)
    }

    /// Moves time to `now` and appends every timer whose deadline is at or
    /// before it to `out`, removing them from the wheel. Returns how many
    /// were appended.
    ///
    /// Timers come out in nondecreasing order of deadline, with two
    /// allowances: timers with the same deadline come out in any order, and
    /// a timer that was already due when inserted or reset counts as having
    /// the deadline [`elapsed`](Self::elapsed) had then. No timer ever comes
    /// out before its deadline. A `now` before `elapsed` is treated as
    /// `elapsed`.
    ///
    /// This is [`poll`](Self::poll) in a loop. It allocates only if `out`
    /// does: an executor passes the same cleared `Vec` every tick.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// for deadline in [300, 10, 5_000, 70] {
    ///     wheel.insert(deadline, deadline);
    /// }
    /// let mut fired = Vec::new();
    /// assert_eq!(wheel.advance(1_000, &mut fired), 3);
    /// let deadlines: Vec<u64> = fired.iter().map(|&(_, d)| d).collect();
    /// assert_eq!(deadlines, [10, 70, 300]);
    /// assert_eq!(wheel.len(), 1);
    /// ```
    pub fn advance(&mut self, now: u64, out: &mut impl Extend<(TimerKey, T)>) -> usize {
        let mut fired = 0;
        while let Some(timer) = self.poll(now) {
            out.extend(Some(timer));
            fired += 1;
        }
        fired
    }

    /// Yields the next timer whose deadline is at or before `now`, moving
    /// time forward as far as needed to find it; returns `None`, with
    /// [`elapsed`](Self::elapsed) set to `now`, once none is left.
    ///
    /// Calling it until it returns `None` is exactly
    /// [`advance`](Self::advance), with the same ordering guarantees; it
    /// suits a caller that wants to act on each timer without a buffer.
    /// Stopping early is allowed: the remaining due timers stay due, and a
    /// timer inserted in between fires at its own deadline.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// wheel.insert(3, "three");
    /// wheel.insert(2, "two");
    /// let mut order = Vec::new();
    /// while let Some((_key, value)) = wheel.poll(10) {
    ///     order.push(value);
    /// }
    /// assert_eq!(order, ["two", "three"]);
    /// assert_eq!(wheel.elapsed(), 10);
    /// ```
    pub fn poll(&mut self, now: u64) -> Option<(TimerKey, T)> {
        loop {
            if let Some(index) = self.due.pop_front(&mut self.entries) {
                let entry = self.entries.remove(index as usize);
                let key = TimerKey {
                    generation: entry.generation,
                    index,
                };
                return Some((key, entry.value));
            }
            match self.next_occupied_slot() {
                Some((level, slot, start)) if start <= now => {
                    self.cascade(level, slot, start, now);
                }
                _ => {
                    self.elapsed = self.elapsed.max(now);
                    return None;
                }
            }
        }
    }

    /// Removes every timer, yielding the payloads in no particular order.
    ///
    /// All timers are removed even if the iterator is dropped before the
    /// end (the rest are dropped with it). [`elapsed`](Self::elapsed) is
    /// unchanged. Meant for shutdown, where the payloads (wakers, task
    /// handles) need releasing deliberately; plain `Drop` also frees them.
    ///
    /// ```
    /// let mut wheel = uringo_timers::TimerWheel::new();
    /// wheel.insert(10, 1);
    /// wheel.insert(1 << 40, 2);
    /// let mut payloads: Vec<i32> = wheel.drain().collect();
    /// payloads.sort();
    /// assert_eq!(payloads, [1, 2]);
    /// assert!(wheel.is_empty());
    /// assert_eq!(wheel.next_expiration(), None);
    /// ```
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.due = List::EMPTY;
        self.levels = [Level::EMPTY; LEVELS];
        self.entries.drain().map(|entry| entry.value)
    }

    fn live_entry(&self, key: TimerKey) -> Option<&Entry<T>> {
        self.entries
            .get(key.index as usize)
            .filter(|entry| entry.generation == key.generation)
    }

    /// Links an unlinked entry onto the list its deadline calls for, given
    /// the current `elapsed`.
    fn place(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let location = if deadline <= self.elapsed {
            self.due.push_back(&mut self.entries, index);
            Location::Due
        } else {
            let (level, slot) = slot_for(self.elapsed, deadline);
            self.levels[level].push(slot, &mut self.entries, index);
            Location::Slot {
                level: level as u8,
                slot: slot as u8,
            }
        };
        self.entries[index as usize].location = location;
    }

    fn unlink(&mut self, index: u32) {
        match self.entries[index as usize].location {
            Location::Due => self.due.unlink(&mut self.entries, index),
            Location::Slot { level, slot } => {
                self.levels[level as usize].unlink(slot as usize, &mut self.entries, index);
            }
        }
    }

    /// The earliest occupied slot as (level, slot, first tick).
    ///
    /// Every occupied slot lies strictly after the current slot of its
    /// level, and a level's next slot starts after every slot of the levels
    /// below it has passed, so the first level with an occupied slot ahead
    /// holds the answer. The wrap-around slot comes last of all: it starts
    /// when the top level's rotation ends.
    fn next_occupied_slot(&self) -> Option<(usize, usize, u64)> {
        for (level_index, level) in self.levels.iter().enumerate() {
            let current = slot_index(self.elapsed, level_index);
            if let Some(slot) = level.first_occupied_after(current) {
                return Some((
                    level_index,
                    slot,
                    slot_start(self.elapsed, level_index, slot),
                ));
            }
            debug_assert!(
                level_index == TOP_LEVEL || !level.occupied_at_or_before(current),
                "level {level_index} has an occupied slot that time has passed"
            );
        }
        let top = &self.levels[TOP_LEVEL];
        if top.is_occupied(WRAP_SLOT) {
            // Only a deadline in a later rotation is parked here, and none
            // exists in the last rotation before u64 wraps, so this cannot
            // overflow.
            let next_rotation = (self.elapsed | (crate::WHEEL_RANGE - 1)) + 1;
            return Some((TOP_LEVEL, WRAP_SLOT, next_rotation));
        }
        None
    }

    /// Empties the slot that starts at `start`, moving its entries to the
    /// due list or to lower levels. Requires `start <= now` and that no
    /// other slot starts earlier (so nothing is skipped when `elapsed`
    /// moves to `start`).
    fn cascade(&mut self, level: usize, slot: usize, start: u64, now: u64) {
        let chain = self.levels[level].take(slot);
        let parked = level == TOP_LEVEL && slot == WRAP_SLOT;
        self.elapsed = if parked {
            // The wrap-around slot is only the earliest when it is the only
            // occupied one, so nothing else can fire before its earliest
            // deadline: time may jump straight there (or to `now`). Without
            // this a jump of many rotations would revisit the parked entries
            // once per rotation, costing O(jump / 2^36).
            let mut walk = chain;
            let mut earliest = u64::MAX;
            while let Some(index) = walk.pop(&self.entries) {
                earliest = earliest.min(self.entries[index as usize].deadline);
            }
            debug_assert!(earliest >= start);
            earliest.min(now)
        } else {
            start
        };
        let mut walk = chain;
        while let Some(index) = walk.pop(&self.entries) {
            self.place(index);
        }
    }
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len())
            .field("next_expiration", &self.next_expiration())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the structural invariants the crate docs promise.
    fn check_invariants<T>(wheel: &TimerWheel<T>) {
        let mut linked = 0;
        let mut walk_list = |list: List, location: Location| {
            let mut chain = { list }.take();
            let mut prev = NONE;
            while let Some(index) = chain.pop(&wheel.entries) {
                let entry = &wheel.entries[index as usize];
                assert_eq!(entry.prev, prev);
                assert_eq!(entry.location, location);
                match location {
                    Location::Due => assert!(entry.deadline <= wheel.elapsed),
                    Location::Slot { level, slot } => {
                        assert!(entry.deadline > wheel.elapsed);
                        assert_eq!(
                            slot_for(wheel.elapsed, entry.deadline),
                            (level as usize, slot as usize)
                        );
                    }
                }
                prev = index;
                linked += 1;
            }
        };
        walk_list(wheel.due, Location::Due);
        for (level_index, level) in wheel.levels.iter().enumerate() {
            for (slot, list) in level.slots.iter().enumerate() {
                assert_eq!(level.is_occupied(slot), !list.is_empty());
                walk_list(
                    *list,
                    Location::Slot {
                        level: level_index as u8,
                        slot: slot as u8,
                    },
                );
            }
        }
        assert_eq!(linked, wheel.len());
    }

    #[test]
    fn entries_sit_where_the_placement_rule_says() {
        let mut wheel = TimerWheel::with_start(1_000);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut keys = Vec::new();
        for round in 0..2_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let deadline = match round % 4 {
                0 => wheel.elapsed() + state % 100,
                1 => wheel.elapsed() + state % 1_000_000,
                2 => state,
                _ => wheel.elapsed().saturating_sub(state % 10),
            };
            keys.push(wheel.insert(deadline, round));
            if round % 3 == 0 {
                let victim = keys[(state % keys.len() as u64) as usize];
                wheel.cancel(victim);
            }
            if round % 5 == 0 {
                let target = keys[(state % keys.len() as u64) as usize];
                wheel.reset(target, wheel.elapsed() + state % 5_000);
            }
            if round % 7 == 0 {
                let now = wheel.elapsed() + state % 3_000;
                wheel.advance(now, &mut Vec::new());
            }
            check_invariants(&wheel);
        }
    }

    #[test]
    fn parked_entries_jump_straight_to_their_rotation() {
        let mut wheel = TimerWheel::new();
        let far = 1u64 << 60;
        wheel.insert(far, ());
        assert_eq!(wheel.next_expiration(), Some(crate::WHEEL_RANGE));
        // Without the jump this would take 2^24 cascades.
        assert_eq!(wheel.advance(far - 1, &mut Vec::new()), 0);
        assert_eq!(wheel.elapsed(), far - 1);
        check_invariants(&wheel);
        assert_eq!(wheel.next_expiration(), Some(far));
        assert_eq!(wheel.advance(far, &mut Vec::new()), 1);
    }
}
