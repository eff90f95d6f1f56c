//! `Builder::task_count_warning`: one warning when live tasks reach the watermark, the
//! next only when they reach twice as many, each naming the busiest spawn locations.

mod common;

use common::Captured;

#[test]
fn warns_once_at_the_watermark_and_again_only_on_doubling() {
    let captured = Captured::default();
    let subscriber = captured.subscriber();
    let rt = uringo::Builder::new()
        .worker_threads(1)
        .task_count_warning(100)
        .build()
        .unwrap();
    // Spawned from this thread, so the warnings are emitted here, under `subscriber`.
    tracing::subscriber::with_default(subscriber, || {
        let mut handles = Vec::new();
        for _ in 0..99 {
            handles.push(rt.spawn(std::future::pending::<()>()));
        }
        assert!(
            captured
                .lines_with("live tasks passed the warning watermark")
                .is_empty(),
            "no warning below the watermark"
        );
        handles.push(rt.spawn(std::future::pending::<()>()));
        assert_eq!(
            captured
                .lines_with("live tasks passed the warning watermark")
                .len(),
            1,
            "one warning at 100 live tasks"
        );
        for _ in 0..50 {
            handles.push(rt.spawn(std::future::pending::<()>()));
        }
        for _ in 0..49 {
            handles.push(rt.spawn(std::future::pending::<()>()));
        }
        assert_eq!(
            captured
                .lines_with("live tasks passed the warning watermark")
                .len(),
            1,
            "quiet between 100 and 199"
        );
        handles.push(rt.spawn(std::future::pending::<()>()));
        let warnings = captured.lines_with("live tasks passed the warning watermark");
        assert_eq!(warnings.len(), 2, "again at 200 live tasks: {warnings:?}");
        let second = &warnings[1];
        assert!(second.contains("live=200"), "{second}");
        assert!(second.contains("next_warning_at=400"), "{second}");
        // The busiest location first: the 99 spawns of the first loop.
        let first_loop = second
            .find("99 at ")
            .expect("the 99-task location is named");
        let second_loop = second
            .find("50 at ")
            .expect("the 50-task location is named");
        assert!(first_loop < second_loop, "sorted by count: {second}");
        assert!(second.contains("leak_watermark.rs"), "{second}");
        for h in &handles {
            h.abort();
        }
    });
}
