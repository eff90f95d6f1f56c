//! A [`Driver`](crate::scheduler::driver::Driver) for the loom models of the real loop.

/// The kernel as loom sees it: nothing completes on its own (a model's "completions"
/// are wakes from its other threads), an unpark is a sticky flag the worker sleeps on
/// (like the ring's park token), and time passes only when the worker says it does: a
/// park with a timeout returns at once with the runtime's manual clock moved past it,
/// and a look at the driver during the search spin costs a millisecond, so the spin
/// ends after one look. That one look stands for the real spin, which repeats the same
/// reads and changes no shared state.
pub(crate) struct LoomDriver {
    unpark: std::sync::Arc<LoomUnpark>,
    clock: std::sync::Arc<crate::time::clock::ManualClock>,
}

impl LoomDriver {
    pub(crate) fn new(clock: std::sync::Arc<crate::time::clock::ManualClock>) -> LoomDriver {
        LoomDriver {
            unpark: std::sync::Arc::new(LoomUnpark::default()),
            clock,
        }
    }
}

impl crate::scheduler::driver::Driver for LoomDriver {
    fn reap(&self) -> std::io::Result<usize> {
        Ok(0)
    }

    fn has_events(&self) -> bool {
        self.clock.advance(std::time::Duration::from_millis(1));
        *self.unpark.kicked.lock().unwrap()
    }

    fn park(&self, timeout: Option<std::time::Duration>) -> std::io::Result<usize> {
        let mut kicked = self.unpark.kicked.lock().unwrap();
        match timeout {
            Some(timeout) => self.clock.advance(timeout),
            None => {
                while !*kicked {
                    kicked = self.unpark.cond.wait(kicked).unwrap();
                }
            }
        }
        *kicked = false;
        Ok(0)
    }

    fn unparker(&self) -> crate::scheduler::driver::Unparker {
        self.unpark.clone()
    }
}

/// A loom driver's unpark: a sticky flag and a condvar.
#[derive(Default)]
pub(crate) struct LoomUnpark {
    kicked: crate::loom::sync::Mutex<bool>,
    cond: crate::loom::sync::Condvar,
}

impl crate::scheduler::driver::Unpark for LoomUnpark {
    fn unpark(&self) {
        *self.kicked.lock().unwrap() = true;
        self.cond.notify_all();
    }
}
