//! Owned buffers with stable addresses.
//!
//! A completion-based op hands the kernel a pointer and gets the buffer back only at the
//! CQE, so the buffer must be *owned* by the op (a borrowed `&mut [u8]` could be freed by
//! a dropped future while the kernel still writes into it) and its bytes must not move
//! when the owning value moves. [`IoBuf`] and [`IoBufMut`] state exactly that.

use std::ops::{Bound, RangeBounds};

/// A buffer the kernel may read from: owned, `'static`, with a heap address that does
/// not change when the value is moved.
///
/// # Safety
/// `stable_ptr` must return a pointer valid for reads of `bytes_init()` bytes that stays
/// valid and unchanged while the value is moved (but not mutated or dropped).
///
/// ```
/// use uringo_uring::IoBuf;
/// let buf = b"hello".to_vec();
/// assert_eq!(buf.bytes_init(), 5);
/// ```
pub unsafe trait IoBuf: Unpin + Send + 'static {
    /// Start of the buffer's bytes.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialized bytes (what a write sends).
    fn bytes_init(&self) -> usize;
    /// Total capacity in bytes.
    fn bytes_total(&self) -> usize;

    /// A view of `range` of this buffer that an op can use in its place; the whole
    /// buffer comes back with [`Slice::into_inner`].
    ///
    /// ```
    /// use uringo_uring::IoBuf;
    /// let slice = b"hello world".to_vec().slice(6..);
    /// assert_eq!(slice.bytes_init(), 5);
    /// assert_eq!(slice.into_inner().len(), 11);
    /// ```
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_total(),
        };
        assert!(
            begin <= end && end <= self.bytes_total(),
            "slice {begin}..{end} out of bounds for a buffer of {} bytes",
            self.bytes_total()
        );
        Slice {
            buf: self,
            begin,
            end,
        }
    }
}

/// A buffer the kernel may write into.
///
/// # Safety
/// `stable_mut_ptr` must return a pointer valid for writes of `bytes_total()` bytes with
/// the same stability as [`IoBuf::stable_ptr`]; `set_init` must only grow the
/// initialized length as far as the caller says the kernel wrote.
///
/// ```
/// use uringo_uring::{IoBuf, IoBufMut};
/// let mut buf = Vec::<u8>::with_capacity(16);
/// // SAFETY: we write 3 bytes at the start, then record exactly that.
/// unsafe {
///     std::ptr::copy_nonoverlapping(b"abc".as_ptr(), buf.stable_mut_ptr(), 3);
///     buf.set_init(3);
/// }
/// assert_eq!(buf, b"abc");
/// assert_eq!(buf.bytes_total(), 16);
/// ```
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer's bytes, for writing.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `pos` bytes are initialized.
    ///
    /// # Safety
    /// The first `pos` bytes must really have been written.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap buffer does not move when the Vec does; `len` bytes are
// initialized and `capacity` are allocated.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; `set_len` is only raised to what the kernel wrote.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller guarantees the first `pos` bytes were written, and
            // `pos <= capacity` because the kernel was given `capacity` bytes.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice's bytes live on the heap and are always fully initialized.
unsafe impl IoBuf for Box<[u8]> {
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

// SAFETY: as above; every byte is initialized, so there is nothing to record.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: static data never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
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

// SAFETY: static data never moves or goes away.
unsafe impl IoBuf for &'static str {
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

// SAFETY: a String's heap buffer does not move when the String does.
unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
// SAFETY: `Bytes` points at shared, immutable heap (or static) data that does not move.
unsafe impl IoBuf for bytes::Bytes {
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

#[cfg(feature = "bytes")]
// SAFETY: a BytesMut's buffer does not move when the handle does (only `reserve` and
// friends reallocate, and they need `&mut` which the op holds exclusively).
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
// SAFETY: as above; `set_len` is only raised to what the kernel wrote.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller guarantees the first `pos` bytes were written and
            // `pos <= capacity`.
            unsafe { self.set_len(pos) };
        }
    }
}

/// A range of an owned buffer, usable wherever the buffer is. Made by [`IoBuf::slice`].
///
/// For a write, the slice covers the initialized bytes of `begin..end`; for a read, the
/// kernel writes from `begin` up to `end`.
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T> Slice<T> {
    /// Offset of the slice's start in the underlying buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }

    /// Offset one past the slice's end in the underlying buffer.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The underlying buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }

    /// Gives the whole buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

// SAFETY: the slice points into `buf`'s stable bytes, within bounds checked at creation.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: begin <= bytes_total, checked in `IoBuf::slice`.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as above; `set_init` translates to the underlying buffer's offsets.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: begin <= bytes_total, checked in `IoBuf::slice`.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller guarantees `pos` bytes from our start were written.
        unsafe { self.buf.set_init(self.begin + pos) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_translates_init_and_bounds() {
        let mut buf = Vec::with_capacity(10);
        buf.extend_from_slice(b"abc");
        let mut slice = buf.slice(2..8);
        assert_eq!(slice.bytes_total(), 6);
        assert_eq!(slice.bytes_init(), 1);
        // SAFETY: pretend the kernel wrote 4 bytes at the slice start.
        unsafe {
            std::ptr::copy_nonoverlapping(b"WXYZ".as_ptr(), slice.stable_mut_ptr(), 4);
            slice.set_init(4);
        }
        assert_eq!(slice.into_inner(), b"abWXYZ");
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slice_past_capacity_panics() {
        let _ = vec![0u8; 4].slice(2..5);
    }
}
