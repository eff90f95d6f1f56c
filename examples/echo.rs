//! Echo server.
//!
//! ```sh
//! cargo run --release -p uringo-examples --example echo -- 127.0.0.1:7000
//! ```

use uringo::net::TcpListener;

#[uringo::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".to_string());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echo: listening on {}", listener.local_addr()?);
    uringo_examples::echo::serve(listener).await
}
