//! `Builder::task_count_warning`: one warning when live tasks reach the watermark, the
//! next only when they reach twice as many, each naming the busiest spawn locations.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn warnings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("live tasks passed the warning watermark"))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn warns_once_at_the_watermark_and_again_only_on_doubling() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .with_ansi(false)
        .finish();
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
            captured.warnings().is_empty(),
            "no warning below the watermark"
        );
        handles.push(rt.spawn(std::future::pending::<()>()));
        assert_eq!(
            captured.warnings().len(),
            1,
            "one warning at 100 live tasks"
        );
        for _ in 0..50 {
            handles.push(rt.spawn(std::future::pending::<()>()));
        }
        for _ in 0..49 {
            handles.push(rt.spawn(std::future::pending::<()>()));
        }
        assert_eq!(captured.warnings().len(), 1, "quiet between 100 and 199");
        handles.push(rt.spawn(std::future::pending::<()>()));
        let warnings = captured.warnings();
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
