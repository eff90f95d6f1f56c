//! Turn-taking between the simulation's controller and its worker threads.
//!
//! Exactly one participant runs at a time. A worker runs from one driver call to the
//! next (its *yield points*: `reap`, `has_events`, `park`), then hands the turn back to
//! the controller and says where it stopped; the controller decides, from its seeded
//! generator, who runs next. So the order of everything the workers do to shared state
//! is a function of the seed alone, while each worker still runs the real loop on its
//! own thread with its own thread-locals.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Who holds the turn.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Turn {
    Controller,
    Worker(usize),
}

/// Where a worker stopped when it handed the turn back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Stop {
    /// Not started yet.
    Starting,
    /// In `reap` or `has_events`: it may go on whenever it is picked.
    Busy,
    /// In `park`, until an unpark, a completion, or the clock reaching `until`.
    Parked { until: Option<Instant> },
    /// Its loop returned; the thread is gone.
    Exited,
}

struct State {
    turn: Turn,
    stops: Vec<Stop>,
}

pub(super) struct Baton {
    state: Mutex<State>,
    changed: Condvar,
}

impl Baton {
    pub(super) fn new(workers: usize) -> Baton {
        Baton {
            state: Mutex::new(State {
                turn: Turn::Controller,
                stops: vec![Stop::Starting; workers],
            }),
            changed: Condvar::new(),
        }
    }

    /// Worker `me` stops at `stop` and waits until the controller gives it the turn.
    pub(super) fn yield_point(&self, me: usize, stop: Stop) {
        let mut state = self.state.lock().unwrap();
        debug_assert_eq!(state.turn, Turn::Worker(me));
        state.stops[me] = stop;
        state.turn = Turn::Controller;
        self.changed.notify_all();
        while state.turn != Turn::Worker(me) {
            state = self.changed.wait(state).unwrap();
        }
        state.stops[me] = Stop::Busy;
    }

    /// Worker `me` waits for its first turn.
    pub(super) fn start(&self, me: usize) {
        let mut state = self.state.lock().unwrap();
        while state.turn != Turn::Worker(me) {
            state = self.changed.wait(state).unwrap();
        }
        state.stops[me] = Stop::Busy;
    }

    /// Worker `me` is done for good; the turn goes back to the controller.
    pub(super) fn exit(&self, me: usize) {
        let mut state = self.state.lock().unwrap();
        state.stops[me] = Stop::Exited;
        state.turn = Turn::Controller;
        self.changed.notify_all();
    }

    /// Where each worker stopped (the controller holds the turn).
    pub(super) fn stops(&self) -> Vec<Stop> {
        self.state.lock().unwrap().stops.clone()
    }

    /// The controller gives worker `to` the turn and waits until it comes back.
    pub(super) fn run(&self, to: usize) {
        let mut state = self.state.lock().unwrap();
        debug_assert_eq!(state.turn, Turn::Controller);
        state.turn = Turn::Worker(to);
        self.changed.notify_all();
        while state.turn != Turn::Controller {
            state = self.changed.wait(state).unwrap();
        }
    }
}
