//! Leak checks that need the runtime's insides: every task cell owns an `Arc<Shared>`,
//! every armed timer and in-flight op holds a task waker, so if the `Shared` is gone
//! after the runtime is dropped, nothing leaked.

use std::time::Duration;

use crate::loom::sync::Arc;

fn weak_shared(rt: &super::Runtime) -> std::sync::Weak<crate::scheduler::Shared> {
    Arc::downgrade(rt.handle().shared())
}

#[test]
fn shutdown_with_100_000_pending_timers_frees_everything() {
    let rt = super::Builder::new().worker_threads(2).build().unwrap();
    let weak = weak_shared(&rt);
    for _ in 0..100_000 {
        rt.spawn(async {
            crate::time::sleep(Duration::from_secs(3600)).await;
        });
    }
    let m = rt.metrics();
    let start = std::time::Instant::now();
    while (0..2).map(|w| m.worker_timer_count(w)).sum::<usize>() < 100_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timers never all armed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(m);
    drop(rt);
    assert!(
        weak.upgrade().is_none(),
        "a task, waker or timer entry outlived the runtime"
    );
}

/// A buffer that counts live instances, to see the kernel's buffers come back.
struct CountedBuf(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl CountedBuf {
    fn new(live: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CountedBuf(Vec::with_capacity(64), live.clone())
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.1.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

// SAFETY: delegates to the inner Vec, whose heap bytes do not move.
unsafe impl uringo_uring::IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

// SAFETY: delegates to the inner Vec.
unsafe impl uringo_uring::IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { uringo_uring::IoBufMut::set_init(&mut self.0, pos) }
    }
}

#[test]
fn shutdown_with_tasks_blocked_on_io_leaks_nothing() {
    let rt = super::Builder::new().worker_threads(2).build().unwrap();
    let weak = weak_shared(&rt);
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
    for _ in 0..1000 {
        let buf = CountedBuf::new(&live);
        rt.spawn(async move {
            let _ = uringo_uring::Op::new(uringo_uring::op::Recv::new(fd, buf)).await;
        });
    }
    let m = rt.metrics();
    let start = std::time::Instant::now();
    while (0..2)
        .filter_map(|w| m.worker_ring_metrics(w))
        .map(|r| r.submitted)
        .sum::<u64>()
        < 1000
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "recvs never all submitted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let leaked_before: u64 = (0..2)
        .filter_map(|w| m.worker_ring_metrics(w))
        .map(|r| r.leaked_ops)
        .sum();
    assert_eq!(leaked_before, 0);
    drop(m);
    drop(rt);
    assert!(
        weak.upgrade().is_none(),
        "a task or op outlived the runtime"
    );
    assert_eq!(
        live.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "every buffer the kernel held came back and was freed"
    );
}
