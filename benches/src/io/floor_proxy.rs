//! The proxy floor: a TCP proxy written straight on io_uring, with no runtime, to show
//! what the kernel's work for a proxy costs and so how much of a runtime's proxy figure
//! (`copy_bidirectional`) is its own.
//!
//! The same technique as the echo floor (`floor.rs`, sharing its ring and buffer ring):
//! one thread, one ring, one multishot accept. Per client, an upstream socket connected
//! with `IORING_OP_CONNECT`, then a multishot recv on each side drawing from the one
//! provided-buffer ring, each received buffer sent as it is to the other side and
//! returned to the ring at that send's last completion. One `io_uring_enter` per loop.
//!
//! Sends in one direction go one at a time, in the order their bytes arrived: a stream
//! must not be reordered, and two sends in flight on one socket could complete out of
//! order (or the first short, after the second).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use io_uring::types::{Fd, Fixed};
use io_uring::{cqueue, opcode, squeue};

use super::rawring::{self, BufRing, Chunk, Socket};

/// What a CQE completes: the top byte of its user_data. Below it, the side (bit 48: 0
/// the client, 1 the upstream), the connection's slot (bits 16..48) and, for a send, the
/// buffer id (bits 0..16).
const ACCEPT: u64 = 1 << 56;
const CONNECT: u64 = 2 << 56;
const RECV: u64 = 3 << 56;
const SEND: u64 = 4 << 56;
const SHUTDOWN: u64 = 5 << 56;
const KIND: u64 = 0xff << 56;

/// The client's side of a connection; the upstream's is `1 - CLIENT`.
const CLIENT: usize = 0;
const UPSTREAM: usize = 1;

/// One proxied connection. Side `s` is the socket `fds[s]`; direction `s` carries what
/// side `s` sends to the other side.
struct Conn {
    fds: [RawFd; 2],
    /// Operations in flight (the connect, each armed multishot recv, each send, each
    /// shutdown): the fds are closed, and the slot reused, only once this is 0.
    ops: u32,
    /// Per direction: the received chunks still to send, in order; the front one is in
    /// flight (unless the connection is failing, which sends nothing more).
    queue: [VecDeque<Chunk>; 2],
    /// Per side: its stream has ended (a recv returned 0).
    eof: [bool; 2],
    /// Per direction: the other side's write half is shut down (or that is on its way).
    shut: [bool; 2],
    /// Per side: its multishot recv ended for want of buffers and waits to be re-armed.
    starved: [bool; 2],
    /// An error on either side: both sockets are shut down, and the connection closes
    /// once its last operation completes.
    failed: bool,
}

/// The proxy's state between two `io_uring_enter`s.
struct Proxy {
    bufs: BufRing,
    /// Connections by slot (a slot is reused once its connection closes).
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    /// (slot, side) of recvs that ran out of buffers, re-armed once some come back.
    starved: Vec<(u32, usize)>,
    /// Buffers came back since the starved recvs were last re-armed.
    returned: bool,
    pending: Vec<squeue::Entry>,
    /// The upstream's address, leaked: the kernel reads it when a connect is submitted,
    /// and nothing here frees what an SQE points to.
    upstream: &'static (libc::sockaddr_storage, libc::socklen_t),
    /// Ops name a connection's sockets by their slots in the ring's registered file
    /// table (`2 * slot + side`), not by fd.
    fixed: bool,
    /// Slots of connections closed since the last enter whose table entries are still to
    /// clear; a slot is reused only after that (clearing a reused slot's entries would
    /// drop the new connection's sockets).
    closing: Vec<u32>,
}

/// Entries of the registered file table of `proxy-floor-fixed` (two per connection
/// slot, so 4096 connections at once). The kernel refuses a table larger than the
/// process's fd limit.
const FIXED_FILES: u32 = 1 << 13;

/// Proxies every connection accepted on `listener` to `upstream` until the process
/// exits; counts accepted connections in `started`.
pub fn serve(
    listener: TcpListener,
    upstream: SocketAddr,
    started: &AtomicUsize,
    fixed: bool,
) -> io::Result<()> {
    let mut ring = rawring::ring()?;
    if fixed {
        ring.submitter().register_files_sparse(FIXED_FILES)?;
    }
    let mut proxy = Proxy {
        bufs: BufRing::new(&ring)?,
        conns: Vec::new(),
        free: Vec::new(),
        starved: Vec::new(),
        returned: false,
        pending: Vec::new(),
        upstream: Box::leak(Box::new(sockaddr(upstream))),
        fixed,
        closing: Vec::new(),
    };
    let listen_fd = listener.as_raw_fd();
    proxy.pending.push(rawring::accept(listen_fd, ACCEPT));
    loop {
        // SAFETY: SQEs point only into the buffer ring's memory and at the upstream's
        // address, both leaked (so they outlive the ring on every path out of this
        // function); a buffer in a send is out of the buffer ring until the send's last
        // completion, and a connection's fds stay open until all its operations complete.
        let cqes = unsafe { rawring::enter(&mut ring, &mut proxy.pending)? };
        for cqe in cqes {
            let data = cqe.user_data();
            let (res, flags) = (cqe.result(), cqe.flags());
            if data & KIND == ACCEPT {
                if res >= 0 {
                    started.fetch_add(1, Ordering::SeqCst);
                    if let Some((slot, fds)) = proxy.accepted(res) {
                        // Before the next enter submits the connection's first ops. A
                        // slot past the table is left out: its ops fail with EBADF and
                        // the connection closes like any failed one.
                        if fixed && 2 * slot < FIXED_FILES {
                            ring.submitter().register_files_update(2 * slot, &fds)?;
                        }
                    }
                }
                if !cqueue::more(flags) {
                    proxy.pending.push(rawring::accept(listen_fd, ACCEPT));
                }
                continue;
            }
            let slot = ((data >> 16) & 0xffff_ffff) as u32;
            let side = ((data >> 48) & 1) as usize;
            match data & KIND {
                CONNECT => proxy.connected(slot, res),
                RECV => proxy.received(slot, side, res, flags),
                SEND => proxy.sent(slot, side, res),
                SHUTDOWN => proxy.conn(slot).ops -= 1,
                _ => continue,
            }
            proxy.settle(slot);
        }
        proxy.rearm_starved();
        for slot in std::mem::take(&mut proxy.closing) {
            if 2 * slot < FIXED_FILES {
                ring.submitter()
                    .register_files_update(2 * slot, &[-1, -1])?;
            }
            proxy.free.push(slot);
        }
    }
}

impl Proxy {
    fn conn(&mut self, slot: u32) -> &mut Conn {
        self.conns[slot as usize]
            .as_mut()
            .expect("a CQE names a live connection: slots are freed only with no op in flight")
    }

    /// A client arrived: open its upstream socket and connect it. Returns the
    /// connection's slot and its two fds.
    fn accepted(&mut self, client: RawFd) -> Option<(u32, [RawFd; 2])> {
        let (addr, len) = self.upstream;
        let family = libc::c_int::from(addr.ss_family);
        // SAFETY: plain socket creation; the fd returned is ours alone.
        let up = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if up < 0 {
            tracing::debug!(err = %io::Error::last_os_error(), "upstream socket failed");
            // SAFETY: `client` was just accepted and no operation uses it yet.
            unsafe { libc::close(client) };
            return None;
        }
        rawring::set_nodelay(client);
        rawring::set_nodelay(up);
        let conn = Conn {
            fds: [client, up],
            ops: 1,
            queue: [VecDeque::new(), VecDeque::new()],
            eof: [false; 2],
            shut: [false; 2],
            starved: [false; 2],
            failed: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.conns[slot as usize] = Some(conn);
                slot
            }
            None => {
                self.conns.push(Some(conn));
                (self.conns.len() - 1) as u32
            }
        };
        let connect =
            opcode::Connect::new(Fd(up), (addr as *const libc::sockaddr_storage).cast(), *len)
                .build()
                .user_data(tag(CONNECT, slot, UPSTREAM));
        self.pending.push(connect);
        Some((slot, [client, up]))
    }

    /// How ops name side `side` of the connection in `slot`.
    fn socket(&self, slot: u32, side: usize) -> Socket {
        let conn = self.conns[slot as usize]
            .as_ref()
            .expect("a live connection");
        if self.fixed {
            Socket::Fixed(2 * slot + side as u32)
        } else {
            Socket::Fd(conn.fds[side])
        }
    }

    /// The upstream connect completed: start reading both sides, or give up.
    fn connected(&mut self, slot: u32, res: i32) {
        let conn = self.conn(slot);
        conn.ops -= 1;
        if res < 0 {
            tracing::debug!(err = %io::Error::from_raw_os_error(-res), "upstream connect failed");
            conn.failed = true;
            return;
        }
        for side in [CLIENT, UPSTREAM] {
            self.arm(slot, side);
        }
    }

    fn arm(&mut self, slot: u32, side: usize) {
        self.conn(slot).ops += 1;
        let socket = self.socket(slot, side);
        self.pending
            .push(rawring::recv(socket, tag(RECV, slot, side)));
    }

    /// A recv CQE on `side`: forward its buffer, or note the end of the stream, a want
    /// of buffers or an error.
    fn received(&mut self, slot: u32, side: usize, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let conn = self.conn(slot);
        if !more {
            conn.ops -= 1;
        }
        if let Some(bid) = cqueue::buffer_select(flags) {
            if res > 0 && !conn.failed {
                conn.queue[side].push_back(Chunk::received(bid, res as usize));
                if conn.queue[side].len() == 1 {
                    self.send_front(slot, side);
                }
            } else {
                self.give_back(bid);
            }
        }
        let conn = self.conn(slot);
        match res {
            // The multishot ended on its own (the CQ overflowed, say): carry on reading.
            1.. if !more && !conn.failed => self.arm(slot, side),
            1.. => {}
            0 => {
                conn.eof[side] = true;
                self.shut_if_flushed(slot, side);
            }
            // Out of buffers: re-armed once sends return some; the bytes wait in the
            // socket meanwhile.
            n if n == -libc::ENOBUFS && !conn.failed => {
                conn.starved[side] = true;
                self.starved.push((slot, side));
            }
            n => self.fail(slot, n),
        }
    }

    /// A send CQE in direction `dir`: resume a short send, or return the buffer and
    /// send the next chunk.
    fn sent(&mut self, slot: u32, dir: usize, res: i32) {
        let conn = self.conn(slot);
        conn.ops -= 1;
        let mut chunk = conn.queue[dir]
            .pop_front()
            .expect("a send CQE completes its direction's front chunk");
        if chunk.advance(res) && !conn.failed {
            conn.queue[dir].push_front(chunk);
            self.send_front(slot, dir);
            return;
        }
        self.give_back(chunk.bid);
        if res <= 0 {
            return self.fail(slot, res);
        }
        if !self.conn(slot).queue[dir].is_empty() {
            self.send_front(slot, dir);
        } else {
            self.shut_if_flushed(slot, dir);
        }
    }

    /// Sends what is left of direction `dir`'s front chunk to the other side.
    fn send_front(&mut self, slot: u32, dir: usize) {
        let socket = self.socket(slot, 1 - dir);
        let conn = self.conns[slot as usize]
            .as_mut()
            .expect("a live connection");
        conn.ops += 1;
        let chunk = conn.queue[dir].front().expect("a chunk to send");
        let sqe = chunk.send(
            &self.bufs,
            socket,
            tag(SEND, slot, dir) | u64::from(chunk.bid),
        );
        self.pending.push(sqe);
    }

    /// Side `side`'s stream ended: once everything it sent is forwarded, pass the end
    /// on by shutting down the other side's write half.
    fn shut_if_flushed(&mut self, slot: u32, side: usize) {
        let conn = self.conn(slot);
        if !conn.eof[side] || conn.shut[side] || conn.failed || !conn.queue[side].is_empty() {
            return;
        }
        conn.shut[side] = true;
        conn.ops += 1;
        let sqe = match self.socket(slot, 1 - side) {
            Socket::Fd(fd) => opcode::Shutdown::new(Fd(fd), libc::SHUT_WR).build(),
            Socket::Fixed(index) => opcode::Shutdown::new(Fixed(index), libc::SHUT_WR).build(),
        };
        self.pending.push(sqe.user_data(tag(SHUTDOWN, slot, side)));
    }

    /// An error (a negative `res`) on the connection: drop what is queued and end both
    /// streams, so that every operation still in flight completes.
    fn fail(&mut self, slot: u32, res: i32) {
        tracing::debug!(err = %io::Error::from_raw_os_error(-res), "proxied connection failed");
        let conn = self.conn(slot);
        if conn.failed {
            return;
        }
        conn.failed = true;
        let mut queued = Vec::new();
        for queue in &mut conn.queue {
            // The front chunk, if any, is in flight: its buffer returns at its CQE.
            let rest = queue.split_off(queue.len().min(1));
            queued.extend(rest.into_iter().map(|c| c.bid));
        }
        for fd in conn.fds {
            // Synchronous, on this rare path: it wakes an armed recv (with 0) and fails
            // a blocked send at once, and no CQE needs counting for it.
            // SAFETY: the connection's fds stay open until its last operation completes.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for bid in queued {
            self.give_back(bid);
        }
    }

    /// Closes the connection once it is over (failed, or both streams ended) and no
    /// operation of it is in flight.
    fn settle(&mut self, slot: u32) {
        let conn = self.conn(slot);
        let over = conn.failed || conn.eof == [true; 2];
        if !over || conn.ops > 0 {
            return;
        }
        for fd in conn.fds {
            // SAFETY: no operation of the connection is in flight, and nothing else
            // holds its fds; the slot is freed below, so no later SQE names them.
            unsafe { libc::close(fd) };
        }
        // A queued chunk's front is in flight, so with none in flight all are sent.
        debug_assert!(conn.queue.iter().all(VecDeque::is_empty));
        self.conns[slot as usize] = None;
        if self.fixed {
            self.closing.push(slot);
        } else {
            self.free.push(slot);
        }
    }

    fn give_back(&mut self, bid: u16) {
        self.bufs.give_back(bid);
        self.returned = true;
    }

    /// Re-arms the recvs that ran out of buffers, now that some are back.
    fn rearm_starved(&mut self) {
        if !self.returned {
            return;
        }
        self.returned = false;
        for (slot, side) in std::mem::take(&mut self.starved) {
            // A slot may have closed (and been reused) since: its flag tells.
            let Some(conn) = self.conns[slot as usize].as_mut() else {
                continue;
            };
            if std::mem::take(&mut conn.starved[side]) && !conn.failed {
                self.arm(slot, side);
            }
        }
    }
}

fn tag(kind: u64, slot: u32, side: usize) -> u64 {
    kind | ((side as u64) << 48) | (u64::from(slot) << 16)
}

/// `addr` as a C socket address, and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage (plain integers).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for, sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than, and aligned for, sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}
