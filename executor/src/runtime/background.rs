//! A helper thread of the runtime (the monitor, the schedtrace printer) that sleeps
//! between rounds and stops promptly when the runtime shuts down.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The stop flag a background thread sleeps on.
#[derive(Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    cvar: Condvar,
}

impl StopSignal {
    /// Sleeps up to `timeout`; true if the thread must stop.
    pub(crate) fn sleep(&self, timeout: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return true;
        }
        let (stopped, _) = self
            .cvar
            .wait_timeout(stopped, timeout)
            .unwrap_or_else(|e| e.into_inner());
        *stopped
    }
}

/// A running background thread; stopping (or dropping) it wakes and joins it.
pub(crate) struct BackgroundThread {
    signal: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundThread {
    /// Starts `body` on a thread called `name`; `body` returns when its signal says so.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(&StopSignal) + Send + 'static,
    ) -> std::io::Result<BackgroundThread> {
        let signal = Arc::new(StopSignal::default());
        let thread = std::thread::Builder::new().name(name.into()).spawn({
            let signal = signal.clone();
            move || body(&signal)
        })?;
        Ok(BackgroundThread {
            signal,
            thread: Some(thread),
        })
    }

    /// Tells the thread to stop and waits for it.
    pub(crate) fn stop(&mut self) {
        *self
            .signal
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
        self.signal.cvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundThread {
    fn drop(&mut self) {
        self.stop();
    }
}
