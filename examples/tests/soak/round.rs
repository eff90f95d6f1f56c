//! What a round of the soak adds up to: its figures, and every way it went wrong.

use std::fmt;
use std::io::ErrorKind;

use super::client::ClientOutcome;
use super::judge;
use super::peer::{is_reset, End};
use super::script::Script;
use super::upstream::{Seen, UpstreamOutcome};

/// One round's figures.
#[derive(Debug, Default)]
pub struct Round {
    pub connections: usize,
    pub client_resets: usize,
    pub upstream_resets: usize,
    pub stalls: usize,
    /// Reset errors (ECONNRESET, EPIPE...) the two ends saw.
    pub reset_errors: usize,
    /// Connections that ended before their id reached the upstream.
    pub anonymous: usize,
    /// "connection ended with an error" lines in the proxy's log.
    pub proxy_errors: usize,
    /// The monitor's warnings of a poll that ran past its threshold.
    pub stuck_polls: usize,
    pub fds_before: usize,
    pub fds_peak: usize,
    pub fds_after: usize,
    /// Of `fds_after`, pipes (the log pipes open at start).
    pub pipes_after: usize,
    pub rss_before: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
}

impl Round {
    /// Counts what the round's connections did and judges what both ends saw
    /// (`outcomes` from the clients, `seen` from the upstream) and what the proxy
    /// logged meanwhile (`log`); returns what went wrong.
    pub fn tally(
        &mut self,
        outcomes: &[(Script, ClientOutcome)],
        seen: Seen,
        log: &[String],
    ) -> Vec<String> {
        let mut failures: Vec<String> = seen
            .duplicates
            .iter()
            .map(|id| format!("connection {id} reached the upstream twice"))
            .collect();
        for (script, client) in outcomes {
            self.client_resets += usize::from(script.client.reset.is_some());
            self.upstream_resets += usize::from(script.upstream.reset.is_some());
            self.stalls += [script.client, script.upstream]
                .iter()
                .map(|p| usize::from(p.read_stall.is_some()) + usize::from(p.write_stall.is_some()))
                .sum::<usize>();
            let upstream = seen.outcomes.get(&script.id);
            self.reset_errors += reset_errors(client, upstream);
            if let Err(what) = judge(script, client, upstream) {
                failures.push(format!("connection {} ({script:?}): {what}", script.id));
            }
        }
        self.anonymous = seen.anonymous.len();
        for end in &seen.anonymous {
            match end {
                End::Eof => {}
                End::Error(kind) if is_reset(*kind) => self.reset_errors += 1,
                other => failures.push(format!("a connection without an id ended with {other:?}")),
            }
        }
        if self.anonymous > self.client_resets {
            failures.push(format!(
                "{} connections reached the upstream without their id, more than the {} client resets explain",
                self.anonymous, self.client_resets
            ));
        }
        self.proxy_errors = log.iter().filter(|l| is_connection_error(l)).count();
        self.stuck_polls = log.iter().filter(|l| is_stuck_poll(l)).count();
        let resetting = outcomes.iter().filter(|(s, _)| s.resets()).count();
        if self.proxy_errors > resetting {
            failures.push(format!(
                "the proxy logged {} connection errors for {resetting} connections with a reset",
                self.proxy_errors
            ));
        }
        failures.extend(
            log.iter()
                .filter(|l| unexplained(l))
                .map(|l| format!("the proxy logged: {l}")),
        );
        failures
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections, resets {} client / {} upstream, {} stalls, {} reset errors seen, \
             {} anonymous, {} proxy errors, {} stuck-poll warnings; fds {} -> peak {} -> {} ({} pipes); \
             RSS {} -> peak {} -> {} KiB",
            self.connections,
            self.client_resets,
            self.upstream_resets,
            self.stalls,
            self.reset_errors,
            self.anonymous,
            self.proxy_errors,
            self.stuck_polls,
            self.fds_before,
            self.fds_peak,
            self.fds_after,
            self.pipes_after,
            self.rss_before,
            self.rss_peak,
            self.rss_after,
        )
    }
}

/// Reset errors either end of one connection saw.
fn reset_errors(client: &ClientOutcome, upstream: Option<&UpstreamOutcome>) -> usize {
    let read = |end: &End| matches!(end, End::Error(kind) if is_reset(*kind));
    let sent = |sent: &Result<(), ErrorKind>| matches!(sent, Err(kind) if is_reset(*kind));
    usize::from(client.received.as_ref().is_some_and(|r| read(&r.end)))
        + usize::from(sent(&client.sent))
        + upstream.map_or(0, |u| {
            usize::from(read(&u.received.end)) + usize::from(sent(&u.sent))
        })
}

/// A proxy log line no scripted reset explains: a warning or error, or a connection
/// error other than a reset (ECONNRESET) or a broken pipe (EPIPE). The monitor's
/// stuck-poll warning is no error: it measures wall time, and on a loaded machine a
/// worker the OS descheduled mid-poll looks stuck.
pub fn unexplained(line: &str) -> bool {
    let warning = (line.contains(" WARN ") && !is_stuck_poll(line)) || line.contains(" ERROR ");
    let reset = line.contains("os error 104") || line.contains("os error 32");
    warning || (is_connection_error(line) && !reset)
}

fn is_stuck_poll(line: &str) -> bool {
    line.contains("uringo::observe::monitor") && line.contains("without yielding")
}

fn is_connection_error(line: &str) -> bool {
    line.contains("connection ended with an error")
}
