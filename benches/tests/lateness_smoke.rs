//! `headtohead --lateness` end to end on a small sample: every sleep of every runtime
//! fires, and none before its deadline. No lateness figure is asserted (they are the
//! host's), only that no timer fired early, which would be a bug on any host.

use std::process::Command;

#[test]
fn lateness_run_reports_every_sleep_and_none_fired_early() {
    let out = Command::new(env!("CARGO_BIN_EXE_headtohead"))
        .args([
            "--lateness",
            "--scale",
            "0.2",
            "--rounds",
            "2",
            "--workers",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "headtohead --lateness failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2000 sleeps over 0-200 ms x 2 rounds"),
        "{stdout}"
    );
    for runtime in ["uringo", "tokio", "floor (one thread sleeping)"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {runtime} |")))
            .unwrap_or_else(|| panic!("no row for {runtime} in {stdout}"));
        let early = row.trim_end_matches(" |").rsplit("| ").next().unwrap();
        assert_eq!(early, "0", "{runtime} fired sleeps early: {row}");
    }
}
