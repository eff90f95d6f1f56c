//! A small command-line parser for the example programs: `--name value`,
//! `--name=value` and `--help`, checked against a list of known flags so a typo is an
//! error rather than silently ignored.
//!
//! Hand-written instead of pulling in a parser crate: the programs take a handful of
//! flags, and the parsing rules fit in this file.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// One flag a program accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// How the value is written in the help text, e.g. `ADDR`.
    pub value: &'static str,
    /// The default, shown in the help text; `None` for "off" / required.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// The outcome of parsing a command line.
#[derive(Debug)]
pub enum Parsed {
    /// `--help` was given: print [`usage`] and exit successfully.
    Help,
    /// The flags given, with defaults filled in.
    Args(Args),
}

/// Parsed flag values, by name.
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: HashMap<&'static str, String>,
}

/// Parses `args` (without the program name) against `flags`.
///
/// ```
/// use uringo_examples::args::{parse, Flag, Parsed};
/// let flags = [Flag { name: "workers", value: "N", default: Some("2"), help: "threads" }];
/// let Parsed::Args(args) = parse(["--workers=4".to_string()], &flags).unwrap() else {
///     panic!("not help");
/// };
/// assert_eq!(args.number("workers").unwrap(), 4);
/// assert!(parse(["--wrokers".to_string(), "4".to_string()], &flags).is_err());
/// ```
pub fn parse(args: impl IntoIterator<Item = String>, flags: &[Flag]) -> io::Result<Parsed> {
    let mut values = HashMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Parsed::Help);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(invalid(format!("unexpected argument `{arg}` (try --help)")));
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let flag = flags
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| invalid(format!("unknown flag `--{name}` (try --help)")))?;
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| invalid(format!("`--{name}` needs a value ({})", flag.value)))?,
        };
        values.insert(flag.name, value);
    }
    for flag in flags {
        if let Some(default) = flag.default {
            values
                .entry(flag.name)
                .or_insert_with(|| default.to_string());
        }
    }
    Ok(Parsed::Args(Args { values }))
}

/// The help text: a synopsis line, then one line per flag.
pub fn usage(program: &str, about: &str, flags: &[Flag]) -> String {
    let mut text = format!("{program}: {about}\n\nUsage: {program} [FLAGS]\n\nFlags:\n");
    for flag in flags {
        let left = format!("--{} {}", flag.name, flag.value);
        let default = flag
            .default
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        text.push_str(&format!("  {left:<30} {}{default}\n", flag.help));
    }
    text.push_str(&format!("  {:<30} print this help\n", "--help"));
    text
}

impl Args {
    /// The raw value of `name`, if given or defaulted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> io::Result<&str> {
        self.get(name)
            .ok_or_else(|| invalid(format!("`--{name}` is required (try --help)")))
    }

    /// `name` as a non-negative integer.
    pub fn number(&self, name: &str) -> io::Result<usize> {
        let raw = self.required(name)?;
        raw.parse()
            .map_err(|_| invalid(format!("`--{name} {raw}`: not a whole number")))
    }

    /// `name` as a duration (see [`parse_duration`]); `None` when not given and with no
    /// default, or given as `off`.
    pub fn duration(&self, name: &str) -> io::Result<Option<Duration>> {
        match self.get(name) {
            None | Some("off") => Ok(None),
            Some(raw) => parse_duration(raw)
                .map(Some)
                .map_err(|err| invalid(format!("`--{name} {raw}`: {err}"))),
        }
    }

    /// `name` as one socket address (a host name resolves to its first address).
    pub fn addr(&self, name: &str) -> io::Result<SocketAddr> {
        let raw = self.required(name)?;
        resolve(raw).map_err(|err| invalid(format!("`--{name} {raw}`: {err}")))
    }

    /// `name` as a comma-separated list of socket addresses, at least one.
    pub fn addr_list(&self, name: &str) -> io::Result<Vec<SocketAddr>> {
        let raw = self.required(name)?;
        raw.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                resolve(part.trim()).map_err(|err| invalid(format!("`--{name}` `{part}`: {err}")))
            })
            .collect::<io::Result<Vec<_>>>()
            .and_then(|list| {
                if list.is_empty() {
                    Err(invalid(format!("`--{name}` needs at least one address")))
                } else {
                    Ok(list)
                }
            })
    }
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
///
/// ```
/// use std::time::Duration;
/// use uringo_examples::args::parse_duration;
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(raw: &str) -> io::Result<Duration> {
    let raw = raw.trim();
    let (number, unit_ms) = if let Some(n) = raw.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = raw.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = raw.strip_suffix('m') {
        (n, 60_000)
    } else {
        (raw, 1_000)
    };
    let n: u64 = number
        .parse()
        .map_err(|_| invalid(format!("`{raw}` is not a duration like 250ms, 5s or 2m")))?;
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)))
}

fn resolve(raw: &str) -> io::Result<SocketAddr> {
    raw.to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("`{raw}` resolves to no address")))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
