//! Time: sleeps, timeouts and intervals on a hierarchical timer wheel per worker.
//!
//! Go keeps a timer heap per P; tokio keeps one wheel behind a mutex shared by all
//! workers (a known contention point). uringo keeps one `uringo-timers` wheel per worker
//! and shares no lock between timers:
//!
//! * a [`Sleep`] is put on the wheel of the worker that first polls it; if its task is
//!   later stolen, the timer stays where it is and its firing wakes the task wherever
//!   it runs;
//! * dropping (or resetting) it on that worker is an O(1) wheel operation; from another
//!   thread it pushes the wheel key onto the owner's cancellation queue, drained every
//!   tick;
//! * a thread that owns no wheel (`block_on`, `spawn_blocking`) hands its timer to a
//!   worker through that worker's registration queue and wakes it; the worker leaves
//!   the wheel key in the timer's entry, and dropping the timer sends that key back
//!   through the cancellation queue and wakes the worker again, so a `timeout` in a
//!   loop on such a thread leaves nothing behind in the wheel;
//! * each worker fires what is due on every scheduler tick and parks in its ring with
//!   the nearest deadline as the `io_uring_enter` timeout;
//! * a timer's entry is a slot in its worker's arrays of entries (`slots.rs`), reused
//!   once the wheel and the `Sleep` have both let go, so arming allocates nothing in a
//!   steady state.
//!
//! Resolution is 250 µs (`driver::TICK`); a timer never fires before its deadline.

#[cfg(feature = "test-util")]
pub(crate) mod auto_advance;
pub(crate) mod clock;
pub(crate) mod driver;
pub(crate) mod entry;
mod interval;
#[cfg(feature = "test-util")]
mod pause;
mod sleep;
pub(crate) mod slots;
mod timeout;

pub(crate) use driver::{TimerDriver, TimerRemote};
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
#[cfg(feature = "test-util")]
pub use pause::{advance, pause, resume};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::{Duration, Instant};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};

pub(crate) use driver::deadline_tick;

#[cfg(all(test, loom))]
mod loom;
