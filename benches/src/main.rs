//! `headtohead`: every shape and knob of the uringo-vs-tokio comparison (see `app.rs`).

fn main() -> std::process::ExitCode {
    uringo_benches::app::main(uringo_benches::app::Program::HeadToHead)
}
