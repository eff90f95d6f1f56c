//! The logic of uringo's example programs, as functions, so the programs stay short and
//! their tests drive exactly the code the programs run.

pub mod cli;
pub mod dump_demo;
pub mod echo;
pub mod handoff;
pub mod http_proxy;
pub mod loadgen;
pub mod server;
pub mod shutdown;
pub mod tcp_proxy;
pub mod tls;
