//! The byte-stream operations every uringo socket shares, written once over a raw fd.
//!
//! `TcpStream`, `UnixStream` and the split halves of both are thin wrappers that pass
//! their fd here. Keeping the loops (write-all, read-exact, the zero-copy switch) in one
//! place means one place decides what a partial failure gives back.
//!
//! Callers guarantee the fd stays open while an op they started is in flight: every
//! wrapper holds the socket (or an `Arc` of it, or a borrow) for as long as its future
//! lives, and the op layer keeps buffers until the CQE even if the future is dropped.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use std::sync::Arc;

use uringo_uring::op::{
    Anchored, Connect, Operation, PollAdd, Recv, RecvMsg, Send, SendMsg, SendZc, SockAddr,
};
use uringo_uring::{IoBuf, IoBufMut, Op};

use crate::runtime::coop::Coop;

/// A socket as the ops in flight on it hold it: every op keeps a clone until its final
/// CQE, so the fd is never closed while an SQE still names it (see
/// `uringo_uring::op::Anchored` for the fd-reuse race this prevents).
pub(crate) use uringo_uring::op::SharedFd;

/// An op that holds its socket until its CQE.
pub(crate) type SocketOp<T> = Op<Anchored<T, SharedFd>>;

/// Submits `op` with `fd` anchored to it. (A plain fn returning the future, not an
/// `async fn`: rustc cannot prove an `async fn`'s `T: Operation` bound for `&'static str`
/// buffers when it checks a caller's future for `Send`.)
pub(crate) fn run<T: Operation>(fd: &SharedFd, op: T) -> Coop<SocketOp<T>> {
    run_on(fd.clone(), op)
}

/// [`run`] with the socket handed over rather than cloned.
fn run_on<T: Operation>(fd: SharedFd, op: T) -> Coop<SocketOp<T>> {
    Coop::new(Op::new(Anchored::new(op, fd)))
}

/// Receives into `buf` from its start up to its capacity. `Ok(0)` is end of stream.
///
/// This and the other single-op calls here return the op's future itself rather than
/// wrap it in an `async fn`: a wrapper would keep its arguments beside the op that
/// already holds them, and a task that awaits a read or a write carries that future's
/// size for as long as it lives, idle or not.
pub(crate) fn read<B: IoBufMut>(fd: SharedFd, buf: B) -> Coop<SocketOp<Recv<B>>> {
    let raw = fd.as_raw_fd();
    run_on(fd, Recv::new(raw, buf))
}

/// Like [`read`], but leaves the bytes in the socket (`MSG_PEEK`).
pub(crate) fn peek<B: IoBufMut>(fd: SharedFd, buf: B) -> Coop<SocketOp<Recv<B>>> {
    let raw = fd.as_raw_fd();
    run_on(fd, Recv::new(raw, buf).flags(libc::MSG_PEEK))
}

/// Fills `buf` from its start to its capacity, like [`read`] but until full (whatever
/// the buffer held is overwritten, as `read` overwrites it); end of stream first is
/// `UnexpectedEof`. The bytes read so far stay in the buffer either way.
pub(crate) async fn read_exact<B: IoBufMut>(fd: SharedFd, buf: B) -> (io::Result<()>, B) {
    let total = buf.bytes_total();
    let mut filled = 0;
    let mut buf = buf;
    while filled < total {
        let (res, slice) = read(fd.clone(), buf.slice(filled..total)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                let err = io::Error::new(io::ErrorKind::UnexpectedEof, "early end of stream");
                return (Err(err), buf);
            }
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (Err(err), buf),
        }
    }
    (Ok(()), buf)
}

/// The flags of every stream send: see [`writable`].
pub(crate) const NO_WAIT: i32 = libc::MSG_DONTWAIT;

/// Waits until `fd` has room for more bytes (`POLLOUT`), or an error or hang-up to
/// report (the next send then returns it).
///
/// No stream send of uringo's waits for room inside the kernel. A send that may wait is
/// parked on the socket's wait queue, and the kernel gives up on that after a number of
/// wake-ups that found no room — on a socket that also receives, many wake-ups are for
/// the other direction — and moves the send to an io-wq worker thread, which it then
/// blocks until the peer reads. A writer whose peer sends back at the same time did
/// that about a hundred times per 256 MiB (`tests/no_io_wq.rs`); every such peer that
/// then stalled would hold a kernel thread. So sends go with `MSG_DONTWAIT` ([`NO_WAIT`]),
/// which the kernel answers with `EAGAIN` instead, and the writer waits with this poll,
/// which stays armed through any number of wake-ups and never reaches io-wq. What a
/// full socket costs is then one send that comes back `EAGAIN` and a poll, where the
/// kernel's own wait armed the same poll internally.
///
/// Only `EAGAIN` leads to the poll. After a short send the rest goes in another send at
/// once, as the kernel's own path did: `POLLOUT` is reported well after a send could go
/// on again (a unix socket reports it once three quarters of its buffer are free), so
/// waiting for it there would leave room unused, and a writer whose reader first waits
/// for the write to end could wait forever.
pub(crate) fn writable(fd: &SharedFd) -> Coop<SocketOp<PollAdd>> {
    Coop::new(room(fd))
}

/// [`writable`]'s poll, for a caller that spends the task's budget itself.
pub(crate) fn room(fd: &SharedFd) -> SocketOp<PollAdd> {
    let poll = PollAdd::new(fd.as_raw_fd(), libc::POLLOUT as u32);
    Op::new(Anchored::new(poll, fd.clone()))
}

/// A send's result says the socket was full ([`NO_WAIT`]).
pub(crate) fn is_full<T>(res: &io::Result<T>) -> bool {
    matches!(res, Err(err) if err.raw_os_error() == Some(libc::EAGAIN))
}

/// Sends some of `buf`'s initialized bytes, zero-copy when the buffer is at least
/// `zerocopy_from` bytes long. Returns how many were sent.
pub(crate) async fn write<B: IoBuf>(
    fd: SharedFd,
    buf: B,
    zerocopy_from: Option<usize>,
) -> (io::Result<usize>, B) {
    match zerocopy_from {
        // Boxed: the zero-copy path's two ops would otherwise double the size of every
        // write future, zero-copy or not; it runs for large buffers only, where one
        // allocation is small next to the send. (`WriteAll` has no such cost.)
        Some(min) if buf.bytes_init() >= min => Box::pin(send_zc(&fd, buf)).await,
        _ => send(&fd, buf).await,
    }
}

/// One send of `buf`, waiting for room outside the kernel (see [`writable`]).
async fn send<B: IoBuf>(fd: &SharedFd, buf: B) -> (io::Result<usize>, B) {
    until_sent(fd, buf, |raw, buf| Send::new(raw, buf).flags(NO_WAIT)).await
}

/// `SEND_ZC`, falling back to a copying send where the kernel lacks it (6.0+; the op
/// then fails with `EINVAL` before touching the buffer). Waits for room like [`send`].
pub(crate) async fn send_zc<B: IoBuf>(fd: &SharedFd, buf: B) -> (io::Result<usize>, B) {
    let zc = |raw, buf| SendZc::new(raw, buf).flags(NO_WAIT);
    match until_sent(fd, buf, zc).await {
        (Err(err), buf) if err.raw_os_error() == Some(libc::EINVAL) => send(fd, buf).await,
        done => done,
    }
}

/// Submits the send `op` builds from `data` until it is not refused for want of room,
/// waiting for room between tries ([`writable`]); the send's result and `data` back.
async fn until_sent<D, T>(
    fd: &SharedFd,
    mut data: D,
    op: impl Fn(std::os::fd::RawFd, D) -> T,
) -> (io::Result<usize>, D)
where
    T: Operation<Output = (io::Result<usize>, D)>,
{
    loop {
        let (res, back) = run(fd, op(fd.as_raw_fd(), data)).await;
        if !is_full(&res) {
            return (res, back);
        }
        data = back;
        if let Err(err) = writable(fd).await {
            return (Err(err), data);
        }
    }
}

/// Sends all of `buf`'s initialized bytes.
pub(crate) fn write_all<B: IoBuf>(
    fd: SharedFd,
    buf: B,
    zerocopy_from: Option<usize>,
) -> super::write_all::WriteAll<B> {
    super::write_all::WriteAll::new(fd, buf, zerocopy_from)
}

/// Scatter read: fills `bufs` in order.
pub(crate) async fn readv<B: IoBufMut>(fd: SharedFd, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
    let raw = fd.as_raw_fd();
    let (res, bufs) = run_on(fd, RecvMsg::new(raw, bufs)).await;
    (res.map(|(n, _)| n), bufs)
}

/// Gather write: sends the initialized bytes of `bufs` in order, possibly partly.
/// Waits for room like [`send`].
pub(crate) async fn writev<B: IoBuf>(fd: SharedFd, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
    until_sent(&fd, bufs, |raw, bufs| {
        SendMsg::new(raw, bufs, None).flags(NO_WAIT)
    })
    .await
}

/// Shuts down the read half, write half or both.
///
/// A plain `shutdown(2)`, not `IORING_OP_SHUTDOWN`: the kernel never runs that op
/// inline (it may take the socket lock, so it is refused on the non-blocking issue
/// path) and hands every one to an io-wq worker thread, which costs a thread wake-up,
/// a context switch and a CQE posted from another thread for a call that does not
/// block. `shutdown(2)` on a socket returns at once (TCP queues a FIN), so the worker
/// makes it directly, as `Drop` of an owned write half already does.
pub(crate) fn shutdown(fd: &SharedFd, how: std::net::Shutdown) -> io::Result<()> {
    shutdown_now(fd.as_raw_fd(), how)
}

/// `shutdown(2)` on `fd` (see [`shutdown`] for why not the io_uring op).
pub(crate) fn shutdown_now(fd: std::os::fd::RawFd, how: std::net::Shutdown) -> io::Result<()> {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // A stale or wrong fd gives an error; the callers hold the socket open meanwhile.
    // SAFETY: `shutdown` takes an fd number and touches no memory of ours.
    if unsafe { libc::shutdown(fd, how) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram to `addr` (or the connected peer when `None`).
pub(crate) async fn send_to<B: IoBuf>(
    fd: &SharedFd,
    buf: B,
    addr: Option<SockAddr>,
) -> (io::Result<usize>, B) {
    let (res, mut bufs) = run(fd, SendMsg::new(fd.as_raw_fd(), vec![buf], addr)).await;
    (
        res,
        bufs.pop().expect("the op gives back the buffer it took"),
    )
}

/// One datagram and its sender.
pub(crate) async fn recv_from<B: IoBufMut>(
    fd: &SharedFd,
    buf: B,
) -> (io::Result<(usize, SockAddr)>, B) {
    let (res, mut bufs) = run(fd, RecvMsg::new(fd.as_raw_fd(), vec![buf])).await;
    (
        res,
        bufs.pop().expect("the op gives back the buffer it took"),
    )
}

/// Connects `fd` to `addr` through the ring.
pub(crate) async fn connect(fd: OwnedFd, addr: SockAddr) -> io::Result<OwnedFd> {
    let fd: Arc<OwnedFd> = Arc::new(fd);
    let shared: SharedFd = fd.clone();
    run(&shared, Connect::new(fd.as_raw_fd(), addr)).await?;
    drop(shared);
    // The op completed, so it no longer holds its clone.
    Ok(Arc::try_unwrap(fd).expect("a completed op releases its anchor"))
}

/// The std socket out of its `Arc`: unwrapped when no op holds it any more, else a
/// `dup` of it (the original closes when the last op in flight completes).
pub(crate) fn unshare<S: TryClone>(inner: Arc<S>) -> io::Result<S> {
    Arc::try_unwrap(inner).or_else(|shared| shared.try_clone())
}

/// `try_clone` of std's socket types.
pub(crate) trait TryClone: Sized {
    fn try_clone(&self) -> io::Result<Self>;
}

macro_rules! try_clone {
    ($($ty:ty),*) => {$(
        impl TryClone for $ty {
            fn try_clone(&self) -> io::Result<Self> {
                <$ty>::try_clone(self)
            }
        }
    )*};
}
try_clone!(
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixDatagram
);

/// A fresh `SOCK_CLOEXEC` socket.
pub(crate) fn new_socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) returns a fresh fd or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `listen(2)`.
pub(crate) fn listen(fd: BorrowedFd<'_>, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(libc::c_int::MAX as u32) as libc::c_int;
    // SAFETY: listen(2) on a socket the caller owns; it reads no memory of ours.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt(2)` for a plain-data option value.
pub(crate) fn set_opt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` and we pass its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt(2)` for a plain-data option value.
pub(crate) fn get_opt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = mem::MaybeUninit::<T>::zeroed();
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`, which has room for them.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Zero-initialised, then possibly overwritten by the kernel.
    // SAFETY: every option we read (ints, `linger`) is valid for any bit pattern.
    Ok(unsafe { value.assume_init() })
}

/// `SO_LINGER`: `None` is off; `Some(d)` makes close wait up to `d` for unsent data
/// (`Some(ZERO)` makes close send a reset instead).
pub(crate) fn set_linger(fd: BorrowedFd<'_>, linger: Option<Duration>) -> io::Result<()> {
    let value = libc::linger {
        l_onoff: linger.is_some() as libc::c_int,
        l_linger: linger.map_or(0, |d| {
            d.as_secs().min(libc::c_int::MAX as u64) as libc::c_int
        }),
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_LINGER, value)
}

/// Reads `SO_LINGER` back.
pub(crate) fn linger(fd: BorrowedFd<'_>) -> io::Result<Option<Duration>> {
    let value: libc::linger = get_opt(fd, libc::SOL_SOCKET, libc::SO_LINGER)?;
    Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger as u64)))
}

/// Reads a boolean socket option.
pub(crate) fn get_flag(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<bool> {
    get_opt::<libc::c_int>(fd, level, name).map(|v| v != 0)
}

/// Sets a boolean socket option.
pub(crate) fn set_flag(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    on: bool,
) -> io::Result<()> {
    set_opt(fd, level, name, on as libc::c_int)
}

/// `getsockname(2)` of an IP socket.
pub(crate) fn local_addr(fd: BorrowedFd<'_>) -> io::Result<std::net::SocketAddr> {
    use nix::sys::socket::{getsockname, SockaddrLike, SockaddrStorage};
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Ok(std::net::SocketAddrV4::from(*v4).into());
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        return Ok(std::net::SocketAddrV6::from(*v6).into());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not an IP socket (address family {:?})", addr.family()),
    ))
}
