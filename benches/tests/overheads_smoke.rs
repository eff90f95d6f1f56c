//! `headtohead --overheads --smoke --json` end to end: the flag is parsed, every variant
//! of both experiments runs, the table is printed and the JSON carries every figure.
//! No timing is asserted: only that the figures exist, are positive where they must be,
//! and that the latency report saw the default runtime's polls.

use std::process::Command;

#[test]
fn overheads_smoke_run_prints_the_tables_and_writes_every_figure() {
    let dir = std::env::temp_dir().join(format!("uringo-overheads-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("overheads.json");
    let out = Command::new(env!("CARGO_BIN_EXE_headtohead"))
        .args(["--overheads", "--smoke", "--rounds", "2", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "headtohead --overheads failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| task registry (spawn_many_local"),
        "{stdout}"
    );
    assert!(stdout.contains("| poll timing (yield_many"), "{stdout}");
    assert!(stdout.contains("| search spin (chained_spawn"), "{stdout}");
    assert!(stdout.contains("| sched latency | "), "{stdout}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // --smoke forces one round whatever --rounds says: it checks, it does not measure.
    assert_eq!(doc["rounds"], 1);
    let experiments = doc["overheads"]["experiments"].as_array().unwrap();
    let names: Vec<_> = experiments
        .iter()
        .map(|e| (e["shape"].as_str().unwrap(), e["without"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("spawn_many_local", "uringo-no-registry"),
            ("yield_many", "uringo-untimed"),
            ("chained_spawn", "uringo-no-spin")
        ]
    );
    for e in experiments {
        let variants: Vec<_> = e["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                assert!(v["median_us"].as_f64().unwrap() > 0.0, "{v}");
                v["variant"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            variants,
            [
                "uringo",
                e["without"].as_str().unwrap(),
                "uringo#2",
                "tokio"
            ]
        );
        for key in [
            "cost_ratio",
            "aa_ratio",
            "uringo_vs_tokio",
            "without_vs_tokio",
        ] {
            let x = e[key].as_f64().unwrap_or_else(|| panic!("{key} in {e}"));
            assert!(x > 0.0 && x.is_finite(), "{key} = {x}");
        }
        assert!(e["cost_per_op_ns"].as_f64().unwrap().is_finite());
    }
    let latency = &doc["overheads"]["sched_latency_yield_many"];
    assert_eq!(latency["rounds"], 1);
    for hist in ["sched_latency", "poll_time"] {
        let h = &latency[hist];
        // One poll in 32 of the round's 200 200 is timed, at random.
        assert!(
            h["samples"].as_u64().unwrap() >= 200_000 / 48,
            "{hist}: {h}"
        );
        let (p50, p99, max) = (
            h["p50_ns"].as_u64().unwrap(),
            h["p99_ns"].as_u64().unwrap(),
            h["max_ns"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{hist}: {h}");
    }
}
