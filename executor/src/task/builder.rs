//! `task::Builder`: spawning with options — for now, a name that task dumps show.

use std::future::Future;
use std::io;

use super::JoinHandle;
use crate::Handle;

/// Spawns a task with a name, which [`Handle::dump`] shows next to its id.
///
/// Unnamed tasks cost nothing extra; a name is one allocation at spawn.
///
/// ```
/// let rt = uringo::Runtime::new()?;
/// rt.block_on(async {
///     let handle = uringo::task::Builder::new()
///         .name("accept-loop")
///         .spawn(std::future::pending::<()>())
///         .unwrap();
///     let dump = uringo::Handle::current().dump();
///     assert!(dump.tasks().iter().any(|t| t.name() == Some("accept-loop")));
///     handle.abort();
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Builder<'a> {
    name: Option<&'a str>,
}

impl<'a> Builder<'a> {
    /// A builder with no options set.
    pub fn new() -> Builder<'a> {
        Builder::default()
    }

    /// Names the task.
    pub fn name(self, name: &'a str) -> Builder<'a> {
        Builder { name: Some(name) }
    }

    /// Spawns onto the current runtime; an error (not a panic) outside one.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = Handle::try_current().map_err(io::Error::other)?;
        Ok(self.spawn_on(future, &handle))
    }

    /// Spawns onto `handle`'s runtime.
    #[track_caller]
    pub fn spawn_on<F>(self, future: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.spawn_with(future, self.name.map(Box::from))
    }
}
