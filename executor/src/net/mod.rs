//! Networking on the current worker's ring, with owned buffers.
//!
//! Each operation is submitted on the ring of the worker that polls it and consumes one
//! unit of the task's cooperative budget. Buffers are passed by value and returned with
//! the result, because the kernel owns them while the operation is in flight.

mod tcp;

pub use tcp::{TcpListener, TcpStream};
mod recv_stream;

pub use recv_stream::{BufPool, PooledBuf, RecvStream};
