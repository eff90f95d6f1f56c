//! Watching the proxy process from outside: its open fds and its RSS.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{fd_count, fd_kinds, rss_kib};

/// A process's open fds, and how many of them are pipes.
#[derive(Clone, Copy)]
pub struct Fds {
    pub total: usize,
    pub pipes: usize,
}

impl Fds {
    pub fn of(pid: u32) -> Fds {
        let kinds = fd_kinds(pid);
        Fds {
            total: kinds.values().sum(),
            pipes: kinds.get("pipe").copied().unwrap_or(0),
        }
    }
}

/// Samples the proxy's fd count and RSS while a round runs, keeping the highest;
/// stops when dropped (a failing round unwinds before the proxy is killed).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    fds: Arc<AtomicUsize>,
    rss: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let fds = Arc::new(AtomicUsize::new(0));
        let rss = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, fds, rss) = (stop.clone(), fds.clone(), rss.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    fds.fetch_max(fd_count(pid), Ordering::Relaxed);
                    rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        Sampler {
            stop,
            fds,
            rss,
            thread: Some(thread),
        }
    }

    /// Peak fds and RSS (KiB).
    pub fn stop(mut self) -> (usize, u64) {
        self.halt();
        (
            self.fds.load(Ordering::Relaxed),
            self.rss.load(Ordering::Relaxed),
        )
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the sampler failed");
            }
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}
