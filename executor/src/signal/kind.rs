//! Which signal a receiver listens for, and which signals may be caught at all.

use std::fmt;
use std::io;

/// A signal to listen for: one of the named constructors, or any catchable number
/// through [`from_raw`](Self::from_raw).
///
/// ```
/// use uringo::signal::SignalKind;
///
/// assert_eq!(SignalKind::terminate().as_raw_value(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGWINCH).as_raw_value(), libc::SIGWINCH);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// `SIGINT`: Ctrl-C at a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`: the polite request to stop (`kill`'s default, what service managers
    /// send first).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`: the terminal went away; daemons take it as "reload the configuration".
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// Any signal by number. Whether it may be caught is checked by
    /// [`signal`](super::signal()), whose doc lists the signals it refuses.
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> i32 {
        self.0
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match nix::sys::signal::Signal::try_from(self.0) {
            Ok(sig) => f.write_str(sig.as_str()),
            Err(_) => write!(f, "SignalKind({})", self.0),
        }
    }
}

/// Why `signum` cannot be listened for, or `None` when it can:
///
/// * not a signal number, or one of the two real-time signals the C library keeps for
///   its threads (32 and 33 on glibc, below `SIGRTMIN`);
/// * `SIGKILL`, `SIGSTOP`: they cannot be caught;
/// * `SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGSYS`, `SIGABRT`: they report
///   a fault (or `abort`) of the thread that gets them; a handler that returns would hide
///   the crash or re-run the faulting instruction.
pub(crate) fn refusal(signum: i32) -> Option<&'static str> {
    match signum {
        libc::SIGKILL | libc::SIGSTOP => Some("it cannot be caught"),
        libc::SIGSEGV
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGILL
        | libc::SIGTRAP
        | libc::SIGSYS
        | libc::SIGABRT => Some("it reports a crash, which a handler would hide"),
        n if n >= 32 && n < libc::SIGRTMIN() => Some("the C library reserves it for its threads"),
        n if n < 1 || n > libc::SIGRTMAX() => Some("not a signal number"),
        _ => None,
    }
}

/// `signum` if it may be listened for, else `InvalidInput` naming it and `purpose`.
pub(crate) fn check(signum: i32, purpose: &str) -> io::Result<i32> {
    match refusal(signum) {
        None => Ok(signum),
        Some(why) => Err(invalid(signum, purpose, why)),
    }
}

/// The error for a signal refused for `purpose`.
pub(crate) fn invalid(signum: i32, purpose: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("signal {signum} cannot {purpose}: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_signals_may_be_caught_and_faults_may_not() {
        for ok in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
            libc::SIGRTMIN(),
            libc::SIGRTMAX(),
        ] {
            assert_eq!(refusal(ok), None, "{ok} refused");
        }
        for bad in [
            0,
            -1,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGABRT,
            32,
            libc::SIGRTMAX() + 1,
        ] {
            let err = check(bad, "be tested").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }
}
