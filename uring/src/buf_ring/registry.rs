//! The buffer rings registered on one io_uring: which pools this ring has registered,
//! registering a pool the first time one of its ops is pushed here, and releasing the
//! registrations of pools that are gone.

use std::collections::HashMap;
use std::io;

use io_uring::IoUring;

use super::pool::BufPool;
use super::ring_bufs::RingBufs;
use super::select::BufSelect;
use crate::fault::Faults;
use crate::sync::Arc;

/// The buffer rings registered on one io_uring, owned by its `Ring` (owner thread only).
pub(crate) struct BufRings {
    by_group: HashMap<u16, Arc<RingBufs>>,
    /// Register buffer rings with `IOU_PBUF_RING_INC` (the kernel has it).
    incremental: bool,
    /// Recv ops may take bundles on this ring (the kernel has them and they are trusted).
    bundles: bool,
}

impl BufRings {
    pub(crate) fn new(incremental: bool, bundles: bool) -> BufRings {
        BufRings {
            by_group: HashMap::new(),
            incremental,
            bundles,
        }
    }

    /// This ring's registration of `pool`, registering it first if needed.
    fn get_or_register(
        &mut self,
        ring_id: u32,
        uring: &IoUring,
        pool: &BufPool,
        faults: &Faults,
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
        let bufs = Arc::new(RingBufs::new(
            ring_id,
            pool,
            self.incremental,
            self.bundles,
        )?);
        if let Some(errno) = faults.buf_ring_register() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        bufs.register(uring)?;
        tracing::debug!(
            ring = ring_id,
            group = pool.group(),
            count = pool.buf_count(),
            size = pool.buf_size(),
            incremental = self.incremental,
            bundles = self.bundles,
            "buffer ring registered"
        );
        let mut rings = pool.shared.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.retain(|ring| ring.strong_count() > 0);
        rings.push(Arc::downgrade(&bufs.tally));
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
        faults: &Faults,
    ) -> io::Result<()> {
        let bufs = self.get_or_register(ring_id, uring, &select.pool, faults)?;
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

    /// After a lost CQE, puts incremental buffers back in step with the kernel (see
    /// `RingBufs::resync_after_loss` for when this may run).
    pub(crate) fn resync_after_loss(&self, uring: &IoUring) {
        for bufs in self.by_group.values() {
            bufs.resync_after_loss(std::os::fd::AsRawFd::as_raw_fd(uring));
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
