//! The logic of uringo's example programs, as functions, so the programs stay short and
//! their tests drive exactly the code the programs run.

pub mod echo;
pub mod loadgen;
