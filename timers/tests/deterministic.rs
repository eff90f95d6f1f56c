//! Deterministic scenarios: bulk firing, level boundaries, far deadlines,
//! stale keys, and payload release.

use std::cell::Cell;
use std::rc::Rc;

use uringo_timers::{TimerKey, TimerWheel, LEVELS, WHEEL_RANGE};

/// xorshift64: enough randomness for test inputs without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Advances to `now` and returns the fired payloads.
fn advance<T>(wheel: &mut TimerWheel<T>, now: u64) -> Vec<T> {
    let mut fired = Vec::new();
    wheel.advance(now, &mut fired);
    fired.into_iter().map(|(_, value)| value).collect()
}

#[test]
fn hundred_thousand_timers_fire_once_in_order_never_early() {
    const TIMERS: usize = 100_000;
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut wheel = TimerWheel::new();
    let deadlines: Vec<u64> = (0..TIMERS).map(|_| rng.below(200_000)).collect();
    for (id, &deadline) in deadlines.iter().enumerate() {
        wheel.insert(deadline, id);
    }
    assert_eq!(wheel.len(), TIMERS);

    let mut fired_at = vec![None; TIMERS];
    let mut fired = Vec::new();
    let mut now = 0;
    while now < 200_000 {
        let max_step = if rng.below(10) == 0 { 5_000 } else { 40 };
        now += 1 + rng.below(max_step);
        fired.clear();
        wheel.advance(now, &mut fired);
        let mut last = 0;
        for &(_, id) in &fired {
            assert!(fired_at[id].is_none(), "timer {id} fired twice");
            assert!(deadlines[id] <= now, "timer {id} fired early");
            assert!(deadlines[id] >= last, "fired out of deadline order");
            last = deadlines[id];
            fired_at[id] = Some(now);
        }
        // Nothing that is due was left behind.
        for (id, &deadline) in deadlines.iter().enumerate() {
            if deadline <= now && fired_at[id].is_none() {
                panic!("timer {id} with deadline {deadline} not fired by {now}");
            }
        }
    }
    assert!(fired_at.iter().all(Option::is_some));
    assert!(wheel.is_empty());
}

#[test]
fn timers_fire_at_their_exact_tick_when_driven_by_next_expiration() {
    let mut rng = XorShift(7);
    let mut wheel = TimerWheel::with_start(12_345);
    for _ in 0..5_000 {
        let level = 1 + rng.below(5) as u32;
        let deadline = 12_345 + rng.below(1 << (6 * level));
        wheel.insert(deadline, deadline);
    }
    let mut fired = Vec::new();
    let mut count = 0;
    while let Some(next) = wheel.next_expiration() {
        fired.clear();
        wheel.advance(next, &mut fired);
        for &(_, deadline) in &fired {
            assert_eq!(deadline, next, "fired away from its deadline");
        }
        count += fired.len();
    }
    assert_eq!(count, 5_000);
}

#[test]
fn cascading_across_every_level_boundary() {
    for level in 1..LEVELS as u32 {
        let boundary = 1u64 << (6 * level);
        // Start on either side of the boundary, with deadlines straddling it
        // and the next boundary multiples.
        for start in [boundary - 2, boundary - 1, boundary, 0] {
            let mut wheel = TimerWheel::with_start(start);
            let mut deadlines = Vec::new();
            for base in [boundary, 2 * boundary, boundary * 63, boundary * 64] {
                for delta in [-1i64, 0, 1] {
                    let deadline = base.wrapping_add_signed(delta);
                    if deadline > start {
                        deadlines.push(deadline);
                        wheel.insert(deadline, deadline);
                    }
                }
            }
            deadlines.sort_unstable();
            for &deadline in &deadlines {
                // One tick before: not yet, however the jump cascades.
                assert!(advance(&mut wheel, deadline - 1).is_empty());
                let fired = advance(&mut wheel, deadline);
                assert_eq!(fired, [deadline], "level {level}, start {start}");
            }
            assert!(wheel.is_empty());
        }
    }
}

#[test]
fn single_tick_steps_across_a_level_two_boundary() {
    let mut wheel = TimerWheel::with_start(4_000);
    let deadlines = [4_095, 4_096, 4_097, 4_160, 8_191, 8_192];
    for d in deadlines {
        wheel.insert(d, d);
    }
    let mut fired = Vec::new();
    for now in 4_001..=8_200 {
        let batch = advance(&mut wheel, now);
        for &d in &batch {
            assert_eq!(d, now);
        }
        fired.extend(batch);
    }
    assert_eq!(fired, deadlines);
}

#[test]
fn far_future_deadlines_are_parked_not_lost_nor_early() {
    let far = [
        WHEEL_RANGE,
        WHEEL_RANGE + 5,
        3 * WHEEL_RANGE - 1,
        1 << 50,
        u64::MAX - 1,
        u64::MAX,
    ];
    let mut wheel = TimerWheel::new();
    let near = wheel.insert(100, 0);
    for d in far {
        wheel.insert(d, d);
    }
    let mut fired = advance(&mut wheel, 100);
    assert_eq!(fired, [0]);
    assert_eq!(wheel.deadline(near), None);
    for d in far {
        let next = wheel.next_expiration().unwrap();
        assert!(next <= d, "next expiration {next} after deadline {d}");
        assert!(advance(&mut wheel, d - 1).is_empty(), "fired before {d}");
        fired = advance(&mut wheel, d);
        assert_eq!(fired, [d]);
    }
    assert!(wheel.is_empty());
}

#[test]
fn far_deadlines_inserted_at_the_last_tick_of_a_rotation() {
    let start = 2 * WHEEL_RANGE - 1;
    let mut wheel = TimerWheel::with_start(start);
    for d in [
        start + 1,
        start + 64,
        start + WHEEL_RANGE,
        start + 5 * WHEEL_RANGE,
    ] {
        wheel.insert(d, d);
    }
    assert_eq!(wheel.next_expiration(), Some(start + 1));
    assert_eq!(advance(&mut wheel, start + 1), [start + 1]);
    assert_eq!(advance(&mut wheel, start + 64), [start + 64]);
    assert!(advance(&mut wheel, start + WHEEL_RANGE - 1).is_empty());
    assert_eq!(
        advance(&mut wheel, start + WHEEL_RANGE),
        [start + WHEEL_RANGE]
    );
    // A single huge jump past the last one.
    assert_eq!(advance(&mut wheel, u64::MAX), [start + 5 * WHEEL_RANGE]);
}

#[test]
fn huge_jump_fires_everything_without_walking_ticks() {
    let mut rng = XorShift(99);
    let mut wheel = TimerWheel::new();
    let year = 365 * 24 * 3_600 * 1_000u64;
    for _ in 0..10_000 {
        let d = rng.below(year);
        wheel.insert(d, d);
    }
    for _ in 0..100 {
        wheel.insert(year + rng.below(u64::MAX - year), 0);
    }
    let fired = advance(&mut wheel, year);
    assert_eq!(fired.len(), 10_000);
    assert!(fired.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(advance(&mut wheel, u64::MAX).len(), 100);
}

#[test]
fn already_due_timers_fire_on_the_next_call() {
    let mut wheel = TimerWheel::with_start(1_000);
    wheel.insert(1_000, "now");
    wheel.insert(3, "long ago");
    let pending = wheel.insert(2_000, "pending");
    assert_eq!(wheel.next_expiration(), Some(1_000));
    // Even with a `now` in the past.
    assert_eq!(advance(&mut wheel, 10), ["now", "long ago"]);
    assert_eq!(wheel.elapsed(), 1_000);
    assert!(wheel.reset(pending, 500));
    assert_eq!(advance(&mut wheel, 1_000), ["pending"]);
    assert!(wheel.is_empty());
}

#[test]
fn stale_keys_never_touch_other_timers() {
    let mut wheel = TimerWheel::new();
    let fired_key = wheel.insert(5, 1);
    let cancelled_key = wheel.insert(10, 2);
    assert_eq!(wheel.cancel(cancelled_key), Some(2));
    let fired = {
        let mut out = Vec::new();
        wheel.advance(5, &mut out);
        out
    };
    assert_eq!(fired, [(fired_key, 1)]);

    // Both indices get reused.
    let a = wheel.insert(100, 3);
    let b = wheel.insert(200, 4);
    for stale in [fired_key, cancelled_key] {
        assert_eq!(wheel.cancel(stale), None);
        assert!(!wheel.reset(stale, 7));
        assert_eq!(wheel.deadline(stale), None);
    }
    assert_eq!(wheel.len(), 2);
    assert_eq!(wheel.deadline(a), Some(100));
    assert_eq!(wheel.deadline(b), Some(200));
    assert_eq!(advance(&mut wheel, 1_000), [3, 4]);
}

#[test]
fn reset_moves_between_levels_and_the_due_list() {
    let mut wheel = TimerWheel::with_start(50);
    let key = wheel.insert(1 << 30, ());
    assert!(wheel.reset(key, 60));
    assert_eq!(wheel.next_expiration(), Some(60));
    assert!(wheel.reset(key, 40));
    assert_eq!(wheel.next_expiration(), Some(50));
    assert!(wheel.reset(key, 1 << 62));
    assert!(advance(&mut wheel, (1 << 62) - 1).is_empty());
    let mut out: Vec<(TimerKey, ())> = Vec::new();
    wheel.advance(1 << 62, &mut out);
    assert_eq!(out, [(key, ())]);
}

/// A payload that counts its drops.
#[derive(Debug)]
struct Counted(Rc<Cell<usize>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn fill(wheel: &mut TimerWheel<Counted>, drops: &Rc<Cell<usize>>, count: u64) -> Vec<TimerKey> {
    let mut rng = XorShift(0xdead_beef);
    (0..count)
        .map(|i| {
            let deadline = match i % 3 {
                0 => rng.below(1_000),
                1 => rng.below(1 << 30),
                _ => rng.next(),
            };
            wheel.insert(deadline, Counted(drops.clone()))
        })
        .collect()
}

#[test]
fn drop_frees_every_payload() {
    let drops = Rc::new(Cell::new(0));
    let mut wheel = TimerWheel::with_start(500);
    let keys = fill(&mut wheel, &drops, 3_000);
    for key in keys.iter().step_by(7) {
        drop(wheel.cancel(*key));
    }
    let cancelled = keys.len().div_ceil(7);
    assert_eq!(drops.get(), cancelled);
    let fired = advance(&mut wheel, 700);
    let fired_count = fired.len();
    drop(fired);
    assert_eq!(drops.get(), cancelled + fired_count);
    drop(wheel);
    assert_eq!(drops.get(), 3_000);
}

#[test]
fn drain_removes_everything_even_when_not_consumed() {
    let drops = Rc::new(Cell::new(0));
    let mut wheel = TimerWheel::new();
    let keys = fill(&mut wheel, &drops, 1_000);
    let taken: Vec<Counted> = wheel.drain().take(10).collect();
    assert_eq!(taken.len(), 10);
    assert_eq!(drops.get(), 990);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_expiration(), None);
    assert!(wheel.cancel(keys[0]).is_none());
    drop(taken);
    assert_eq!(drops.get(), 1_000);

    // The wheel is fully usable afterwards.
    let key = wheel.insert(5, Counted(drops.clone()));
    assert_eq!(wheel.deadline(key), Some(5));
    assert_eq!(advance(&mut wheel, 5).len(), 1);
    assert_eq!(drops.get(), 1_001);
}
