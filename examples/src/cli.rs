//! Value parsers the programs share, on top of `lexopt` (flags) and `humantime`
//! (durations): addresses, address lists, and durations that may be `off`.
//!
//! Each program walks its own flags with `lexopt::Parser` and prints its own help; an
//! unknown flag or a bad value is an error that names it.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use lexopt::ValueExt as _;

/// The error every parser here returns: lexopt's, which prints the flag and the value.
pub type Error = lexopt::Error;

/// One socket address; a host name resolves to its first address.
///
/// ```
/// let addr = uringo_examples::cli::addr("127.0.0.1:80".into()).unwrap();
/// assert_eq!(addr.port(), 80);
/// assert!(uringo_examples::cli::addr("no-port".into()).is_err());
/// ```
pub fn addr(value: OsString) -> Result<SocketAddr, Error> {
    let raw = value.string()?;
    resolve(&raw)
}

/// A comma-separated list of socket addresses, at least one.
///
/// ```
/// let list = uringo_examples::cli::addr_list("127.0.0.1:1,127.0.0.1:2".into()).unwrap();
/// assert_eq!(list.len(), 2);
/// assert!(uringo_examples::cli::addr_list(",".into()).is_err());
/// ```
pub fn addr_list(value: OsString) -> Result<Vec<SocketAddr>, Error> {
    let raw = value.string()?;
    let list = raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(resolve)
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err(format!("`{raw}`: at least one address is needed").into());
    }
    Ok(list)
}

/// A duration as humantime writes it (`250ms`, `5s`, `2m`, `1h 30m`), or `off` (`None`).
///
/// ```
/// use std::time::Duration;
/// use uringo_examples::cli::duration;
/// assert_eq!(duration("250ms".into()).unwrap(), Some(Duration::from_millis(250)));
/// assert_eq!(duration("off".into()).unwrap(), None);
/// assert!(duration("soon".into()).is_err());
/// ```
pub fn duration(value: OsString) -> Result<Option<Duration>, Error> {
    let raw = value.string()?;
    if raw == "off" {
        return Ok(None);
    }
    humantime::parse_duration(&raw)
        .map(Some)
        .map_err(|err| format!("`{raw}`: {err} (write e.g. 250ms, 5s, 2m or off)").into())
}

/// A duration that must not be `off`.
pub fn duration_on(value: OsString) -> Result<Duration, Error> {
    duration(value)?.ok_or_else(|| "`off` is not allowed here".into())
}

/// A whole number greater than zero.
///
/// ```
/// assert_eq!(uringo_examples::cli::positive("4".into()).unwrap(), 4);
/// assert!(uringo_examples::cli::positive("0".into()).is_err());
/// ```
pub fn positive(value: OsString) -> Result<usize, Error> {
    let n: usize = value.parse()?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Turns a parse error into the `io::Error` the programs' `main`s report.
pub fn into_io(err: Error) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{err} (try --help)"),
    )
}

fn resolve(raw: &str) -> Result<SocketAddr, Error> {
    raw.to_socket_addrs()
        .map_err(|err| format!("`{raw}`: {err}"))?
        .next()
        .ok_or_else(|| format!("`{raw}` resolves to no address").into())
}
