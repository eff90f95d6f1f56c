//! The dump example tells the truth: the task dump finds the accept loop on `accept`, a
//! handler per open connection on `recv`, a keep-alive ticker per connection ever
//! accepted on a timer — and after connections close, only the tickers stay.

use std::collections::HashSet;
use std::io::Write;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uringo::task::{TaskDump, TaskInfo, TaskState, WaitingOn};
use uringo_examples::dump_demo::{run, Config, ACCEPT_TASK, HANDLER_PREFIX, TICKER_PREFIX};

const CONNECTIONS: usize = 50;
const CLOSE: usize = 10;

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tasks whose name starts with `prefix`, checked to share one spawn site.
fn named<'a>(dump: &'a TaskDump, prefix: &str) -> (Vec<&'a TaskInfo>, &'static Location<'static>) {
    let tasks: Vec<_> = dump
        .tasks()
        .iter()
        .filter(|t| t.name().is_some_and(|n| n.starts_with(prefix)))
        .collect();
    assert!(!tasks.is_empty(), "no {prefix:?} tasks in\n{dump:#}");
    let site = tasks[0].spawned_at();
    assert!(
        tasks.iter().all(|t| t.spawned_at() == site),
        "{prefix:?} tasks come from one spawn site:\n{dump:#}"
    );
    assert!(site.file().ends_with("dump_demo.rs"), "{site}");
    (tasks, site)
}

/// The peer in a `conn PEER` / `keepalive PEER` name.
fn peer<'a>(t: &'a TaskInfo, prefix: &str) -> &'a str {
    t.name().unwrap().strip_prefix(prefix).unwrap()
}

/// The grouped view's count and wait kinds for `site`.
fn group(dump: &TaskDump, site: &'static Location<'static>) -> (usize, Vec<(&'static str, usize)>) {
    let groups: Vec<_> = dump
        .grouped()
        .into_iter()
        .filter(|g| g.spawned_at == site)
        .collect();
    assert_eq!(groups.len(), 1, "one group (all idle) at {site}:\n{dump}");
    assert_eq!(groups[0].state, TaskState::Idle);
    (groups[0].count, groups[0].waiting_on.clone())
}

#[test]
fn dump_finds_the_ticker_leak() {
    let captured = Captured::default();
    // Global: the warning is emitted on the worker thread whose spawn crosses the mark.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer({
                let captured = captured.clone();
                move || captured.clone()
            })
            .with_ansi(false)
            .finish(),
    )
    .unwrap();

    let report = run(&Config {
        connections: CONNECTIONS,
        close: CLOSE,
        // Tickers that fire while the demo runs: the dumps must still find them at rest.
        keepalive: Duration::from_millis(20),
        linger: Duration::from_millis(50),
        task_count_warning: CONNECTIONS,
        ..Config::default()
    })
    .unwrap();
    let (before, after) = (&report.before, &report.after);

    // Every connection open: accept loop + a handler and a ticker per connection.
    assert_eq!(before.tasks().len(), 1 + 2 * CONNECTIONS, "{before:#}");
    let (accept, _) = named(before, ACCEPT_TASK);
    assert_eq!(accept.len(), 1);
    assert_eq!(accept[0].name(), Some(ACCEPT_TASK));
    assert_eq!(accept[0].state(), TaskState::Idle);
    assert!(
        matches!(
            accept[0].waiting_on(),
            Some(WaitingOn::Io {
                op: "accept",
                fd: Some(_)
            })
        ),
        "{}",
        accept[0]
    );

    let (handlers, handler_site) = named(before, HANDLER_PREFIX);
    assert_eq!(handlers.len(), CONNECTIONS, "{before:#}");
    let mut fds = HashSet::new();
    for h in &handlers {
        assert_eq!(h.state(), TaskState::Idle, "{h}");
        match h.waiting_on() {
            Some(WaitingOn::Io {
                op: "recv",
                fd: Some(fd),
            }) => fds.insert(fd),
            other => panic!("a handler waits on its socket's recv, not {other:?}: {h}"),
        };
    }
    assert_eq!(fds.len(), CONNECTIONS, "each handler reads its own socket");

    let (tickers, ticker_site) = named(before, TICKER_PREFIX);
    assert_ne!(ticker_site, handler_site);
    assert_eq!(tickers.len(), CONNECTIONS, "{before:#}");
    for t in &tickers {
        assert_eq!(t.state(), TaskState::Idle, "{t}");
        assert!(
            matches!(t.waiting_on(), Some(WaitingOn::Timer { .. })),
            "a ticker sleeps: {t}"
        );
    }
    // The grouped view a reader scans says the same.
    assert_eq!(
        group(before, handler_site),
        (CONNECTIONS, vec![("recv", CONNECTIONS)])
    );
    assert_eq!(
        group(before, ticker_site),
        (CONNECTIONS, vec![("sleep", CONNECTIONS)])
    );

    // After CLOSE connections closed: their handlers are gone, their tickers are not.
    let (handlers_after, _) = named(after, HANDLER_PREFIX);
    let (tickers_after, _) = named(after, TICKER_PREFIX);
    assert_eq!(handlers_after.len(), CONNECTIONS - CLOSE, "{after:#}");
    assert_eq!(tickers_after.len(), CONNECTIONS, "{after:#}");
    assert_eq!(
        after.tasks().len(),
        1 + 2 * CONNECTIONS - CLOSE,
        "{after:#}"
    );
    assert_eq!(
        group(after, handler_site),
        (CONNECTIONS - CLOSE, vec![("recv", CONNECTIONS - CLOSE)])
    );
    assert_eq!(
        group(after, ticker_site),
        (CONNECTIONS, vec![("sleep", CONNECTIONS)])
    );
    let open: HashSet<_> = handlers_after
        .iter()
        .map(|h| peer(h, HANDLER_PREFIX))
        .collect();
    let orphans = tickers_after
        .iter()
        .filter(|t| !open.contains(peer(t, TICKER_PREFIX)))
        .count();
    assert_eq!(orphans, CLOSE, "a ticker outlives each closed connection");

    // The report names the ticker site, and only it, as the leak.
    let leaks = report.leaking_sites();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0].spawned_at, ticker_site);
    assert_eq!(
        (leaks[0].before, leaks[0].after),
        (CONNECTIONS, CONNECTIONS)
    );

    // The watermark warned while the connections were coming in, naming this file.
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let warning = log
        .lines()
        .find(|l| l.contains("live tasks passed the warning watermark"))
        .unwrap_or_else(|| panic!("no watermark warning in:\n{log}"));
    assert!(warning.contains("dump_demo.rs"), "{warning}");
}

#[test]
fn closing_more_than_were_opened_is_an_error() {
    let err = run(&Config {
        connections: 5,
        close: 6,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}
