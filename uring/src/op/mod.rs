//! Typed operations.
//!
//! Each opcode is a struct that owns everything the kernel will touch ([`ReadAt`] owns its
//! buffer, [`Connect`] its socket address, [`OpenAt`] its path) and implements
//! [`Operation`]: how to build the SQE, how to turn the CQE back into a typed result, and
//! how to release what the kernel produced if nobody is left to take it. Awaiting the
//! struct (it implements `IntoFuture`) gives an [`Op`], submitted on the ring current on
//! the thread that first polls it.
//!
//! ```
//! use uringo_uring::{op::ReadAt, Ring};
//! use std::os::fd::AsRawFd;
//!
//! let ring = Ring::new()?;
//! let file = std::fs::File::open("/proc/self/stat")?;
//! let (result, buf) = ring.block_on(async {
//!     ReadAt::new(file.as_raw_fd(), Vec::with_capacity(64), 0).await
//! });
//! assert_eq!(result?, buf.len());
//! assert!(!buf.is_empty());
//! # Ok::<(), std::io::Error>(())
//! ```

mod anchored;
mod fs;
mod future;
mod handled;
mod iov;
mod misc;
mod net;
mod recv_multi;
mod rw;
mod sockaddr;

pub use crate::cell::{Dispatch, Handled};
pub use crate::cqe::Cqe;
pub use crate::operation::{MultishotOperation, Operation};
pub use anchored::{Anchored, SharedFd};
pub use fs::{Close, Fallocate, Fsync, Ftruncate, MkDirAt, OpenAt, RenameAt, Statx, UnlinkAt};
pub use future::{Multishot, Op};
pub use handled::{submit_handled, HandledRef};
pub use misc::{AsyncCancel, MsgRing, Nop, PollAdd, PollAddMulti, Splice, Timeout};
pub use net::{Accept, AcceptMulti, Connect, Recv, RecvMsg, Send, SendMsg, SendZc, Shutdown};
pub use recv_multi::{RecvMulti, RecvMultiStream};
pub use rw::{ReadAt, Readv, WriteAt, Writev};
pub use sockaddr::SockAddr;
