//! The scheduler and timer shapes under criterion: `cargo bench -p uringo-benches`.
//!
//! Each shape is a criterion group with one benchmark per runtime, uringo then tokio,
//! the same worker count, each measurement on a runtime built for it and dropped after
//! (one runtime alive at a time). `versus`/`headtohead` remain the main comparison —
//! they alternate rounds and print ratios — this harness is for criterion's statistics
//! and its regression tracking between runs.

use criterion::{criterion_group, criterion_main, Criterion};
use uringo_benches::{shapes, total_time, Peer};

fn head_to_head(c: &mut Criterion) {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    for shape in shapes().into_iter().filter(|s| s.in_default_run) {
        let mut group = c.benchmark_group(shape.name);
        group.sample_size(10);
        for peer in [Peer::Uringo, Peer::Tokio] {
            group.bench_function(peer.name(), |b| {
                b.iter_custom(|iters| {
                    total_time(&shape, peer, workers, iters)
                        .unwrap_or_else(|err| panic!("{} on {}: {err}", shape.name, peer.name()))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, head_to_head);
criterion_main!(benches);
