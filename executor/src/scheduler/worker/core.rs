//! The loop's own state: what no other code, on this thread or any other, ever reads.
//!
//! Owned by [`super::Worker`] and reached by `&mut`, so a step of the loop costs no
//! borrow check. Anything a task's wake or a completion must reach lives in
//! `WorkerContext` instead.

use super::search::SpinBackoff;

pub(super) struct Core {
    /// The injector-first tick (every `global_queue_interval`, Go's `schedtick % 61`).
    pub(super) injector_turn: Every,
    /// The forced reap (every `event_interval` ticks).
    pub(super) reap_turn: Every,
    /// Counted as searching in `Idle` (Go's spinning M).
    pub(super) is_searching: bool,
    /// Victim choice for steals.
    pub(super) rand: FastRand,
    /// Whether the next search may spin before parking.
    pub(super) spin: SpinBackoff,
}

impl Core {
    pub(super) fn new(index: usize, config: &crate::scheduler::Config) -> Core {
        Core {
            injector_turn: Every::new(config.global_queue_interval),
            reap_turn: Every::new(config.event_interval),
            is_searching: false,
            rand: FastRand::new(index as u64 + 1),
            spin: SpinBackoff::default(),
        }
    }
}

/// A check due on every `n`-th tick, counted down: `tick % n == 0` costs a division on
/// every tick of the loop (n is a setting, not a constant), a few per cent of a
/// `yield_now` round trip.
pub(super) struct Every {
    left: u32,
    n: u32,
}

impl Every {
    pub(super) fn new(n: u32) -> Every {
        let n = n.max(1);
        Every { left: n, n }
    }

    /// Counts a tick; true on every `n`-th.
    #[inline]
    pub(super) fn tick(&mut self) -> bool {
        self.left -= 1;
        if self.left == 0 {
            self.left = self.n;
            return true;
        }
        false
    }
}

/// xorshift64*: the victim choice only needs to spread steals, not be unpredictable.
pub(super) struct FastRand(u64);

impl FastRand {
    fn new(seed: u64) -> Self {
        FastRand(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next_below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize) % n.max(1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Every;

    #[test]
    fn every_is_due_on_each_nth_tick_only() {
        let mut every = Every::new(3);
        let due: Vec<bool> = (0..7).map(|_| every.tick()).collect();
        assert_eq!(due, [false, false, true, false, false, true, false]);
        let mut always = Every::new(1);
        assert!((0..5).all(|_| always.tick()));
    }
}
