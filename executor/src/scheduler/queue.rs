//! The per-worker run queue: Go's `runq [256]` plus `runnext`.
//!
//! A fixed ring of [`CAPACITY`] slots with one producer (the worker that owns it, through
//! [`Local`]) and any number of stealers (through [`Steal`]). The design follows Go's
//! `runqput`/`runqget`/`runqsteal` with the two-index head of tokio's multi-thread queue:
//!
//! * `tail` (`AtomicU32`) is written only by the owner: the next slot to fill.
//! * `head` (`AtomicU64`) packs two `u32` positions, `steal` (high half) and `real` (low
//!   half). `real` is the consumer head: the owner's `pop` and a stealer's claim move it.
//!   `steal` trails `real` while a steal is in progress: the slots in `[steal, real)` have
//!   been claimed by a stealer that is still copying them out, so the owner must not reuse
//!   them. When the stealer is done it sets `steal = real`.
//! * Only one steal runs at a time: a stealer that sees `steal != real` backs off, and so
//!   does the owner's overflow (it then sends just the new item to the injector).
//! * Positions are free-running `u32`s; a slot is `pos & MASK`. Every difference is a
//!   wrapping subtraction, and `tail - steal <= CAPACITY` always holds.
//!
//! The `runnext` slot is an `AtomicPtr` beside the ring, so a stealer (or the monitor
//! thread, for a worker stuck in one poll) can take it with one swap.

use std::iter;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::loom::sync::{
    Arc, AtomicPtr, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
    UnsafeCell, UnsyncLoad,
};

use super::inject::Injector;

/// Slots in the ring (Go's `len(p.runq)`). Small under loom so models stay tractable.
#[cfg(not(loom))]
pub(crate) const CAPACITY: usize = 256;
/// Slots in the ring (Go's `len(p.runq)`). Small under loom so models stay tractable.
#[cfg(loom)]
pub const CAPACITY: usize = 4;

/// `pos & MASK` is the slot of position `pos`.
pub(crate) const MASK: usize = CAPACITY - 1;

/// What an overflow moves to the injector (plus the new item), and the most one steal takes.
pub(crate) const HALF: usize = CAPACITY / 2;

const CAP32: u32 = CAPACITY as u32;
const HALF32: u32 = HALF as u32;

const _: () = assert!(CAPACITY.is_power_of_two() && CAPACITY >= 2 && CAPACITY <= 1 << 30);

/// Packs the `steal` and `real` positions into one head word.
#[inline]
fn pack(steal: u32, real: u32) -> u64 {
    (u64::from(steal) << 32) | u64::from(real)
}

/// Splits a head word into `(steal, real)`.
#[inline]
fn unpack(head: u64) -> (u32, u32) {
    ((head >> 32) as u32, head as u32)
}

/// Number of positions from `from` up to `to`, across wrap-around.
#[inline]
fn distance(from: u32, to: u32) -> u32 {
    to.wrapping_sub(from)
}

/// The ring slot of a position.
#[inline]
fn slot(pos: u32) -> usize {
    pos as usize & MASK
}

/// Something the run queue can hold: an owned, pointer-sized handle (a task reference).
///
/// # Safety
///
/// `into_raw` must give up ownership into a pointer that `from_raw` turns back into the
/// very same value, exactly once; the queue calls `from_raw` exactly once per `into_raw`,
/// possibly on another thread (hence `Send`). The pointer is never dereferenced by the
/// queue.
pub(crate) unsafe trait QueueItem: Send + 'static {
    /// Gives up ownership of `self` as a non-null pointer.
    fn into_raw(self) -> NonNull<()>;

    /// Takes back ownership of a value given up by [`QueueItem::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_raw` of this type and not have been turned back yet.
    unsafe fn from_raw(ptr: NonNull<()>) -> Self;
}

// SAFETY: `Notified::into_raw`/`from_raw` move the one reference a queue entry owns
// through the pointer, and give it back exactly once.
unsafe impl QueueItem for crate::runtime::task::Notified {
    fn into_raw(self) -> NonNull<()> {
        crate::runtime::task::Notified::into_raw(self)
    }

    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        // SAFETY: forwarded contract: `ptr` came from `into_raw`, taken back once.
        unsafe { crate::runtime::task::Notified::from_raw(ptr) }
    }
}

/// The state shared by the owner and the stealers.
struct Inner<T: QueueItem> {
    /// `pack(steal, real)`; see the module documentation.
    head: AtomicU64,
    /// Next position the owner fills. Written only by the owner.
    tail: AtomicU32,
    /// Go's `runnext`: null or a pointer from `T::into_raw`. Only the owner stores non-null.
    runnext: AtomicPtr<()>,
    /// The ring. A slot holds a pointer from `T::into_raw` while its position is in
    /// `[steal, tail)`; outside that range its content is stale and meaningless.
    buffer: Box<[UnsafeCell<*mut ()>]>,
    _items: PhantomData<T>,
}

// SAFETY: the raw pointers in `buffer`/`runnext` are owned `T`s in transit; the protocol
// hands each one to exactly one thread, so sharing `Inner` only ever moves `T`s across
// threads, which `T: Send` (required by `QueueItem`) allows.
unsafe impl<T: QueueItem> Send for Inner<T> {}
// SAFETY: as above; no `&T` is ever handed out, values are only moved out.
unsafe impl<T: QueueItem> Sync for Inner<T> {}

impl<T: QueueItem> Inner<T> {
    /// Stores `item` in the slot of `pos`.
    ///
    /// # Safety
    ///
    /// Only the owner of this queue may call it, for a position outside `[steal, tail)`
    /// whose previous readers happen-before this call (an Acquire load of `head` that saw
    /// `steal` past their claim).
    #[inline]
    unsafe fn write(&self, pos: u32, item: NonNull<()>) {
        self.buffer[slot(pos)].with_mut(|cell| {
            // SAFETY: per this function's contract nobody else accesses the slot now.
            unsafe { *cell = item.as_ptr() };
        });
    }

    /// Reads the pointer in the slot of `pos`.
    ///
    /// # Safety
    ///
    /// `pos` must lie in `[steal, tail)` and the caller must have claimed it (owner pop or
    /// overflow) or hold a steal claim on it, with the write happening-before (Acquire of
    /// `tail` for stealers; program order for the owner). The returned pointer may be
    /// turned into a `T` only by the single claimer.
    #[inline]
    unsafe fn read(&self, pos: u32) -> NonNull<()> {
        self.buffer[slot(pos)].with(|cell| {
            // SAFETY: per this function's contract the slot is initialised and no one writes it.
            let raw = unsafe { *cell };
            debug_assert!(!raw.is_null(), "run queue: read of an empty slot");
            // SAFETY: claimed slots hold pointers from `into_raw`, which are non-null.
            unsafe { NonNull::new_unchecked(raw) }
        })
    }
}

/// The owner's end of a run queue. Not `Clone`: there is exactly one producer.
///
/// Dropping a `Local` pops and drops whatever it still holds (ring and runnext), so
/// nothing leaks; a scheduler that needs to cancel tasks properly calls [`Local::drain`]
/// first.
pub(crate) struct Local<T: QueueItem> {
    inner: Arc<Inner<T>>,
}

/// A stealer's end of a run queue: cheap to clone, shareable across threads.
pub(crate) struct Steal<T: QueueItem>(Arc<Inner<T>>);

/// Creates an empty run queue and returns its owner and stealer ends.
pub(crate) fn local<T: QueueItem>() -> (Local<T>, Steal<T>) {
    let buffer = (0..CAPACITY)
        .map(|_| UnsafeCell::new(ptr::null_mut()))
        .collect();
    let inner = Arc::new(Inner {
        head: AtomicU64::new(0),
        tail: AtomicU32::new(0),
        runnext: AtomicPtr::new(ptr::null_mut()),
        buffer,
        _items: PhantomData,
    });
    (
        Local {
            inner: inner.clone(),
        },
        Steal(inner),
    )
}

impl<T: QueueItem> Local<T> {
    /// The owner's own tail: exact, since only the owner writes it.
    #[inline]
    fn tail(&self) -> u32 {
        UnsyncLoad::unsync_load(&self.inner.tail)
    }

    /// Items in the ring (runnext not included).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: an estimate for the owner; coherence keeps `real` no older than the
        // head this thread last saw, so the result is at most CAPACITY.
        let (_, real) = unpack(self.inner.head.load(Relaxed));
        distance(real, self.tail()) as usize
    }

    /// True when the ring is empty (runnext not included; see [`Local::has_tasks`]).
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the ring or the runnext slot holds an item.
    pub(crate) fn has_tasks(&self) -> bool {
        // Relaxed: a hint; a stale non-null is fixed up by the swap in take_runnext.
        !self.is_empty() || !self.inner.runnext.load(Relaxed).is_null()
    }

    /// Slots `push_back_batch` may fill now. Counts slots still being copied out by an
    /// in-progress steal as used, so it may under-report, never over-report.
    pub(crate) fn remaining_slots(&self) -> usize {
        // Relaxed: only sizes a batch; the push that writes the slots does its own Acquire.
        let (steal, _) = unpack(self.inner.head.load(Relaxed));
        (CAP32 - distance(steal, self.tail())) as usize
    }

    /// Pushes `item` at the back. When the ring is full, moves half of it ([`HALF`] items,
    /// the oldest) plus `item` to `inject` in one batch; when full while a steal is in
    /// progress, moves just `item`. Returns true when anything went to the injector.
    ///
    /// The injector accepts overflow even after it is closed (see [`Injector::push_batch`]).
    pub(crate) fn push_back_or_overflow(&mut self, mut item: T, inject: &Injector<T>) -> bool {
        let tail = self.tail();
        loop {
            // Acquire: pairs with the Release of a stealer's end-of-steal CAS, so its reads
            // of the slot we are about to reuse happen-before our write.
            let (steal, real) = unpack(self.inner.head.load(Acquire));
            if distance(steal, tail) < CAP32 {
                break;
            }
            if steal != real {
                // Full, and a stealer is copying out the oldest slots: moving half would
                // race with it. It will free room soon; this one item goes global.
                inject.push_batch(iter::once(item));
                return true;
            }
            match self.push_overflow(item, real, tail, inject) {
                Ok(()) => return true,
                // A stealer claimed some items meanwhile: look again.
                Err(back) => item = back,
            }
        }
        // `tail - steal < CAPACITY`, so `tail` is outside `[steal, tail)`, and the Acquire
        // load above ordered the slot's earlier readers before us.
        // SAFETY: owner-only write to a free slot (Inner::write's contract, shown above).
        unsafe { self.inner.write(tail, item.into_raw()) };
        // Release: publishes the slot write to stealers, which Acquire `tail` before reading.
        // Mutation point: Relaxed lets a stealer read the slot before the write.
        let publish = if crate::loom::mutation!("steal_ordering") {
            Relaxed
        } else {
            Release
        };
        self.inner.tail.store(tail.wrapping_add(1), publish);
        false
    }

    /// Moves `[real, real + HALF)` and `item` to the injector. `real` is the head the
    /// caller saw with no steal in progress and a full ring.
    fn push_overflow(
        &mut self,
        item: T,
        real: u32,
        tail: u32,
        inject: &Injector<T>,
    ) -> Result<(), T> {
        debug_assert_eq!(distance(real, tail), CAP32);
        let prev = pack(real, real);
        let end = real.wrapping_add(HALF32);
        // Claim the oldest half with one CAS (moving both `steal` and `real`) before reading
        // it out: once it succeeds no stealer can claim those slots.
        // Release: a stealer that Acquires this head then loads `tail`; our earlier tail
        // stores must be visible to it so that `tail - real` cannot underflow.
        // Failure Relaxed: the caller reloads head with Acquire.
        if self
            .inner
            .head
            .compare_exchange(prev, pack(end, end), Release, Relaxed)
            .is_err()
        {
            return Err(item);
        }
        let inner = &*self.inner;
        let batch = (0..HALF32).map(|i| {
            // Our CAS claimed `[real, real + HALF)` while no steal was in progress, and we
            // wrote these slots ourselves (only the owner writes slots).
            // SAFETY: claimed slots, read and turned back exactly once, here, by us.
            unsafe { T::from_raw(inner.read(real.wrapping_add(i))) }
        });
        inject.push_batch(batch.chain(iter::once(item)));
        Ok(())
    }

    /// Pushes a batch at the back (moving work from the injector). The caller checks
    /// [`Local::remaining_slots`] first.
    ///
    /// # Panics
    ///
    /// If the batch does not fit. Items pushed before the panic stay queued; the rest
    /// are dropped.
    #[allow(dead_code)] // part of the queue's API; the worker moves batches via pop_batch_into
    pub(crate) fn push_back_batch(&mut self, items: impl ExactSizeIterator<Item = T>) {
        assert!(
            items.len() <= self.remaining_slots(),
            "push_back_batch: {} items, {} free slots",
            items.len(),
            self.remaining_slots()
        );
        self.push_back_from(items);
    }

    /// Pushes everything `items` yields, which must fit in the free slots; publishes the
    /// batch with a single tail store. Returns how many were pushed.
    pub(super) fn push_back_from(&mut self, items: impl Iterator<Item = T>) -> usize {
        let tail = self.tail();
        // Acquire: as in push_back_or_overflow, finished stealers' reads of the slots we
        // fill must happen-before our writes.
        let (steal, _) = unpack(self.inner.head.load(Acquire));
        let free = CAP32 - distance(steal, tail);
        let mut n = 0u32;
        for item in items {
            if n == free {
                // Publish what fits, then refuse: overwriting `[steal, tail)` would be UB.
                self.inner.tail.store(tail.wrapping_add(n), Release);
                drop(item);
                panic!("run queue: batch larger than the {free} free slots");
            }
            // `n < free` puts `tail + n` outside `[steal, tail)`; the Acquire load above
            // ordered the slot's earlier readers before us.
            // SAFETY: owner-only write to a free slot (Inner::write's contract, shown above).
            unsafe { self.inner.write(tail.wrapping_add(n), item.into_raw()) };
            n += 1;
        }
        if n > 0 {
            // Release: publishes the slot writes to stealers (they Acquire `tail`).
            self.inner.tail.store(tail.wrapping_add(n), Release);
        }
        n as usize
    }

    /// Pops the oldest item of the ring (FIFO). Does not look at runnext.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let tail = self.tail();
        // Relaxed: a first guess; the CAS below validates it.
        let mut head = self.inner.head.load(Relaxed);
        let pos = loop {
            let (steal, real) = unpack(head);
            if real == tail {
                return None;
            }
            let next_real = real.wrapping_add(1);
            // With no steal in progress, `steal` follows `real`; otherwise it stays put for
            // the stealer to release.
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                pack(steal, next_real)
            };
            // Release: a stealer that Acquires this head then loads `tail`; our earlier tail
            // stores must be visible to it so that `tail - real` cannot underflow.
            // Failure Relaxed: we only recompute from the fresh value.
            match self
                .inner
                .head
                .compare_exchange(head, next, Release, Relaxed)
            {
                Ok(_) => break real,
                Err(actual) => head = actual,
            }
        };
        // SAFETY: our CAS claimed `pos`; we wrote that slot ourselves.
        Some(unsafe { T::from_raw(self.inner.read(pos)) })
    }

    /// Puts `item` in the runnext slot and returns the item it displaced, which the caller
    /// then pushes to the back of the ring.
    pub(crate) fn push_runnext(&mut self, item: T) -> Option<T> {
        // Release: whoever swaps this pointer out with Acquire (steal_runnext) then sees
        // the item's memory as we left it.
        // No Acquire needed: only the owner stores non-null, so what comes back is our own.
        let prev = self.inner.runnext.swap(item.into_raw().as_ptr(), Release);
        NonNull::new(prev).map(|p| {
            // SAFETY: non-null runnext values come from `into_raw`; the swap made us the holder.
            unsafe { T::from_raw(p) }
        })
    }

    /// Takes the runnext item, if a stealer has not taken it.
    pub(crate) fn take_runnext(&mut self) -> Option<T> {
        // Relaxed: a stale non-null is handled by the swap; we cannot see a null older than
        // our own last store (coherence).
        if self.inner.runnext.load(Relaxed).is_null() {
            return None;
        }
        // Relaxed: a non-null value is our own store, nothing to synchronise with; the swap
        // (an RMW) still guarantees only one of us and a stealer gets it.
        let p = self.inner.runnext.swap(ptr::null_mut(), Relaxed);
        NonNull::new(p).map(|p| {
            // SAFETY: non-null runnext values come from `into_raw`; the swap made us the holder.
            unsafe { T::from_raw(p) }
        })
    }

    /// Pops everything: runnext first, then the ring in FIFO order. Used at shutdown to
    /// hand the tasks to cancellation; items a stealer takes meanwhile are not yielded.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        let mut next = self.take_runnext();
        iter::from_fn(move || next.take().or_else(|| self.pop()))
    }
}

impl<T: QueueItem> Drop for Local<T> {
    fn drop(&mut self) {
        let dropped = self.drain().count();
        if dropped > 0 {
            tracing::debug!(dropped, "run queue dropped with items still queued");
        }
    }
}

impl<T: QueueItem> Steal<T> {
    /// Steals half (rounded up) of the queued items: all but one go to the back of `dst`,
    /// the last one is returned to run now, with how many were taken in total.
    ///
    /// Returns `None` when the source is empty, another steal from it is in progress, or
    /// `dst` has fewer than [`HALF`] free slots.
    pub(crate) fn steal_into(&self, dst: &mut Local<T>) -> Option<(T, usize)> {
        debug_assert!(
            !ptr::eq(&*self.0, &*dst.inner),
            "a worker must not steal from its own queue"
        );
        let dst_tail = dst.tail();
        // Acquire: we are about to fill dst's free slots; as in push_back_or_overflow, a
        // stealer that finished reading them from dst must happen-before our writes.
        let (dst_steal, _) = unpack(dst.inner.head.load(Acquire));
        if distance(dst_steal, dst_tail) > CAP32 - HALF32 {
            return None;
        }
        let (last, n) = self.steal_half_into(dst, dst_tail)?;
        if n > 1 {
            // Release: publishes the copied slots to dst's own stealers.
            dst.inner.tail.store(dst_tail.wrapping_add(n - 1), Release);
        }
        // SAFETY: `last` came from a slot our steal claimed; we are its only holder.
        Some((unsafe { T::from_raw(last) }, n as usize))
    }

    /// Claims half of the source, copies all but the last claimed item into dst's slots
    /// from `dst_tail` on (not yet published), releases the claim, returns the last
    /// claimed pointer and the count.
    fn steal_half_into(&self, dst: &Local<T>, dst_tail: u32) -> Option<(NonNull<()>, u32)> {
        let src = &*self.0;
        // Acquire: every head write is a Release made after its writer saw a tail at least
        // as new as its `real`; synchronising with it makes the tail we load next >= real.
        let mut prev = src.head.load(Acquire);
        let (real, n, claimed) = loop {
            let (steal, real) = unpack(prev);
            if steal != real {
                // Another stealer is still copying: one steal at a time.
                return None;
            }
            // Acquire: pairs with the owner's Release tail store, so the slots below
            // `tail` are initialised and visible to us.
            let tail = src.tail.load(Acquire);
            let avail = distance(real, tail);
            if avail > CAP32 {
                // Our head is stale: since we read it the owner popped or overflowed and
                // pushed again. A failing CAS reads the latest head (a plain load may keep
                // returning the stale one); Acquire as for the load above.
                match src.head.compare_exchange(prev, prev, Acquire, Acquire) {
                    Err(actual) => prev = actual,
                    Ok(_) => panic!("run queue: tail {tail} behind head {real}"),
                }
                continue;
            }
            let n = avail - avail / 2;
            if n == 0 {
                return None;
            }
            let claimed = pack(steal, real.wrapping_add(n));
            // Success Release: keeps the head chain above for whoever reads this head and
            // then `tail` (`Steal::len`): our tail load precedes this write. No Acquire
            // needed on success: the value is the one our Acquire load already saw.
            // Failure Acquire: we loop with the fresh head and read `tail` again, which
            // needs the same synchronisation as the first load.
            match src.head.compare_exchange(prev, claimed, Release, Acquire) {
                Ok(_) => break (real, n, claimed),
                Err(actual) => prev = actual,
            }
        };
        for i in 0..n - 1 {
            // `real + i` is in our claim `[real, real + n)`, below the tail we Acquired,
            // and the owner does not reuse it while our `steal` holds it.
            // SAFETY: a slot of our steal claim, read once (Inner::read's contract).
            let item = unsafe { src.read(real.wrapping_add(i)) };
            // `dst_tail + i` is free: the caller checked dst's room (>= HALF > n - 1)
            // against dst's `steal` with an Acquire load.
            // SAFETY: we own `dst`; owner-only write to a free slot of it.
            unsafe { dst.inner.write(dst_tail.wrapping_add(i), item) };
        }
        // SAFETY: the last position of our claimed range; same argument as above.
        let last = unsafe { src.read(real.wrapping_add(n - 1)) };
        // Release the claim: steal = real. The owner may have popped meanwhile (moving
        // `real`), so loop on the current value.
        let mut prev = claimed;
        loop {
            let (steal, real_now) = unpack(prev);
            debug_assert_ne!(steal, real_now, "run queue: steal released twice");
            let next = pack(real_now, real_now);
            // Release: our reads of the claimed slots happen-before the owner reusing them,
            // which it does only after an Acquire load that sees this new `steal`.
            // Failure Relaxed: we only recompute from the fresh value.
            match src.head.compare_exchange(prev, next, Release, Relaxed) {
                Ok(_) => return Some((last, n)),
                Err(actual) => prev = actual,
            }
        }
    }

    /// Takes the victim's runnext item (Go's `stealRunNextG`, also the monitor's retake).
    pub(crate) fn steal_runnext(&self) -> Option<T> {
        // Relaxed: a hint to skip the swap; the swap decides.
        if self.0.runnext.load(Relaxed).is_null() {
            return None;
        }
        // Acquire: pairs with the Release in push_runnext so the item's memory is visible.
        let p = self.0.runnext.swap(ptr::null_mut(), Acquire);
        NonNull::new(p).map(|p| {
            // SAFETY: non-null runnext values come from `into_raw`; the swap made us the holder.
            unsafe { T::from_raw(p) }
        })
    }

    /// Whether the runnext slot holds a task (a racy snapshot, for metrics).
    pub(crate) fn has_runnext(&self) -> bool {
        // Relaxed: a gauge; nothing is read through the pointer.
        !self.0.runnext.load(Relaxed).is_null()
    }

    /// Approximate number of items in the ring (for idle heuristics).
    pub(crate) fn len(&self) -> usize {
        // Acquire: same head chain as in steal: afterwards the tail we load is >= real.
        let (_, real) = unpack(self.0.head.load(Acquire));
        // Relaxed: coherence alone keeps this tail no older than the one the head chain
        // made visible.
        let tail = self.0.tail.load(Relaxed);
        // The owner may have moved on between the two loads (popped, then pushed more).
        distance(real, tail).min(CAP32) as usize
    }

    /// Approximately: is the ring empty (runnext not included)?
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: QueueItem> Clone for Steal<T> {
    fn clone(&self) -> Self {
        Steal(self.0.clone())
    }
}

// Tests and the loom models queue boxed stand-ins for tasks.
#[cfg(any(test, loom))]
// SAFETY: `Box::into_raw`/`Box::from_raw` round-trip ownership exactly; `U: Send`.
unsafe impl<U: Send + 'static> QueueItem for Box<U> {
    fn into_raw(self) -> NonNull<()> {
        // SAFETY: `Box::into_raw` never returns null.
        unsafe { NonNull::new_unchecked(Box::into_raw(self).cast()) }
    }

    unsafe fn from_raw(ptr: NonNull<()>) -> Self {
        // SAFETY: the caller passes a pointer from `into_raw` of `Box<U>`, once.
        unsafe { Box::from_raw(ptr.as_ptr().cast()) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::thread;

    type Item = Box<usize>;

    fn push_all(local: &mut Local<Item>, inject: &Injector<Item>, range: std::ops::Range<usize>) {
        for i in range {
            assert!(
                !local.push_back_or_overflow(Box::new(i), inject),
                "unexpected overflow at {i}"
            );
        }
    }

    fn pop_all(local: &mut Local<Item>) -> Vec<usize> {
        iter::from_fn(|| local.pop()).map(|b| *b).collect()
    }

    fn inject_all(inject: &Injector<Item>) -> Vec<usize> {
        iter::from_fn(|| inject.pop()).map(|b| *b).collect()
    }

    #[test]
    fn fifo_order() {
        let (mut local, steal) = local::<Item>();
        let inject = Injector::new();
        assert!(local.is_empty() && !local.has_tasks() && steal.is_empty());
        assert_eq!(local.remaining_slots(), CAPACITY);
        push_all(&mut local, &inject, 0..10);
        assert_eq!(local.len(), 10);
        assert_eq!(steal.len(), 10);
        assert_eq!(local.remaining_slots(), CAPACITY - 10);
        assert_eq!(pop_all(&mut local), (0..10).collect::<Vec<_>>());
        // Across wrap-around of the ring, several laps.
        for lap in 0..5 {
            let base = lap * 1000;
            push_all(&mut local, &inject, base..base + CAPACITY - 1);
            assert_eq!(local.pop().map(|b| *b), Some(base));
            push_all(
                &mut local,
                &inject,
                base + CAPACITY - 1..base + CAPACITY + 1,
            );
            assert_eq!(local.len(), CAPACITY);
            assert_eq!(
                pop_all(&mut local),
                (base + 1..base + CAPACITY + 1).collect::<Vec<_>>()
            );
        }
        assert!(inject.is_empty());
    }

    #[test]
    fn index_arithmetic() {
        assert_eq!(unpack(pack(7, 9)), (7, 9));
        assert_eq!(unpack(pack(u32::MAX, 0)), (u32::MAX, 0));
        assert_eq!(distance(u32::MAX - 1, 2), 4);
        assert_eq!(slot(CAP32 + 3), 3);
        assert_eq!(slot(u32::MAX), MASK);
        assert_eq!(HALF * 2, CAPACITY);
    }

    #[test]
    fn wraps_u32_positions() {
        let (mut local, steal) = local::<Item>();
        let inject = Injector::new();
        let start = u32::MAX - 5;
        local.inner.head.store(pack(start, start), SeqCst);
        local.inner.tail.store(start, SeqCst);
        push_all(&mut local, &inject, 0..20);
        let (mut dst, _) = super::local::<Item>();
        let (first, n) = steal.steal_into(&mut dst).unwrap();
        assert_eq!((*first, n), (9, 10));
        assert_eq!(pop_all(&mut dst), (0..9).collect::<Vec<_>>());
        assert_eq!(pop_all(&mut local), (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn runnext_displaces_previous() {
        let (mut local, steal) = local::<Item>();
        assert!(local.push_runnext(Box::new(1)).is_none());
        assert!(local.has_tasks() && local.is_empty());
        assert_eq!(local.push_runnext(Box::new(2)).map(|b| *b), Some(1));
        assert_eq!(local.take_runnext().map(|b| *b), Some(2));
        assert!(local.take_runnext().is_none());
        assert!(local.push_runnext(Box::new(3)).is_none());
        assert_eq!(steal.steal_runnext().map(|b| *b), Some(3));
        assert!(steal.steal_runnext().is_none());
        assert!(local.take_runnext().is_none());
        assert!(!local.has_tasks());
    }

    #[test]
    fn overflow_moves_half_plus_one() {
        let (mut local, _steal) = local::<Item>();
        let inject = Injector::new();
        push_all(&mut local, &inject, 0..CAPACITY);
        assert_eq!(local.remaining_slots(), 0);
        assert!(local.push_back_or_overflow(Box::new(CAPACITY), &inject));
        assert_eq!(inject.len(), HALF + 1);
        assert_eq!(local.len(), CAPACITY - HALF);
        let mut expected: Vec<usize> = (0..HALF).collect();
        expected.push(CAPACITY);
        assert_eq!(inject_all(&inject), expected);
        assert_eq!(pop_all(&mut local), (HALF..CAPACITY).collect::<Vec<_>>());
    }

    #[test]
    fn overflow_with_steal_in_progress_sends_only_the_item() {
        let (mut local, steal) = local::<Item>();
        let inject = Injector::new();
        push_all(&mut local, &inject, 0..CAPACITY);
        // Pretend a stealer claimed [0, 3) and is still copying.
        local.inner.head.store(pack(0, 3), SeqCst);
        let (mut dst, _) = super::local::<Item>();
        assert!(
            steal.steal_into(&mut dst).is_none(),
            "second stealer must back off"
        );
        assert!(local.push_back_or_overflow(Box::new(CAPACITY), &inject));
        assert_eq!(inject_all(&inject), vec![CAPACITY]);
        assert_eq!(local.len(), CAPACITY - 3);
        // The owner may pop meanwhile; `steal` stays put.
        assert_eq!(local.pop().map(|b| *b), Some(3));
        assert_eq!(unpack(local.inner.head.load(SeqCst)), (0, 4));
        // "Finish" the fake steal: hand its items back, release the claim.
        for i in 0..3u32 {
            // SAFETY: test plays the stealer holding the claim on [0, 3).
            drop(unsafe { <Item as QueueItem>::from_raw(local.inner.read(i)) });
        }
        local.inner.head.store(pack(4, 4), SeqCst);
        assert_eq!(local.remaining_slots(), 4);
        assert!(!local.push_back_or_overflow(Box::new(1000), &inject));
        let (_, n) = steal.steal_into(&mut dst).unwrap();
        assert_eq!(n, (CAPACITY - 4 + 1).div_ceil(2));
    }

    #[test]
    fn push_back_batch_respects_capacity() {
        let (mut local, _steal) = local::<Item>();
        let inject = Injector::new();
        push_all(&mut local, &inject, 0..10);
        let room = local.remaining_slots();
        local.push_back_batch((10..10 + room).map(Box::new));
        assert_eq!(local.remaining_slots(), 0);
        assert_eq!(pop_all(&mut local), (0..CAPACITY).collect::<Vec<_>>());
    }

    #[test]
    #[should_panic(expected = "push_back_batch")]
    fn push_back_batch_too_big_panics() {
        let (mut local, _steal) = local::<Item>();
        local.push_back_batch((0..CAPACITY + 1).map(Box::new));
    }

    /// An iterator that lies about its length must not make the queue overwrite slots.
    #[test]
    fn push_back_batch_lying_len_panics_without_overwriting() {
        struct Liar(std::ops::Range<usize>);
        impl Iterator for Liar {
            type Item = Item;
            fn next(&mut self) -> Option<Item> {
                self.0.next().map(Box::new)
            }
        }
        impl ExactSizeIterator for Liar {
            fn len(&self) -> usize {
                1
            }
        }
        let (mut local, _steal) = local::<Item>();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            local.push_back_batch(Liar(0..CAPACITY + 5));
        }));
        assert!(res.is_err());
        assert_eq!(pop_all(&mut local), (0..CAPACITY).collect::<Vec<_>>());
    }

    #[test]
    fn steal_takes_half_rounding_up() {
        let (mut local, steal) = local::<Item>();
        let inject = Injector::new();
        let (mut dst, _) = super::local::<Item>();
        push_all(&mut local, &inject, 0..5);
        let (item, n) = steal.steal_into(&mut dst).unwrap();
        assert_eq!((*item, n), (2, 3));
        assert_eq!(pop_all(&mut dst), vec![0, 1]);
        assert_eq!(pop_all(&mut local), vec![3, 4]);

        // One item: it is stolen and returned, nothing lands in dst.
        push_all(&mut local, &inject, 7..8);
        let (item, n) = steal.steal_into(&mut dst).unwrap();
        assert_eq!((*item, n), (7, 1));
        assert!(dst.is_empty());

        // A full source gives HALF.
        push_all(&mut local, &inject, 0..CAPACITY);
        let (item, n) = steal.steal_into(&mut dst).unwrap();
        assert_eq!((*item, n), (HALF - 1, HALF));
        assert_eq!(dst.len(), HALF - 1);
        assert_eq!(pop_all(&mut dst), (0..HALF - 1).collect::<Vec<_>>());
        assert_eq!(pop_all(&mut local), (HALF..CAPACITY).collect::<Vec<_>>());
    }

    #[test]
    fn steal_from_empty_returns_none() {
        let (local, steal) = local::<Item>();
        let (mut dst, _) = super::local::<Item>();
        assert!(steal.steal_into(&mut dst).is_none());
        drop(local);
        assert!(steal.steal_into(&mut dst).is_none());
    }

    #[test]
    fn steal_needs_half_free_in_dst() {
        let (mut local, steal) = local::<Item>();
        let inject = Injector::new();
        let (mut dst, _) = super::local::<Item>();
        push_all(&mut local, &inject, 0..4);
        push_all(&mut dst, &inject, 100..100 + HALF + 1);
        assert!(steal.steal_into(&mut dst).is_none());
        dst.pop();
        assert_eq!(dst.remaining_slots(), HALF);
        assert_eq!(
            steal.steal_into(&mut dst).map(|(b, n)| (*b, n)),
            Some((1, 2))
        );
        assert_eq!(dst.len(), HALF + 1);
    }

    #[test]
    fn stealer_cannot_start_while_a_steal_is_in_flight() {
        let (mut local, steal) = local::<Item>();
        let inject = Injector::new();
        push_all(&mut local, &inject, 0..8);
        let (mut dst, _) = super::local::<Item>();
        // A steal claimed [0, 4) (real moved, steal behind).
        local.inner.head.store(pack(0, 4), SeqCst);
        assert!(steal.steal_into(&mut dst).is_none());
        assert!(steal.clone().steal_into(&mut dst).is_none());
        // Released.
        for i in 0..4u32 {
            // SAFETY: test plays the stealer holding the claim on [0, 4).
            drop(unsafe { <Item as QueueItem>::from_raw(local.inner.read(i)) });
        }
        local.inner.head.store(pack(4, 4), SeqCst);
        assert_eq!(
            steal.steal_into(&mut dst).map(|(b, n)| (*b, n)),
            Some((5, 2))
        );
    }

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn drain_and_drop_leave_nothing_behind() {
        let drops = Arc::new(AtomicUsize::new(0));
        let inject = Injector::new();
        let (mut local, steal) = local::<Box<Counted>>();
        for _ in 0..10 {
            local.push_back_or_overflow(Box::new(Counted(drops.clone())), &inject);
        }
        local.push_runnext(Box::new(Counted(drops.clone())));
        assert_eq!(local.drain().count(), 11);
        assert_eq!(drops.load(SeqCst), 11);
        assert!(!local.has_tasks());

        // Drop with items queued (ring wrapped, runnext set) while a Steal handle lives on.
        for _ in 0..CAPACITY + 10 {
            local.push_back_or_overflow(Box::new(Counted(drops.clone())), &inject);
        }
        local.push_runnext(Box::new(Counted(drops.clone())));
        let queued = local.len() + 1;
        drop(local);
        assert_eq!(drops.load(SeqCst), 11 + queued);
        assert!(steal.is_empty() && steal.steal_runnext().is_none());
        drop(inject);
        drop(steal);
        assert_eq!(drops.load(SeqCst), 11 + CAPACITY + 10 + 1);
    }

    /// One owner pushes/pops 1_000_000 items (overflowing into the injector, using
    /// runnext) while 3 stealers steal, take runnext and drain the injector. Every item
    /// must be received exactly once.
    #[test]
    fn stress_owner_vs_three_stealers() {
        const N: usize = 1_000_000;
        const STEALERS: usize = 3;
        let (mut local, steal) = local::<Item>();
        let inject = Arc::new(Injector::<Item>::new());
        let seen: Arc<Vec<AtomicBool>> = Arc::new((0..N).map(|_| AtomicBool::new(false)).collect());
        let done = Arc::new(AtomicBool::new(false));

        #[allow(clippy::boxed_local)] // consumes the item, as running a task would
        fn record(seen: &[AtomicBool], item: Item) {
            assert!(
                !seen[*item].swap(true, Relaxed),
                "item {} received twice",
                *item
            );
        }

        let stealers: Vec<_> = (0..STEALERS)
            .map(|_| {
                let (steal, inject, seen, done) =
                    (steal.clone(), inject.clone(), seen.clone(), done.clone());
                thread::spawn(move || {
                    let (mut mine, _mine_steal) = super::local::<Item>();
                    let (mut got, mut steals, mut from_inject) = (0usize, 0usize, 0usize);
                    loop {
                        let finished = done.load(Acquire);
                        let mut found = false;
                        if let Some((item, n)) = steal.steal_into(&mut mine) {
                            record(&seen, item);
                            got += 1;
                            steals += n;
                            found = true;
                        }
                        if let Some(item) = steal.steal_runnext() {
                            record(&seen, item);
                            got += 1;
                            found = true;
                        }
                        if let Some(item) = inject.pop_batch_into(&mut mine, 32) {
                            record(&seen, item);
                            got += 1;
                            from_inject += 1;
                            found = true;
                        }
                        while let Some(item) = mine.pop() {
                            record(&seen, item);
                            got += 1;
                        }
                        if finished && !found && inject.is_empty() {
                            return (got, steals, from_inject);
                        }
                        if !found {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();

        let mut owner_got = 0usize;
        let mut overflows = 0usize;
        for i in 0..N {
            if i % 11 == 0 {
                if let Some(prev) = local.push_runnext(Box::new(i)) {
                    overflows += local.push_back_or_overflow(prev, &inject) as usize;
                }
            } else {
                overflows += local.push_back_or_overflow(Box::new(i), &inject) as usize;
            }
            // Phases of 4096 pure pushes (forcing overflow) alternate with phases where
            // the owner also pops every other push.
            if (i / 4096) % 2 == 1 && i % 2 == 0 {
                if let Some(item) = local.pop() {
                    record(&seen, item);
                    owner_got += 1;
                }
            }
            if i % 1000 == 0 {
                if let Some(item) = local.take_runnext() {
                    record(&seen, item);
                    owner_got += 1;
                }
            }
        }
        for item in local.drain() {
            record(&seen, item);
            owner_got += 1;
        }
        done.store(true, Release);

        let mut total = owner_got;
        let mut summary = Vec::new();
        for h in stealers {
            let (got, steals, from_inject) = h.join().unwrap();
            total += got;
            summary.push((got, steals, from_inject));
        }
        eprintln!(
            "stress: owner ran {owner_got}, overflows {overflows}, \
             stealers (ran, stolen, injector batches) {summary:?}"
        );
        assert_eq!(total, N);
        assert!(seen.iter().all(|b| b.load(Relaxed)));
        assert!(overflows > 0, "the stress must exercise overflow");
        assert!(
            summary.iter().any(|s| s.1 > 0),
            "the stress must exercise stealing"
        );
        assert!(inject.is_empty());
    }
}

#[cfg(all(test, loom))]
mod loom;
