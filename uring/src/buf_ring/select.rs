//! The op side of a pool ([`BufSelect`]) and the received bytes ([`PooledBuf`]).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use io_uring::cqueue;

use super::pool::BufPool;
use super::ring_bufs::RingBufs;
use crate::cqe::Cqe;
use crate::sync::{Arc, Mutex};

/// The `buf_start` [`BufSelect::on_cqe`] gives a CQE whose bytes span several buffers (a
/// bundle): its pieces wait in the selection's queue instead. A real start is always
/// below the buffer size, which is at most `u32::MAX`.
const SPANS_BUFFERS: u32 = u32::MAX;

/// One buffer's part of a bundle: buffer id, start in the buffer, length.
type Piece = (u16, u32, u32);

/// How an op takes its buffers from a [`BufPool`] (`IOSQE_BUFFER_SELECT`): which group to
/// name in the SQE, and, once the ring has bound it, which ring's buffers its CQEs carry.
///
/// Ops that select buffers return one from
/// [`MultishotOperation::buf_select`](crate::op::MultishotOperation::buf_select); the ring
/// registers the pool on itself and binds the selection before pushing the SQE.
pub struct BufSelect {
    pub(super) pool: BufPool,
    pub(super) bound: OnceLock<Arc<RingBufs>>,
    /// The op takes bundles where the ring can ([`BufSelect::with_bundles`]).
    bundles: bool,
    /// The pieces of each CQE that spanned several buffers, oldest first, for the
    /// reader's [`BufSelect::take_all`]: the owner resolves which buffers a bundle took
    /// when it dispatches the CQE, since only then are they still the ring entries after
    /// the first. Allocated at the first such CQE: boxed, so that the selection of every
    /// idle connection is 8 bytes here rather than a `VecDeque`'s 32.
    #[allow(clippy::box_collection)]
    spans: Mutex<Option<Box<VecDeque<Vec<Piece>>>>>,
}

impl BufSelect {
    /// Selects buffers from `pool`.
    pub fn new(pool: &BufPool) -> BufSelect {
        BufSelect {
            pool: pool.clone(),
            bound: OnceLock::new(),
            bundles: false,
            spans: Mutex::new(None),
        }
    }

    /// Selects buffers from `pool`, and lets one CQE carry several of them where the
    /// ring takes bundles ([`crate::KernelFeature::RecvBundle`]). The op's items must
    /// then come from [`BufSelect::take_all`].
    pub(crate) fn with_bundles(pool: &BufPool) -> BufSelect {
        BufSelect {
            bundles: true,
            ..BufSelect::new(pool)
        }
    }

    /// Whether the ring should submit the op as a bundle recv: it asked for bundles
    /// and the ring it is bound to takes them.
    pub(crate) fn takes_bundles(&self) -> bool {
        self.bundles && self.bound.get().is_some_and(|bufs| bufs.bundles)
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
    /// Returns where the CQE's bytes start in their buffer (0 unless the ring is
    /// incremental), which the ring hands to the op's item ([`MultishotOperation::item_at`]).
    ///
    /// [`MultishotOperation::item_at`]: crate::op::MultishotOperation::item_at
    pub(crate) fn on_cqe(&self, cqe: &Cqe) -> u32 {
        let (Some(bufs), Some(bid)) = (self.bound.get(), cqueue::buffer_select(cqe.flags)) else {
            return 0;
        };
        if usize::from(bid) >= bufs.count() {
            return 0; // `take` reports it.
        }
        let len = u32::try_from(cqe.result).unwrap_or(0);
        let more = cqueue::buffer_more(cqe.flags);
        if !self.takes_bundles() {
            return bufs.dispatched(bid, len, more);
        }
        let mut first = None;
        let mut spans: Vec<Piece> = Vec::new();
        bufs.dispatched_bundle(bid, len, more, |bid, start, len| match first {
            None => first = Some((bid, start, len)),
            Some(piece) => {
                if spans.is_empty() {
                    spans.push(piece);
                }
                spans.push((bid, start, len));
            }
        });
        if spans.is_empty() {
            return first.map_or(0, |(_, start, _)| start);
        }
        self.pool.note_bundle();
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Default::default)
            .push_back(spans);
        SPANS_BUFFERS
    }

    /// The buffers `cqe` carries, in order: one, or several for a bundle (an op made
    /// with [`BufSelect::with_bundles`]). `None` when the CQE carries no buffer. Each
    /// CQE must be taken at most once, and in the order of the op's CQEs.
    pub(crate) fn take_all(&self, cqe: &Cqe, buf_start: u32) -> Option<Bundle> {
        if buf_start != SPANS_BUFFERS {
            return self.take(cqe, buf_start).map(|first| Bundle {
                first,
                rest: Vec::new(),
            });
        }
        let bufs = self.bound.get()?;
        let pieces = self
            .spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(|spans| spans.pop_front())?;
        // Newest first, so that popping the rest yields them in order.
        let mut rest: Vec<PooledBuf> = pieces
            .into_iter()
            .rev()
            .map(|(bid, start, len)| PooledBuf {
                inner: Inner::Ring {
                    bufs: bufs.clone(),
                    bid,
                    start,
                    len,
                },
            })
            .collect();
        let first = rest.pop()?;
        Some(Bundle { first, rest })
    }

    /// The buffer `cqe` carries, holding the `cqe.result` bytes received from
    /// `buf_start` on (the value the ring passes to
    /// [`MultishotOperation::item_at`](crate::op::MultishotOperation::item_at)). `None`
    /// when the CQE carries no buffer. Each CQE must be taken at most once.
    pub fn take(&self, cqe: &Cqe, buf_start: u32) -> Option<PooledBuf> {
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
        let start = buf_start.min(bufs.buf_size);
        let len = u32::try_from(cqe.result)
            .unwrap_or(0)
            .min(bufs.buf_size - start);
        Some(PooledBuf {
            inner: Inner::Ring {
                bufs: bufs.clone(),
                bid,
                start,
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

/// The buffers of one CQE: one, or several for a bundle.
pub(crate) struct Bundle {
    pub(crate) first: PooledBuf,
    /// The buffers after `first`, last first (pop them to go on in order).
    pub(crate) rest: Vec<PooledBuf>,
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
        /// Where the chunk starts in the buffer (0 unless the ring is incremental).
        start: u32,
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
            // SAFETY: the kernel wrote `len` bytes at `start` of this buffer before posting
            // the CQE we took it from, and `start + len <= buf_size` (clamped in `take`).
            // Until this `PooledBuf` drops, the buffer is not given back to the ring (it
            // holds a unit of the buffer's count), so the kernel writes only past these
            // bytes, if at all; the `Arc` keeps the memory alive.
            Inner::Ring {
                bufs,
                bid,
                start,
                len,
            } => unsafe {
                let ptr = bufs.buf_ptr(*bid).add(*start as usize);
                std::slice::from_raw_parts(ptr, *len as usize)
            },
            Inner::Owned(data) => data,
        }
    }
}

// SAFETY: the bytes live in the pool's region (or the owned Vec's heap buffer), which
// does not move when the `PooledBuf` does and stays allocated while it lives (its `Arc`
// holds the region); all `len` bytes were written by the kernel. A send reads them only.
unsafe impl crate::IoBuf for PooledBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
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
            bufs.release(*bid);
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
