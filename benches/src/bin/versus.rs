//! `versus`: the README's main command. A quick run of every shape on uringo and tokio,
//! alternating, with progress on stderr, a table on stdout and an HTML report with bar
//! charts in `target/versus/report.html` (`--full` for longer runs; see `app.rs`).

fn main() -> std::process::ExitCode {
    uringo_benches::app::main(uringo_benches::app::Program::Versus)
}
