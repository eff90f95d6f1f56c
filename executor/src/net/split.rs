//! Read and write halves of a stream socket.
//!
//! uringo's stream methods take `&self` (each op owns its buffer, so two ops on one
//! socket never share memory), which makes splitting nearly free: a borrowed split is
//! two references, an owned split is two `Arc`s of the same stream. Reads and writes
//! may run at once from different tasks, on different workers; two concurrent reads (or
//! two writes) are allowed too but interleave in whatever order the kernel runs them.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use uringo_uring::{IoBuf, IoBufMut};

use super::socket;

mod sealed {
    /// What the shared stream methods need from a stream; private to uringo.
    pub trait Sealed {
        /// The socket as ops in flight hold it (`socket::SharedFd`).
        fn shared_fd(&self) -> crate::net::socket::SharedFd;
    }
}

/// A connected stream socket uringo can split and copy between: [`TcpStream`] and
/// [`UnixStream`]. Sealed; it exists so the halves and
/// [`copy_bidirectional`](crate::io::copy_bidirectional) are written once.
///
/// [`TcpStream`]: crate::net::TcpStream
/// [`UnixStream`]: crate::net::UnixStream
pub trait StreamSocket: sealed::Sealed + AsRawFd + std::marker::Send + Sync + 'static {
    /// Writes of at least this many bytes use `SEND_ZC` (see
    /// [`TcpStream::set_zerocopy_threshold`](crate::net::TcpStream::set_zerocopy_threshold)).
    fn zerocopy_threshold(&self) -> Option<usize>;
}

pub(crate) use sealed::Sealed;

/// Borrowed read half, from `split()`.
#[derive(Debug)]
pub struct ReadHalf<'a, S>(&'a S);

/// Borrowed write half, from `split()`.
#[derive(Debug)]
pub struct WriteHalf<'a, S>(&'a S);

/// Owned read half, from `into_split()`; usable from another task than its write half.
#[derive(Debug)]
pub struct OwnedReadHalf<S> {
    inner: Arc<S>,
}

/// Owned write half, from `into_split()`. Dropping it shuts down the write direction
/// (the peer reads end of stream), as tokio's does.
pub struct OwnedWriteHalf<S: AsRawFd> {
    inner: Arc<S>,
    shutdown_on_drop: bool,
}

/// The two halves passed to `reunite` came from different streams.
#[derive(Debug)]
pub struct ReuniteError<S: AsRawFd>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S: AsRawFd> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl<S: AsRawFd + fmt::Debug> std::error::Error for ReuniteError<S> {}

pub(crate) fn split<S>(stream: &S) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
    (ReadHalf(stream), WriteHalf(stream))
}

pub(crate) fn into_split<S: AsRawFd>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let inner = Arc::new(stream);
    (
        OwnedReadHalf {
            inner: inner.clone(),
        },
        OwnedWriteHalf {
            inner,
            shutdown_on_drop: true,
        },
    )
}

/// The read operations of every stream type and read half. The type provides
/// `fn stream(&self) -> &impl StreamSocket`.
macro_rules! read_methods {
    () => {
        /// Reads into `buf` (from its start, up to its capacity). `Ok(0)` is end of
        /// stream. Dropping the future cancels the read; bytes it had received are lost.
        ///
        /// These methods return their op's future directly rather than being `async
        /// fn`s, which would store their arguments twice (see `net/socket.rs`).
        pub fn read<B: IoBufMut>(
            &self,
            buf: B,
        ) -> impl std::future::Future<Output = (io::Result<usize>, B)> + '_ {
            crate::net::socket::read(crate::net::split::Sealed::shared_fd(self.stream()), buf)
        }

        /// Reads until `buf` is full: from its start to its capacity, like `read`
        /// (what it held is overwritten). End of stream first is `UnexpectedEof`, with
        /// the bytes read so far in the buffer.
        pub fn read_exact<B: IoBufMut>(
            &self,
            buf: B,
        ) -> impl std::future::Future<Output = (io::Result<()>, B)> + '_ {
            crate::net::socket::read_exact(crate::net::split::Sealed::shared_fd(self.stream()), buf)
        }

        /// Reads into several buffers, filling each before the next.
        pub fn readv<B: IoBufMut>(
            &self,
            bufs: Vec<B>,
        ) -> impl std::future::Future<Output = (io::Result<usize>, Vec<B>)> + '_ {
            crate::net::socket::readv(crate::net::split::Sealed::shared_fd(self.stream()), bufs)
        }

        /// Reads without removing the bytes from the socket (`MSG_PEEK`).
        pub fn peek<B: IoBufMut>(
            &self,
            buf: B,
        ) -> impl std::future::Future<Output = (io::Result<usize>, B)> + '_ {
            crate::net::socket::peek(crate::net::split::Sealed::shared_fd(self.stream()), buf)
        }
    };
}

/// The write operations of every stream type and write half. The type provides
/// `fn stream(&self) -> &impl StreamSocket`.
macro_rules! write_methods {
    () => {
        /// Writes some of `buf`'s initialized bytes; returns how many. Dropping the future
        /// cancels the write; some bytes may have been sent.
        pub fn write<B: IoBuf>(
            &self,
            buf: B,
        ) -> impl std::future::Future<Output = (io::Result<usize>, B)> + '_ {
            let stream = self.stream();
            crate::net::socket::write(
                crate::net::split::Sealed::shared_fd(stream),
                buf,
                stream.zerocopy_threshold(),
            )
        }

        /// Writes all of `buf`'s initialized bytes. On error, some may have been sent.
        pub fn write_all<B: IoBuf>(
            &self,
            buf: B,
        ) -> impl std::future::Future<Output = (io::Result<()>, B)> + '_ {
            let stream = self.stream();
            crate::net::socket::write_all(
                crate::net::split::Sealed::shared_fd(stream),
                buf,
                stream.zerocopy_threshold(),
            )
        }

        /// Writes several buffers in order, possibly partly; returns how many bytes.
        pub fn writev<B: IoBuf>(
            &self,
            bufs: Vec<B>,
        ) -> impl std::future::Future<Output = (io::Result<usize>, Vec<B>)> + '_ {
            crate::net::socket::writev(crate::net::split::Sealed::shared_fd(self.stream()), bufs)
        }
    };
}
pub(crate) use {read_methods, write_methods};

/// `shutdown()` for write halves.
macro_rules! shutdown_write {
    () => {
        /// Shuts down the write direction: the peer reads end of stream.
        pub async fn shutdown(&self) -> io::Result<()> {
            socket::shutdown(&Sealed::shared_fd(self.stream()), std::net::Shutdown::Write)
        }
    };
}

impl<S: StreamSocket> ReadHalf<'_, S> {
    fn stream(&self) -> &S {
        self.0
    }
    read_methods!();
}

impl<S: StreamSocket> WriteHalf<'_, S> {
    fn stream(&self) -> &S {
        self.0
    }
    write_methods!();
    shutdown_write!();
}

impl<S: StreamSocket> OwnedReadHalf<S> {
    fn stream(&self) -> &S {
        &self.inner
    }
    read_methods!();

    /// Puts the stream back together; fails if `write` came from another stream.
    pub fn reunite(self, write: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        reunite(self, write)
    }
}

impl<S: StreamSocket> OwnedWriteHalf<S> {
    fn stream(&self) -> &S {
        &self.inner
    }
    write_methods!();
    shutdown_write!();

    /// Puts the stream back together; fails if `read` came from another stream.
    pub fn reunite(self, read: OwnedReadHalf<S>) -> Result<S, ReuniteError<S>> {
        reunite(read, self)
    }

    /// Drops the half without shutting down the write direction.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
}

fn reunite<S: AsRawFd>(
    read: OwnedReadHalf<S>,
    mut write: OwnedWriteHalf<S>,
) -> Result<S, ReuniteError<S>> {
    if !Arc::ptr_eq(&read.inner, &write.inner) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    let inner = write.inner.clone();
    drop(write);
    drop(read);
    Ok(Arc::into_inner(inner).expect("both halves were dropped, so this is the last Arc"))
}

impl<S: AsRawFd> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // Nobody is told of a failure here: the peer may be gone already.
            let _ = socket::shutdown_now(self.inner.as_raw_fd(), std::net::Shutdown::Write);
        }
    }
}

impl<S: AsRawFd + fmt::Debug> fmt::Debug for OwnedWriteHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S> AsRef<S> for OwnedReadHalf<S> {
    /// The stream both halves share.
    fn as_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsRawFd> AsRef<S> for OwnedWriteHalf<S> {
    /// The stream both halves share.
    fn as_ref(&self) -> &S {
        &self.inner
    }
}

macro_rules! fd_impls {
    ($($ty:ty),*) => {$(
        impl<S: AsRawFd> AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.as_raw_fd()
            }
        }
        impl<S: AsRawFd + AsFd> AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.as_fd()
            }
        }
    )*};
}
fd_impls!(OwnedReadHalf<S>, OwnedWriteHalf<S>);
