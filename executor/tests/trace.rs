//! The event recorder writes a Chrome trace holding the scripted events and an HTML
//! timeline that draws them (checked in headless Chromium), and the task hooks fire
//! once per spawn, termination and poll.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::with_watchdog;
use serde_json::Value;
use uringo::task::Id;
use uringo::{Builder, Runtime, TaskMeta};

const SPAWNED: usize = 64;

fn temp_base(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uringo-trace-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("trace")
}

fn recording_runtime(base: &Path) -> Runtime {
    Builder::new()
        .worker_threads(2)
        // Only steals move work in this script: no monitor retakes.
        .stuck_poll_threshold(None)
        .trace_recorder(base)
        .build()
        .unwrap()
}

fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// One task spawns `SPAWNED` spinning tasks on its worker and returns their ids; the
/// other worker, woken by the spawns, has to steal to get any of them.
fn unbalanced_load(rt: &Runtime) -> HashSet<u64> {
    rt.block_on(async {
        uringo::spawn(async {
            let tasks: Vec<_> = (0..SPAWNED)
                .map(|_| uringo::spawn(async { spin(Duration::from_micros(300)) }))
                .collect();
            let ids = tasks.iter().map(|t| id_u64(t.id())).collect();
            for t in tasks {
                t.await.unwrap();
            }
            ids
        })
        .await
        .unwrap()
    })
}

fn id_u64(id: Id) -> u64 {
    id.to_string().parse().unwrap()
}

fn events(trace: &Value) -> &Vec<Value> {
    trace["traceEvents"].as_array().expect("traceEvents array")
}

fn named<'a>(trace: &'a Value, ph: &str, name: &str) -> Vec<&'a Value> {
    events(trace)
        .iter()
        .filter(|e| e["ph"] == ph && e["name"] == name)
        .collect()
}

fn polls(trace: &Value) -> Vec<&Value> {
    events(trace)
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "poll")
        .collect()
}

#[test]
fn the_chrome_trace_holds_the_scripted_events() {
    with_watchdog("trace_json", || {
        let base = temp_base("json");
        let rt = recording_runtime(&base);
        let ids = unbalanced_load(&rt);
        assert_eq!(ids.len(), SPAWNED);
        rt.handle().write_trace(&base).unwrap();
        let text = std::fs::read_to_string(base.with_extension("json")).unwrap();
        let trace: Value = serde_json::from_str(&text).expect("the trace is valid JSON");

        // A thread name per worker plus the "outside" lane.
        let names: Vec<_> = named(&trace, "M", "thread_name")
            .iter()
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["worker 0", "worker 1", "outside"]);

        // Exactly one spawn per scripted task, located in this file.
        let spawns: Vec<_> = named(&trace, "i", "spawn")
            .into_iter()
            .filter(|e| ids.contains(&e["args"]["task"].as_u64().unwrap()))
            .collect();
        assert_eq!(spawns.len(), SPAWNED);
        for s in &spawns {
            let at = s["args"]["spawned_at"].as_str().unwrap();
            assert!(at.contains("tests/trace.rs"), "spawn location {at}");
            assert!(s["tid"].as_u64().unwrap() < 2, "spawned on a worker");
        }

        // Every task was polled to completion and terminated once.
        let polled: HashSet<u64> = polls(&trace)
            .iter()
            .map(|p| p["args"]["task"].as_u64().unwrap())
            .collect();
        assert!(ids.is_subset(&polled), "a scripted task has no poll event");
        let terminated: Vec<u64> = named(&trace, "i", "terminate")
            .iter()
            .map(|e| e["args"]["task"].as_u64().unwrap())
            .filter(|id| ids.contains(id))
            .collect();
        assert_eq!(terminated.len(), SPAWNED);
        assert_eq!(terminated.iter().collect::<HashSet<_>>().len(), SPAWNED);

        // The idle worker stole from the loaded one, and the flow arrow points at a
        // poll of a stolen task.
        let steals = named(&trace, "i", "steal");
        assert!(
            !steals.is_empty(),
            "no steal with two workers and one loaded queue"
        );
        for s in &steals {
            let (thief, victim) = (
                s["tid"].as_u64().unwrap(),
                s["args"]["victim"].as_u64().unwrap(),
            );
            assert_ne!(thief, victim);
            assert!(s["args"]["count"].as_u64().unwrap() >= 1);
        }
        let stolen_polled_elsewhere = polls(&trace).iter().any(|p| {
            steals
                .iter()
                .any(|s| s["args"]["task"] == p["args"]["task"] && s["tid"] == p["tid"])
        });
        assert!(stolen_polled_elsewhere, "no stolen task ran on the thief");
        assert_eq!(
            named(&trace, "s", "steal").len(),
            named(&trace, "f", "steal").len()
        );

        // Polls on one worker never overlap.
        for tid in 0..2u64 {
            let mut lane: Vec<(f64, f64)> = polls(&trace)
                .iter()
                .filter(|p| p["tid"] == tid)
                .map(|p| (p["ts"].as_f64().unwrap(), p["dur"].as_f64().unwrap()))
                .collect();
            lane.sort_by(|a, b| a.0.total_cmp(&b.0));
            for w in lane.windows(2) {
                assert!(w[0].0 + w[0].1 <= w[1].0 + 1e-3, "overlapping polls {w:?}");
            }
        }
        assert_eq!(trace["otherData"]["dropped"], 0);

        // The shutdown write produces the same files at the configured path.
        std::fs::remove_file(base.with_extension("json")).unwrap();
        drop(rt);
        let text = std::fs::read_to_string(base.with_extension("json")).unwrap();
        let at_shutdown: Value = serde_json::from_str(&text).unwrap();
        assert!(named(&at_shutdown, "i", "spawn").len() >= SPAWNED);
        assert!(base.with_extension("html").exists());
        std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
    });
}

#[test]
fn a_full_buffer_keeps_the_newest_events_and_counts_the_dropped() {
    with_watchdog("trace_bounded", || {
        let base = temp_base("bounded");
        let rt = Builder::new()
            .worker_threads(1)
            .trace_events_per_worker(64)
            .trace_recorder(&base)
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..200 {
                uringo::spawn(async {}).await.unwrap();
            }
        });
        rt.handle().write_trace(&base).unwrap();
        let text = std::fs::read_to_string(base.with_extension("json")).unwrap();
        let trace: Value = serde_json::from_str(&text).unwrap();
        assert!(trace["otherData"]["dropped"].as_u64().unwrap() > 0);
        assert!(
            polls(&trace).len() <= 32,
            "more polls than the buffer holds"
        );
        drop(rt);
        std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
    });
}

#[test]
fn write_trace_without_recording_is_a_clear_error() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let err = rt.handle().write_trace(temp_base("off")).unwrap_err();
    assert!(err.to_string().contains("trace_recorder"), "{err}");
}

/// `<div id="summary" data-lanes=.. data-bars=..>` as the page left it after drawing.
fn summary_attr(dom: &str, attr: &str) -> Option<u64> {
    let div = &dom[dom.find("id=\"summary\"")?..];
    let div = &div[..div.find('>')?];
    let key = format!("data-{attr}=\"");
    let rest = &div[div.find(&key)? + key.len()..];
    rest[..rest.find('"')?].parse().ok()
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_html_timeline_draws_every_lane_and_poll_in_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: chromium is not installed (apt-get install -y chromium); .ci/run installs it"
        );
        return;
    };
    with_watchdog("trace_html", move || {
        let base = temp_base("html");
        let rt = recording_runtime(&base);
        unbalanced_load(&rt);
        rt.handle().write_trace(&base).unwrap();
        drop(rt);
        let trace: Value =
            serde_json::from_str(&std::fs::read_to_string(base.with_extension("json")).unwrap())
                .unwrap();
        let html = base.with_extension("html");
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--virtual-time-budget=5000",
            ])
            .arg(format!(
                "--user-data-dir={}",
                base.with_extension("profile").display()
            ))
            .arg("--dump-dom")
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            dom.contains("id=\"summary\""),
            "chromium produced no DOM: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            summary_attr(&dom, "lanes"),
            Some(3),
            "two workers and outside"
        );
        // The initial view fits the whole trace: every poll of the JSON is a bar.
        let bars = summary_attr(&dom, "bars").expect("no data-bars: the script failed");
        assert_eq!(bars, polls(&trace).len() as u64);
        assert!(bars >= SPAWNED as u64);
        let arrows = summary_attr(&dom, "arrows").unwrap();
        assert!(arrows >= 1, "no steal or wake arrow drawn");
        std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
        // The screenshot in docs/ is refreshed on request, from a livelier workload.
        if let Ok(png) = std::env::var("URINGO_TIMELINE_SCREENSHOT") {
            let base = temp_base("demo");
            let rt = recording_runtime(&base);
            demo_workload(&rt);
            drop(rt);
            let html = base.with_extension("html");
            let status = Command::new(chromium)
                .args([
                    "--headless",
                    "--disable-gpu",
                    "--no-sandbox",
                    "--hide-scrollbars",
                ])
                .arg(format!(
                    "--user-data-dir={}",
                    base.with_extension("profile").display()
                ))
                .arg(format!("--screenshot={png}"))
                .arg("--window-size=1400,700")
                .arg(format!("file://{}", html.display()))
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
        }
    });
}

/// Timers, a ping-pong over a socket pair and an unbalanced load: every kind of event.
fn demo_workload(rt: &Runtime) {
    rt.block_on(async {
        uringo::spawn(async {
            let sleepers: Vec<_> = (0..6u64)
                .map(|i| {
                    uringo::spawn(async move {
                        for _ in 0..4 {
                            uringo::time::sleep(Duration::from_millis(1 + i % 3)).await;
                            spin(Duration::from_micros(300));
                        }
                    })
                })
                .collect();
            let (a, b) = uringo::net::UnixStream::pair().unwrap();
            let echo = uringo::spawn(async move {
                for _ in 0..20 {
                    let (n, buf) = b.read(Vec::with_capacity(8)).await;
                    if n.unwrap() == 0 {
                        return;
                    }
                    let (res, _) = b.write_all(buf).await;
                    res.unwrap();
                }
            });
            for _ in 0..20 {
                let (res, _) = a.write_all(b"ping".to_vec()).await;
                res.unwrap();
                let (n, _) = a.read(Vec::with_capacity(8)).await;
                n.unwrap();
            }
            echo.await.unwrap();
            for s in sleepers {
                s.await.unwrap();
            }
        })
        .await
        .unwrap()
    });
    unbalanced_load(rt);
}

/// Counts per task id.
#[derive(Default)]
struct Seen(Mutex<HashMap<Id, usize>>);

impl Seen {
    fn hook(self: &Arc<Self>) -> impl Fn(&TaskMeta) + Send + Sync + 'static {
        let seen = self.clone();
        move |meta| *seen.0.lock().unwrap().entry(meta.id()).or_default() += 1
    }

    fn counts(&self) -> HashMap<Id, usize> {
        self.0.lock().unwrap().clone()
    }
}

#[test]
fn task_hooks_fire_once_per_spawn_termination_and_poll() {
    with_watchdog("trace_hooks", || {
        let (spawned, terminated, before, after) = (
            Arc::new(Seen::default()),
            Arc::new(Seen::default()),
            Arc::new(Seen::default()),
            Arc::new(Seen::default()),
        );
        let located_here = Arc::new(AtomicUsize::new(0));
        let rt = Builder::new()
            .worker_threads(2)
            .on_task_spawn({
                let hook = spawned.hook();
                let located_here = located_here.clone();
                move |meta| {
                    if meta.spawned_at().file().ends_with("trace.rs") {
                        located_here.fetch_add(1, Ordering::Relaxed);
                    }
                    hook(meta)
                }
            })
            .on_task_terminate(terminated.hook())
            .on_before_task_poll(before.hook())
            .on_after_task_poll(after.hook())
            .build()
            .unwrap();
        // Task i yields i times, so it is polled i + 1 times.
        let tasks: Vec<(Id, usize)> = rt.block_on(async {
            let handles: Vec<_> = (0..20)
                .map(|i| {
                    uringo::spawn(async move {
                        for _ in 0..i {
                            uringo::task::yield_now().await;
                        }
                    })
                })
                .collect();
            let mut tasks = Vec::new();
            for (i, h) in handles.into_iter().enumerate() {
                tasks.push((h.id(), i + 1));
                h.await.unwrap();
            }
            tasks
        });
        // One more that never finishes: cancelled at shutdown, terminated once.
        let pending = rt.spawn(std::future::pending::<()>()).id();
        rt.block_on(uringo::time::sleep(Duration::from_millis(5)));
        drop(rt);

        let (spawned, terminated) = (spawned.counts(), terminated.counts());
        let (before, after) = (before.counts(), after.counts());
        assert_eq!(spawned.len(), tasks.len() + 1);
        assert!(spawned.values().all(|&n| n == 1));
        assert_eq!(located_here.load(Ordering::Relaxed), tasks.len() + 1);
        assert_eq!(
            terminated, spawned,
            "every spawned task terminates exactly once"
        );
        for (id, polls) in &tasks {
            assert_eq!(before.get(id), Some(polls), "polls of task {id}");
            assert_eq!(after.get(id), Some(polls), "poll ends of task {id}");
        }
        assert_eq!(before.get(&pending), Some(&1));
        assert_eq!(after.get(&pending), Some(&1));
    });
}
