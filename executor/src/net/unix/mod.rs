//! Unix-domain sockets: stream listener and stream, and datagrams.

mod datagram;
mod listener;
mod stream;

pub use datagram::UnixDatagram;
pub use listener::{UnixIncoming, UnixListener};
pub use stream::UnixStream;
