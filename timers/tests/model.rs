//! Property tests: the wheel against a sorted-map reference model.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use uringo_timers::{TimerKey, TimerWheel, WHEEL_RANGE};

/// How far from `elapsed` a deadline lies.
#[derive(Clone, Debug)]
enum Offset {
    /// At or before `elapsed`: already due.
    Past(u64),
    Near(u64),
    Mid(u64),
    /// Beyond the wheel's range, possibly by many rotations.
    Far(u64),
    Absolute(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Offset),
    /// Index into every key ever issued, so stale keys are picked too.
    Cancel(usize),
    Reset(usize, Offset),
    Advance(Offset),
    /// A `now` before `elapsed`.
    AdvanceBackwards(u64),
    /// Advance exactly to `next_expiration`.
    AdvanceToNext,
    /// Drain everything in a `poll` loop, stopping early once.
    PollSome(usize),
}

fn offset() -> impl Strategy<Value = Offset> {
    prop_oneof![
        2 => (0u64..200).prop_map(Offset::Past),
        6 => (0u64..300).prop_map(Offset::Near),
        4 => (0u64..1 << 24).prop_map(Offset::Mid),
        1 => (0u64..WHEEL_RANGE * 4).prop_map(|d| Offset::Far(WHEEL_RANGE - 64 + d)),
        1 => any::<u64>().prop_map(Offset::Absolute),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => offset().prop_map(Op::Insert),
        3 => any::<usize>().prop_map(Op::Cancel),
        2 => (any::<usize>(), offset()).prop_map(|(k, o)| Op::Reset(k, o)),
        5 => offset().prop_map(Op::Advance),
        1 => (0u64..1_000).prop_map(Op::AdvanceBackwards),
        2 => Just(Op::AdvanceToNext),
        1 => (0usize..5).prop_map(Op::PollSome),
    ]
}

fn resolve(offset: &Offset, elapsed: u64) -> u64 {
    match *offset {
        Offset::Past(d) => elapsed.saturating_sub(d),
        Offset::Near(d) | Offset::Mid(d) | Offset::Far(d) => elapsed.saturating_add(d),
        Offset::Absolute(d) => d,
    }
}

struct Live {
    deadline: u64,
    /// `max(deadline, elapsed at insert/reset)`: the position in the firing
    /// order that the wheel promises.
    effective: u64,
    seq: u64,
    value: u64,
}

#[derive(Default)]
struct Model {
    elapsed: u64,
    by_deadline: BTreeMap<(u64, u64), TimerKey>,
    live: HashMap<TimerKey, Live>,
    seq: u64,
}

impl Model {
    fn arm(&mut self, key: TimerKey, deadline: u64, value: u64) {
        self.seq += 1;
        let live = Live {
            deadline,
            effective: deadline.max(self.elapsed),
            seq: self.seq,
            value,
        };
        self.by_deadline.insert((deadline, live.seq), key);
        self.live.insert(key, live);
    }

    fn disarm(&mut self, key: TimerKey) -> Option<Live> {
        let live = self.live.remove(&key)?;
        self.by_deadline.remove(&(live.deadline, live.seq));
        Some(live)
    }
}

/// Checks one batch of fired timers against the model and removes them
/// from it. `now` is the tick the wheel was advanced to (already clamped).
fn check_fired(model: &mut Model, fired: &[(TimerKey, u64)], now: u64, complete: bool) {
    let mut last_effective = 0;
    for &(key, value) in fired {
        let live = model
            .disarm(key)
            .unwrap_or_else(|| panic!("fired {key:?} which is not armed (or fired twice)"));
        assert_eq!(live.value, value, "payload mismatch for {key:?}");
        assert!(
            live.deadline <= now,
            "fired early: deadline {} at {now}",
            live.deadline
        );
        assert!(
            live.effective >= last_effective,
            "out of order: {} after {last_effective}",
            live.effective
        );
        last_effective = live.effective;
    }
    if complete {
        if let Some((&(deadline, _), key)) = model.by_deadline.iter().next() {
            assert!(
                deadline > now,
                "{key:?} with deadline {deadline} not fired by {now}"
            );
        }
    }
}

fn check_state(wheel: &TimerWheel<u64>, model: &Model) {
    assert_eq!(wheel.len(), model.live.len());
    assert_eq!(wheel.is_empty(), model.live.is_empty());
    assert_eq!(wheel.elapsed(), model.elapsed);
    let next = wheel.next_expiration();
    match model.by_deadline.keys().next() {
        None => assert_eq!(next, None),
        Some(&(earliest, _)) => {
            let next = next.expect("timers armed but no next expiration");
            assert!(next >= model.elapsed, "next expiration in the past");
            assert!(
                next <= earliest.max(model.elapsed),
                "next expiration {next} later than earliest deadline {earliest}"
            );
            if next > model.elapsed {
                // Nothing can fire before `next`.
                let mut probe = wheel.clone();
                assert_eq!(probe.advance(next - 1, &mut Vec::new()), 0);
            }
            // The wake hint is never before the cascade point nor after the
            // earliest deadline, and advancing to it fires something.
            let wake = wheel.next_wake().expect("timers armed but no wake");
            assert!(wake >= next, "wake {wake} before next expiration {next}");
            assert!(
                wake <= earliest.max(model.elapsed),
                "wake {wake} later than earliest deadline {earliest}"
            );
            let mut probe = wheel.clone();
            let fired = probe.advance(wake, &mut Vec::new());
            assert!(
                fired > 0 || wake == next,
                "advancing to the exact wake {wake} fired nothing"
            );
        }
    }
}

fn run(ops: Vec<Op>, start: u64) {
    let mut wheel = TimerWheel::with_start(start);
    let mut model = Model {
        elapsed: start,
        ..Model::default()
    };
    let mut keys: Vec<TimerKey> = Vec::new();
    let mut next_value = 0u64;
    let mut fired = Vec::new();

    for op in ops {
        match op {
            Op::Insert(offset) => {
                let deadline = resolve(&offset, model.elapsed);
                next_value += 1;
                let key = wheel.insert(deadline, next_value);
                assert!(!model.live.contains_key(&key), "key reused");
                model.arm(key, deadline, next_value);
                keys.push(key);
            }
            Op::Cancel(pick) => {
                if keys.is_empty() {
                    continue;
                }
                let key = keys[pick % keys.len()];
                let expected = model.disarm(key).map(|live| live.value);
                assert_eq!(wheel.cancel(key), expected);
                assert_eq!(wheel.deadline(key), None);
            }
            Op::Reset(pick, offset) => {
                if keys.is_empty() {
                    continue;
                }
                let key = keys[pick % keys.len()];
                let deadline = resolve(&offset, model.elapsed);
                let live = model.disarm(key);
                assert_eq!(wheel.reset(key, deadline), live.is_some());
                match live {
                    Some(live) => {
                        model.arm(key, deadline, live.value);
                        assert_eq!(wheel.deadline(key), Some(deadline));
                    }
                    None => assert_eq!(wheel.deadline(key), None),
                }
            }
            Op::Advance(_) | Op::AdvanceBackwards(_) | Op::AdvanceToNext => {
                let now = match op {
                    Op::Advance(offset) => resolve(&offset, model.elapsed),
                    Op::AdvanceBackwards(back) => model.elapsed.saturating_sub(back),
                    _ => match wheel.next_expiration() {
                        Some(next) => next,
                        None => continue,
                    },
                };
                let now = now.max(model.elapsed);
                fired.clear();
                let count = wheel.advance(now, &mut fired);
                assert_eq!(count, fired.len());
                model.elapsed = now;
                check_fired(&mut model, &fired, now, true);
            }
            Op::PollSome(limit) => {
                fired.clear();
                let now = model.elapsed.saturating_add(1 << 20);
                while fired.len() < limit {
                    match wheel.poll(now) {
                        Some(timer) => fired.push(timer),
                        None => break,
                    }
                }
                let complete = fired.len() < limit;
                if complete {
                    model.elapsed = now;
                } else {
                    // Stopped mid-way: the wheel has reached the last fired
                    // deadline slot, not necessarily `now`.
                    assert!(wheel.elapsed() <= now);
                    model.elapsed = wheel.elapsed();
                    // Everything armed now is due at or after where time
                    // stopped, except what is already on the due list.
                }
                check_fired(&mut model, &fired, now, complete);
            }
        }
        check_state(&wheel, &model);
    }

    // Finally everything fires, once, by u64::MAX.
    fired.clear();
    wheel.advance(u64::MAX, &mut fired);
    model.elapsed = u64::MAX;
    check_fired(&mut model, &fired, u64::MAX, true);
    assert!(model.live.is_empty());
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_expiration(), None);
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        0u64..1 << 20,
        // Just before level and rotation boundaries.
        (1u32..=6).prop_map(|level| (1u64 << (6 * level)) - 3),
        Just(WHEEL_RANGE * 7 - 1),
        // Near the end of time: far deadlines run out of room.
        Just(u64::MAX - WHEEL_RANGE / 2),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wheel_matches_model(ops in prop::collection::vec(op(), 1..200), start in start()) {
        run(ops, start);
    }
}
