//! Echo server.
//!
//! ```sh
//! cargo run --release -p uringo-examples --example echo -- 127.0.0.1:7000
//! ```

use std::net::SocketAddr;

use uringo::net::TcpListener;

const HELP: &str = "\
echo: an echo server

Usage: echo [ADDR]    (default 127.0.0.1:7000)
";

fn parse() -> Result<Option<SocketAddr>, uringo_examples::cli::Error> {
    use lexopt::prelude::*;
    let mut addr = ([127, 0, 0, 1], 7000).into();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(value) => addr = uringo_examples::cli::addr(value)?,
            Short('h') | Long("help") => return Ok(None),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(addr))
}

#[uringo::main]
async fn main() -> std::io::Result<()> {
    let Some(addr) = parse().map_err(uringo_examples::cli::into_io)? else {
        print!("{HELP}");
        return Ok(());
    };
    let listener = TcpListener::bind(addr)?;
    eprintln!("echo: listening on {}", listener.local_addr()?);
    uringo_examples::echo::serve(listener).await
}
