//! I/O utilities on top of the ring: zero-copy proxying between sockets.

mod copy;
mod pipe;

pub use copy::copy_bidirectional;
