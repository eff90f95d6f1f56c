//! An open file, read and written at explicit positions through the worker's ring.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use uringo_uring::op::{Anchored, Close, Fsync, Ftruncate, Operation, ReadAt, SharedFd, WriteAt};
use uringo_uring::{IoBuf, IoBufMut, Op};

use super::{Metadata, OpenOptions};
use crate::runtime::coop::Coop;

/// Set once an `IORING_OP_FTRUNCATE` came back `EINVAL` and the syscall then succeeded:
/// the kernel predates the opcode (6.9), so later calls skip straight to the syscall.
static FTRUNCATE_OP_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// An open file. Reads and writes name their position and take owned buffers, which
/// come back with the result.
///
/// There is no cursor API (`read`/`write`/`seek`): positional I/O is what io_uring does
/// natively and it lets several tasks share one `&File`. The one exception is a file
/// opened with [`OpenOptions::append`], where every write goes to the end.
///
/// Dropping a `File` closes its fd synchronously (as `std::fs::File` does); call
/// [`close`](File::close) to close it through the ring and see the error `close` reports.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// use uringo::fs::File;
///
/// let path = std::env::temp_dir().join(format!("uringo-file-doc-{}", std::process::id()));
/// let file = File::options().read(true).write(true).create(true).open(&path).await?;
/// let (res, _) = file.write_all_at(b"0123456789".to_vec(), 0).await;
/// res?;
/// let (n, buf) = file.read_at(Vec::with_capacity(4), 3).await;
/// assert_eq!(n?, 4);
/// assert_eq!(buf, b"3456");
/// file.set_len(5).await?;
/// assert_eq!(file.metadata().await?.len(), 5);
/// file.close().await?;
/// # uringo::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct File {
    /// Shared with the ops in flight: each holds a clone until its CQE, so the fd is
    /// never closed (and its number reused) while an SQE still names it — an orphaned
    /// `write_at` must not land in whatever file opens next.
    inner: Arc<std::fs::File>,
}

impl File {
    /// Opens `path` read-only.
    ///
    /// If the future is dropped before the open completes, the open is cancelled; a
    /// file the kernel opened anyway is closed, never leaked.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` write-only, creating it if needed and truncating it if it exists.
    ///
    /// If the future is dropped, the open is cancelled (the fd, if any, is closed), but
    /// the file may already have been created or truncated.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// A fresh [`OpenOptions`], for opening with other options.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Reads into `buf` (from its start, up to its capacity) from position `pos`;
    /// returns how many bytes were read, 0 at end of file. `pos == u64::MAX` reads at the
    /// file's own position and advances it (io_uring's convention; what pipes need).
    ///
    /// If the future is dropped before the read completes, the read is cancelled and
    /// `buf` is freed only once the kernel is done with it; bytes it read are lost (for a
    /// pipe or FIFO they are consumed).
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> (io::Result<usize>, B) {
        self.run(ReadAt::new(self.as_raw_fd(), buf, pos)).await
    }

    /// Writes `buf`'s initialized bytes at position `pos` (at the end, whatever `pos`,
    /// if the file was opened for appending); returns how many were written, which may
    /// be fewer than asked (see [`write_all_at`](File::write_all_at)).
    ///
    /// If the future is dropped before the write completes, the write is cancelled if
    /// the kernel has not started it; it may or may not have happened, in part or whole.
    /// `buf` is freed only once the kernel is done with it.
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<usize>, B) {
        self.run(WriteAt::new(self.as_raw_fd(), buf, pos)).await
    }

    /// Fills `buf` to its capacity from position `pos`, reading as many times as it
    /// takes. End of file first is an `UnexpectedEof` error; either way `buf` comes back
    /// holding every byte that was read.
    ///
    /// Dropping the future loses what `read_at` loses, and the progress made so far.
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_total();
        let mut buf = buf;
        let mut filled = 0;
        while filled < total {
            let Some(at) = offset(pos, filled) else {
                return (Err(past_end()), buf);
            };
            let (res, slice) = self.read_at(buf.slice(filled..total), at).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let err = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("end of file after {filled} of {total} bytes"),
                    );
                    return (Err(err), buf);
                }
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return (Err(err), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Writes all of `buf`'s initialized bytes from position `pos`, writing as many
    /// times as it takes.
    ///
    /// If the future is dropped, some prefix of `buf` (possibly none) has been written.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut buf = buf;
        let mut written = 0;
        while written < total {
            let Some(at) = offset(pos, written) else {
                return (Err(past_end()), buf);
            };
            let (res, slice) = self.write_at(buf.slice(written..total), at).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let err = io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("wrote 0 bytes after {written} of {total}"),
                    );
                    return (Err(err), buf);
                }
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return (Err(err), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Flushes the file's data and metadata to the device (`fsync`).
    ///
    /// Dropping the future cancels the request if it has not started: the data is then
    /// not known to be durable.
    pub async fn sync_all(&self) -> io::Result<()> {
        self.run(Fsync::new(self.as_raw_fd())).await
    }

    /// Flushes the file's data, and only the metadata needed to read it back
    /// (`fdatasync`). Dropping the future is as for [`sync_all`](File::sync_all).
    pub async fn sync_data(&self) -> io::Result<()> {
        self.run(Fsync::datasync(self.as_raw_fd())).await
    }

    /// The file's metadata (`statx` on the fd). Dropping the future loses nothing.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        Metadata::of_fd(&self.shared_fd()).await
    }

    /// Truncates or extends (with zeros) the file to `size` bytes. The file must be open
    /// for writing.
    ///
    /// This uses `IORING_OP_FTRUNCATE`, which needs Linux 6.9. On an older kernel the op
    /// fails with `EINVAL`; the call then falls back to the `ftruncate(2)` syscall, run
    /// on the worker thread (it blocks only as long as the file system takes to update
    /// the size), and once that succeeds every later call goes straight to the syscall.
    /// A genuine `EINVAL` (say, a file not open for writing) fails the syscall the same
    /// way and is returned.
    ///
    /// If the future is dropped, the size may or may not have changed.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let len = libc::off_t::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file length {size} does not fit in off_t"),
            )
        })?;
        if !FTRUNCATE_OP_UNSUPPORTED.load(Ordering::Relaxed) {
            match self.run(Ftruncate::new(self.as_raw_fd(), size)).await {
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {}
                result => return result,
            }
        }
        // SAFETY: ftruncate(2) on an fd we own; it touches no memory of ours.
        if unsafe { libc::ftruncate(self.as_raw_fd(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if !FTRUNCATE_OP_UNSUPPORTED.swap(true, Ordering::Relaxed) {
            tracing::debug!("IORING_OP_FTRUNCATE unsupported (kernel < 6.9); using ftruncate(2)");
        }
        Ok(())
    }

    /// Closes the file through the ring, returning the error `close(2)` reports (which
    /// dropping the `File` would ignore).
    ///
    /// If the future is dropped before the close was submitted, the fd is closed
    /// synchronously; after that the kernel closes it. It is never leaked. If an op of
    /// a dropped future is still in flight, that op closes the fd when it completes and
    /// this returns `Ok(())` at once.
    pub async fn close(self) -> io::Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(file) => Coop::new(Op::new(Close::new(OwnedFd::from(file)))).await,
            Err(_still_in_flight) => Ok(()),
        }
    }

    /// Wraps an open std file.
    pub fn from_std(file: std::fs::File) -> File {
        File {
            inner: Arc::new(file),
        }
    }

    /// The std file, for blocking use or APIs this type lacks. If an op of a dropped
    /// future is still in flight, this is a `dup` of the fd (which can fail with
    /// `EMFILE`); the original closes when that op completes.
    pub fn into_std(self) -> io::Result<std::fs::File> {
        Arc::try_unwrap(self.inner).or_else(|shared| shared.try_clone())
    }

    fn shared_fd(&self) -> SharedFd {
        self.inner.clone()
    }

    /// Submits `op` holding the file until its CQE. (A plain fn returning the future, not
    /// an `async fn`: rustc cannot prove an `async fn`'s `T: Operation` bound for
    /// `&'static str` buffers when it checks a caller's future for `Send`.)
    fn run<T: Operation>(&self, op: T) -> Coop<Op<Anchored<T, SharedFd>>> {
        Coop::new(Op::new(Anchored::new(op, self.shared_fd())))
    }
}

/// `pos + done`, or `None` past `u64::MAX`.
fn offset(pos: u64, done: usize) -> Option<u64> {
    pos.checked_add(done as u64)
}

fn past_end() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "position plus length overflows a file offset",
    )
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl From<OwnedFd> for File {
    fn from(fd: OwnedFd) -> File {
        File::from_std(std::fs::File::from(fd))
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for File {
    /// # Safety
    /// `fd` must be an open file descriptor that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: the caller hands us sole ownership of an open fd.
        File::from_std(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std's Debug names the fd, the path and the access mode.
        self.inner.fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The path a pre-6.9 kernel takes: once the opcode is known to be missing, the
    /// syscall does the work and reports errors the same way.
    #[test]
    fn set_len_through_the_syscall_fallback() {
        let path =
            std::env::temp_dir().join(format!("uringo-set-len-fallback-{}", std::process::id()));
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            FTRUNCATE_OP_UNSUPPORTED.store(true, Ordering::Relaxed);
            let file = File::create(&path).await.unwrap();
            file.set_len(12_345).await.unwrap();
            assert_eq!(file.metadata().await.unwrap().len(), 12_345);
            let read_only = File::open(&path).await.unwrap();
            let err = read_only.set_len(0).await.unwrap_err();
            assert!(
                matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EBADF)),
                "{err}"
            );
        });
        std::fs::remove_file(&path).unwrap();
    }
}
