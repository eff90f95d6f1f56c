//! `URINGO_DUMP_ON` / `Builder::dump_on_signal`: the process signals itself and every
//! live runtime that asked for it writes its task dump to stderr.
//!
//! A signal handler is process-wide, so each test re-runs this binary as a child
//! process that builds its runtimes, raises the signal and waits for the dump; the
//! parent reads the child's stderr.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{wait_for, Captured};
use nix::sys::signal::{raise, Signal};

/// Set in the child, to the name of the scenario it must run.
const CHILD_ENV: &str = "URINGO_DUMP_SIGNAL_CHILD";

/// Runs test `name` again in a child with `scenario` and `URINGO_DUMP_ON=dump_on`.
fn run_child(name: &str, scenario: &str, dump_on: &str) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env("URINGO_DUMP_ON", dump_on)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-CHECKED"),
        "child {scenario} failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn child_scenario() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Where the child spawned what, printed for the parent as `SPAWNED <what> <line>`.
fn report_line(what: &str, line: u32) {
    println!("SPAWNED {what} {line}");
}

fn reported_line(stdout: &str, what: &str) -> u32 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("SPAWNED {what} ")))
        .unwrap_or_else(|| panic!("child did not report {what}\n{stdout}"))
        .parse()
        .unwrap()
}

/// The child's side: a runtime that asked for dumps and is dropped again, then a
/// runtime named `name` (with `builder_signal` set, if given) with three sleepers
/// spawned at one line, two at another and one named one; raises `signal` and waits
/// until exactly one dump is reported written.
fn child_dumps(name: &str, builder_signal: Option<(i32, bool)>, signal: Signal) {
    let captured = Captured::default();
    tracing::subscriber::set_global_default(captured.subscriber()).unwrap();
    // A runtime that asked for dumps but is gone when the signal comes: skipped.
    let gone = uringo::Builder::new()
        .worker_threads(1)
        .thread_name("dump-gone")
        .build()
        .unwrap();
    drop(gone);

    let mut builder = uringo::Builder::new();
    builder
        .worker_threads(1)
        .thread_name(name)
        .stuck_poll_threshold(None);
    if let Some((signal, full)) = builder_signal {
        builder.dump_on_signal(signal, full);
    }
    let rt = builder.build().unwrap();
    let polled = Arc::new(AtomicUsize::new(0));
    let sleeper = |polled: Arc<AtomicUsize>| async move {
        polled.fetch_add(1, Ordering::SeqCst);
        uringo::time::sleep(Duration::from_secs(3600)).await;
    };
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(rt.spawn(sleeper(polled.clone())));
        report_line("three", line!() - 1);
    }
    for _ in 0..2 {
        tasks.push(rt.spawn(sleeper(polled.clone())));
        report_line("two", line!() - 1);
    }
    let named = uringo::task::Builder::new().name("named-sleeper");
    tasks.push(named.spawn_on(sleeper(polled.clone()), rt.handle()));
    report_line("named", line!() - 1);
    wait_for("every task's first poll", || {
        polled.load(Ordering::SeqCst) == 6
    });

    raise(signal).unwrap();
    wait_for("the dump", || {
        captured
            .text()
            .contains("uringo task dump written to stderr")
    });
    // Only the live runtime dumps, once.
    assert_eq!(
        captured
            .text()
            .matches("uringo task dump written to stderr")
            .count(),
        1,
        "{}",
        captured.text()
    );
    drop(tasks);
    drop(rt);
    println!("CHILD-CHECKED");
}

/// The grouped line for `count` sleepers spawned at `line`, if stderr has one.
fn has_group(stderr: &str, count: usize, line: u32) -> bool {
    stderr.lines().any(|l| {
        l.trim_start().starts_with(&format!("{count} @ "))
            && l.contains(&format!("dump_signal.rs:{line}:"))
            && l.contains(&format!("[idle] waiting on sleep ×{count};"))
    })
}

#[test]
fn sigusr1_writes_the_grouped_dump_of_each_live_runtime_to_stderr() {
    const NAME: &str = "sigusr1_writes_the_grouped_dump_of_each_live_runtime_to_stderr";
    if child_scenario().is_some() {
        return child_dumps("dump-live", None, Signal::SIGUSR1);
    }
    let out = run_child(NAME, "grouped", "SIGUSR1");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let header = stderr
        .lines()
        .find(|l| l.starts_with("uringo: SIGUSR1: task dump of runtime \"dump-live\""))
        .unwrap_or_else(|| panic!("no dump header on stderr\n{stderr}"));
    assert!(
        header.contains(" at 20") && header.ends_with('Z'),
        "header without a UTC time: {header}"
    );
    assert!(
        !stderr.contains("\"dump-gone\""),
        "a dropped runtime dumped\n{stderr}"
    );
    assert!(stderr.contains("uringo task dump: 6 tasks"), "{stderr}");
    for (what, count) in [("three", 3), ("two", 2), ("named", 1)] {
        let line = reported_line(&stdout, what);
        assert!(
            has_group(&stderr, count, line),
            "no group of {count} at line {line}\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("named-sleeper"),
        "the grouped form lists single tasks\n{stderr}"
    );
}

#[test]
fn full_suffix_lists_every_task_with_its_name() {
    const NAME: &str = "full_suffix_lists_every_task_with_its_name";
    if child_scenario().is_some() {
        return child_dumps("dump-full", None, Signal::SIGUSR1);
    }
    let out = run_child(NAME, "full", "SIGUSR1:full");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("uringo: SIGUSR1: task dump of runtime \"dump-full\""),
        "{stderr}"
    );
    let task_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("task ") && l.contains("[idle] sleep, fires in"))
        .collect();
    assert_eq!(task_lines.len(), 6, "{stderr}");
    assert_eq!(
        task_lines
            .iter()
            .filter(|l| l.contains("\"named-sleeper\""))
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn the_builder_wins_over_the_environment() {
    const NAME: &str = "the_builder_wins_over_the_environment";
    if child_scenario().is_some() {
        // The environment asks for SIGUSR1 grouped; the code for SIGUSR2 in full.
        return child_dumps("dump-builder", Some((libc::SIGUSR2, true)), Signal::SIGUSR2);
    }
    let out = run_child(NAME, "builder", "SIGUSR1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("uringo: SIGUSR2: task dump of runtime \"dump-builder\""),
        "{stderr}"
    );
    assert!(stderr.contains("\"named-sleeper\" [idle]"), "{stderr}");
}

#[test]
fn an_invalid_setting_is_a_warning_and_the_runtime_still_builds() {
    const NAME: &str = "an_invalid_setting_is_a_warning_and_the_runtime_still_builds";
    if child_scenario().is_some() {
        let captured = Captured::default();
        let rt = tracing::subscriber::with_default(captured.subscriber(), || {
            uringo::Builder::new().worker_threads(1).build()
        })
        .expect("an invalid URINGO_DUMP_ON must not fail the build");
        assert_eq!(rt.block_on(rt.spawn(async { 6 * 7 })).unwrap(), 42);
        let logs = captured.text();
        let value = std::env::var("URINGO_DUMP_ON").unwrap();
        assert!(
            logs.contains("WARN") && logs.contains(&format!("URINGO_DUMP_ON={value:?} ignored")),
            "no warning for {value:?}:\n{logs}"
        );
        println!("CHILD-CHECKED");
        return;
    }
    for value in ["SIGKILL", "bogus", "11", "SIGUSR1:everything"] {
        let out = run_child(NAME, "invalid", value);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("uringo: "),
            "{value:?} dumped"
        );
    }
}

#[test]
fn the_builder_refuses_signals_it_must_not_take() {
    for signal in [libc::SIGKILL, libc::SIGSEGV, libc::SIGINT, 0, 4096] {
        let err = uringo::Builder::new()
            .worker_threads(1)
            .dump_on_signal(signal, false)
            .build()
            .expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&signal.to_string()), "{err}");
    }
}
