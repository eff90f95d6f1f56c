//! `trickle` end to end at a tiny size: every gap gets a row with a figure per peer.

use std::process::Command;

#[test]
fn trickle_prints_a_row_per_gap_with_every_peer() {
    let out = Command::new(env!("CARGO_BIN_EXE_trickle"))
        .args(["1", "0.05"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "trickle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("µs |"))
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        // gap, achieved gap, three peers, the spin's cost ratio.
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "{row}");
        for cell in &cells[2..5] {
            let per_task: f64 = cell.split_whitespace().next().unwrap().parse().unwrap();
            assert!(per_task > 0.0, "{row}");
        }
        let ratio: f64 = cells[5].trim_end_matches('×').parse().unwrap();
        assert!(ratio.is_finite() && ratio > 0.0, "{row}");
    }
}
