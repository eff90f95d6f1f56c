//! Tasks: one allocation each, a state word that decides every race, wakers without
//! allocation, and the handles that point at them.
//!
//! | handle | holds a reference | who has it |
//! |---|---|---|
//! | `Notified` | yes | a run queue (at most one per task) |
//! | `Task` | yes | the owned-task registry, until completion (or, if the `JoinHandle` still wants the output, until it takes it or is dropped) |
//! | [`JoinHandle`] | yes | the spawner |
//! | `Waker` | yes | whatever the task waits on |
//!
//! `state.rs` is the state machine, `raw.rs` the memory layout, `harness.rs` what poll,
//! complete and cancel do, `waker.rs` the wakers, `owned.rs` the registry, `dump.rs` what
//! a dump of the registry shows.
//!
//! This layer knows nothing above it: a task reaches its scheduler only through the
//! [`Schedule`] trait, and the public face (`uringo::task`, `spawn`) is built on top.

mod cell_pool;
pub(crate) mod dump;
mod error;
pub(crate) mod handles;
mod harness;
mod join;
pub(crate) mod owned;
pub(crate) mod raw;
pub(crate) mod state;
mod waker;

use std::fmt;
use std::num::NonZeroU64;

pub use dump::{TaskDump, TaskGroup, TaskInfo, TaskState, WaitingOn};
pub use error::JoinError;
pub(crate) use handles::{new_task, Notified, Schedule, Task};
pub use join::{AbortHandle, JoinHandle};
pub(crate) use owned::OwnedTasks;
pub(crate) use raw::RawTask;

/// A unique task id, in spawn order.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// rt.block_on(async {
///     let a = uringo::spawn(async {});
///     let b = uringo::spawn(async {});
///     assert_ne!(a.id(), b.id());
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    pub(crate) fn next() -> Id {
        // Not a loom atomic: ids are not part of any protocol being modelled.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Id(NonZeroU64::new(id).expect("task id space exhausted"))
    }

    /// The id of a number that came from [`Id::as_u64`] (`None` for 0).
    pub(crate) fn from_raw(id: u64) -> Option<Id> {
        NonZeroU64::new(id).map(Id)
    }

    /// A chosen id: loom models need the same ids (so the same registry shards) in every
    /// execution they explore, which the global counter of `next` does not give.
    #[cfg(all(test, loom))]
    pub(crate) fn from_u64(id: u64) -> Id {
        Id(NonZeroU64::new(id).expect("task ids start at 1"))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

#[cfg(all(test, loom))]
mod loom;
