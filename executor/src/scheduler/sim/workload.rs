//! The seeded workload: what the simulated tasks do, and the checks they make as they
//! do it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;

use super::kernel::SimOp;
use super::{mark, Signal, SimState};
use crate::runtime::task::{Id, JoinHandle};
use crate::scheduler::schedule::spawn_with_id;

/// splitmix64: small, and the same sequence for the same seed everywhere.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len() as u64) as usize]
    }
}

/// One step of a task's script.
#[derive(Clone, Debug)]
enum Action {
    /// `yield_now`: back of the queue; checked against the fairness bound.
    Yield,
    /// Await a simulated op completing this many steps later; the wait from its
    /// delivery to the task's next poll is checked against the bound.
    Op(u64),
    /// `sleep` this long; checked never early, at most a wheel tick late.
    Sleep(Duration),
    /// Await a wake from outside the runtime this many steps later.
    Outside(u64),
    /// Await this many ready timers: spends the 128-unit budget, a forced yield.
    Burn(u32),
    /// Spawn a child running the script, joining it or not.
    Spawn(Script, bool),
    /// Two tasks pass a token back and forth this many times (steady local load).
    PingPong(u32),
}

type Script = Vec<Action>;

/// Every top-level task's script.
pub(super) struct Workload {
    scripts: Vec<Script>,
}

impl Workload {
    pub(super) fn generate(rng: &mut Rng) -> Workload {
        let n = 2 + rng.below(20) as usize;
        Workload {
            scripts: (0..n).map(|_| script(rng, 2)).collect(),
        }
    }

    /// How many tasks finish a script (top-level, children, ping-pong pairs).
    pub(super) fn tasks(&self) -> usize {
        fn count(script: &Script) -> usize {
            1 + script
                .iter()
                .map(|a| match a {
                    Action::Spawn(child, _) => count(child),
                    Action::PingPong(_) => 2,
                    _ => 0,
                })
                .sum::<usize>()
        }
        self.scripts.iter().map(count).sum()
    }

    /// Spawns every top-level task from this thread (outside the runtime).
    pub(super) fn spawn_all(&self, sim: &Arc<SimState>) -> Vec<JoinHandle<()>> {
        self.scripts
            .iter()
            .map(|s| spawn(sim, run(sim.clone(), s.clone())))
            .collect()
    }
}

fn script(rng: &mut Rng, depth: u32) -> Script {
    let len = 1 + rng.below(12);
    (0..len)
        .map(|_| match rng.below(100) {
            0..=24 => Action::Yield,
            25..=49 => Action::Op(rng.below(40)),
            50..=62 => Action::Sleep(Duration::from_micros(rng.below(3_000))),
            63..=72 => Action::Outside(rng.below(40)),
            73..=77 => Action::Burn(100 + rng.below(200) as u32),
            78..=89 if depth > 0 => Action::Spawn(script(rng, depth - 1), rng.below(2) == 0),
            90..=99 if depth > 0 => Action::PingPong(50 + rng.below(600) as u32),
            _ => Action::Yield,
        })
        .collect()
}

fn spawn<F>(sim: &SimState, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_with_id(&sim.shared, Id::next(), future)
}

/// Runs `script`, checking as it goes; counts the task done at the end.
fn run(sim: Arc<SimState>, script: Script) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        for action in script {
            match action {
                Action::Yield => {
                    let before = mark();
                    crate::task::yield_now().await;
                    sim.check_wait("a yield", before, mark());
                }
                Action::Op(after) => {
                    let op = SimOp::new(after).await;
                    sim.ops.lock().unwrap().push(op.clone());
                    let delivered = op.delivered_at.lock().unwrap().expect("delivered");
                    sim.check_wait("a completion", delivered, mark());
                }
                Action::Sleep(d) => {
                    let deadline = crate::time::clock::now() + d;
                    crate::time::sleep_until(deadline).await;
                    sim.check_timer(deadline, crate::time::clock::now());
                }
                Action::Outside(after) => {
                    Signal {
                        sim: sim.clone(),
                        after,
                        cell: None,
                    }
                    .await
                }
                Action::Burn(n) => {
                    for _ in 0..n {
                        crate::time::sleep(Duration::ZERO).await;
                    }
                }
                Action::Spawn(child, join) => {
                    let child = spawn(&sim, run(sim.clone(), child));
                    if join {
                        child.await.expect("child task");
                    }
                }
                Action::PingPong(rounds) => ping_pong(&sim, rounds).await,
            }
        }
        sim.done.fetch_add(1, SeqCst);
    })
}

/// Two tasks pass a counter back and forth `rounds` times; the caller waits for both.
async fn ping_pong(sim: &Arc<SimState>, rounds: u32) {
    let (to_b, mut b_rx) = mpsc::unbounded::<u32>();
    let (to_a, mut a_rx) = mpsc::unbounded::<u32>();
    to_b.unbounded_send(0).expect("receiver alive");
    let done_a = sim.clone();
    let a = spawn(sim, async move {
        while let Some(n) = a_rx.next().await {
            if n >= rounds || to_b.unbounded_send(n + 1).is_err() {
                break;
            }
        }
        done_a.done.fetch_add(1, SeqCst);
    });
    let done_b = sim.clone();
    let b = spawn(sim, async move {
        while let Some(n) = b_rx.next().await {
            if to_a.unbounded_send(n + 1).is_err() {
                break;
            }
        }
        done_b.done.fetch_add(1, SeqCst);
    });
    a.await.expect("ping");
    b.await.expect("pong");
}
