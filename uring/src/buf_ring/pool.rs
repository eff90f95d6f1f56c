//! [`BufPool`]: what a pool is (group id, buffer count and size) and its counters.

use std::fmt;
use std::io;
use std::sync::{Mutex, OnceLock, Weak};

use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// The kernel's limit on entries in one buffer ring.
const MAX_BUFS: u32 = 1 << 15;

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
    pub(super) shared: Arc<PoolShared>,
}

pub(super) struct PoolShared {
    pub(super) group: u16,
    pub(super) count: u16,
    pub(super) size: u32,
    enobufs: AtomicU64,
    bundles: AtomicU64,
    fallback: AtomicBool,
    /// The tally of every ring's registration of this pool, for the counters. Touched
    /// when a ring registers the pool and when counters are read, never per buffer.
    pub(super) rings: Mutex<Vec<Weak<Tally>>>,
}

/// What a pool's counters see of one ring's registration of it, shared (`Arc`) between
/// the registration and the pool so that reading the counters never reaches into a
/// registration.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Buffers the kernel may pick now or after the owner's next drain of returns.
    pub(super) available: AtomicU32,
    /// False until the buffer ring is registered and again once it is unregistered.
    pub(super) registered: AtomicBool,
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
                bundles: AtomicU64::new(0),
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
        available_in(&self.live_rings())
    }

    /// Buffers holding received data: the kernel has filled them and they have not been
    /// dropped yet. (With incremental buffers a buffer counts once the kernel has
    /// finished it, until the last chunk of it drops; one still being filled counts as
    /// available.)
    pub fn in_use(&self) -> usize {
        // One look at the rings: a ring registering between two looks (a worker's first
        // use of the pool) would make the difference underflow.
        let rings = self.live_rings();
        let available = available_in(&rings);
        let capacity = rings.len() * self.buf_count();
        capacity - available.min(capacity)
    }

    /// How many times an op receiving into the pool found it dry (`ENOBUFS`).
    pub fn enobufs(&self) -> u64 {
        self.shared.enobufs.load(Ordering::Relaxed)
    }

    /// How many receives delivered several buffers at once (recv bundles, where the
    /// kernel has them; see [`crate::KernelFeature::RecvBundle`]).
    pub fn bundles(&self) -> u64 {
        self.shared.bundles.load(Ordering::Relaxed)
    }

    /// Whether streams on this pool use single-shot recv into owned buffers
    /// ([`BufPool::use_single_shot`]).
    pub fn is_fallback(&self) -> bool {
        self.shared.fallback.load(Ordering::Relaxed)
    }

    /// Makes streams on this pool use single-shot recv into owned buffers, for example
    /// to compare the two paths. Cannot be undone.
    pub fn use_single_shot(&self) {
        self.shared.fallback.store(true, Ordering::Relaxed);
    }

    pub(super) fn note_bundle(&self) {
        self.shared.bundles.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn note_enobufs(&self) {
        self.shared.enobufs.fetch_add(1, Ordering::Relaxed);
    }

    fn live_rings(&self) -> Vec<Arc<Tally>> {
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

/// Buffers the kernel can fill across `rings`.
fn available_in(rings: &[Arc<Tally>]) -> usize {
    rings
        .iter()
        .map(|ring| ring.available.load(Ordering::Acquire) as usize)
        .sum()
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
