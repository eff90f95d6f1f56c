//! Provided buffer rings: a pool of receive buffers the kernel picks from only when data
//! arrives.
//!
//! A server holding thousands of mostly idle connections with one pending `read` each
//! pins one buffer per connection. With a provided buffer ring (`IORING_REGISTER_PBUF_RING`,
//! 5.19) and multishot recv (`IORING_RECV_MULTISHOT` + `IOSQE_BUFFER_SELECT`, 6.0) the
//! recv names a *buffer group* instead of a buffer, and the kernel takes one from the
//! group at the moment bytes are there to copy. Idle connections hold nothing.
//!
//! ## One pool, one buffer ring per io_uring
//!
//! A buffer ring is registered on one io_uring instance, but uringo has one ring per
//! worker and a task's recv is submitted on whichever worker polls it. So a [`BufPool`]
//! is a *description* (group id, buffer count and size) plus the per-ring state: the
//! first time an op that selects from the pool is pushed on a ring, that ring's owner
//! registers its own buffer ring (`count × size` bytes) for the pool's group id. The
//! hook is [`crate::op::MultishotOperation::buf_select`]: `Ring` asks every op it is
//! about to push (its own or one from the mailbox) and binds the op to the ring's
//! registration first, so registration always happens on the owner — design
//! invariant 3, only the owner submits, also covers the buffer ring's tail, which only
//! the owner writes. Group ids are allocated process-wide, so a pool has the same id on
//! every ring, and recycled once the pool is gone.
//!
//! ## Giving buffers back
//!
//! A received buffer is a [`PooledBuf`]. Dropping it returns the buffer to the ring it
//! came from: on the owner thread it is written straight back into the buffer ring (one
//! entry write and a release store of the tail); on any other thread its id goes onto a
//! bounded lock-free queue (`ArrayQueue`, sized to the buffer count, so it can never be
//! full) that the owner drains at the start of its next tick, before any SQE of that
//! tick reaches the kernel. No syscall, no lock on either path.
//!
//! ## Incremental buffers
//!
//! Where the kernel has `IOU_PBUF_RING_INC` (6.12; [`crate::RingFeatures`] says, and
//! tests turn it off with `pretend_missing(KernelFeature::BufRingIncremental)`), each
//! ring registers its buffer rings incrementally: the kernel fills a buffer a chunk at a
//! time and moves on only once it is full, so a 100-byte message takes 100 bytes of a
//! buffer, not all of it. A chunk can then end where its buffer does, in the middle of a
//! message (as any read of a byte stream may). Each CQE but the one that finishes a
//! buffer carries `IORING_CQE_F_BUF_MORE`. The owner keeps, per buffer, how far it is
//! filled (in CQ order, which is the order the kernel filled it), and each CQE's start
//! travels with the CQE in its op's queue to the reader. A buffer goes back to the ring when
//! both the kernel has finished it and every chunk of it has dropped: a count per buffer,
//! documented on `RingBufs::refs`, and checked by a loom model next to it.
//!
//! ## Bundles
//!
//! Where the kernel takes recv bundles (`IORING_RECVSEND_BUNDLE`, 6.10; used from 6.15,
//! see [`crate::KernelFeature::RecvBundle`]), [`crate::op::RecvMultiStream`] asks for
//! them: one CQE then carries the bytes of several buffers, and names only the first.
//! The kernel takes a bundle's buffers from consecutive ring entries, so the owner, which
//! writes the entries, keeps which buffer it wrote at each entry and where each buffer
//! was written. At dispatch it walks the entries from the first buffer's, splitting the
//! CQE's bytes into one piece per buffer (with incremental buffers, the first piece
//! starts at the first buffer's fill and only the last may leave its buffer unfinished).
//! The pieces are resolved then, not when the reader looks, because by that time the
//! entries may hold other buffers. They wait in the op's `BufSelect` in CQ order, and the
//! stream yields them one by one, each a `PooledBuf` returned on its own. A bundle that
//! takes the last free buffers ends the multishot without an error; the stream re-arms
//! as after any other such end. The ring makes the op a bundle recv only once it has
//! bound it, since only then is it known whether this ring takes bundles.
//!
//! ## Running out
//!
//! When every buffer is out, the kernel ends the multishot recv with `ENOBUFS`; the bytes
//! stay in the socket. The stream ([`crate::op::RecvMultiStream`]) then waits — without
//! spinning — for this ring's pool to have a buffer again: it puts a waker on the
//! registration's waiter queue, and whoever returns a buffer wakes every queued waiter.
//! The count the waiter checks is exact: the owner takes a buffer out of the count when it
//! dispatches the CQE that carries it, not when the reader gets around to it.
//!
//! ## Lifetime
//!
//! The buffer memory belongs to an `Arc` shared by the ring's registry, every
//! [`PooledBuf`] and every op bound to it. The ring unregisters its buffer rings only
//! after its in-flight ops have completed (at drop, after the cancel-and-wait); if ops
//! are leaked past the drop timeout, the registrations are leaked with them. Memory is
//! freed when the last `PooledBuf` drops. A ring releases the registration of a pool that
//! no longer exists the next time it registers another pool (or when it drops): no op
//! can be in flight on a dead pool, since every op holds the pool.
//!
//! ## When registration fails
//!
//! Every kernel uringo runs on has buffer rings and multishot recv (`Ring::new` checks).
//! Registering one can still fail (out of memory, say): the op that needed it then
//! fails with that error, nothing is registered, and the next op on the pool tries
//! again. A pool switched to single-shot mode ([`BufPool::use_single_shot`]) makes
//! [`crate::op::RecvMultiStream`] recv into a fresh `Vec` of the pool's buffer size per
//! read; the [`PooledBuf`]s it yields then own their `Vec` and are not counted by the
//! pool.
//!
//! ## Files
//!
//! | file | what |
//! |---|---|
//! | `pool.rs` | [`BufPool`]: the description, its counters, group ids |
//! | `ring_bufs.rs` | one ring's registration: buffer ring, memory, return queue, waiters |
//! | `registry.rs` | the registrations of one io_uring, by group |
//! | `select.rs` | [`BufSelect`] (the op side) and [`PooledBuf`] (the received bytes) |

mod pool;
mod registry;
mod ring_bufs;
mod select;

pub use pool::BufPool;
pub(crate) use registry::BufRings;
pub(crate) use ring_bufs::{BufWaiter, RingBufs};
pub(crate) use select::Bundle;
pub use select::{BufSelect, PooledBuf};
