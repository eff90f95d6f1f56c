//! Every typed op against real files, sockets and pipes.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use common::{poll_once, TempDir};
use uringo_uring::op::{
    Accept, AcceptMulti, AsyncCancel, Close, Connect, Fsync, MsgRing, Nop, OpenAt, PollAdd,
    PollAddMulti, ReadAt, Readv, Recv, RecvMsg, Send, SendMsg, SendZc, Shutdown, SockAddr, Splice,
    Statx, Timeout, WriteAt, Writev,
};
use uringo_uring::{IoBuf, Op, Ring};

fn tcp_socket() -> OwnedFd {
    // SAFETY: socket(2) returns a fresh fd or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fd, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fresh fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn nop_completes() {
    let ring = Ring::new().unwrap();
    ring.block_on(async { Nop::new().await }).unwrap();
    assert_eq!(ring.in_flight(), 0);
    assert!(ring.supports(uringo_uring::opcodes::Nop::CODE));
}

#[test]
fn write_then_read_at_offsets() {
    let dir = TempDir::new("rw");
    let ring = Ring::new().unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path("f"))
        .unwrap();
    let fd = file.as_raw_fd();
    ring.block_on(async {
        let (n, buf) = WriteAt::new(fd, b"hello world".to_vec(), 0).await;
        assert_eq!(n.unwrap(), 11);
        assert_eq!(buf, b"hello world");
        let (n, _) = WriteAt::new(fd, "WORLD", 6).await;
        assert_eq!(n.unwrap(), 5);
        let (n, buf) = ReadAt::new(fd, Vec::with_capacity(32), 0).await;
        assert_eq!(n.unwrap(), 11);
        assert_eq!(buf, b"hello WORLD");
        let (n, buf) = ReadAt::new(fd, vec![0u8; 3].into_boxed_slice(), 2).await;
        assert_eq!(n.unwrap(), 3);
        assert_eq!(&*buf, b"llo");
        // A slice of a bigger buffer reads into its own range only.
        let (n, slice) = ReadAt::new(fd, vec![b'.'; 8].slice(4..8), 6).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(slice.into_inner(), b"....WORL");
        // Reading past the end is EOF, not an error.
        let (n, _) = ReadAt::new(fd, Vec::with_capacity(4), 100).await;
        assert_eq!(n.unwrap(), 0);
    });
}

#[test]
fn readv_writev_scatter_and_gather() {
    let dir = TempDir::new("rwv");
    let ring = Ring::new().unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path("f"))
        .unwrap();
    let fd = file.as_raw_fd();
    ring.block_on(async {
        let (n, bufs) = Writev::new(fd, vec![b"abc".to_vec(), b"defgh".to_vec()], 0).await;
        assert_eq!(n.unwrap(), 8);
        assert_eq!(bufs.len(), 2);
        let bufs = vec![
            Vec::with_capacity(2),
            Vec::with_capacity(4),
            Vec::with_capacity(10),
        ];
        let (n, bufs) = Readv::new(fd, bufs, 0).await;
        assert_eq!(n.unwrap(), 8);
        assert_eq!(bufs[0], b"ab");
        assert_eq!(bufs[1], b"cdef");
        assert_eq!(bufs[2], b"gh");
    });
}

#[test]
fn send_and_recv_on_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        let (n, _) = Send::new(client.as_raw_fd(), b"over tcp".to_vec()).await;
        assert_eq!(n.unwrap(), 8);
        let (n, buf) = Recv::new(server.as_raw_fd(), Vec::with_capacity(64)).await;
        assert_eq!(n.unwrap(), 8);
        assert_eq!(buf, b"over tcp");
        let buf = bytes::BytesMut::with_capacity(16);
        let recv = Recv::new(client.as_raw_fd(), buf);
        let (n, _) = Send::new(server.as_raw_fd(), bytes::Bytes::from_static(b"bytes")).await;
        assert_eq!(n.unwrap(), 5);
        let (n, buf) = recv.await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(&buf[..], b"bytes");
    });
}

#[test]
fn sendmsg_recvmsg_carry_udp_addresses() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        let to = SockAddr::from(b.local_addr().unwrap());
        let (n, _) = SendMsg::new(
            a.as_raw_fd(),
            vec![b"he".to_vec(), b"llo".to_vec()],
            Some(to),
        )
        .await;
        assert_eq!(n.unwrap(), 5);
        let (res, bufs) = RecvMsg::new(
            b.as_raw_fd(),
            vec![Vec::with_capacity(3), Vec::with_capacity(8)],
        )
        .await;
        let (n, from) = res.unwrap();
        assert_eq!(n, 5);
        assert_eq!(from.as_socket(), Some(a.local_addr().unwrap()));
        assert_eq!(bufs[0], b"hel");
        assert_eq!(bufs[1], b"lo");
    });
}

#[test]
fn connect_accept_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ring = Ring::new().unwrap();
    let client = tcp_socket();
    let (accepted, client_local) = ring.block_on(async {
        let accept = Accept::new(listener.as_raw_fd());
        Connect::new(client.as_raw_fd(), addr).await.unwrap();
        let (fd, peer) = accept.await.unwrap();
        (fd, peer)
    });
    // The peer address the kernel filled in is the client's local address.
    let mut std_client = TcpStream::from(client);
    assert_eq!(
        client_local.as_socket(),
        Some(std_client.local_addr().unwrap())
    );
    let mut server = TcpStream::from(accepted);
    std_client.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    server.read_exact(&mut one).unwrap();
    ring.block_on(async { Shutdown::new(server.as_raw_fd(), std::net::Shutdown::Write).await })
        .unwrap();
    let mut rest = Vec::new();
    std_client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "shutdown(WR) must give the peer EOF");
}

#[test]
fn connect_refused_is_an_error() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ring = Ring::new().unwrap();
    let sock = tcp_socket();
    let err = ring
        .block_on(async { Connect::new(sock.as_raw_fd(), addr).await })
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn close_closes_the_fd() {
    let ring = Ring::new().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    ring.block_on(async { Close::new(OwnedFd::from(a)).await })
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!((&b).read(&mut buf).unwrap(), 0, "peer sees EOF once closed");
}

#[test]
fn splice_moves_bytes_through_a_pipe() {
    let dir = TempDir::new("splice");
    std::fs::write(dir.path("src"), b"spliced bytes").unwrap();
    let src = std::fs::File::open(dir.path("src")).unwrap();
    let dst = std::fs::File::create(dir.path("dst")).unwrap();
    let (rx, tx) = pipe();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        let n = Splice::new(src.as_raw_fd(), Some(0), tx.as_raw_fd(), None, 64)
            .await
            .unwrap();
        assert_eq!(n, 13);
        let n = Splice::new(rx.as_raw_fd(), None, dst.as_raw_fd(), Some(0), 64)
            .await
            .unwrap();
        assert_eq!(n, 13);
    });
    assert_eq!(std::fs::read(dir.path("dst")).unwrap(), b"spliced bytes");
}

#[test]
fn send_zc_returns_the_buffer_after_the_notification() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let ring = Ring::new().unwrap();
    if !ring.supports(uringo_uring::opcodes::SendZc::CODE) {
        eprintln!("SEND_ZC unsupported on this kernel; skipping");
        return;
    }
    let payload = vec![7u8; 64 * 1024];
    let (n, buf) = ring.block_on(async { SendZc::new(client.as_raw_fd(), payload).await });
    assert_eq!(
        n.unwrap(),
        64 * 1024,
        "the byte count of the first CQE is kept"
    );
    assert_eq!(buf.len(), 64 * 1024);
    let mut got = vec![0u8; 64 * 1024];
    server.read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&b| b == 7));
    assert_eq!(
        ring.in_flight(),
        0,
        "the slot is freed only by the notification CQE"
    );
}

#[test]
fn openat_statx_fsync() {
    let dir = TempDir::new("fs");
    let path = dir.path("new");
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        let fd = OpenAt::new(&path, libc::O_CREAT | libc::O_WRONLY, 0o600)
            .unwrap()
            .await
            .unwrap();
        let (n, _) = WriteAt::new(fd.as_raw_fd(), vec![1u8; 1000], 0).await;
        assert_eq!(n.unwrap(), 1000);
        Fsync::new(fd.as_raw_fd()).await.unwrap();
        Fsync::datasync(fd.as_raw_fd()).await.unwrap();
        let st = Statx::new(&path).unwrap().await.unwrap();
        assert_eq!(st.stx_size, 1000);
        assert_eq!(st.stx_mode as u32 & 0o777, 0o600);
        let st = Statx::fd(fd.as_raw_fd()).await.unwrap();
        assert_eq!(st.stx_size, 1000);
        let missing = OpenAt::new(dir.path("missing"), libc::O_RDONLY, 0)
            .unwrap()
            .await;
        assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    });
    assert!(
        OpenAt::new("a\0b", 0, 0).is_err(),
        "interior NUL is rejected up front"
    );
}

#[test]
fn timeout_fires_and_can_be_cancelled() {
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        Timeout::new(std::time::Duration::from_millis(5))
            .await
            .unwrap();
        let mut op = Op::new(Timeout::new(std::time::Duration::from_secs(3600)));
        assert!(poll_once(&mut op).is_pending());
        op.cancel();
        let err = op.await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
    });
}

#[test]
fn async_cancel_by_fd_cancels_every_op_on_it() {
    let (a, _b) = UnixStream::pair().unwrap();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        let mut r1 = Op::new(Recv::new(a.as_raw_fd(), Vec::with_capacity(8)));
        let mut r2 = Op::new(Recv::new(a.as_raw_fd(), Vec::with_capacity(8)));
        assert!(poll_once(&mut r1).is_pending());
        assert!(poll_once(&mut r2).is_pending());
        let n = AsyncCancel::fd(a.as_raw_fd()).await.unwrap();
        assert_eq!(n, 2);
        for op in [r1, r2] {
            let (res, _) = op.await;
            assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        }
        assert_eq!(AsyncCancel::fd(a.as_raw_fd()).await.unwrap(), 0);
    });
}

#[test]
fn poll_add_single_and_multishot() {
    let (rx, tx) = pipe();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        let poll = PollAdd::new(rx.as_raw_fd(), libc::POLLIN as u32);
        let (n, _) = WriteAt::new(tx.as_raw_fd(), b"!".to_vec(), u64::MAX).await;
        assert_eq!(n.unwrap(), 1);
        let events = poll.await.unwrap();
        assert!(events & libc::POLLIN as u32 != 0);

        let mut stream = PollAddMulti::new(rx.as_raw_fd(), libc::POLLIN as u32);
        let first = stream.next().await.unwrap().unwrap();
        assert!(first & libc::POLLIN as u32 != 0);
        stream.cancel();
        // After the cancel the stream drains and ends.
        while let Some(item) = stream.next().await {
            if let Err(err) = item {
                assert_eq!(err.raw_os_error(), Some(libc::ECANCELED));
            }
        }
    });
}

#[test]
fn msg_ring_op_wakes_another_ring() {
    let target = Ring::new().unwrap();
    let handle = target.handle();
    let sender = std::thread::spawn(move || {
        let ring = Ring::new().unwrap();
        ring.block_on(async { MsgRing::wake(&handle).await })
    });
    // The posted CQE makes this park return even with no timeout.
    let mut dispatched = 0;
    while dispatched == 0 {
        dispatched = target.park(None).unwrap();
    }
    sender.join().unwrap().unwrap();
}

#[test]
fn multishot_accept_of_100_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ring = Ring::new().unwrap();
    let clients = std::thread::spawn(move || {
        (0..100)
            .map(|i| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&[i as u8]).unwrap();
                s
            })
            .collect::<Vec<_>>()
    });
    let accepted = ring.block_on(async {
        let mut incoming = AcceptMulti::new(listener.as_raw_fd());
        let mut accepted = Vec::new();
        while accepted.len() < 100 {
            let fd = incoming
                .next()
                .await
                .expect("multishot accept ended early")
                .unwrap();
            accepted.push(TcpStream::from(fd));
        }
        accepted
    });
    let _clients = clients.join().unwrap();
    // The stream was dropped inside block_on: its cancel's CQE frees the slot.
    settle(&ring);
    let mut seen: Vec<u8> = accepted
        .into_iter()
        .map(|mut s| {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            b[0]
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..100u8).collect::<Vec<_>>(),
        "each connection accepted once"
    );
    assert_eq!(
        ring.in_flight(),
        0,
        "dropping the stream cancelled the multishot op"
    );
    assert!(ring.metrics().cancels >= 1);
}

#[test]
fn cancelled_recv_gives_ecanceled_and_its_buffer_back_intact() {
    let (a, _b) = UnixStream::pair().unwrap();
    let ring = Ring::new().unwrap();
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(b"keep me");
    let ptr = buf.as_ptr();
    let (res, buf) = ring.block_on(async {
        let mut op = Op::new(Recv::new(a.as_raw_fd(), buf));
        assert!(poll_once(&mut op).is_pending());
        assert!(op.is_submitted());
        op.cancel();
        op.cancel(); // a second cancel is harmless
        op.await
    });
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    assert_eq!(buf.as_ptr(), ptr, "the same allocation comes back");
    assert_eq!(buf.capacity(), 4096);
    assert_eq!(buf, b"keep me");
    assert_eq!(ring.in_flight(), 0);
}

#[test]
fn dropped_accept_closes_the_socket_it_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let mut accept = Op::new(Accept::new(listener.as_raw_fd()));
    assert!(poll_once(&mut accept).is_pending());
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    // Let the CQE arrive without polling the future, then drop it: the accepted socket
    // belongs to nobody and must be closed, which the client sees as EOF.
    while !accept.is_complete() {
        ring.park(Some(std::time::Duration::from_millis(100)))
            .unwrap();
    }
    drop(accept);
    let mut buf = [0u8; 1];
    assert_eq!(client.read(&mut buf).unwrap(), 0);
}

#[test]
fn dropped_open_closes_the_fd_it_opened() {
    let dir = TempDir::new("orphan-open");
    let path = dir.path("only-opened-by-the-orphan");
    std::fs::write(&path, b"x").unwrap();
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let mut open = Op::new(OpenAt::new(&path, libc::O_RDONLY, 0).unwrap());
    assert!(poll_once(&mut open).is_pending());
    while !open.is_complete() {
        ring.park(Some(std::time::Duration::from_millis(100)))
            .unwrap();
    }
    assert_eq!(fds_open_on(&path), 1, "the kernel opened it");
    drop(open);
    assert_eq!(fds_open_on(&path), 0, "the orphaned fd was closed");
}

/// How many of this process's fds refer to `path`.
fn fds_open_on(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// Parks until the ring has nothing in flight (bounded: a hang fails the test).
fn settle(ring: &Ring) {
    for _ in 0..200 {
        if ring.in_flight() == 0 {
            return;
        }
        ring.park(Some(std::time::Duration::from_millis(50)))
            .unwrap();
    }
    panic!("{} ops still in flight after 10 s", ring.in_flight());
}

#[test]
fn dropped_recv_is_cancelled_and_frees_its_slot() {
    let (a, _b) = UnixStream::pair().unwrap();
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let mut op = Op::new(Recv::new(a.as_raw_fd(), Vec::with_capacity(8)));
    assert!(poll_once(&mut op).is_pending());
    assert_eq!(ring.in_flight(), 1);
    drop(op);
    settle(&ring);
    assert_eq!(ring.metrics().cancels, 1);
}

#[test]
fn op_polled_on_a_thread_without_a_ring_panics_with_a_clear_message() {
    let result = std::thread::spawn(|| common::block_on_thread(async { Nop::new().await })).join();
    let payload = result.unwrap_err();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap();
    assert!(msg.contains("no ring"), "{msg}");
}

/// An op whose build submits another op, which the `Operation` contract forbids: the
/// ring builds SQEs in place, so a nested submission would take the same SQ entry.
struct SubmitsInBuild;

// SAFETY: the SQE carries no pointers (a NOP).
unsafe impl uringo_uring::op::Operation for SubmitsInBuild {
    type Output = ();

    fn build(&mut self) -> io_uring::squeue::Entry {
        let mut nested = Op::new(Nop::new());
        let _ = poll_once(&mut nested);
        io_uring::opcode::Nop::new().build()
    }

    fn complete(self, _: uringo_uring::Cqe) {}
}

#[test]
fn a_build_that_submits_panics_and_the_ring_goes_on() {
    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut op = Op::new(SubmitsInBuild);
        let _ = poll_once(&mut op);
    }));
    let message = panicked.expect_err("the nested submission must be refused");
    let message = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| message.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(message.contains("submitted another op"), "{message}");
    // The refused reservation was given back: the ring submits and completes as before.
    let mut op = Op::new(Nop::new());
    assert!(poll_once(&mut op).is_pending());
    while ring.in_flight() > 0 {
        ring.submit_and_reap().unwrap();
    }
    assert!(poll_once(&mut op).is_ready());
}
