//! `headtohead --smoke --filter http_proxy`: the http-proxy example and its tokio twin,
//! each run as its own binary in front of the bench's HTTP upstream, under the bench's
//! HTTP/1.1 load. The load generator checks every response (a 200 with the upstream's
//! body, whole; anything else fails the round and so the run), so a successful run with
//! requests in every round is the check. No timing is asserted.
//!
//! The proxies are binaries of uringo-examples, which `cargo test -p uringo-benches`
//! does not build: this test builds them (same profile, same target directory) first.
//! A test binary of its own: cargo runs test binaries one at a time, so the build and
//! the proxies do not starve another smoke run's servers of CPU.

use std::path::Path;
use std::process::Command;

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x > 0.0 && x.is_finite(), "{key} = {x} in {v}");
    x
}

/// Builds `http-proxy` and `http-proxy-tokio` beside the headtohead under test.
fn build_the_proxies(bin_dir: &Path) {
    let profile_dir = bin_dir.file_name().unwrap().to_str().unwrap();
    let target_dir = bin_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "uringo-examples"])
        .args(["--bin", "http-proxy", "--bin", "http-proxy-tokio"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // Cargo describes this test's package to it in CARGO_MANIFEST_DIR, CARGO_PKG_* and
    // the like; a build script that watches one of them (ring's watches
    // CARGO_MANIFEST_DIR) would see it change and rebuild, here and again in the next
    // ordinary build. The nested build gets the environment of an ordinary one.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_package = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ];
        if per_package.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(&*key);
        }
    }
    // target/debug is the dev profile's directory; others are named after their profile.
    if profile_dir != "debug" {
        cmd.args(["--profile", profile_dir]);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "building the proxies failed: {cmd:?}");
    for bin in ["http-proxy", "http-proxy-tokio"] {
        assert!(bin_dir.join(bin).is_file(), "{bin} is not in {bin_dir:?}");
    }
}

#[test]
fn smoke_run_of_the_http_proxies_gets_every_response_right() {
    let headtohead = Path::new(env!("CARGO_BIN_EXE_headtohead"));
    build_the_proxies(headtohead.parent().unwrap());

    let dir = std::env::temp_dir().join(format!("uringo-http-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("io.json");
    let out = Command::new(headtohead)
        .args(["--smoke", "--filter", "http_proxy"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "headtohead failed: {stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let echo = doc["io"]["echo"].as_array().unwrap();
    assert_eq!(echo.len(), 1, "{echo:?}");
    let e = &echo[0];
    assert_eq!(
        (&e["shape"], &e["a"], &e["b"]),
        (
            &"http_proxy".into(),
            &"http-proxy".into(),
            &"http-proxy-tokio".into()
        )
    );
    for key in ["a_rps", "b_rps", "a_cpu_us_per_req", "b_cpu_us_per_req"] {
        positive(e, key);
    }
    for round in ["a_rounds", "b_rounds"]
        .iter()
        .flat_map(|k| e[k].as_array().unwrap())
    {
        assert!(round["requests"].as_u64().unwrap() > 0, "{round}");
    }
    // No floor for the HTTP proxies: the column says so.
    assert!(e["a_cpu_x_floor"].is_null() && e["b_cpu_x_floor"].is_null());
    assert!(stdout.contains("| http_proxy |"), "{stdout}");
}
