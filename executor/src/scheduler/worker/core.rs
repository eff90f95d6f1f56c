//! The loop's own state: what no other code, on this thread or any other, ever reads.
//!
//! Owned by [`super::Worker`] and reached by `&mut`, so a step of the loop costs no
//! borrow check. Anything a task's wake or a completion must reach lives in
//! `WorkerContext` instead.

use super::search::SpinBackoff;

pub(super) struct Core {
    /// Iterations of the loop (Go's `schedtick`), for the every-61-ticks checks.
    pub(super) tick: u32,
    /// Counted as searching in `Idle` (Go's spinning M).
    pub(super) is_searching: bool,
    /// Victim choice for steals.
    pub(super) rand: FastRand,
    /// Whether the next search may spin before parking.
    pub(super) spin: SpinBackoff,
}

impl Core {
    pub(super) fn new(index: usize) -> Core {
        Core {
            tick: 0,
            is_searching: false,
            rand: FastRand::new(index as u64 + 1),
            spin: SpinBackoff::default(),
        }
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
