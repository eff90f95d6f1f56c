//! Looking for work elsewhere: stealing from siblings and the search spin (Go's
//! spinning M). The accounting of who may search and who must be woken is `idle.rs`;
//! this file is what a searching worker does.

use super::super::driver::Driver;
use super::Worker;
use crate::runtime::task::Notified;

impl<D: Driver> Worker<'_, D> {
    /// Steals half of a random sibling's queue, if fewer than half of the busy workers
    /// already search. Returns the first stolen task; the rest are in our queue.
    pub(super) fn steal_work(&mut self) -> Option<Notified> {
        let cx = self.cx;
        cx.stats().clock_stale();
        if !self.core.is_searching {
            if !cx.shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.core.is_searching = true;
        }
        let n = cx.shared.remotes.len();
        let start = self.core.rand.next_below(n);
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == cx.index {
                continue;
            }
            let remote = &cx.shared.remotes[victim];
            if let Some((task, count)) = cx.with_local(|local| remote.steal.steal_into(local)) {
                cx.stats().stole(&task, count, victim, &remote.metrics);
                return Some(task);
            }
        }
        // Someone may have injected while we searched.
        self.next_local_task()
    }

    /// A searching worker that found work stops searching; if it was the last
    /// searcher, it wakes another worker to keep looking (Go's `resetspinning`).
    pub(super) fn transition_from_searching(&mut self) {
        let was_searching = std::mem::replace(&mut self.core.is_searching, false);
        if was_searching && self.cx.shared.idle.transition_worker_from_searching() {
            self.cx.shared.notify_parked();
        }
    }

    /// Go's spinning M: the searching worker that found nothing watches the queues, its
    /// driver and its timer inbox for up to `Config::search_spin` before it parks, so a
    /// hand-off from a sibling in the meantime costs no park and no wake-up. Returns
    /// true if something showed up; the loop then looks again, still searching.
    ///
    /// Only a delay before `park`: it reads, takes nothing and stays counted as
    /// searching, so the idle protocol (idle.rs) is unchanged — producers skip the
    /// wake-up because a searcher exists, and if the spin misses their work, `park`'s
    /// last look as the last searcher finds it.
    pub(super) fn spin_for_work(&mut self) -> bool {
        let shared = &self.cx.shared;
        let spin = shared.config.search_spin;
        // Alone, there is no sibling whose hand-off the spin could catch.
        if spin.is_zero() || shared.remotes.len() < 2 {
            return false;
        }
        if !self.core.is_searching || !self.core.spin.should_spin() {
            return false;
        }
        // Never past this worker's next timer: it fires only from the loop.
        let spin = self
            .cx
            .timers()
            .borrow()
            .park_timeout(shared.clock.now())
            .map_or(spin, |timer| timer.min(spin));
        let start = spin_clock(shared);
        if spin.is_zero() {
            // A timer is due: the loop fires it; no spin, so no miss either.
            return false;
        }
        let timers = &self.cx.remote().timers;
        self.cx.stats().spin_started();
        loop {
            if shared.is_shutdown()
                || shared.any_work_queued()
                || !self.cx.remote().inbox.is_empty()
                || self.driver.has_events()
                || timers.has_queued()
            {
                self.cx.stats().spin_found();
                self.core.spin.found();
                return true;
            }
            if spin_clock(shared).saturating_duration_since(start) >= spin {
                self.core.spin.missed();
                return false;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }
}

/// What the spin's length is measured in: CPU time spent, so real time, whatever the
/// runtime's timers read (a paused test clock would never end it). Under loom, the
/// runtime's clock, which the loom driver moves on each look, so every execution of a
/// model spins the same number of times.
fn spin_clock(shared: &super::super::Shared) -> std::time::Instant {
    if cfg!(loom) {
        shared.clock.now()
    } else {
        std::time::Instant::now()
    }
}

/// When the search spin is worth its CPU. A spin that finds work saves a park and a
/// wake-up (a syscall on each side and two context switches, 10–20 µs of CPU here); a
/// spin that finds nothing burns `search_spin`. A sibling handing off work (a chain of
/// spawns, a burst being spread) is caught often; work arriving sporadically from
/// outside almost never. So each worker keeps a credit: a find earns `FIND_CREDIT`
/// spins, a miss costs one, which keeps spinning while at least one spin in five finds
/// something. Out of credit, the worker spins on one search in `RETRY_EVERY`, so it
/// notices when hand-offs come back.
pub(super) struct SpinBackoff {
    credit: u32,
    skipped: u32,
}

impl Default for SpinBackoff {
    fn default() -> Self {
        SpinBackoff {
            credit: Self::MAX_CREDIT,
            skipped: 0,
        }
    }
}

impl SpinBackoff {
    const FIND_CREDIT: u32 = 4;
    const MAX_CREDIT: u32 = 16;
    const RETRY_EVERY: u32 = 16;

    fn should_spin(&mut self) -> bool {
        if self.credit > 0 {
            return true;
        }
        self.skipped = self.skipped.wrapping_add(1);
        self.skipped % Self::RETRY_EVERY == 0
    }

    fn found(&mut self) {
        self.credit = (self.credit + Self::FIND_CREDIT).min(Self::MAX_CREDIT);
    }

    fn missed(&mut self) {
        self.credit = self.credit.saturating_sub(1);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SpinBackoff;

    #[test]
    fn spin_backs_off_when_it_rarely_finds_and_stays_on_when_it_often_does() {
        let mut spin = SpinBackoff::default();
        for _ in 0..SpinBackoff::MAX_CREDIT {
            assert!(spin.should_spin());
            spin.missed();
        }
        // Out of credit: one search in RETRY_EVERY spins.
        let spins = (0..10 * SpinBackoff::RETRY_EVERY)
            .filter(|_| spin.should_spin())
            .count();
        assert_eq!(spins, 10);
        // A retry that finds work earns spins back.
        spin.found();
        assert!((0..SpinBackoff::FIND_CREDIT).all(|_| {
            let spun = spin.should_spin();
            spin.missed();
            spun
        }));
        // One find in four spins (a chain of hand-offs) never runs out...
        let mut spin = SpinBackoff::default();
        for i in 0..1000 {
            assert!(spin.should_spin(), "ran out at spin {i}");
            if i % 4 == 0 {
                spin.found()
            } else {
                spin.missed()
            }
        }
        // ...one in ten (sporadic outside work) does.
        let mut spin = SpinBackoff::default();
        let spun = (0..1000)
            .filter(|i| {
                let spun = spin.should_spin();
                if spun {
                    if i % 10 == 0 {
                        spin.found()
                    } else {
                        spin.missed()
                    }
                }
                spun
            })
            .count();
        assert!(spun < 300, "kept spinning {spun} times in 1000");
    }
}
