//! `#[uringo::main]` on a real `main` returning `io::Result<()>`, compiled (by `cargo test`
//! and clippy) against the stand-in runtime in `tests/mock/`.

extern crate self as uringo;

#[path = "../tests/mock/mod.rs"]
mod mock;
pub use mock::*;

#[uringo_macros::main(worker_threads = 4)]
async fn main() -> std::io::Result<()> {
    crate::yield_via_thread().await;
    let workers = crate::last_build().flatten();
    println!("ran on a runtime built with worker_threads = {workers:?}");
    Ok(())
}
