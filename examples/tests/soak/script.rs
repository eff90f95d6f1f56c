//! What each soak connection does, drawn from a seed: how much each side sends,
//! where each side stalls, and which side resets the connection instead of closing it.
//!
//! The client sends its connection id first, so the upstream, which sees only a
//! connection from the proxy, draws the same script and knows what to expect.

use std::time::Duration;

use super::data::Stream;

/// splitmix64: one good 64-bit value per step, so a script depends on its id alone.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A pause of one side, at a byte offset of what it sends or receives.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    pub at: usize,
    pub pause: Duration,
}

/// One side's behaviour.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plan {
    /// Pause while sending.
    pub write_stall: Option<Stall>,
    /// Pause while receiving (at 0: before reading anything, so the peer's data backs
    /// up in the proxy and the peer half-closes first).
    pub read_stall: Option<Stall>,
    /// Instead of closing: receive this many bytes (upstream), send this many (client
    /// and upstream), then reset the connection (linger 0).
    pub reset: Option<Reset>,
}

#[derive(Clone, Copy, Debug)]
pub struct Reset {
    /// Bytes of the request the upstream reads first (the client: ignored).
    pub after_reading: usize,
    /// Bytes this side sends first.
    pub after_sending: usize,
}

/// Everything about one connection.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    pub id: u64,
    /// Client to upstream, after the 8-byte id.
    pub request: Stream,
    /// Upstream to client.
    pub response: Stream,
    pub client: Plan,
    pub upstream: Plan,
}

impl Script {
    pub fn new(seed: u64, id: u64) -> Script {
        let mut rng = Rng::new(seed ^ id.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let request = Stream::new(rng.next(), size(&mut rng));
        let response = Stream::new(rng.next(), size(&mut rng));
        let mut client = plan(&mut rng, request.len, response.len);
        let mut upstream = plan(&mut rng, response.len, request.len);
        if rng.chance(5) {
            client.reset = Some(Reset {
                after_reading: 0,
                after_sending: below_len(&mut rng, request.len),
            });
        }
        if rng.chance(5) {
            upstream.reset = Some(Reset {
                after_reading: below_len(&mut rng, request.len),
                after_sending: below_len(&mut rng, response.len),
            });
        }
        Script {
            id,
            request,
            response,
            client,
            upstream,
        }
    }

    /// Whether either side resets the connection.
    pub fn resets(&self) -> bool {
        self.client.reset.is_some() || self.upstream.reset.is_some()
    }
}

/// Mostly small, sometimes large enough to fill socket buffers and the proxy's buffers.
fn size(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=5 => rng.below(4 << 10) as usize,
        6..=8 => rng.below(64 << 10) as usize,
        _ => rng.below(512 << 10) as usize,
    }
}

/// A point strictly inside a stream of `len` bytes (0 for an empty one).
fn below_len(rng: &mut Rng, len: usize) -> usize {
    rng.below(len.max(1) as u64) as usize
}

fn plan(rng: &mut Rng, sends: usize, receives: usize) -> Plan {
    let stall = |rng: &mut Rng, len: usize| {
        rng.chance(15).then(|| Stall {
            at: below_len(rng, len),
            pause: Duration::from_millis(1 + rng.below(25)),
        })
    };
    Plan {
        write_stall: stall(rng, sends),
        read_stall: stall(rng, receives),
        reset: None,
    }
}
