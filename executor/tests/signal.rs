//! `uringo::signal`: each signal raised at this process (by itself or by a child
//! process) reaches the receivers waiting for it, from `block_on` and from tasks, in
//! every runtime at once.
//!
//! Listening replaces a signal's default action for the whole process, so these tests
//! live in a binary of their own. Each test uses its own signal: deliveries coalesce and
//! a receiver may see one raised before it was created, so a shared signal would let one
//! test pass on another's delivery.

mod common;

use std::future::Future;
use std::pin::pin;
use std::process::Command;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};

use common::{runtime, with_watchdog};
use nix::sys::signal::{kill, Signal as Sig};
use nix::unistd::getpid;
use uringo::signal::{ctrl_c, signal, SignalKind};

fn raise(sig: Sig) {
    kill(getpid(), sig).unwrap();
}

#[test]
fn ctrl_c_in_block_on_sees_sigint() {
    with_watchdog("sigint", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut interrupts = ctrl_c().unwrap();
            assert_eq!(interrupts.kind(), SignalKind::interrupt());
            raise(Sig::SIGINT);
            assert_eq!(interrupts.recv().await, Some(()));
        });
    });
}

#[test]
fn sighup_in_block_on_is_seen_at_each_delivery() {
    with_watchdog("sighup", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut hangups = signal(SignalKind::hangup()).unwrap();
            for _ in 0..3 {
                raise(Sig::SIGHUP);
                assert_eq!(hangups.recv().await, Some(()));
            }
        });
    });
}

#[test]
fn sigterm_from_a_child_process_reaches_a_task() {
    with_watchdog("sigterm", || {
        let rt = runtime(2);
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiter = rt.spawn(async move {
            let mut terminate = signal(SignalKind::terminate()).unwrap();
            ready_tx.send(()).unwrap();
            terminate.recv().await
        });
        ready_rx.recv().unwrap();
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", std::process::id())])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(rt.block_on(waiter).unwrap(), Some(()));
    });
}

#[test]
fn two_runtimes_see_the_same_delivery() {
    with_watchdog("two runtimes", || {
        let (a, b) = (runtime(2), runtime(2));
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiters: Vec<_> = [&a, &b]
            .into_iter()
            .map(|rt| {
                let ready = ready_tx.clone();
                rt.spawn(async move {
                    let mut user1 = signal(SignalKind::user_defined1()).unwrap();
                    ready.send(()).unwrap();
                    user1.recv().await
                })
            })
            .collect();
        ready_rx.recv().unwrap();
        ready_rx.recv().unwrap();
        raise(Sig::SIGUSR1);
        for (rt, waiter) in [&a, &b].into_iter().zip(waiters) {
            assert_eq!(rt.block_on(waiter).unwrap(), Some(()));
        }
    });
}

#[test]
fn a_receiver_dropped_and_created_again_still_receives() {
    with_watchdog("re-created", || {
        let rt = runtime(2);
        rt.block_on(async {
            for _ in 0..3 {
                let mut user2 = signal(SignalKind::user_defined2()).unwrap();
                raise(Sig::SIGUSR2);
                assert_eq!(user2.recv().await, Some(()));
                drop(user2);
            }
        });
    });
}

#[test]
fn a_fresh_receiver_waits_until_its_signal_arrives() {
    with_watchdog("pending until raised", || {
        let rt = runtime(2);
        rt.block_on(async {
            let mut winch = signal(SignalKind::from_raw(libc::SIGWINCH)).unwrap();
            {
                let mut recv = pin!(winch.recv());
                let mut cx = Context::from_waker(Waker::noop());
                assert_eq!(
                    recv.as_mut().poll(&mut cx),
                    Poll::Pending,
                    "no SIGWINCH was raised yet"
                );
            }
            raise(Sig::SIGWINCH);
            assert_eq!(winch.recv().await, Some(()));
        });
    });
}

#[test]
fn signals_that_must_not_be_caught_are_refused() {
    for signum in [0, -3, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 32, 4096] {
        let err = signal(SignalKind::from_raw(signum)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(&signum.to_string()), "{err}");
    }
}
