//! Networking on the current worker's ring, with owned buffers.
//!
//! Each operation is submitted on the ring of the worker that polls it and consumes one
//! unit of the task's cooperative budget. Buffers are passed by value and returned with
//! the result, because the kernel owns them while the operation is in flight: dropping a
//! future mid-operation cancels the op, and the buffer is freed only at its completion.
//!
//! | type | what |
//! |---|---|
//! | [`TcpListener`], [`TcpStream`], [`TcpSocket`] | TCP, with multishot accept and `SEND_ZC` |
//! | [`UdpSocket`] | UDP |
//! | [`UnixListener`], [`UnixStream`], [`UnixDatagram`] | unix-domain sockets |
//! | [`split`] | read and write halves of a stream, borrowed or owned |
//! | [`BufPool`], [`RecvStream`] | multishot receive into a shared pool of provided buffers |
//! | [`lookup_host`] | name resolution on the blocking pool |

mod accept;
mod lookup;
mod recv_stream;
pub(crate) mod socket;
pub mod split;
mod tcp;
mod udp;
mod unix;
mod write_all;

pub use lookup::{lookup_host, ToSocketAddrs};
pub use recv_stream::{BufPool, PooledBuf, RecvStream};
pub use split::StreamSocket;
pub use tcp::{Incoming, TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};
