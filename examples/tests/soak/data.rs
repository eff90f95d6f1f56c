//! The bytes a soak connection carries, and the check that they arrive unchanged.
//!
//! Every direction of every connection is a window into one shared pseudo-random
//! pattern, starting at an offset of its own: writers send slices of the pattern, and
//! readers compare what arrives with the slice it must be, byte for byte. A byte
//! changed, lost, duplicated or taken from another connection's stream shows up as a
//! mismatch at the first position where the streams differ.

use std::sync::OnceLock;

const PATTERN_LEN: usize = 1 << 20;

fn pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..PATTERN_LEN)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    })
}

/// One direction of one connection: `len` bytes of the pattern from `start`, wrapping.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    start: usize,
    pub len: usize,
}

impl Stream {
    pub fn new(offset: u64, len: usize) -> Stream {
        Stream {
            start: (offset % PATTERN_LEN as u64) as usize,
            len,
        }
    }

    /// The stream's bytes `from..to`, as slices of the pattern.
    pub fn slices(self, from: usize, to: usize) -> impl Iterator<Item = &'static [u8]> {
        let mut at = from;
        std::iter::from_fn(move || {
            if at >= to {
                return None;
            }
            let offset = (self.start + at) % PATTERN_LEN;
            let n = (to - at).min(PATTERN_LEN - offset);
            at += n;
            Some(&pattern()[offset..offset + n])
        })
    }
}

/// Compares received bytes with the stream they must be.
pub struct Checker {
    stream: Stream,
    /// Bytes received and found right so far.
    pub pos: usize,
}

impl Checker {
    pub fn new(stream: Stream) -> Checker {
        Checker { stream, pos: 0 }
    }

    /// Checks the next bytes received; the error names the first wrong position.
    pub fn feed(&mut self, got: &[u8]) -> Result<(), String> {
        if self.pos + got.len() > self.stream.len {
            return Err(format!(
                "{} bytes past the {} expected",
                self.pos + got.len() - self.stream.len,
                self.stream.len
            ));
        }
        let mut rest = got;
        for expected in self.stream.slices(self.pos, self.pos + got.len()) {
            let (chunk, tail) = rest.split_at(expected.len());
            if chunk != expected {
                let at = chunk.iter().zip(expected).position(|(a, b)| a != b);
                return Err(format!(
                    "byte {} differs",
                    self.pos + at.unwrap_or_default()
                ));
            }
            self.pos += chunk.len();
            rest = tail;
        }
        Ok(())
    }

    pub fn is_complete(&self) -> bool {
        self.pos == self.stream.len
    }
}
