//! What every buffer-carrying op does the same way: describe its buffers to the kernel,
//! and record what the kernel wrote into them.

use std::io;

use crate::buf::{IoBuf, IoBufMut};
use crate::cqe::Cqe;

/// An SQE length field: lengths past 4 GiB are capped (the kernel caps a single I/O
/// well below that anyway).
pub(crate) fn len_u32(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

/// The result of a read into `buf`: on success the first `n` bytes are initialized.
pub(crate) fn read_into<B: IoBufMut>(mut buf: B, cqe: Cqe) -> (io::Result<usize>, B) {
    let result = cqe.io_result().map(|n| {
        // SAFETY: the kernel wrote `n` bytes at the start of the buffer.
        unsafe { buf.set_init(n as usize) };
        n as usize
    });
    (result, buf)
}

/// Records that the kernel filled `bufs` in order with `n` bytes in all.
pub(crate) fn fill_in_order<B: IoBufMut>(bufs: &mut [B], n: usize) {
    let mut left = n;
    for buf in bufs {
        let here = left.min(buf.bytes_total());
        // SAFETY: the kernel fills iovecs in order; this one got `here` bytes.
        unsafe { buf.set_init(here) };
        left -= here;
    }
}

/// iovecs over the whole capacity of each buffer (for reads).
pub(crate) fn iovecs_mut<B: IoBufMut>(bufs: &mut [B]) -> Vec<libc::iovec> {
    bufs.iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: b.bytes_total(),
        })
        .collect()
}

/// iovecs over the initialized bytes of each buffer (for writes).
pub(crate) fn iovecs<B: IoBuf>(bufs: &[B]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.stable_ptr() as *mut libc::c_void,
            iov_len: b.bytes_init(),
        })
        .collect()
}
