//! TCP: listener, stream, and a socket to configure before either.

mod listener;
pub(crate) use listener::DEFAULT_BACKLOG;
mod socket;
mod stream;

pub use listener::{Incoming, TcpListener};
pub use socket::TcpSocket;
pub use stream::TcpStream;
