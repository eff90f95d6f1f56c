//! The global injection queue (`scheduler/inject.rs`): a push racing the
//! runtime's shutdown (`close`, then the drain) is either refused or drained, never
//! lost in a closed queue.
//!
//! Mutation `inject_closed_check` (push ignores CLOSED) lets a push land after the
//! drain has finished.

use super::Injector;
use crate::loom::model::model;
use loom::sync::Arc;
use loom::thread;

#[test]
fn push_vs_close_and_drain() {
    model(|| {
        let inject = Arc::new(Injector::<Box<usize>>::new());
        let pusher = {
            let inject = inject.clone();
            thread::spawn(move || inject.push(Box::new(7)).is_ok())
        };
        inject.close();
        let mut drained = 0;
        while !inject.is_empty() {
            match inject.pop() {
                Some(_) => drained += 1,
                None => thread::yield_now(),
            }
        }
        let accepted = pusher.join().unwrap();
        assert_eq!(
            drained,
            usize::from(accepted),
            "an accepted push was not drained"
        );
    });
}
