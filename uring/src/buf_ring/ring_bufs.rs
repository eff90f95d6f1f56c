//! One ring's registration of one pool: the buffer ring the kernel reads, the memory it
//! writes into, and the way buffers come back (directly on the owner, through a lock-free
//! queue from anywhere else).

use std::alloc::Layout;
use std::io;
use std::sync::Weak;
use std::task::Waker;

use crossbeam_queue::SegQueue;
use io_uring::{types::BufRingEntry, IoUring};

use super::pool::{BufPool, PoolShared, Tally};
use crate::atomic_waker::AtomicWaker;
use crate::sync::{current_thread, Arc, ArrayQueue, AtomicBool, AtomicU32, Ordering, ThreadId};

/// Buffer ring entries must start on a page boundary.
const RING_ALIGN: usize = 4096;
/// `IOU_PBUF_RING_INC`: the kernel consumes a buffer a chunk at a time (6.12).
const IOU_PBUF_RING_INC: u16 = 2;

/// A page-aligned heap allocation, freed on drop.
struct Region {
    ptr: *mut u8,
    layout: Layout,
}

impl Region {
    fn zeroed(size: usize, align: usize) -> io::Result<Region> {
        let layout = Layout::from_size_align(size.max(1), align)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "cannot allocate buffer ring memory",
            ));
        }
        Ok(Region { ptr, layout })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout; the owning `RingBufs` is only
        // dropped once the kernel is done with it (see the module docs).
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// One ring's registration of one pool: the buffer ring the kernel reads, the buffers it
/// writes, the queue of buffers returned from other threads.
pub(crate) struct RingBufs {
    pub(super) ring_id: u32,
    /// The ring's owner: the only thread that writes `entries` and the tail.
    owner: ThreadId,
    pub(super) group: u16,
    mask: u16,
    pub(super) buf_size: u32,
    /// `count` `BufRingEntry`s shared with the kernel; entry 0's `resv` is the tail.
    entries: Region,
    buffers: Region,
    /// Our copy of the tail. Only the owner writes it (it is atomic for `Sync` only).
    tail: AtomicU32,
    /// Buffers available and whether the ring is registered, as the pool counts them.
    pub(super) tally: Arc<Tally>,
    /// Registered with `IOU_PBUF_RING_INC`: the kernel fills a buffer a chunk at a time,
    /// each chunk in a CQE of its own, and sets `IORING_CQE_F_BUF_MORE` on every CQE
    /// but the one that finishes the buffer. Several chunks of one buffer, possibly of
    /// different sockets, are then alive at once.
    pub(super) incremental: bool,
    /// Incremental only, per buffer: how far the kernel has filled it, as seen in CQ
    /// order. Only the owner reads or writes it (atomic for `Sync` only).
    filled: Box<[AtomicU32]>,
    /// Incremental only, per buffer: who still uses it. The kernel counts as one from
    /// the moment the owner puts the buffer in the ring until the owner dispatches the
    /// CQE without `BUF_MORE`; each chunk handed out as a `PooledBuf` counts as one
    /// until it drops. Whoever takes the count to zero gives the buffer back. The owner
    /// sets it to 1 before the kernel can see the buffer and only increments it while
    /// the kernel's unit is still in it, so it never rises from zero.
    refs: Box<[AtomicU32]>,
    /// Recv ops on this ring may take bundles (`IORING_RECVSEND_BUNDLE`): one CQE for
    /// several buffers, taken from consecutive ring entries from the one it names.
    pub(super) bundles: bool,
    /// Bundles only, per ring entry (index masked): the buffer written there. Only the
    /// owner reads or writes it (atomic for `Sync` only).
    bid_at: Box<[AtomicU32]>,
    /// Bundles only, per buffer: the ring position (unmasked tail) it was last written
    /// at, so a CQE's first buffer says where its bundle starts. Owner only.
    position_of: Box<[AtomicU32]>,
    /// Buffer ids dropped off the owner thread, waiting for the owner to re-add them.
    returns: ArrayQueue<u16>,
    /// Streams starved by `ENOBUFS`, woken when a buffer comes back.
    waiters: SegQueue<Arc<BufWaiter>>,
    pub(super) pool: Weak<PoolShared>,
}

// SAFETY: the raw regions are only written by the owner thread (entries, tail) or by the
// kernel (buffers, between handing a buffer out and its CQE); readers of a buffer hold the
// `PooledBuf` that owns its id exclusively.
unsafe impl Send for RingBufs {}
// SAFETY: as above.
unsafe impl Sync for RingBufs {}

impl RingBufs {
    pub(super) fn new(
        ring_id: u32,
        pool: &BufPool,
        incremental: bool,
        bundles: bool,
    ) -> io::Result<RingBufs> {
        let count = pool.buf_count();
        let per_buffer = |wanted: bool| {
            let len = if wanted { count } else { 0 };
            (0..len).map(|_| AtomicU32::new(0)).collect::<Box<[_]>>()
        };
        let entries = Region::zeroed(
            count * std::mem::size_of::<BufRingEntry>(),
            RING_ALIGN.max(std::mem::align_of::<BufRingEntry>()),
        )?;
        let buffers = Region::zeroed(count * pool.buf_size(), RING_ALIGN)?;
        Ok(RingBufs {
            ring_id,
            owner: current_thread(),
            group: pool.group(),
            mask: (count - 1) as u16,
            buf_size: pool.shared.size,
            entries,
            buffers,
            tail: AtomicU32::new(0),
            tally: Arc::new(Tally::default()),
            incremental,
            filled: per_buffer(incremental),
            refs: per_buffer(incremental),
            bundles,
            bid_at: per_buffer(bundles),
            position_of: per_buffer(bundles),
            returns: ArrayQueue::new(count),
            waiters: SegQueue::new(),
            pool: Arc::downgrade(&pool.shared),
        })
    }

    pub(super) fn count(&self) -> usize {
        usize::from(self.mask) + 1
    }

    pub(super) fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < count` (checked by callers), so the offset stays inside `buffers`.
        unsafe {
            self.buffers
                .ptr
                .add(usize::from(bid) * self.buf_size as usize)
        }
    }

    /// Writes buffer `bid` into the next free entry and publishes the new tail.
    /// Owner thread only.
    fn push_entry(&self, bid: u16) {
        if self.incremental {
            // The kernel's unit; the buffer is empty again.
            self.refs[usize::from(bid)].store(1, Ordering::Relaxed);
            self.filled[usize::from(bid)].store(0, Ordering::Relaxed);
        }
        let tail = self.tail.load(Ordering::Relaxed);
        if self.bundles {
            self.bid_at[(tail & u32::from(self.mask)) as usize]
                .store(u32::from(bid), Ordering::Relaxed);
            self.position_of[usize::from(bid)].store(tail, Ordering::Relaxed);
        }
        let base = self.entries.ptr.cast::<BufRingEntry>();
        // SAFETY: the index is masked into the `count` entries of the region. The entry at
        // `tail` is outside the kernel's [head, tail) window, so the kernel does not read
        // it until we publish the new tail; the setters leave `resv` (entry 0's tail
        // field) untouched.
        unsafe {
            let entry = &mut *base.add((tail & u32::from(self.mask)) as usize);
            entry.set_addr(self.buf_ptr(bid) as u64);
            entry.set_len(self.buf_size);
            entry.set_bid(bid);
        }
        let new_tail = tail.wrapping_add(1);
        self.tail.store(new_tail, Ordering::Relaxed);
        // The tail lives in memory shared with the kernel, not with our threads, so it is
        // outside what `crate::sync` (and loom) model.
        // SAFETY: `BufRingEntry::tail` points at entry 0's `resv`, a 2-byte aligned u16
        // inside the region, which the kernel reads with acquire semantics.
        unsafe {
            let tail_ptr = BufRingEntry::tail(base).cast_mut();
            (*tail_ptr.cast::<std::sync::atomic::AtomicU16>())
                .store(new_tail as u16, std::sync::atomic::Ordering::Release);
        }
    }

    /// Gives every buffer to the kernel and registers the ring. Owner thread only.
    pub(super) fn register(&self, uring: &IoUring) -> io::Result<()> {
        self.fill();
        // SAFETY: the entries region is page-aligned, holds `count` entries and lives in
        // an `Arc` the ring's registry keeps until after `unregister`.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                self.entries.ptr as u64,
                self.count() as u16,
                self.group,
                if self.incremental {
                    IOU_PBUF_RING_INC
                } else {
                    0
                },
            )?;
        }
        self.publish();
        Ok(())
    }

    /// Writes every buffer into the ring, for the kernel to pick once registered.
    fn fill(&self) {
        for bid in 0..self.count() {
            self.push_entry(bid as u16);
        }
    }

    /// Counts every buffer as available and the ring as registered.
    fn publish(&self) {
        self.tally
            .available
            .store(self.count() as u32, Ordering::Release);
        self.tally.registered.store(true, Ordering::Release);
    }

    /// Unregisters the buffer ring. Owner thread only, with no op of the group in flight.
    pub(super) fn unregister(&self, uring: &IoUring) {
        self.tally.registered.store(false, Ordering::Release);
        if let Err(err) = uring.submitter().unregister_buf_ring(self.group) {
            tracing::warn!(ring = self.ring_id, group = self.group, %err, "cannot unregister a buffer ring");
        }
    }

    /// Re-adds buffers returned from other threads. Owner thread only.
    /// Returns how many came back.
    pub(super) fn drain_returns(&self) -> usize {
        let mut drained = 0;
        while let Some(bid) = self.returns.pop() {
            self.push_entry(bid);
            drained += 1;
        }
        drained
    }

    /// The owner dispatched a CQE carrying buffer `bid`: it is out of the pool.
    pub(super) fn taken(&self) {
        self.tally.available.fetch_sub(1, Ordering::AcqRel);
    }

    /// Owner side, at dispatch of a CQE that carries `len` bytes in buffer `bid`
    /// (`bid < count`): accounts for the chunk and returns where in the buffer it starts.
    /// With incremental buffers the buffer leaves the pool only at the CQE that finishes
    /// it (`more` false); without, every CQE finishes its buffer.
    pub(super) fn dispatched(&self, bid: u16, len: u32, more: bool) -> u32 {
        if !self.incremental {
            self.taken();
            return 0;
        }
        let i = usize::from(bid);
        let start = self.filled[i].load(Ordering::Relaxed);
        // The chunk's unit, added while the kernel's is still in: never from zero.
        self.refs[i].fetch_add(1, Ordering::Relaxed);
        if more {
            self.filled[i].store(start.saturating_add(len), Ordering::Relaxed);
        } else {
            self.taken();
            self.release(bid);
        }
        start
    }

    /// Owner side, at dispatch of a CQE that carries `len` bytes from buffer `first` on,
    /// possibly spilling into the buffers after it in the ring (a bundle). Returns each
    /// buffer's piece as (buffer, start, length), accounted for as [`dispatched`] does
    /// one; `more` is the CQE's `BUF_MORE` and concerns its last buffer only (the kernel
    /// finished every buffer before it).
    ///
    /// The buffers after `first` are the ring entries after the one `first` was written
    /// at: the kernel takes a bundle's buffers from consecutive entries, and never skips
    /// one. That is why this runs at dispatch, on the owner: by the time a reader looks,
    /// those entries may hold other buffers.
    ///
    /// [`dispatched`]: RingBufs::dispatched
    pub(super) fn dispatched_bundle(
        &self,
        first: u16,
        len: u32,
        more: bool,
        mut piece: impl FnMut(u16, u32, u32),
    ) {
        let mut bid = first;
        let mut left = len;
        for step in 0..self.count() as u32 {
            let start = if self.incremental {
                self.filled[usize::from(bid)].load(Ordering::Relaxed)
            } else {
                0
            };
            let room = self.buf_size.saturating_sub(start);
            let last = left <= room || !self.bundles || step + 1 == self.count() as u32;
            let this = left.min(room);
            let start = self.dispatched(bid, this, more && last);
            piece(bid, start, this);
            left -= this;
            if last {
                break;
            }
            let position = self.position_of[usize::from(first)]
                .load(Ordering::Relaxed)
                .wrapping_add(step + 1);
            bid = self.bid_at[(position & u32::from(self.mask)) as usize].load(Ordering::Relaxed)
                as u16;
        }
    }

    /// Incremental only: puts the fill of the buffer the kernel is filling back in step
    /// after a CQE was lost (EBADR). The lost CQE's chunk never reached `dispatched`, so
    /// the fill counted for its buffer stops short of what the kernel wrote, and every
    /// later chunk of that buffer would be read from too early: the lost bytes, served as
    /// new ones. The kernel keeps its own count in the ring entry it is filling (it moves
    /// the entry's address past each chunk it commits), and the entry at its head is that
    /// buffer, if any; the other entries are untouched, and a buffer the lost CQE
    /// finished has left the ring (it never comes back: the pool is one buffer short).
    ///
    /// Owner thread only, right after a drain that dispatched every CQE the kernel has
    /// posted, with no enter since: only then does the entry's count match the chunks
    /// dispatched plus the lost ones.
    pub(super) fn resync_after_loss(&self, ring_fd: std::os::fd::RawFd) {
        if !self.incremental {
            return;
        }
        let head = match crate::sys::buf_ring_head(ring_fd, self.group) {
            Ok(head) => head,
            Err(err) => {
                tracing::warn!(ring = self.ring_id, group = self.group, %err, "cannot read a buffer ring's head to resync it");
                return;
            }
        };
        if head == self.tail.load(Ordering::Relaxed) as u16 {
            return; // Every buffer is out: none is being filled.
        }
        let base = self.entries.ptr.cast::<BufRingEntry>();
        // SAFETY: the index is masked into the region's `count` entries. The kernel writes
        // the entry only while it commits a chunk to it, inside an enter of this thread
        // (recvs on sockets run in this ring's task work, never on io-wq); none runs now.
        let entry = unsafe { std::ptr::read_volatile(base.add(usize::from(head & self.mask))) };
        let bid = entry.bid();
        if usize::from(bid) >= self.count() {
            return;
        }
        let filled = entry
            .addr()
            .saturating_sub(self.buf_ptr(bid) as u64)
            .min(u64::from(self.buf_size)) as u32;
        let counted = self.filled[usize::from(bid)].swap(filled, Ordering::Relaxed);
        if counted != filled {
            tracing::warn!(
                ring = self.ring_id,
                group = self.group,
                bid,
                counted,
                filled,
                "incremental buffer resynced after a lost CQE"
            );
        }
    }

    /// Drops one use of buffer `bid` (a chunk, or the kernel's); the last gives the
    /// buffer back. From any thread.
    pub(super) fn release(&self, bid: u16) {
        if self.incremental {
            // AcqRel: the last releaser must see every other user's reads of the buffer
            // finished before it hands the buffer to the kernel to overwrite.
            let prev = self.refs[usize::from(bid)].fetch_sub(1, Ordering::AcqRel);
            // Mutation point: giving the buffer back at every release, not the last.
            if prev != 1 && !mutation!("incremental_last_release") {
                return;
            }
        }
        self.give_back(bid);
    }

    /// Returns buffer `bid` from any thread.
    pub(super) fn give_back(&self, bid: u16) {
        if !self.tally.registered.load(Ordering::Acquire) {
            return;
        }
        // Counted before the id is handed over: once the owner can see it, it may give
        // the buffer to the kernel, and the CQE that takes it out again must find it
        // counted, or the count wraps below zero. SeqCst pairs with the waiter's SeqCst
        // read-modify-write in `wait`: either the waiter sees this buffer, or we see its
        // queued waker. (A waiter that looks between the two steps re-arms once too
        // early, gets ENOBUFS and looks again.)
        self.tally.available.fetch_add(1, Ordering::SeqCst);
        // The thread, not "is the ring current here": a ring is !Send, so its owner is
        // the thread that created it, and this check never touches the ring (a buffer
        // may be dropped while the ring itself is being dropped).
        if current_thread() == self.owner {
            self.push_entry(bid);
        } else if self.returns.push(bid).is_err() {
            // Cannot happen: at most `count` buffers are out, and the queue holds `count`.
            self.tally.available.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(
                ring = self.ring_id,
                group = self.group,
                bid,
                "buffer return queue full"
            );
            return;
        }
        while let Some(waiter) = self.waiters.pop() {
            waiter.queued.store(false, Ordering::Release);
            waiter.waker.wake();
        }
    }

    /// Queues `waiter` to be woken by the next returned buffer. Returns true if a buffer
    /// is already available (no need to sleep).
    pub(crate) fn wait(&self, waiter: &Arc<BufWaiter>, waker: &Waker) -> bool {
        waiter.waker.register(waker);
        if !waiter.queued.swap(true, Ordering::AcqRel) {
            self.waiters.push(waiter.clone());
        }
        self.tally.available.fetch_add(0, Ordering::SeqCst) > 0
            || !self.tally.registered.load(Ordering::Acquire)
    }

    /// Whether a buffer is available (or the ring is gone and waiting is pointless).
    pub(crate) fn has_available(&self) -> bool {
        self.tally.available.load(Ordering::Acquire) > 0
            || !self.tally.registered.load(Ordering::Acquire)
    }
}

/// A stream parked on an exhausted pool.
pub(crate) struct BufWaiter {
    waker: AtomicWaker,
    queued: AtomicBool,
}

impl BufWaiter {
    pub(crate) fn new() -> Arc<BufWaiter> {
        Arc::new(BufWaiter {
            waker: AtomicWaker::new(),
            queued: AtomicBool::new(false),
        })
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::sync::model::model;

    /// The one buffer of a pool is out (the kernel put it in a CQE); a thread that does
    /// not own the ring gives it back while the owner drains returned buffers and the
    /// kernel hands the buffer out again. The count of available buffers never goes
    /// below zero (as a `u32`: never wraps) and ends exact.
    #[test]
    fn foreign_give_back_vs_owner_drain_keeps_the_count_exact() {
        model(|| {
            let pool = BufPool::new(1, 8).unwrap();
            let bufs = Arc::new(RingBufs::new(1, &pool, false, false).unwrap());
            bufs.fill();
            bufs.publish();
            bufs.taken();
            let foreign = {
                let bufs = bufs.clone();
                loom::thread::spawn(move || bufs.give_back(0))
            };
            let available = || bufs.tally.available.load(Ordering::SeqCst);
            let mut handed_out = 0;
            let mut drain = || {
                for _ in 0..bufs.drain_returns() {
                    // The kernel picks the returned buffer for the next CQE.
                    bufs.taken();
                    handed_out += 1;
                    assert!(available() <= 1, "the count wrapped");
                }
            };
            drain();
            foreign.join().unwrap();
            drain();
            assert_eq!(handed_out, 1);
            assert_eq!(available(), 0);
        });
    }

    /// An incremental buffer with one chunk out (the kernel still holds its unit): a
    /// thread that does not own the ring drops the chunk while the owner dispatches the
    /// CQE that finishes the buffer, with a second chunk it then drops. The buffer goes
    /// back exactly once, and only after both chunks and the kernel let go of it.
    #[test]
    fn incremental_buffer_goes_back_once_after_its_last_user() {
        model(|| {
            let pool = BufPool::new(1, 8).unwrap();
            let bufs = Arc::new(RingBufs::new(1, &pool, true, false).unwrap());
            bufs.fill();
            bufs.publish();
            // The first chunk of buffer 0, the kernel going on filling it.
            assert_eq!(bufs.dispatched(0, 3, true), 0);
            let foreign = {
                let bufs = bufs.clone();
                loom::thread::spawn(move || bufs.release(0))
            };
            // The chunk that finishes the buffer, then its drop.
            assert_eq!(bufs.dispatched(0, 5, false), 3);
            bufs.release(0);
            foreign.join().unwrap();
            bufs.drain_returns();
            // One entry from the fill, and one from giving the buffer back.
            assert_eq!(
                bufs.tail.load(Ordering::SeqCst),
                2,
                "the buffer went back once"
            );
            assert_eq!(bufs.tally.available.load(Ordering::SeqCst), 1);
        });
    }
}
