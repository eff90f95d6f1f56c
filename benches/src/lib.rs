//! uringo against tokio, one runtime alive at a time, rounds alternating: the library
//! behind the `headtohead` and `versus` binaries (see `app.rs` and README.md).

pub mod app;
mod cpu;
mod html;
mod io;
mod oneshot;
mod overheads;
mod peers;
mod report;
mod runner;
mod sched;
mod schedlat;
mod timers;

pub use runner::{total_time, Peer, Shape};

/// Every scheduler and timer shape (for the criterion harness in `benches/criterion.rs`).
pub fn shapes() -> Vec<Shape> {
    sched::shapes()
        .into_iter()
        .chain(timers::shapes())
        .collect()
}
