//! The per-worker run queue (`scheduler/queue.rs`, capacity 4 under loom):
//! push / pop / steal / overflow / runnext with one and two stealers. Every task is run
//! exactly once, and the queue hands each one over with a happens-before edge (the task
//! body is a loom cell written before the push and read by whoever runs it).
//!
//! Mutation `steal_ordering` (the owner publishes a slot with a Relaxed tail store)
//! makes a stealer read a slot the owner's write does not happen-before.

use super::{local as run_queue, Local, Steal, CAPACITY};
use crate::loom::model::model;
use crate::scheduler::inject::Injector;
use loom::cell::UnsafeCell;
use loom::thread;

/// A task stand-in whose body is a loom cell written before it is queued and read by
/// whoever runs it, so loom also checks that the queue hands items over with a
/// happens-before edge.
struct Task {
    id: usize,
    body: UnsafeCell<usize>,
}

type Item = Box<Task>;

fn task(id: usize) -> Item {
    let t = Box::new(Task {
        id,
        body: UnsafeCell::new(0),
    });
    t.body.with_mut(|b| {
        // SAFETY: the task was just created on this thread; nobody else can see it.
        unsafe { *b = id + 100 }
    });
    t
}

/// What a thread ran: (id, address). Tasks are freed only after the exactly-once
/// check, so a duplicate shows up as a failed assertion rather than a double free.
type Ran = Vec<(usize, usize)>;

fn run(t: Item, ran: &mut Ran) {
    let body = t.body.with(|b| {
        // SAFETY: the queue handed us the only reference; loom checks the ordering.
        unsafe { *b }
    });
    assert_eq!(body, t.id + 100);
    ran.push((t.id, Box::into_raw(t) as usize));
}

fn assert_each_once(mut ran: Ran, n: usize) {
    ran.sort_unstable();
    let ids: Vec<usize> = ran.iter().map(|&(id, _)| id).collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "each item exactly once");
    for (_, addr) in ran {
        // SAFETY: each address came from `Box::into_raw` once (checked just above).
        drop(unsafe { Box::from_raw(addr as *mut Task) });
    }
}

fn drain_into(local: &mut Local<Item>, ran: &mut Ran) {
    while let Some(t) = local.pop() {
        run(t, ran);
    }
}

/// One steal attempt from `victim` into `mine`, running everything obtained.
fn steal_once(victim: &Steal<Item>, mine: &mut Local<Item>, ran: &mut Ran) {
    if let Some((t, _)) = victim.steal_into(mine) {
        run(t, ran);
    }
    drain_into(mine, ran);
}

fn finish(mut local: Local<Item>, inject: &Injector<Item>, ran: &mut Ran) {
    for t in local.drain() {
        run(t, ran);
    }
    while let Some(t) = inject.pop() {
        run(t, ran);
    }
}

/// (1) Owner pushes and pops (through wrap-around and an overflow) while one stealer
/// steals: every item is run exactly once.
#[test]
fn owner_push_pop_vs_stealer() {
    model(|| {
        let (mut local, steal) = run_queue::<Item>();
        let inject = Injector::new();
        let th = thread::spawn(move || {
            let (mut mine, _mine_steal) = run_queue();
            let mut ran = Ran::new();
            steal_once(&steal, &mut mine, &mut ran);
            steal_once(&steal, &mut mine, &mut ran);
            ran
        });
        let mut ran = Ran::new();
        for i in 0..3 {
            local.push_back_or_overflow(task(i), &inject);
        }
        if let Some(t) = local.pop() {
            run(t, &mut ran);
        }
        for i in 3..6 {
            local.push_back_or_overflow(task(i), &inject);
        }
        if let Some(t) = local.pop() {
            run(t, &mut ran);
        }
        finish(local, &inject, &mut ran);
        ran.extend(th.join().unwrap());
        assert_each_once(ran, 6);
    });
}

/// (2) Two stealers against an owner that filled the ring and keeps pushing; the
/// second also steals from the first (so the first's queue is a victim while it is
/// being filled by a steal). Nothing lost or duplicated, no slot reused while read.
#[test]
fn two_stealers_vs_owner() {
    model(|| {
        let (mut local, steal) = run_queue::<Item>();
        let inject = Injector::new();
        for i in 0..CAPACITY {
            local.push_back_or_overflow(task(i), &inject);
        }
        let (mut mine1, steal1) = run_queue::<Item>();
        let th1 = {
            let steal = steal.clone();
            thread::spawn(move || {
                let mut ran = Ran::new();
                if let Some((t, _)) = steal.steal_into(&mut mine1) {
                    run(t, &mut ran);
                }
                // Give th2 a chance to steal from us before we run our share.
                thread::yield_now();
                drain_into(&mut mine1, &mut ran);
                ran
            })
        };
        let th2 = thread::spawn(move || {
            let (mut mine2, _steal2) = run_queue();
            let mut ran = Ran::new();
            steal_once(&steal, &mut mine2, &mut ran);
            steal_once(&steal1, &mut mine2, &mut ran);
            ran
        });
        let mut ran = Ran::new();
        local.push_back_or_overflow(task(CAPACITY), &inject);
        if let Some(t) = local.pop() {
            run(t, &mut ran);
        }
        finish(local, &inject, &mut ran);
        ran.extend(th1.join().unwrap());
        ran.extend(th2.join().unwrap());
        assert_each_once(ran, CAPACITY + 1);
    });
}

/// (3) The owner fills the ring and overflows it while a steal may be in flight:
/// either half moves to the injector, or (steal in progress) just the new item does.
#[test]
fn overflow_vs_steal() {
    model(|| {
        let (mut local, steal) = run_queue::<Item>();
        let inject = Injector::new();
        let th = thread::spawn(move || {
            let (mut mine, _mine_steal) = run_queue();
            let mut ran = Ran::new();
            steal_once(&steal, &mut mine, &mut ran);
            ran
        });
        let mut ran = Ran::new();
        for i in 0..CAPACITY + 2 {
            local.push_back_or_overflow(task(i), &inject);
        }
        finish(local, &inject, &mut ran);
        ran.extend(th.join().unwrap());
        assert_each_once(ran, CAPACITY + 2);
    });
}

/// (4) runnext: the owner replaces and takes it while a stealer (or the monitor)
/// swaps it out: each item is taken exactly once.
#[test]
fn runnext_vs_steal_runnext() {
    model(|| {
        let (mut local, steal) = run_queue::<Item>();
        let inject = Injector::new();
        assert!(local.push_runnext(task(0)).is_none());
        let th = thread::spawn(move || {
            let mut ran = Ran::new();
            for _ in 0..2 {
                if let Some(t) = steal.steal_runnext() {
                    run(t, &mut ran);
                }
            }
            ran
        });
        let mut ran = Ran::new();
        if let Some(prev) = local.push_runnext(task(1)) {
            local.push_back_or_overflow(prev, &inject);
        }
        if let Some(t) = local.take_runnext() {
            run(t, &mut ran);
        }
        assert!(local.push_runnext(task(2)).is_none());
        finish(local, &inject, &mut ran);
        ran.extend(th.join().unwrap());
        assert_each_once(ran, 3);
    });
}
