//! The soak of `tcp-proxy` (tests/tcp_proxy_soak.rs): scripted connections with
//! stalls, half-closes and resets on both sides, and the judgement of what each side
//! saw.
//!
//! | file | what |
//! |---|---|
//! | `data.rs` | the bytes each direction carries, and the byte-for-byte check |
//! | `script.rs` | what a connection does, drawn from its id |
//! | `peer.rs` | sending, receiving, resetting, as both ends do it |
//! | `client.rs`, `upstream.rs` | the two ends |
//! | `round.rs` | a round's figures and failures |
//! | `watch.rs` | the proxy's fds and RSS, read from `/proc` |

pub mod client;
pub mod data;
pub mod peer;
pub mod round;
pub mod script;
pub mod upstream;
pub mod watch;

use client::ClientOutcome;
use peer::{is_reset, End, Received};
use script::Script;
use upstream::UpstreamOutcome;

/// Whether what both ends saw is what the script allows; the error says what is not.
///
/// Without a reset, each side must receive the other's whole stream, then EOF, and
/// send its own without error. With one, a side may see its stream cut short, by EOF
/// or a reset error, but never a changed byte, a timeout or any other error; and when
/// only the upstream resets, it must first have read what it planned to.
pub fn judge(
    script: &Script,
    client: &ClientOutcome,
    upstream: Option<&UpstreamOutcome>,
) -> Result<(), String> {
    if let Some(kind) = client.refused {
        return Err(format!("the proxy refused the connection: {kind:?}"));
    }
    if let Some(received) = &client.received {
        allowed("client", received, script.resets())?;
    }
    if let Err(kind) = client.sent {
        sent_allowed("client", kind, script.resets())?;
    }
    let Some(upstream) = upstream else {
        // A client that resets may be gone before the proxy reached the upstream, or
        // before its id did.
        return match script.client.reset {
            Some(_) => Ok(()),
            None => Err("never reached the upstream".into()),
        };
    };
    allowed("upstream", &upstream.received, script.resets())?;
    if let Err(kind) = upstream.sent {
        sent_allowed("upstream", kind, script.resets())?;
    }
    match (script.client.reset, script.upstream.reset) {
        (None, None) => {
            whole("client", client.received.as_ref())?;
            whole("upstream", Some(&upstream.received))
        }
        (None, Some(reset)) if upstream.received.bytes != reset.after_reading => Err(format!(
            "the upstream read {} of the {} bytes it meant to before resetting",
            upstream.received.bytes, reset.after_reading
        )),
        _ => Ok(()),
    }
}

fn allowed(side: &str, received: &Received, reset: bool) -> Result<(), String> {
    match &received.end {
        End::Corrupt(what) => Err(format!("{side} received a corrupted stream: {what}")),
        End::Error(kind) if !(reset && is_reset(*kind)) => Err(format!(
            "{side} read failed: {kind:?} after {} bytes",
            received.bytes
        )),
        _ => Ok(()),
    }
}

fn sent_allowed(side: &str, kind: std::io::ErrorKind, reset: bool) -> Result<(), String> {
    if reset && is_reset(kind) {
        return Ok(());
    }
    Err(format!("{side} write failed: {kind:?}"))
}

fn whole(side: &str, received: Option<&Received>) -> Result<(), String> {
    match received {
        Some(received) if received.is_whole() => Ok(()),
        other => Err(format!(
            "{side} did not receive the whole stream: {other:?}"
        )),
    }
}
