//! Files and directories through io_uring, with owned buffers.
//!
//! # Why no blocking pool
//!
//! tokio runs every file operation on a thread pool because epoll cannot wait for a
//! regular file: files are always "ready", and a `read` that misses the page cache
//! blocks the thread that calls it. io_uring has no such gap. Each worker already owns a
//! ring, so opening, reading, writing, syncing, stat-ing, renaming and removing are
//! submitted there like a socket read: the kernel completes them inline when it can (a
//! page-cache hit) and otherwise hands them to its own io-wq workers, which are cheaper
//! than ours (no task hand-off, no wake-up of a runtime thread, no copy through a
//! channel). A task awaiting a file op costs nothing while it waits and resumes on
//! whichever worker picks it up.
//!
//! The price is the owned-buffer API: [`File::read_at`] takes a buffer by value and
//! gives it back with the result, because the kernel writes into it after the call
//! returned and possibly after the future was dropped. If a future is dropped before its
//! completion, the op is cancelled and its buffer is kept alive until the kernel's final
//! completion says it is done with it, and only then freed. Each method says what is lost
//! when its future is dropped.
//!
//! Every op consumes one unit of the task's cooperative budget, so a task reading a
//! large file in a loop yields to its neighbours like one reading a socket.
//!
//! # Kernel versions
//!
//! | what | io_uring op | kernel |
//! |---|---|---|
//! | [`File::read_at`], [`File::write_at`], [`read`], [`write()`] | `READ` / `WRITE` | 5.6 |
//! | [`File::open`], [`OpenOptions::open`] | `OPENAT` | 5.6 |
//! | [`File::close`] | `CLOSE` | 5.6 |
//! | [`File::sync_all`], [`File::sync_data`] | `FSYNC` | 5.1 |
//! | [`File::metadata`], [`metadata`], [`symlink_metadata`] | `STATX` | 5.6 |
//! | [`rename`] | `RENAMEAT` | 5.11 |
//! | [`remove_file`], [`remove_dir`] | `UNLINKAT` | 5.11 |
//! | [`create_dir`], [`create_dir_all`] | `MKDIRAT` | 5.15 |
//! | [`File::set_len`] | `FTRUNCATE` | 6.9 (older kernels: `ftruncate(2)` on the worker, see there) |
//!
//! There is no io_uring op for listing a directory (`getdents`), changing permissions or
//! creating symlinks before 5.15, so this module does not offer them; use `std::fs`
//! inside [`spawn_blocking`](crate::spawn_blocking) for those.
//!
//! # Example
//!
//! ```
//! # let rt = uringo::Runtime::new().unwrap();
//! # rt.block_on(async {
//! use uringo::fs::{self, File};
//!
//! let path = std::env::temp_dir().join(format!("uringo-fs-doc-{}", std::process::id()));
//! let file = File::options().read(true).write(true).create(true).open(&path).await?;
//! let (res, _) = file.write_all_at(b"hello, io_uring".to_vec(), 0).await;
//! res?;
//! let (res, buf) = file.read_exact_at(Vec::with_capacity(5), 7).await;
//! res?;
//! assert_eq!(buf, b"io_ur");
//! file.close().await?;
//! assert_eq!(fs::read_to_string(&path).await?, "hello, io_uring");
//! fs::remove_file(&path).await?;
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```

mod dir;
mod file;
mod metadata;
mod open_options;
mod whole_file;

pub use dir::{create_dir, create_dir_all, remove_dir, remove_file, rename};
pub use file::File;
pub use metadata::{metadata, symlink_metadata, FileType, Metadata};
pub use open_options::OpenOptions;
pub use whole_file::{read, read_to_string, write};
