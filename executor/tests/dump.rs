//! `Handle::dump`: exactly the scripted tasks, with their spawn locations and states.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_for, with_watchdog};
use uringo::task::TaskState;

#[test]
fn dump_lists_the_scripted_tasks_with_locations_and_states() {
    with_watchdog("dump", || {
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        // Three tasks that were polled once and now wait: idle.
        let polled = Arc::new(AtomicUsize::new(0));
        let idle: Vec<_> = (0..3)
            .map(|_| {
                let polled = polled.clone();
                rt.spawn(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<()>().await
                })
            })
            .collect();
        wait_for("the idle tasks' first poll", || {
            polled.load(Ordering::SeqCst) == 3
        });
        // One task that holds the only worker: running.
        let (started, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let running = {
            let (started, stop) = (started.clone(), stop.clone());
            rt.spawn(async move {
                started.store(true, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            })
        };
        wait_for("the spinner to start", || started.load(Ordering::SeqCst));
        // Two tasks that cannot run while the worker spins: scheduled.
        let scheduled: Vec<_> = (0..2).map(|_| rt.spawn(async {})).collect();

        let dump = rt.handle().dump();
        stop.store(true, Ordering::SeqCst);

        assert_eq!(dump.tasks().len(), 6, "{dump:#}");
        let info = |id: uringo::task::Id| {
            let t = dump.tasks().iter().find(|t| t.id() == id);
            let t = t.unwrap_or_else(|| panic!("task {id} missing from\n{dump:#}"));
            assert!(t.spawned_at().file().ends_with("dump.rs"), "{dump:#}");
            (t.state(), t.spawned_at())
        };
        let idle_info: Vec<_> = idle.iter().map(|h| info(h.id())).collect();
        let running_info = info(running.id());
        let scheduled_info: Vec<_> = scheduled.iter().map(|h| info(h.id())).collect();
        // Scheduled tasks say how long they have been runnable; they were never polled.
        for h in &scheduled {
            let t = dump.tasks().iter().find(|t| t.id() == h.id()).unwrap();
            assert!(
                t.runnable_for().is_some() && t.since_last_poll().is_none(),
                "{t}"
            );
            assert!(t.runnable_for().unwrap() <= t.age(), "{t}");
            assert_eq!(t.worker(), None, "{t}");
        }
        assert!(idle_info
            .iter()
            .all(|(s, l)| *s == TaskState::Idle && *l == idle_info[0].1));
        assert_eq!(running_info.0, TaskState::Running, "{dump:#}");
        assert!(scheduled_info
            .iter()
            .all(|(s, l)| *s == TaskState::Scheduled && *l == scheduled_info[0].1));
        assert_ne!(
            idle_info[0].1, running_info.1,
            "each spawn site is its own location"
        );
        assert_ne!(running_info.1, scheduled_info[0].1);
        let ids: Vec<_> = dump.tasks().iter().map(|t| t.id()).collect();
        for h in idle.iter().chain(scheduled.iter()) {
            assert!(ids.contains(&h.id()));
        }
        assert!(ids.contains(&running.id()));

        let grouped = dump.to_string();
        assert!(
            grouped.starts_with("uringo task dump: 6 tasks"),
            "{grouped}"
        );
        let first = grouped.lines().nth(1).unwrap();
        assert!(
            first.trim_start().starts_with("3 @ ") && first.contains("[idle]"),
            "{grouped}"
        );
        let full = format!("{dump:#}");
        for h in &idle {
            assert!(full.contains(&format!("task {} [idle]", h.id())), "{full}");
        }
        rt.block_on(running).unwrap();
        for h in scheduled {
            rt.block_on(h).unwrap();
        }
        assert_eq!(
            rt.handle().dump().tasks().len(),
            3,
            "finished tasks leave the dump"
        );
        for h in idle {
            h.abort();
        }
    });
}

/// The dump says what each waiting task waits on, where it last ran, how old it is, and
/// keeps completed tasks whose output nobody took.
#[test]
fn dump_shows_waits_workers_ages_names_and_unjoined_outputs() {
    use std::os::fd::AsRawFd;
    use uringo::task::WaitingOn;

    with_watchdog("dump_waits", || {
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        let spawned = Instant::now();
        let sleeper = rt.spawn(uringo::time::sleep(Duration::from_secs(3600)));
        let (client, server) = rt.block_on(async {
            let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = uringo::net::TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            (client, server)
        });
        let server_fd = server.as_raw_fd();
        let reader = uringo::task::Builder::new().name("reader").spawn_on(
            async move { server.read(Vec::with_capacity(64)).await.1 },
            rt.handle(),
        );
        // `timeout(read)`: the read is polled first, so it is what the task waits on.
        let (client2, server2) = rt.block_on(async {
            let listener = uringo::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = uringo::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            (client, listener.accept().await.unwrap().0)
        });
        let server2_fd = server2.as_raw_fd();
        let timed_reader = rt.spawn(async move {
            uringo::time::timeout(
                Duration::from_secs(3600),
                server2.read(Vec::with_capacity(64)),
            )
            .await
            .is_ok()
        });
        let joiner = {
            let sleeper_id = sleeper.id();
            let inner = rt.spawn(std::future::pending::<()>());
            let inner_id = inner.id();
            (
                rt.spawn(async move { inner.await.is_err() }),
                inner_id,
                sleeper_id,
            )
        };
        let (joiner, inner_id, _) = joiner;
        let done = rt.spawn(async { 42 });
        wait_for("the finished task to complete", || done.is_finished());
        wait_for("every waiter to be polled", || {
            rt.handle()
                .dump()
                .tasks()
                .iter()
                .filter(|t| t.waiting_on().is_some())
                .count()
                == 4
        });

        let dump = rt.handle().dump();
        let find = |id| {
            dump.tasks()
                .iter()
                .find(|t| t.id() == id)
                .unwrap_or_else(|| panic!("task {id} missing:\n{dump:#}"))
        };
        let sleep = find(sleeper.id());
        match sleep.waiting_on() {
            Some(WaitingOn::Timer { deadline }) => {
                assert!(deadline >= spawned + Duration::from_secs(3600), "{dump:#}");
                assert!(
                    deadline <= Instant::now() + Duration::from_secs(3600),
                    "{dump:#}"
                );
            }
            other => panic!("sleeper waits on {other:?}:\n{dump:#}"),
        }
        let read = find(reader.id());
        assert_eq!(read.name(), Some("reader"));
        assert_eq!(
            read.waiting_on(),
            Some(WaitingOn::Io {
                op: "recv",
                fd: Some(server_fd)
            }),
            "{dump:#}"
        );
        assert_eq!(
            find(timed_reader.id()).waiting_on(),
            Some(WaitingOn::Io {
                op: "recv",
                fd: Some(server2_fd)
            }),
            "{dump:#}"
        );
        assert_eq!(
            find(joiner.id()).waiting_on(),
            Some(WaitingOn::Task(inner_id))
        );
        assert_eq!(
            find(inner_id).waiting_on(),
            None,
            "pending() is not a uringo wait"
        );
        let finished = find(done.id());
        assert_eq!(finished.state(), TaskState::Completed, "{dump:#}");
        for t in dump.tasks() {
            assert_eq!(t.worker(), Some(0), "{t}");
            assert!(t.since_last_poll().is_some(), "{t}");
            assert!(t.since_last_poll().unwrap() <= t.age(), "{t}");
            assert!(t.age() <= spawned.elapsed(), "{t}");
        }
        let full = format!("{dump:#}");
        assert!(full.contains(&format!("recv on fd {server_fd}")), "{full}");
        assert!(full.contains("\"reader\""), "{full}");
        assert!(full.contains("[completed, not joined]"), "{full}");
        let grouped = dump.to_string();
        assert!(grouped.contains("waiting on recv ×1"), "{grouped}");

        // Live tasks exclude the finished one; taking its output removes it from the dump.
        assert_eq!(rt.metrics().num_alive_tasks(), dump.tasks().len() - 1);
        assert_eq!(rt.block_on(done).unwrap(), 42);
        let ids: Vec<_> = rt.handle().dump().tasks().iter().map(|t| t.id()).collect();
        assert_eq!(ids.len(), dump.tasks().len() - 1);
        assert!(!ids.contains(&finished.id()));

        // Dropping the handle of a completed task removes it too.
        let dropped = rt.spawn(async {});
        wait_for("the second finished task", || dropped.is_finished());
        let id = dropped.id();
        assert!(rt.handle().dump().tasks().iter().any(|t| t.id() == id));
        drop(dropped);
        assert!(!rt.handle().dump().tasks().iter().any(|t| t.id() == id));

        // The reader wakes when data arrives and leaves the dump once joined.
        rt.block_on(async {
            let (r, _) = client.write_all(b"hi".to_vec()).await;
            r.unwrap();
        });
        assert_eq!(rt.block_on(reader).unwrap(), b"hi");
        sleeper.abort();
        timed_reader.abort();
        joiner.abort();
        drop((client2, rt));
    });
}

/// A copy whose flows are relayed at ring level (its task is not polled per message)
/// shows in a dump as waiting on the receive of one of its sockets, as a copy driven by
/// its task does.
#[test]
fn a_relayed_copy_shows_waiting_on_its_receive() {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream as StdStream;
    use uringo::net::UnixStream;
    use uringo::task::WaitingOn;

    with_watchdog("dump_relay", || {
        let rt = uringo::Builder::new()
            .worker_threads(1)
            .stuck_poll_threshold(None)
            .build()
            .unwrap();
        let (a_outer, a_inner) = StdStream::pair().unwrap();
        let (b_inner, b_outer) = StdStream::pair().unwrap();
        let fds = [a_inner.as_raw_fd(), b_inner.as_raw_fd()];
        let copy = rt.spawn(async move {
            let mut a = UnixStream::from_std(a_inner);
            let mut b = UnixStream::from_std(b_inner);
            uringo::io::copy_bidirectional(&mut a, &mut b).await
        });
        let waits = || {
            let dump = rt.handle().dump();
            let task = dump.tasks().iter().find(|t| t.id() == copy.id()).cloned();
            task.and_then(|t| t.waiting_on())
        };
        wait_for("the copy to wait", || waits().is_some());
        match waits() {
            Some(WaitingOn::Io {
                op: "recv",
                fd: Some(fd),
            }) if fds.contains(&fd) => {}
            other => panic!("the copy waits on {other:?}"),
        }
        drop((a_outer, b_outer));
        let copied = rt.block_on(copy).unwrap().unwrap();
        assert_eq!(copied, (0, 0));
    });
}
