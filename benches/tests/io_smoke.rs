//! `headtohead --smoke` runs every I/O shape end to end: server children start, the
//! load generator gets its echoes back, CPU time and RSS are read, the JSON carries
//! them. No timing is asserted: only that every figure exists and is positive.

use std::process::Command;

fn headtohead() -> Command {
    Command::new(env!("CARGO_BIN_EXE_headtohead"))
}

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x > 0.0 && x.is_finite(), "{key} = {x} in {v}");
    x
}

#[test]
fn smoke_run_of_the_io_shapes_yields_positive_figures() {
    let (_, doc) = smoke_json(
        "uringo-io-smoke",
        "echo_pingpong,echo_pingpong_pool,echo_monoio,idle_rss",
    );

    let echo = doc["io"]["echo"].as_array().unwrap();
    let shapes: Vec<_> = echo.iter().map(|e| e["shape"].as_str().unwrap()).collect();
    assert_eq!(
        shapes,
        ["echo_pingpong", "echo_pingpong_pool", "echo_monoio"]
    );
    for e in echo {
        for key in ["a_rps", "b_rps", "a_cpu_us_per_req", "b_cpu_us_per_req"] {
            positive(e, key);
        }
    }
    assert_eq!(echo[0]["a"], "uringo");
    assert_eq!(echo[1]["a"], "uringo-pool");
    assert_eq!(echo[0]["b"], "tokio");
    assert_eq!(
        (&echo[2]["a"], &echo[2]["b"]),
        (&"uringo".into(), &"monoio".into())
    );

    let idle = doc["io"]["idle"].as_array().unwrap();
    let servers: Vec<_> = idle.iter().map(|r| r["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["uringo-pool", "uringo", "tokio"]);
    for r in idle {
        assert_eq!(r["all_alive"], true, "a connection did not echo: {r}");
        positive(r, "rss_growth_kib");
        positive(r, "bytes_per_connection");
        let n = r["connections"].as_u64().unwrap();
        for round in r["rounds"].as_array().unwrap() {
            assert_eq!(round["alive"].as_u64(), Some(n), "{round}");
        }
    }
}

/// The floors (echo and proxy, written straight on io_uring) serve the load generator:
/// every round completes requests and the loadgen's check of every echo passes (a
/// garbled or lost byte fails the round, so the run). The table names each row's
/// servers when they are not its header's.
#[test]
fn smoke_run_of_the_floors_forwards_and_echoes() {
    let (stdout, doc) = smoke_json("uringo-floor-smoke", "echo_floor,proxy_floor");

    let echo = doc["io"]["echo"].as_array().unwrap();
    let pairs: Vec<_> = echo
        .iter()
        .map(|e| {
            (
                e["shape"].as_str().unwrap(),
                e["a"].as_str().unwrap(),
                e["b"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("echo_floor", "uringo-pool", "floor"),
            ("proxy_floor", "proxy-uringo", "proxy-floor"),
        ]
    );
    for e in echo {
        for key in ["a_rps", "b_rps", "a_cpu_us_per_req", "b_cpu_us_per_req"] {
            positive(e, key);
        }
        for round in ["a_rounds", "b_rounds"]
            .iter()
            .flat_map(|k| e[k].as_array().unwrap())
        {
            assert!(round["requests"].as_u64().unwrap() > 0, "{round}");
        }
    }
    assert!(stdout.contains("| echo_floor |"), "{stdout}");
    assert!(
        stdout.contains("| proxy_floor (proxy-uringo vs proxy-floor) |"),
        "{stdout}"
    );
    // The "× floor" column: each side's server CPU over its floor's; a floor's own is 1.
    assert!(stdout.contains("server CPU × floor"), "{stdout}");
    for e in echo {
        positive(e, "a_cpu_x_floor");
        assert_eq!(e["b_cpu_x_floor"], 1.0, "{e}");
    }
}

/// The proxy floor on a registered file table forwards like the plain one (every round
/// completes requests, each echo verified by the load generator).
#[test]
fn smoke_run_of_the_proxy_floor_on_registered_files_forwards() {
    let (_, doc) = smoke_json("uringo-fixed-smoke", "proxy_floor_fixed");
    let echo = doc["io"]["echo"].as_array().unwrap();
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0]["b"], "proxy-floor-fixed");
    for round in ["a_rounds", "b_rounds"]
        .iter()
        .flat_map(|k| echo[0][k].as_array().unwrap())
    {
        assert!(round["requests"].as_u64().unwrap() > 0, "{round}");
    }
}

/// Runs `headtohead --smoke --filter FILTER --json` (the JSON in a temporary directory
/// named after `tag`); returns its stdout and the JSON, after checking it succeeded.
fn smoke_json(tag: &str, filter: &str) -> (String, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("io.json");
    let out = headtohead()
        .args(["--smoke", "--filter", filter, "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "headtohead failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (String::from_utf8_lossy(&out.stdout).into_owned(), doc)
}

#[test]
fn a_bad_serve_request_fails_with_a_message() {
    let out = headtohead().args(["--serve", "nginx"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("usage: --serve KIND"), "{stderr}");
}

/// `versus` (the README's main command) in smoke mode: it prints the table and writes
/// the HTML report with a bar per peer and shape.
#[test]
fn versus_smoke_prints_a_table_and_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("uringo-versus-smoke-{}", std::process::id()));
    let report = dir.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_versus"))
        .args(["--smoke", "--filter", "chained_spawn,echo_pingpong"])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "versus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| chained_spawn |"), "{stdout}");
    assert!(stdout.contains("| chained_spawn_as_tokio |"), "{stdout}");
    assert!(stdout.contains("| echo_pingpong |"), "{stdout}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    // chained_spawn and its tokio-exact twin: 2 bars each; echo: 2 throughput + 2 CPU.
    assert_eq!(html.matches("class=\"bar\"").count(), 8, "{html}");
    assert!(!html.contains("<script"), "the report needs no script");
    std::fs::remove_dir_all(&dir).unwrap();
}
