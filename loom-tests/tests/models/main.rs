//! The loom models: one module per component (see `loom-tests/README.md`). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p uringo-loom-tests --release`.

#![cfg(loom)]

mod idle;
mod inject;
mod queue;
mod scheduler;
mod task;
mod timer;
