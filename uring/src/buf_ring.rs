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
//! ## Kernels without buffer rings
//!
//! If registration fails with `EINVAL` (or the kernel rejects multishot recv with
//! `EINVAL`), [`crate::op::RecvMultiStream`] falls back to single-shot `IORING_OP_RECV`
//! into a fresh `Vec` of the pool's buffer size per read, and keeps working; the
//! [`PooledBuf`]s it yields then own their `Vec` and are not counted by the pool. The
//! fallback is remembered on the pool ([`BufPool::is_fallback`]).

use std::alloc::Layout;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::sync::{Mutex, OnceLock, Weak};
use std::task::Waker;
use std::thread::ThreadId;

use crossbeam_queue::{ArrayQueue, SegQueue};
use io_uring::{cqueue, types::BufRingEntry, IoUring};

use crate::atomic_waker::AtomicWaker;
use crate::op::Cqe;
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The kernel's limit on entries in one buffer ring.
const MAX_BUFS: u32 = 1 << 15;
/// Buffer ring entries must start on a page boundary.
const RING_ALIGN: usize = 4096;

/// A pool of receive buffers for multishot recv: `count` buffers of `size` bytes per
/// io_uring that uses it, picked by the kernel only when data arrives.
///
/// Cheap to clone (`Arc`), `Send + Sync`. Create one per kind of traffic and share it
/// across connections; memory is allocated lazily on each ring that first uses the pool.
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use uringo_uring::{op::RecvMultiStream, BufPool, Ring};
///
/// let ring = Ring::new()?;
/// let pool = BufPool::new(8, 4096)?;
/// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
/// a.write_all(b"hello")?;
/// drop(a);
/// let received = ring.block_on(async {
///     let mut stream = RecvMultiStream::new(b.as_raw_fd(), &pool);
///     let mut all = Vec::new();
///     while let Some(buf) = stream.next().await {
///         all.extend_from_slice(&buf?);
///     }
///     Ok::<_, std::io::Error>(all)
/// })?;
/// assert_eq!(received, b"hello");
/// assert_eq!(pool.available(), pool.capacity());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct BufPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    group: u16,
    count: u16,
    size: u32,
    enobufs: AtomicU64,
    fallback: AtomicBool,
    /// Every ring's registration of this pool, for the counters. Touched when a ring
    /// registers the pool and when counters are read, never per buffer.
    rings: Mutex<Vec<Weak<RingBufs>>>,
}

impl BufPool {
    /// A pool of `count` buffers of `size` bytes each (per ring that uses it).
    ///
    /// `count` must be a power of two between 1 and 32768 (the kernel's buffer ring
    /// limits); `size` must be between 1 and `u32::MAX`.
    pub fn new(count: usize, size: usize) -> io::Result<BufPool> {
        let invalid = |msg: &str| io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned());
        if count == 0 || count > MAX_BUFS as usize || !count.is_power_of_two() {
            return Err(invalid(
                "BufPool buffer count must be a power of two between 1 and 32768",
            ));
        }
        let size32 = u32::try_from(size)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| invalid("BufPool buffer size must be between 1 and u32::MAX bytes"))?;
        if count
            .checked_mul(size)
            .is_none_or(|total| total > isize::MAX as usize)
        {
            return Err(invalid("BufPool count × size overflows the address space"));
        }
        let group = groups().allocate()?;
        Ok(BufPool {
            shared: Arc::new(PoolShared {
                group,
                count: count as u16,
                size: size32,
                enobufs: AtomicU64::new(0),
                fallback: AtomicBool::new(false),
                rings: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The io_uring buffer group id of this pool (the same on every ring).
    pub fn group(&self) -> u16 {
        self.shared.group
    }

    /// Buffers per ring.
    pub fn buf_count(&self) -> usize {
        usize::from(self.shared.count)
    }

    /// Bytes per buffer.
    pub fn buf_size(&self) -> usize {
        self.shared.size as usize
    }

    /// Buffers across every ring the pool is registered on: `buf_count()` per ring.
    pub fn capacity(&self) -> usize {
        self.live_rings().len() * self.buf_count()
    }

    /// Buffers the kernel can fill right now (or will be able to as soon as their ring's
    /// owner runs its next tick), across every ring.
    pub fn available(&self) -> usize {
        self.live_rings()
            .iter()
            .map(|ring| ring.available.load(Ordering::Acquire) as usize)
            .sum()
    }

    /// Buffers holding received data: the kernel has filled them and they have not been
    /// dropped yet.
    pub fn in_use(&self) -> usize {
        self.capacity() - self.available().min(self.capacity())
    }

    /// How many times a multishot recv ran the pool dry (`ENOBUFS`) and was re-armed.
    pub fn enobufs(&self) -> u64 {
        self.shared.enobufs.load(Ordering::Relaxed)
    }

    /// Whether the kernel refused buffer rings or multishot recv, so streams on this pool
    /// use single-shot recv into owned buffers (see the module docs).
    pub fn is_fallback(&self) -> bool {
        self.shared.fallback.load(Ordering::Relaxed)
    }

    /// Makes streams on this pool use single-shot recv into owned buffers — what they
    /// fall back to on kernels without buffer rings — for example to compare the two
    /// paths. Cannot be undone.
    pub fn use_single_shot(&self) {
        self.shared.fallback.store(true, Ordering::Relaxed);
    }

    pub(crate) fn note_enobufs(&self) {
        self.shared.enobufs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_fallback(&self) {
        if !self.shared.fallback.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                group = self.shared.group,
                "provided buffer rings or multishot recv unavailable (EINVAL): falling back to single-shot recv"
            );
        }
    }

    fn live_rings(&self) -> Vec<Arc<RingBufs>> {
        self.shared
            .rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|ring| ring.registered.load(Ordering::Acquire))
            .collect()
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("group", &self.shared.group)
            .field("buf_count", &self.buf_count())
            .field("buf_size", &self.buf_size())
            .finish_non_exhaustive()
    }
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        groups().release(self.group);
    }
}

/// Process-wide buffer group ids. Touched only when pools are created and dropped.
struct Groups {
    next: u32,
    free: Vec<u16>,
}

struct GroupAllocator(Mutex<Groups>);

fn groups() -> &'static GroupAllocator {
    static GROUPS: OnceLock<GroupAllocator> = OnceLock::new();
    GROUPS.get_or_init(|| {
        GroupAllocator(Mutex::new(Groups {
            next: 0,
            free: Vec::new(),
        }))
    })
}

impl GroupAllocator {
    fn allocate(&self) -> io::Result<u16> {
        let mut groups = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.free.pop() {
            return Ok(group);
        }
        let group = u16::try_from(groups.next).map_err(|_| {
            io::Error::other("uringo: 65536 buffer pools are alive at once; io_uring has no more buffer group ids")
        })?;
        groups.next += 1;
        Ok(group)
    }

    fn release(&self, group: u16) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(group);
    }
}

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
    ring_id: u32,
    /// The ring's owner: the only thread that writes `entries` and the tail.
    owner: ThreadId,
    group: u16,
    mask: u16,
    buf_size: u32,
    /// `count` `BufRingEntry`s shared with the kernel; entry 0's `resv` is the tail.
    entries: Region,
    buffers: Region,
    /// Our copy of the tail. Only the owner writes it (it is atomic for `Sync` only).
    tail: AtomicU32,
    /// Buffers the kernel may pick now or after the owner's next drain of `returns`.
    available: AtomicU32,
    /// Buffer ids dropped off the owner thread, waiting for the owner to re-add them.
    returns: ArrayQueue<u16>,
    /// Streams starved by `ENOBUFS`, woken when a buffer comes back.
    waiters: SegQueue<Arc<BufWaiter>>,
    /// False once the ring has unregistered the buffer ring: returns are then dropped.
    registered: AtomicBool,
    pool: Weak<PoolShared>,
}

// SAFETY: the raw regions are only written by the owner thread (entries, tail) or by the
// kernel (buffers, between handing a buffer out and its CQE); readers of a buffer hold the
// `PooledBuf` that owns its id exclusively.
unsafe impl Send for RingBufs {}
// SAFETY: as above.
unsafe impl Sync for RingBufs {}

impl RingBufs {
    fn new(ring_id: u32, pool: &BufPool) -> io::Result<RingBufs> {
        let count = pool.buf_count();
        let entries = Region::zeroed(
            count * std::mem::size_of::<BufRingEntry>(),
            RING_ALIGN.max(std::mem::align_of::<BufRingEntry>()),
        )?;
        let buffers = Region::zeroed(count * pool.buf_size(), RING_ALIGN)?;
        Ok(RingBufs {
            ring_id,
            owner: this_thread(),
            group: pool.group(),
            mask: (count - 1) as u16,
            buf_size: pool.shared.size,
            entries,
            buffers,
            tail: AtomicU32::new(0),
            available: AtomicU32::new(0),
            returns: ArrayQueue::new(count),
            waiters: SegQueue::new(),
            registered: AtomicBool::new(false),
            pool: Arc::downgrade(&pool.shared),
        })
    }

    fn count(&self) -> usize {
        usize::from(self.mask) + 1
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
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
        let tail = self.tail.load(Ordering::Relaxed);
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
    fn register(&self, uring: &IoUring) -> io::Result<()> {
        for bid in 0..self.count() {
            self.push_entry(bid as u16);
        }
        // SAFETY: the entries region is page-aligned, holds `count` entries and lives in
        // an `Arc` the ring's registry keeps until after `unregister`.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                self.entries.ptr as u64,
                self.count() as u16,
                self.group,
                0,
            )?;
        }
        self.available.store(self.count() as u32, Ordering::Release);
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    /// Unregisters the buffer ring. Owner thread only, with no op of the group in flight.
    fn unregister(&self, uring: &IoUring) {
        self.registered.store(false, Ordering::Release);
        if let Err(err) = uring.submitter().unregister_buf_ring(self.group) {
            tracing::warn!(ring = self.ring_id, group = self.group, %err, "cannot unregister a buffer ring");
        }
    }

    /// Re-adds buffers returned from other threads. Owner thread only.
    fn drain_returns(&self) {
        while let Some(bid) = self.returns.pop() {
            self.push_entry(bid);
        }
    }

    /// The owner dispatched a CQE carrying buffer `bid`: it is out of the pool.
    fn taken(&self) {
        self.available.fetch_sub(1, Ordering::AcqRel);
    }

    /// Returns buffer `bid` from any thread.
    fn give_back(&self, bid: u16) {
        if !self.registered.load(Ordering::Acquire) {
            return;
        }
        // The thread, not "is the ring current here": a ring is !Send, so its owner is
        // the thread that created it, and this check never touches the ring (a buffer
        // may be dropped while the ring itself is being dropped).
        if this_thread() == self.owner {
            self.push_entry(bid);
        } else if self.returns.push(bid).is_err() {
            // Cannot happen: at most `count` buffers are out, and the queue holds `count`.
            tracing::error!(
                ring = self.ring_id,
                group = self.group,
                bid,
                "buffer return queue full"
            );
            return;
        }
        // SeqCst pairs with the waiter's SeqCst read-modify-write in `wait`: either the
        // waiter sees this buffer, or we see its queued waker.
        self.available.fetch_add(1, Ordering::SeqCst);
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
        self.available.fetch_add(0, Ordering::SeqCst) > 0
            || !self.registered.load(Ordering::Acquire)
    }

    /// Whether a buffer is available (or the ring is gone and waiting is pointless).
    pub(crate) fn has_available(&self) -> bool {
        self.available.load(Ordering::Acquire) > 0 || !self.registered.load(Ordering::Acquire)
    }
}

/// The calling thread's id, cached (`thread::current()` clones an `Arc` per call).
fn this_thread() -> ThreadId {
    thread_local! {
        static ID: ThreadId = std::thread::current().id();
    }
    // During thread teardown the cache may be gone; the slow path still answers.
    ID.try_with(|id| *id)
        .unwrap_or_else(|_| std::thread::current().id())
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

/// The buffer rings registered on one io_uring, owned by its `Ring` (owner thread only).
#[derive(Default)]
pub(crate) struct BufRings {
    by_group: HashMap<u16, Arc<RingBufs>>,
}

impl BufRings {
    /// This ring's registration of `pool`, registering it first if needed.
    fn get_or_register(
        &mut self,
        ring_id: u32,
        uring: &IoUring,
        pool: &BufPool,
    ) -> io::Result<Arc<RingBufs>> {
        if let Some(bufs) = self.by_group.get(&pool.group()) {
            if std::ptr::eq(bufs.pool.as_ptr(), Arc::as_ptr(&pool.shared)) {
                return Ok(bufs.clone());
            }
        }
        // Registering is rare: release pools that are gone first (their group id may be
        // the one we are about to register).
        self.by_group.retain(|_, bufs| {
            let alive = bufs.pool.strong_count() > 0;
            if !alive {
                bufs.unregister(uring);
            }
            alive
        });
        let bufs = Arc::new(RingBufs::new(ring_id, pool)?);
        bufs.register(uring)?;
        tracing::debug!(
            ring = ring_id,
            group = pool.group(),
            count = pool.buf_count(),
            size = pool.buf_size(),
            "buffer ring registered"
        );
        let mut rings = pool.shared.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.retain(|ring| ring.strong_count() > 0);
        rings.push(Arc::downgrade(&bufs));
        drop(rings);
        self.by_group.insert(pool.group(), bufs.clone());
        Ok(bufs)
    }

    /// Binds `select` to this ring's registration of its pool. Called by the owner right
    /// before it pushes the op's SQE.
    pub(crate) fn bind(
        &mut self,
        ring_id: u32,
        uring: &IoUring,
        select: &BufSelect,
    ) -> io::Result<()> {
        let bufs = self.get_or_register(ring_id, uring, &select.pool)?;
        // An op is submitted once; a second bind would be a ring bug.
        if select.bound.set(bufs).is_err() {
            tracing::error!(ring = ring_id, "buffer-selecting op bound twice");
        }
        Ok(())
    }

    /// Re-adds buffers other threads returned. Runs at the start of every tick.
    pub(crate) fn drain_returns(&self) {
        for bufs in self.by_group.values() {
            bufs.drain_returns();
        }
    }

    /// Unregisters everything (the ring's ops are all complete).
    pub(crate) fn unregister_all(&mut self, uring: &IoUring) {
        for (_, bufs) in self.by_group.drain() {
            bufs.unregister(uring);
        }
    }

    /// Leaks every registration: ops the kernel never finished may still write into them.
    pub(crate) fn leak_all(&mut self) {
        for (_, bufs) in self.by_group.drain() {
            std::mem::forget(bufs);
        }
    }
}

/// How an op takes its buffers from a [`BufPool`] (`IOSQE_BUFFER_SELECT`): which group to
/// name in the SQE, and, once the ring has bound it, which ring's buffers its CQEs carry.
///
/// Ops that select buffers return one from
/// [`MultishotOperation::buf_select`](crate::op::MultishotOperation::buf_select); the ring
/// registers the pool on itself and binds the selection before pushing the SQE.
pub struct BufSelect {
    pool: BufPool,
    bound: OnceLock<Arc<RingBufs>>,
}

impl BufSelect {
    /// Selects buffers from `pool`.
    pub fn new(pool: &BufPool) -> BufSelect {
        BufSelect {
            pool: pool.clone(),
            bound: OnceLock::new(),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// The buffer group id to put in the SQE.
    pub fn group(&self) -> u16 {
        self.pool.group()
    }

    pub(crate) fn bound(&self) -> Option<&Arc<RingBufs>> {
        self.bound.get()
    }

    /// Owner side, at dispatch: accounts for the buffer a CQE carries.
    pub(crate) fn on_cqe(&self, cqe: &Cqe) {
        if let (Some(bufs), Some(_)) = (self.bound.get(), cqueue::buffer_select(cqe.flags)) {
            bufs.taken();
        }
    }

    /// The buffer `cqe` carries, holding the `cqe.result` bytes received. `None` when the
    /// CQE carries no buffer. Each CQE must be taken at most once.
    pub fn take(&self, cqe: &Cqe) -> Option<PooledBuf> {
        let bid = cqueue::buffer_select(cqe.flags)?;
        let bufs = self.bound.get()?;
        if usize::from(bid) >= bufs.count() {
            tracing::error!(
                ring = bufs.ring_id,
                bid,
                "CQE names a buffer id outside the pool"
            );
            return None;
        }
        let len = u32::try_from(cqe.result).unwrap_or(0).min(bufs.buf_size);
        Some(PooledBuf {
            inner: Inner::Ring {
                bufs: bufs.clone(),
                bid,
                len,
            },
        })
    }
}

impl fmt::Debug for BufSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufSelect")
            .field("group", &self.group())
            .field("bound", &self.bound.get().map(|b| b.ring_id))
            .finish()
    }
}

/// Received bytes in a buffer of a [`BufPool`]. Dropping it gives the buffer back to the
/// ring it came from (from any thread).
pub struct PooledBuf {
    inner: Inner,
}

enum Inner {
    Ring {
        bufs: Arc<RingBufs>,
        bid: u16,
        len: u32,
    },
    /// Received by the single-shot fallback.
    Owned(Vec<u8>),
}

impl PooledBuf {
    pub(crate) fn owned(data: Vec<u8>) -> PooledBuf {
        PooledBuf {
            inner: Inner::Owned(data),
        }
    }

    /// The buffer id within the pool (`None` for a buffer from the single-shot fallback).
    pub fn buf_id(&self) -> Option<u16> {
        match &self.inner {
            Inner::Ring { bid, .. } => Some(*bid),
            Inner::Owned(_) => None,
        }
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            // SAFETY: the kernel wrote `len` bytes at this buffer before posting the CQE we
            // took it from; until this `PooledBuf` drops, the id is in nobody else's hands
            // (not in the buffer ring), and the `Arc` keeps the memory alive.
            Inner::Ring { bufs, bid, len } => unsafe {
                std::slice::from_raw_parts(bufs.buf_ptr(*bid), *len as usize)
            },
            Inner::Owned(data) => data,
        }
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Inner::Ring { bufs, bid, .. } = &self.inner {
            bufs.give_back(*bid);
        }
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("buf_id", &self.buf_id())
            .field("len", &self.len())
            .finish()
    }
}
