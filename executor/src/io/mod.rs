//! I/O utilities on top of the ring: copying between stream sockets.

mod copy;
mod forward;
mod relay;

pub use copy::{copy, copy_bidirectional, copy_bidirectional_with_sizes, DEFAULT_LIMIT};
