//! The process's one signal path: a `signal-hook-registry` action per signal marks it
//! pending and bumps an eventfd; one thread, `uringo-signal`, reads the eventfd and, for
//! each pending signal, counts a delivery, wakes the receivers waiting for it and runs
//! the hooks registered for it (the task dump).
//!
//! A signal action runs on whichever thread the kernel picks, between any two
//! instructions, with any lock held: it may only do async-signal-safe things, so it
//! cannot wake a task (wakers take locks and allocate). The action therefore only sets
//! an atomic flag and `write(2)`s the eventfd, and restores `errno`, which `write` may
//! change under the interrupted code's feet.
//!
//! The reader is a thread of its own, not a read op on a worker's ring: the process may
//! have any number of runtimes or none at a given moment (an op lives and dies with one
//! ring), and a task dump on a signal is for when every worker is stuck, so it cannot
//! wait for one to reap. The thread starts with the first registration and is never
//! stopped; blocked in `read`, it costs nothing.
//!
//! `signalfd` would need no action, but it only sees a signal that every thread of the
//! process blocks, and threads uringo does not own (the application's, a library's)
//! would still take the signal's default action and kill the process.
//!
//! Deliveries coalesce: a signal that arrives again before the thread got to it counts
//! once, as with tokio, and every receiver learns of at least one delivery after it was
//! created.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Waker;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use slab::Slab;

/// Signal numbers 1..=64 (`SIGRTMAX` on Linux) index these tables directly.
const SIGNALS: usize = 65;

struct Dispatcher {
    /// Never closed: the static holding it is never dropped, so an action can never write
    /// to a number that was closed and reused.
    eventfd: EventFd,
    pending: [AtomicBool; SIGNALS],
    slots: [Slot; SIGNALS],
}

#[derive(Default)]
struct Slot {
    /// Delivery batches the thread has handled; a receiver compares it with what it saw.
    deliveries: AtomicU64,
    receivers: Mutex<Slab<Option<Waker>>>,
    hooks: Mutex<Vec<fn(i32)>>,
    /// The action is registered with `signal-hook-registry` (once; never removed).
    installed: Mutex<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data (wakers, fn pointers, a flag) stays consistent across a panic.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The dispatcher, its eventfd created and its thread started on first use.
fn dispatcher() -> io::Result<&'static Dispatcher> {
    static DISPATCHER: OnceLock<Dispatcher> = OnceLock::new();
    static START: Mutex<()> = Mutex::new(());
    if let Some(d) = DISPATCHER.get() {
        return Ok(d);
    }
    let _starting = lock(&START);
    if let Some(d) = DISPATCHER.get() {
        return Ok(d);
    }
    // Blocking reads for the thread; an action's write never blocks, since the counter
    // would have to reach 2^64 - 1 first.
    let eventfd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)?;
    let d = DISPATCHER.get_or_init(|| Dispatcher {
        eventfd,
        pending: std::array::from_fn(|_| AtomicBool::new(false)),
        slots: std::array::from_fn(|_| Slot::default()),
    });
    std::thread::Builder::new()
        .name("uringo-signal".into())
        .spawn(move || d.run())?;
    Ok(d)
}

impl Dispatcher {
    fn slot(&self, signum: i32) -> &Slot {
        &self.slots[signum as usize]
    }

    /// Registers the action for `signum` unless it already is. `signum` passed
    /// [`super::kind::check`].
    fn install(&'static self, signum: i32) -> io::Result<()> {
        let mut installed = lock(&self.slot(signum).installed);
        if *installed {
            return Ok(());
        }
        let action = move || self.on_signal(signum);
        // SAFETY: the action only stores an atomic, calls write(2) and reads and
        // restores errno, all async-signal-safe; `signum` passed `kind::check`, so it is
        // no fault signal (whose handler must not return) and none of the
        // `signal_hook_registry::FORBIDDEN` ones, on which `register` would panic.
        unsafe { signal_hook_registry::register(signum, action) }?;
        *installed = true;
        Ok(())
    }

    /// The signal action: flag the signal, bump the eventfd, nothing else.
    fn on_signal(&self, signum: i32) {
        let saved = Errno::last_raw();
        self.pending[signum as usize].store(true, Ordering::Release);
        let one = 1u64;
        // SAFETY: the eventfd stays open for the life of the process (see `eventfd`);
        // `one` is live for the call and 8 bytes long, as an eventfd write requires.
        let _ = unsafe {
            libc::write(
                self.eventfd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        Errno::set_raw(saved);
    }

    /// The `uringo-signal` thread.
    fn run(&self) {
        loop {
            match self.eventfd.read() {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    tracing::error!(%err, "uringo-signal cannot read its eventfd; signals are no longer delivered");
                    return;
                }
            }
            for signum in 1..SIGNALS as i32 {
                // Cleared before handling: a delivery during the handling sets it again
                // and bumps the eventfd, so the next round sees it.
                if self.pending[signum as usize].swap(false, Ordering::AcqRel) {
                    self.deliver(signum);
                }
            }
        }
    }

    fn deliver(&self, signum: i32) {
        let slot = self.slot(signum);
        // Counted before the wakers are taken: a receiver registers its waker and then
        // looks at the count, under the same lock, so it sees one or the other.
        slot.deliveries.fetch_add(1, Ordering::AcqRel);
        let wakers: Vec<Waker> = lock(&slot.receivers)
            .iter_mut()
            .filter_map(|(_, waker)| waker.take())
            .collect();
        wakers.into_iter().for_each(Waker::wake);
        let hooks = lock(&slot.hooks).clone();
        for hook in hooks {
            hook(signum);
        }
    }
}

/// One receiver's place in its signal's table; dropping it takes the receiver out.
pub(super) struct Registration {
    slot: &'static Slot,
    key: usize,
    seen: u64,
}

impl Registration {
    /// Listens for `signum` (which passed [`super::kind::check`]) from now on.
    pub(super) fn new(signum: i32) -> io::Result<Registration> {
        let d = dispatcher()?;
        d.install(signum)?;
        let slot = d.slot(signum);
        let key = lock(&slot.receivers).insert(None);
        Ok(Registration {
            slot,
            key,
            seen: slot.deliveries.load(Ordering::Acquire),
        })
    }

    /// True (once per batch) when the signal was delivered since the last true.
    fn take_delivery(&mut self) -> bool {
        let deliveries = self.slot.deliveries.load(Ordering::Acquire);
        let new = deliveries != self.seen;
        self.seen = deliveries;
        new
    }

    /// Whether a delivery arrived since the last time this returned true; if not,
    /// `waker` is woken by the next one.
    pub(super) fn poll_delivery(&mut self, waker: &Waker) -> bool {
        if self.take_delivery() {
            return true;
        }
        {
            let mut receivers = lock(&self.slot.receivers);
            let entry = &mut receivers[self.key];
            if !entry.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *entry = Some(waker.clone());
            }
        }
        self.take_delivery()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.slot.receivers).remove(self.key);
    }
}

/// Runs `hook(signum)` on the `uringo-signal` thread after each delivery of `signum`
/// (which passed [`super::kind::check`]), for the life of the process. The caller adds
/// each hook once per signal.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn add_hook(signum: i32, hook: fn(i32)) -> io::Result<()> {
    let d = dispatcher()?;
    d.install(signum)?;
    lock(&d.slot(signum).hooks).push(hook);
    Ok(())
}
