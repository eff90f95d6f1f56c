//! `URINGO_DUMP_ON=SIGUSR1[:full]` / [`Builder::dump_on_signal`](super::Builder::dump_on_signal):
//! a task dump on stderr when the process gets a signal, as Go prints its goroutines
//! on `SIGQUIT` — for a program that is stuck or leaking where nobody can call
//! [`Handle::dump`](super::Handle::dump) from inside.
//!
//! ```text
//! uringo: SIGUSR1: task dump of runtime "my-app" (#1) at 2026-11-23T15:31:05.123Z
//! uringo task dump: 1002 tasks
//!     1000 @ src/conn.rs:48:13 [idle] waiting on recv ×1000; oldest 2.1s
//!        ...
//! ```
//!
//! # Design
//!
//! A signal handler can do almost nothing (it cannot walk the task registry, which
//! takes locks, nor allocate or format), so the dump rides [`crate::signal`]'s one path:
//! its action only flags the signal, and its `uringo-signal` thread, outside the
//! handler, runs this module's hook, which dumps every live runtime registered for that
//! signal. That thread is no worker, so the dump comes even when every worker is stuck.
//!
//! # What it replaces
//!
//! Installing the handler replaces whatever the process had for that signal (the
//! default action — terminating for `SIGUSR1`/`SIGUSR2`), though a handler the process
//! had is still called first; and it stays installed once the runtimes are gone: a late
//! signal is then swallowed rather than killing the process. It is opt-in for that
//! reason. Signals whose disposition something else relies on are refused (see
//! [`check_signal`]).
//!
//! Runtimes sit in a static registry as `Weak` references, removed when the runtime
//! shuts down: the registry never keeps a runtime alive, and a runtime being dropped
//! while a dump runs is skipped.

use std::fmt;
use std::io::{self, Write as _};
use std::sync::{Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use super::Handle;
use crate::runtime::task::TaskDump;
use crate::scheduler::Shared;
use crate::signal::kind;

/// Which signal triggers a dump, and in which form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DumpOn {
    pub(crate) signal: i32,
    /// `{:#}` (a line per task) rather than `{}` (counts per spawn location).
    pub(crate) full: bool,
}

/// `URINGO_DUMP_ON`, when set and valid; a warning (and no dump) when set but invalid.
pub(crate) fn from_env() -> Option<DumpOn> {
    let value = std::env::var("URINGO_DUMP_ON").ok()?;
    match parse(&value) {
        Ok(on) => Some(on),
        Err(why) => {
            tracing::warn!(
                value = %value,
                "URINGO_DUMP_ON={value:?} ignored: {why}; expected SIGUSR1, SIGUSR2 (or USR1, \
                 USR2, or a signal number), optionally followed by :full"
            );
            None
        }
    }
}

/// Parses `SIGUSR1`, `USR2`, `10`, each optionally followed by `:full`.
fn parse(value: &str) -> Result<DumpOn, String> {
    let value = value.trim();
    let (name, full) = match value.split_once(':') {
        Some((name, "full")) => (name, true),
        Some((_, form)) => return Err(format!("unknown form {form:?} (only `full` is)")),
        None => (value, false),
    };
    let signal = match name.to_ascii_uppercase().as_str() {
        "SIGUSR1" | "USR1" => libc::SIGUSR1,
        "SIGUSR2" | "USR2" => libc::SIGUSR2,
        number => number
            .parse::<i32>()
            .map_err(|_| format!("{name:?} is neither SIGUSR1, SIGUSR2 nor a signal number"))?,
    };
    check_signal(signal)
        .map(|_| DumpOn { signal, full })
        .map_err(|err| err.to_string())
}

/// The signal, if it may trigger dumps. Refused, besides those no one may listen for
/// ([`crate::signal::signal`] lists them):
///
/// * `SIGINT`, `SIGTERM`, `SIGQUIT`: requests to stop the process, which must keep
///   working;
/// * `SIGCHLD`, `SIGPIPE`, `SIGCONT`, `SIGTSTP`, `SIGTTIN`, `SIGTTOU`: child reaping,
///   std's ignored `SIGPIPE` and job control rely on their disposition.
fn check_signal(signal: i32) -> io::Result<Signal> {
    use Signal::*;
    const PURPOSE: &str = "trigger task dumps";
    let signal = kind::check(signal, PURPOSE)?;
    let invalid = |why: &str| kind::invalid(signal, PURPOSE, why);
    let sig = Signal::try_from(signal).map_err(|_| invalid("not a signal number"))?;
    match sig {
        SIGINT | SIGTERM | SIGQUIT => Err(invalid("it asks the process to stop")),
        SIGCHLD | SIGPIPE | SIGCONT | SIGTSTP | SIGTTIN | SIGTTOU => Err(invalid(
            "child processes, pipes or job control rely on its disposition",
        )),
        sig => Ok(sig),
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 1,
    runtimes: Vec::new(),
    hooked: Vec::new(),
});

struct Registry {
    next_id: u64,
    runtimes: Vec<Registered>,
    /// Signals that run [`dump_all`] (hooked once, never removed).
    hooked: Vec<Signal>,
}

struct Registered {
    id: u64,
    on: DumpOn,
    name: String,
    shared: Weak<Shared>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A runtime's place in the registry; dropping it takes the runtime out.
pub(crate) struct Registration {
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        registry().runtimes.retain(|r| r.id != self.id);
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

/// Dumps `handle`'s runtime (called `name`) to stderr whenever `on.signal` arrives,
/// until the returned registration is dropped. Hooks the dump onto the signal the first
/// time it is asked for.
pub(crate) fn register(handle: &Handle, name: &str, on: DumpOn) -> io::Result<Registration> {
    let signal = check_signal(on.signal)?;
    let mut registry = registry();
    if !registry.hooked.contains(&signal) {
        crate::signal::add_hook(on.signal, dump_all)?;
        registry.hooked.push(signal);
    }
    let id = registry.next_id;
    registry.next_id += 1;
    registry.runtimes.push(Registered {
        id,
        on,
        name: name.to_owned(),
        shared: std::sync::Arc::downgrade(handle.shared()),
    });
    tracing::debug!(signal = %signal, runtime = name, full = on.full, "task dump on signal armed");
    Ok(Registration { id })
}

/// Writes the dump of every live runtime registered for `signal`.
fn dump_all(signal: i32) {
    let targets: Vec<(u64, String, bool, std::sync::Arc<Shared>)> = registry()
        .runtimes
        .iter()
        .filter(|r| r.on.signal == signal)
        .filter_map(|r| Some((r.id, r.name.clone(), r.on.full, r.shared.upgrade()?)))
        .collect();
    let signal_name = Signal::try_from(signal).map_or("signal", Signal::as_str);
    if targets.is_empty() {
        tracing::debug!(signal = signal_name, "no live runtime to dump");
    }
    for (id, name, full, shared) in targets {
        let dump = TaskDump::of(&shared.owned, shared.config.poll_timing.is_some());
        drop(shared);
        let header = format!(
            "uringo: {signal_name}: task dump of runtime {name:?} (#{id}) at {}",
            Utc(SystemTime::now())
        );
        let text = if full {
            format!("{header}\n{dump:#}")
        } else {
            format!("{header}\n{dump}")
        };
        // One write of the whole text, so concurrent stderr output does not cut into it;
        // a closed stderr is not worth failing over.
        let written = std::io::stderr().lock().write_all(text.as_bytes());
        tracing::info!(
            signal = signal_name,
            runtime = %name,
            tasks = dump.tasks().len(),
            ok = written.is_ok(),
            "uringo task dump written to stderr"
        );
    }
}

/// A time as RFC 3339 UTC with milliseconds (`2026-11-23T15:31:05.123Z`).
struct Utc(SystemTime);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let day_secs = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            day_secs / 3600,
            day_secs / 60 % 60,
            day_secs % 60,
            since.subsec_millis()
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_the_full_form() {
        let on = |signal, full| Ok(DumpOn { signal, full });
        assert_eq!(parse("SIGUSR1"), on(libc::SIGUSR1, false));
        assert_eq!(parse("usr2"), on(libc::SIGUSR2, false));
        assert_eq!(parse(" SIGUSR2:full "), on(libc::SIGUSR2, true));
        assert_eq!(parse(&libc::SIGHUP.to_string()), on(libc::SIGHUP, false));
        assert_eq!(
            parse(&format!("{}:full", libc::SIGUSR1)),
            on(libc::SIGUSR1, true)
        );
    }

    #[test]
    fn refuses_signals_others_rely_on_and_junk() {
        for bad in [
            "SIGKILL",
            "9",
            "19",
            "11",
            "SIGQUIT",
            "2",
            "15",
            "17",
            "bogus",
            "0",
            "-1",
            "999",
            "SIGUSR1:everything",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn utc_times_read_as_rfc3339() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_795_448_465_123);
        assert_eq!(Utc(at).to_string(), "2026-11-23T15:41:05.123Z");
        assert_eq!(Utc(UNIX_EPOCH).to_string(), "1970-01-01T00:00:00.000Z");
        // A leap day.
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(Utc(leap).to_string(), "2000-02-29T00:00:00.000Z");
    }
}
