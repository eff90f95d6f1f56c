//! # uringo-uring: one io_uring per worker
//!
//! This crate is the layer of uringo that talks to the kernel. The executor (crate
//! `uringo`) gives every worker thread one [`Ring`], submits and reaps on it once per
//! scheduler tick, and parks in it when it has nothing to run — the way Go's scheduler
//! polls the netpoller inside `findrunnable`. Everything here is built around five facts
//! of that arrangement.
//!
//! ## 1. A task may move; its in-flight operation may not
//!
//! An op is submitted on the ring of the thread that first polls it. The task that awaits
//! it may be stolen by another worker before the CQE arrives, but the CQE still lands on
//! the original ring. So the place the result lands is shared: each op has one
//! reference-counted *completion cell* (`cell.rs`, from a per-thread cache of blocks)
//! holding an atomic state word (`state.rs`, which also carries the count), the result,
//! the CQE flags, a waker slot and the op's data. The ring keeps one reference in its
//! in-flight table keyed by user_data; the future keeps the other. The ring's owner
//! records the CQE and wakes whoever waits, on whatever thread that is.
//!
//! ## 2. The kernel owns a buffer from submission to CQE
//!
//! Ops own their buffers ([`IoBuf`], [`IoBufMut`]: `Vec<u8>`, `Box<[u8]>`, `BytesMut`,
//! slices of them) and give them back with the result. Dropping an op's future before its
//! CQE does not free anything: the future marks the cell *orphaned* and asks the ring to
//! `ASYNC_CANCEL` the op; the ring's reference keeps the buffer alive until the CQE says
//! the kernel is done, and only then is it freed. An orphaned op that produced a resource
//! (an accepted socket, an opened file) closes it. Dropping a ring cancels everything in
//! flight and waits, bounded, for the CQEs; what the kernel still holds after that is
//! leaked on purpose, never freed under it.
//!
//! ## 3. Only the owner submits
//!
//! `Ring` is `!Send`: the thread that creates it is the only one that enters it, which
//! lets us set the ring up with `SINGLE_ISSUER | DEFER_TASKRUN`. Those, and everything
//! else the design uses, make Linux 6.1 the floor: `Ring::new` checks each feature up
//! front and refuses an older kernel with an error that names what is missing
//! (`ring/features.rs`, `ring/setup.rs`); newer features are probed into
//! [`RingFeatures`]. Other threads
//! hold a [`RingHandle`] and put requests — submit this op, cancel that one — in the
//! ring's mailbox (`shared.rs`), then wake the owner.
//!
//! ## 4. Wake-ups across rings
//!
//! A [`RingWaker`] is `Send + Sync`. The owner announces that it is going to sleep before
//! its last look at its mailbox (`park.rs`); a waker that sees the announcement kicks it
//! out of the kernel: with `MSG_RING` (a CQE posted straight into the target's CQ) when
//! the waking thread owns a ring itself, otherwise by writing an eventfd the owner always
//! has a read armed on. A wake that finds the owner running leaves a token so its next
//! park returns at once; wakes between two parks cost one atomic swap and no syscall.
//!
//! ## 5. One enter per tick
//!
//! SQEs pushed while tasks run stay in the SQ until the tick ends; [`Ring::submit_and_reap`]
//! submits them and runs completion work in one `io_uring_enter` (with `GETEVENTS`, which
//! `DEFER_TASKRUN` needs; skipped entirely when there is nothing to submit and the kernel
//! raised no `IORING_SQ_TASKRUN`). [`Ring::park`] is the same enter with `min_complete = 1`
//! and the next timer as an `EXT_ARG` timeout. A full SQ is submitted early; a CQ that
//! overflowed (the kernel buffers CQEs with `FEAT_NODROP`) is flushed and drained until
//! empty, so no completion is ever lost. In the one case the kernel itself loses a CQE
//! (it says so with EBADR) the ring cancels every op in flight to find whose it was and
//! completes that op with EBADR (`ring/lost.rs`): no op waits forever.
//!
//! ## Testing the fault paths
//!
//! Kernel refusals and rare failures cannot be provoked on demand on a healthy machine,
//! so the crate has a test-only switch: the cargo feature `fault-injection`. Nothing
//! turns it on but this crate's own dev-dependency on itself (`Cargo.toml`), so
//! `cargo test` builds with it and no program that depends on `uringo-uring` does
//! (dev-dependencies of a dependency are never built). Do not enable it elsewhere: it
//! exists to make things fail. With it, `RingBuilder::pretend_missing` makes a ring
//! behave as on a kernel without a given [`KernelFeature`], through the same checks a
//! real refusal goes through, and `Ring::inject` arms a `Fault` (a refused enter or
//! push, a dropped CQE, an overflowing CQ, a failed buffer-ring registration) that the
//! ring meets where the kernel's failure would surface (`fault.rs`). Without the feature
//! neither exists and the checks compile to nothing.
//!
//! ## Where things are
//!
//! | file | what |
//! |---|---|
//! | `ring/` | [`Ring`]: setup, submit, complete, wake, shutdown (one file each), the in-flight table, the SQ and CQ read and written in place, [`RingBuilder`], [`RingFeatures`] |
//! | `error.rs` | why io_uring is unavailable, and how to fix it ([`UnavailableError`]) |
//! | `shared.rs` | the cross-thread half: mailbox, eventfd, park state, the ring registry |
//! | `handle.rs` | [`RingHandle`], [`RingWaker`]: reaching a ring from any thread, the wake protocol |
//! | `metrics.rs` | [`RingMetrics`] and the counters behind them |
//! | `park.rs` | the park/notify handshake (loom-modelled) |
//! | `cqe.rs` | [`Cqe`] and the user_data of the ring's own SQEs (a leaf: imports nothing here) |
//! | `operation.rs` | the [`op::Operation`] and [`op::MultishotOperation`] traits |
//! | `cell.rs`, `state.rs`, `atomic_waker.rs` | completion cells and their state machine |
//! | `cell/handled.rs` | handled ops ([`op::Handled`]): cells whose CQEs a handler acts on, on the ring's thread, with no future |
//! | `op/` | typed ops: [`op::ReadAt`], [`op::Recv`], [`op::AcceptMulti`], [`op::RecvMultiStream`], ...; the [`Op`] and [`Multishot`] futures; [`op::submit_handled`] |
//! | `buf.rs` | owned buffers |
//! | `buf_ring/` | provided buffer rings: [`BufPool`], [`PooledBuf`] for multishot recv |
//! | `context.rs` | which ring an op polled on this thread goes to |
//! | `pending.rs` | the hook through which an executor learns which op a poll left pending (opcode, fd), for task dumps |
//! | `sys.rs` | raw `io_uring_enter` with a registered ring fd |
//!
//! The modules form layers, leaves first: `sync`, `cqe`, `state`, `sys`, `error`,
//! `pending`; then `atomic_waker`, `park`, `buf`, `buf_ring`, `operation`; `cell`;
//! `metrics`, `shared`; `ring`'s internals; `context`; `handle`; the op futures and the
//! public `Ring`. No module imports one above it.
//!
//! ## Example
//!
//! ```
//! use std::os::fd::AsRawFd;
//! use uringo_uring::{op, Ring};
//!
//! let ring = Ring::new()?;
//! let (a, b) = std::os::unix::net::UnixStream::pair()?;
//! let (sent, received) = ring.block_on(async {
//!     let recv = op::Recv::new(b.as_raw_fd(), Vec::with_capacity(16));
//!     let (sent, _) = op::Send::new(a.as_raw_fd(), b"ping".to_vec()).await;
//!     let (n, buf) = recv.await;
//!     (sent, (n, buf))
//! });
//! assert_eq!(sent?, 4);
//! assert_eq!(received.1, b"ping");
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

/// Whether the deliberate bug `name` is switched on, with
/// `--cfg uringo_loom_mutation="name"`: each guards a mutation point in the real code,
/// and the loom model next to it must fail with it on (`.ci/loom-mutations` runs each). No
/// shipped build sets it, so the default path is the correct code.
macro_rules! mutation {
    ($name:literal) => {
        cfg!(uringo_loom_mutation = $name)
    };
}

mod atomic_waker;
mod buf;
mod buf_ring;
mod cell;
mod context;
mod cqe;
mod error;
mod fault;
mod handle;
mod metrics;
pub mod op;
mod operation;
mod park;
mod pending;
mod ring;
mod shared;
mod state;
mod sync;
mod sys;

pub use buf::{IoBuf, IoBufMut, Slice};
pub use buf_ring::{BufPool, BufSelect, PooledBuf};
pub use context::EnterGuard;
pub use cqe::Cqe;
pub use error::UnavailableError;
#[cfg(feature = "fault-injection")]
pub use fault::Fault;
pub use handle::{set_fallback, FallbackGuard, RingHandle, RingWaker};
pub use metrics::RingMetrics;
pub use op::{Multishot, Op};
pub use pending::{set_pending_hook, PendingOp};
pub use ring::{KernelFeature, Ring, RingBuilder, RingFeatures, MINIMUM_KERNEL};

/// The opcode constants `Ring::supports` takes, re-exported from the `io-uring` crate.
pub use io_uring::opcode as opcodes;
