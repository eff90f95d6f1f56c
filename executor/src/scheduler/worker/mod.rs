//! The scheduling loop: Go's `schedule`/`findrunnable` on a worker that owns its
//! kernel driver (an io_uring ring).
//!
//! # The problem
//!
//! One thread per core must run thousands of tasks, deliver their I/O completions and
//! fire their timers, with no task waiting forever whatever the others do, and no
//! thread burning a core when there is nothing to do. The I/O is completion-based: the
//! kernel finishes an operation on its own and posts a CQE to the ring of the worker
//! that submitted it; nobody sees it until that worker reaps its ring. So unlike Go's
//! netpoller, which any idle M may poll, every worker must look at its own ring often
//! enough, busy or not.
//!
//! # The loop
//!
//! Each iteration, a *tick*, fires due timers, then finds one task and runs it:
//!
//! 0. a task placed on this worker (`Handle::spawn_on`), from its inbox;
//! 1. every `global_queue_interval` ticks (G = 61), the injector first, so tasks
//!    spawned or woken from outside cannot starve behind a busy local queue;
//! 2. the local queue (runnext is drained inside [`Worker::run_task`] right after the
//!    poll that filled it, so it is empty when a tick starts);
//! 3. a fair share of the injector (`WorkerContext::take_injector_share`);
//! 4. the driver, without blocking: completions wake their tasks into this worker's
//!    queue (Go polls the netpoller here), then 2 and 3 again;
//! 5. half of a random sibling's queue, if fewer than half the busy workers are already
//!    searching (`search.rs`);
//! 6. the search spin: up to `Builder::search_spin` watching the queues, the driver
//!    and the timer inbox, so a sibling's hand-off costs no park (`search.rs`);
//! 7. park in the driver until a completion, an unpark or the next timer (`park.rs`).
//!
//! Every `event_interval` ticks (E = 61) the driver is reaped even when the queue is
//! full, so completions are never starved by CPU-bound tasks. SQEs that tasks queue are
//! submitted with that reap, or the park, in the same `io_uring_enter`.
//!
//! # Where a task goes, and the fairness bound
//!
//! `WorkerContext::schedule_local` places tasks: a task woken or spawned by the task
//! being polled goes to the runnext slot (it runs next, in cache, within the rest of the
//! poller's budget, at most `max_runnext_polls` (3) in a row); a task woken from outside
//! a poll, or displaced from runnext, goes to the back of the local queue; a task that
//! yields (`yield_now`, out of its 128-unit budget, or woken during its own poll) goes
//! to the back of the local queue behind a fair share of the injector. Nothing is held
//! anywhere a sibling cannot steal it or the monitor cannot see it.
//!
//! Designs rejected: holding yielded tasks in a private list until the worker had
//! nothing else to do let a steady local load (a ping-ponging pair, any busy proxy)
//! starve them forever; sending every yield to the injector (Go's `Gosched`) puts a
//! shared lock on the hottest path (`yield_many` does nothing else).
//!
//! **The bound.** With Q = 256 local slots and G = 61, as long as polls return:
//!
//! * a task at the back of a worker's local queue is polled within **Q + ⌈Q/(G−1)⌉ =
//!   261 ticks of that worker**, or taken earlier by a sibling (a steal) or moved to
//!   the injector by an overflow. The queue is FIFO, each tick pops at most one task
//!   from its front and misses the pop only on an injector tick (one in G), and nothing
//!   is ever put ahead of a queued task;
//! * a task in runnext is polled in the same tick or moved to the back of the queue;
//! * a task at position p of the injector reaches a worker within p·G ticks of any one
//!   worker (each takes at least one injector task every G ticks while it is
//!   non-empty), and from there the local bound applies;
//! * a completion posted to a worker's ring is dispatched within E ticks of that
//!   worker (or at once, if it is idle); a due timer fires on its worker's next tick.
//!
//! A poll that never returns stalls only its own worker: the monitor
//! (`observe/monitor.rs`) moves its runnext task to the injector and wakes a sibling,
//! which steals the rest of its queue. The seeded simulation (`scheduler/sim/`) checks
//! the local bound on thousands of schedules of this very loop.
//!
//! # The parts
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the loop: [`Worker::run`], finding a task, running it |
//! | `context.rs` | [`WorkerContext`]: what tasks reach (queue, wheel, stats); where a task goes |
//! | `core.rs` | the loop's own state, owned by `&mut` |
//! | `search.rs` | stealing, the search spin |
//! | `park.rs` | going to sleep without losing a wake-up |
//! | `timers.rs` | firing due timers |
//! | `block_in_place.rs` | handing the queue over before blocking the thread |

mod block_in_place;
mod context;
mod core;
mod park;
mod search;
mod timers;

pub(crate) use block_in_place::block_in_place;
pub(crate) use context::WorkerContext;

/// The local fairness bound of the module docs: a task at the back of a worker's local
/// queue is polled within this many ticks of that worker (Q + ⌈Q/(G−1)⌉), unless a
/// sibling steals it or an overflow moves it to the injector first.
#[cfg(all(test, not(loom)))]
pub(crate) fn local_queue_bound(config: &super::Config) -> u64 {
    let q = super::queue::CAPACITY as u64;
    let g = u64::from(config.global_queue_interval.max(2));
    q + q.div_ceil(g - 1)
}

use self::core::Core;
use super::driver::Driver;
use crate::runtime::coop;
use crate::runtime::task::Notified;

/// The loop of one worker: the context its tasks see, the driver it reaps and parks
/// in, and its own state.
pub(crate) struct Worker<'a, D: Driver> {
    cx: &'a WorkerContext,
    driver: D,
    core: Core,
}

impl<'a, D: Driver> Worker<'a, D> {
    /// The loop of `cx`'s worker over `driver`; other threads can unpark it from now on.
    pub(crate) fn new(cx: &'a WorkerContext, driver: D) -> Self {
        let _ = cx.remote().unpark.set(driver.unparker());
        Worker {
            cx,
            driver,
            core: Core::new(cx.index, &cx.shared.config),
        }
    }

    /// The driver (the io_uring ring, for the worker thread's I/O context).
    pub(crate) fn driver(&self) -> &D {
        &self.driver
    }

    /// The loop. Returns when the runtime shuts down, after [`Worker::shut_down`].
    pub(crate) fn run(&mut self) {
        let cx = self.cx;
        let shared = &cx.shared;
        tracing::debug!(worker = cx.index, "worker started");
        cx.stats().started();
        while !shared.is_shutdown() {
            cx.stats().tick();
            self.process_timers();
            if self.core.reap_turn.tick() {
                self.reap();
            }
            let injector_turn = self.core.injector_turn.tick();
            if let Some(task) = self.next_task(injector_turn) {
                self.run_task(task);
                continue;
            }
            // Nothing queued here: poll the driver (netpoll), then other workers.
            self.reap();
            if let Some(task) = self.next_local_task() {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task);
                continue;
            }
            if self.spin_for_work() {
                crate::loom::retry_soon();
                continue;
            }
            self.park();
        }
        tracing::debug!(worker = cx.index, "worker stopping");
        self.shut_down();
    }

    /// The task this tick runs; `injector_turn`: the injector goes before the local
    /// queue.
    fn next_task(&mut self, injector_turn: bool) -> Option<Notified> {
        let shared = &self.cx.shared;
        // Placed here on purpose (`Handle::spawn_on`): first, and never stolen before
        // its first poll.
        if let Some(task) = self.cx.remote().inbox.pop() {
            return Some(task);
        }
        if injector_turn {
            if let Some(task) = shared.inject.pop() {
                self.cx.stats().injector_pops(1);
                return Some(task);
            }
        }
        self.next_local_task()
    }

    fn next_local_task(&mut self) -> Option<Notified> {
        let cx = self.cx;
        cx.with_local(|local| {
            local
                .take_runnext()
                .or_else(|| local.pop())
                .or_else(|| cx.take_injector_share(local))
        })
    }

    /// Polls `task`, then whatever it put in the runnext slot, within one budget.
    ///
    /// Each poll is counted before it runs: whoever observes the task's completion then
    /// also observes the count (the completion happens after it).
    fn run_task(&mut self, task: Notified) {
        self.transition_from_searching();
        let cx = self.cx;
        let stats = cx.stats();
        let max_runnext = cx.shared.config.max_runnext_polls;
        coop::budget(|| {
            cx.set_in_task(true);
            stats.poll(task, false);
            let mut runnext_polls = 0;
            while let Some(next) = cx.with_local(|local| local.take_runnext()) {
                if !coop::has_budget_remaining() || runnext_polls >= max_runnext {
                    // Out of budget or ping-ponging: it waits its turn in the queue.
                    // Nobody is woken for it: it was runnext, this worker's next task,
                    // and still is if nothing else is queued; waking a sibling for a
                    // chain of spawns only moves the chain back and forth between
                    // workers, a park and an unpark each way (tokio does the same).
                    cx.push_back_quietly(next);
                    break;
                }
                runnext_polls += 1;
                stats.poll(next, true);
            }
            cx.set_in_task(false);
        });
        stats.polls_end(coop::take_forced_yields());
    }

    /// Submits queued work and dispatches ready completions, without blocking.
    fn reap(&mut self) {
        let stats = self.cx.stats();
        stats.reaping();
        let driver = &self.driver;
        stats.reaped(&self.cx.woken_by_the_loop(|| driver.reap()));
    }

    /// Called when the loop ends: cancel every task, drop our queue entries.
    fn shut_down(&mut self) {
        let shared = &self.cx.shared;
        if std::mem::replace(&mut self.core.is_searching, false) {
            shared.idle.transition_worker_from_searching();
        }
        shared.owned.close_and_shutdown_all();
        self.drop_queued();
        // Let cancellations queued by the dropped futures reach the kernel now, while
        // the driver still runs; dropping it then only waits for their CQEs.
        self.reap();
        self.drop_queued();
    }

    fn drop_queued(&self) {
        let drained: Vec<Notified> = self.cx.with_local(|local| local.drain().collect());
        drop(drained);
    }
}

#[cfg(all(test, loom))]
mod loom;
