//! One recorded scheduler event: fixed size, plain data, no allocation.

use std::panic::Location;

/// What happened. The discriminant is stored in the event's top byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A task was spawned (`task`, `location`); `arg` is unused.
    Spawn = 1,
    /// A worker started polling `task` (`location` is its spawn site).
    PollStart = 2,
    /// The poll of `task` returned.
    PollEnd = 3,
    /// `task` was woken; `arg` is the worker whose queue it went to, or
    /// [`TO_INJECTOR`] for the global queue.
    Wake = 4,
    /// `task` woke itself during its poll (a yield); it waits behind other work.
    Yield = 5,
    /// This worker stole `arg >> 32` tasks from worker `arg & 0xffff_ffff`; `task` is
    /// the one it runs first.
    Steal = 6,
    /// The worker went to sleep in its ring.
    Park = 7,
    /// The worker woke up.
    Unpark = 8,
    /// The worker reaped its ring (`submit_and_reap`): `arg` CQEs were dispatched.
    Reap = 9,
    /// `arg` timers fired on this worker.
    TimerFire = 10,
    /// The monitor found worker `arg` stuck in the poll of `task` and handed its queue
    /// to siblings.
    Retake = 11,
    /// `task` completed (or was cancelled).
    Terminate = 12,
}

/// `Wake::arg` when the task went to the injector.
pub(crate) const TO_INJECTOR: u64 = u32::MAX as u64;

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        use Kind::*;
        Some(match v {
            1 => Spawn,
            2 => PollStart,
            3 => PollEnd,
            4 => Wake,
            5 => Yield,
            6 => Steal,
            7 => Park,
            8 => Unpark,
            9 => Reap,
            10 => TimerFire,
            11 => Retake,
            12 => Terminate,
            _ => return None,
        })
    }

    /// The name used in the trace files.
    pub(crate) fn name(self) -> &'static str {
        use Kind::*;
        match self {
            Spawn => "spawn",
            PollStart => "poll_start",
            PollEnd => "poll_end",
            Wake => "wake",
            Yield => "yield",
            Steal => "steal",
            Park => "park",
            Unpark => "unpark",
            Reap => "reap",
            TimerFire => "timer_fire",
            Retake => "retake",
            Terminate => "terminate",
        }
    }
}

/// A decoded event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    /// Nanoseconds since the recorder started.
    pub(crate) ts: u64,
    pub(crate) kind: Kind,
    /// Task id, 0 when the event is not about a task.
    pub(crate) task: u64,
    /// Kind-specific argument (see [`Kind`]); at most 56 bits.
    pub(crate) arg: u64,
    /// The task's spawn site, for `Spawn` and `PollStart`.
    pub(crate) location: Option<&'static Location<'static>>,
}

/// The four words an event is stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Words(pub(crate) [u64; 4]);

impl Event {
    pub(crate) fn encode(&self) -> Words {
        let location = self
            .location
            .map_or(0, |l| l as *const Location<'static> as usize as u64);
        Words([
            self.ts,
            (self.kind as u64) << 56 | (self.arg & ((1 << 56) - 1)),
            self.task,
            location,
        ])
    }

    /// Decodes words that were produced by [`Event::encode`] (the buffer only hands
    /// out words it has verified were written whole, by one `encode`).
    pub(crate) fn decode(words: Words) -> Option<Event> {
        let [ts, word, task, location] = words.0;
        let kind = Kind::from_u8((word >> 56) as u8)?;
        let location = location as usize as *const Location<'static>;
        Some(Event {
            ts,
            kind,
            task,
            arg: word & ((1 << 56) - 1),
            // SAFETY: the words come whole from one `encode`, whose location word was 0
            // or made from a `&'static Location`, so the pointer is null or valid forever.
            location: unsafe { location.as_ref() },
        })
    }
}
