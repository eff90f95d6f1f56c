//! uringo::fs end to end: positional I/O, open options, metadata, directory operations,
//! `/proc` files, a read dropped mid-flight, and many tasks doing file I/O at once.

mod common;

use std::future::Future;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use common::with_watchdog;
use uringo::buf::{IoBuf, IoBufMut};
use uringo::fs::{self, File, OpenOptions};
use uringo::Builder;

/// Runs `body` as a task on a fresh runtime with `workers` workers; a panic inside it
/// fails the test with its own message, a hang fails it after `common::HANG`.
fn run<F>(name: &str, workers: usize, body: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()> + Send + 'static,
{
    with_watchdog(name, move || {
        let rt = Builder::new().worker_threads(workers).build().unwrap();
        let task = rt.spawn(body());
        if let Err(err) = rt.block_on(task) {
            std::panic::resume_unwind(err.into_panic());
        }
    })
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "uringo-fs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A buffer that counts how many of its kind are alive, to see exactly when the runtime
/// frees one.
struct CountedBuf {
    data: Vec<u8>,
    live: Arc<AtomicUsize>,
}

impl CountedBuf {
    fn new(capacity: usize, live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        CountedBuf {
            data: Vec::with_capacity(capacity),
            live: live.clone(),
        }
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to the inner Vec, whose heap bytes do not move.
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to the inner Vec.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.data.set_init(pos) }
    }
}

/// Polls `fut` once, from inside the task, without blocking on it.
async fn poll_once<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

fn rw_options() -> OpenOptions {
    let mut options = File::options();
    options.read(true).write(true).create(true).truncate(true);
    options
}

#[test]
fn write_and_read_at_offsets_round_trip() {
    run("offsets", 2, || async {
        let dir = TempDir::new("offsets");
        let file = rw_options().open(dir.path("f")).await.unwrap();

        let (n, buf) = file.write_at(b"hello".to_vec(), 0).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"hello", "the buffer comes back");
        let (res, _) = file.write_all_at(b"world".to_vec(), 10).await;
        res.unwrap();

        let (res, all) = file.read_exact_at(Vec::with_capacity(15), 0).await;
        res.unwrap();
        assert_eq!(all, b"hello\0\0\0\0\0world", "the gap reads as zeros");

        let (n, mid) = file.read_at(Vec::with_capacity(4), 3).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(mid, b"lo\0\0");

        // A slice reads into its own range of a bigger buffer.
        let (res, slice) = file.read_exact_at(vec![b'.'; 8].slice(3..8), 10).await;
        res.unwrap();
        assert_eq!(slice.into_inner(), b"...world");

        let (n, _) = file.read_at(Vec::with_capacity(4), 1000).await;
        assert_eq!(n.unwrap(), 0, "past the end is end of file");
    });
}

#[test]
fn read_exact_past_eof_is_unexpected_eof_and_returns_what_was_read() {
    run("read-exact-eof", 1, || async {
        let dir = TempDir::new("eof");
        let path = dir.path("f");
        fs::write(&path, b"0123456789".to_vec()).await.unwrap();
        let file = File::open(&path).await.unwrap();
        let live = Arc::new(AtomicUsize::new(0));

        let (res, buf) = file.read_exact_at(CountedBuf::new(8, &live), 5).await;
        assert_eq!(res.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(buf.data, b"56789", "the bytes read before EOF are kept");
        assert_eq!(live.load(Ordering::SeqCst), 1, "the buffer came back alive");
        drop(buf);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn open_options_follow_std_rules() {
    run("options", 1, || async {
        let dir = TempDir::new("options");
        let path = dir.path("f");
        fs::write(&path, "exists").await.unwrap();

        let err = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);

        let err = File::options()
            .read(true)
            .create(true)
            .open(dir.path("g"))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "create needs write: {err}"
        );
        assert!(!dir.path("g").exists(), "nothing was created");

        let err = File::options().open(&path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "no access mode: {err}");

        let err = File::open(dir.path("missing")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ENOENT),
            "the OS error is kept"
        );

        let err = File::open("bad\0path").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);

        let created = File::options()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(dir.path("new"))
            .await
            .unwrap();
        let meta = created.metadata().await.unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    });
}

#[test]
fn append_mode_writes_at_the_end_whatever_the_position() {
    run("append", 1, || async {
        let dir = TempDir::new("append");
        let path = dir.path("log");
        fs::write(&path, "one\n").await.unwrap();
        let file = File::options().append(true).open(&path).await.unwrap();
        let (res, _) = file.write_all_at("two\n", 0).await;
        res.unwrap();
        let (res, _) = file.write_all_at("three\n", 0).await;
        res.unwrap();
        assert_eq!(
            fs::read_to_string(&path).await.unwrap(),
            "one\ntwo\nthree\n"
        );
    });
}

#[test]
fn set_len_sync_and_metadata() {
    run("set-len", 1, || async {
        let dir = TempDir::new("set-len");
        let path = dir.path("f");
        let file = rw_options().open(&path).await.unwrap();
        let (res, _) = file.write_all_at(vec![7u8; 10_000], 0).await;
        res.unwrap();
        file.sync_all().await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 10_000);

        file.set_len(100).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 100);
        file.set_len(1 << 20).await.unwrap();
        file.sync_data().await.unwrap();
        let meta = file.metadata().await.unwrap();
        assert_eq!(meta.len(), 1 << 20);
        assert!(meta.is_file() && !meta.is_dir() && !meta.is_symlink());
        assert!(meta.file_type().is_file());
        assert!(meta.modified().is_ok() && meta.accessed().is_ok());
        let (res, tail) = file.read_exact_at(Vec::with_capacity(4), 99).await;
        res.unwrap();
        assert_eq!(tail, [7, 0, 0, 0], "extension reads as zeros");

        let err = file.set_len(u64::MAX).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let read_only = File::open(&path).await.unwrap();
        assert!(
            read_only.set_len(0).await.is_err(),
            "a read-only file cannot be truncated"
        );
        assert_eq!(fs::metadata(&path).await.unwrap().len(), 1 << 20);
        file.close().await.unwrap();
    });
}

#[test]
fn directory_operations() {
    run("dirs", 1, || async {
        let dir = TempDir::new("dirs");
        let nested = dir.path("a/b/c");
        fs::create_dir_all(&nested).await.unwrap();
        assert!(fs::metadata(&nested).await.unwrap().is_dir());
        fs::create_dir_all(&nested)
            .await
            .expect("an existing directory is fine");
        fs::create_dir_all(dir.path("a/b/d")).await.unwrap();

        let file = dir.path("a/file");
        fs::write(&file, "x").await.unwrap();
        let err = fs::create_dir_all(dir.path("a/file/sub"))
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err}");
        assert!(
            fs::create_dir_all(&file).await.is_err(),
            "a file is in the way"
        );

        let moved = dir.path("a/b/c/moved");
        fs::rename(&file, &moved).await.unwrap();
        assert!(!file.exists());
        assert_eq!(fs::read(&moved).await.unwrap(), b"x");

        let err = fs::remove_dir(dir.path("a/b/c")).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
        fs::remove_file(&moved).await.unwrap();
        assert_eq!(
            fs::remove_file(&moved).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        fs::remove_dir(dir.path("a/b/c")).await.unwrap();
        assert!(!dir.path("a/b/c").exists());

        let link = dir.path("link");
        std::os::unix::fs::symlink(dir.path("a"), &link).unwrap();
        assert!(fs::symlink_metadata(&link).await.unwrap().is_symlink());
        assert!(fs::metadata(&link).await.unwrap().is_dir());
    });
}

#[test]
fn read_of_proc_files_whose_size_is_zero() {
    run("proc", 1, || async {
        assert_eq!(fs::metadata("/proc/self/status").await.unwrap().len(), 0);
        let status = fs::read_to_string("/proc/self/status").await.unwrap();
        assert!(status.starts_with("Name:"), "{status}");
        assert!(status.contains("\nPid:"), "read to the end: {status}");

        // Bigger than the first read, so the buffer has to grow.
        let maps = fs::read("/proc/self/maps").await.unwrap();
        let expected = std::fs::read("/proc/self/maps").unwrap();
        assert!(maps.len() > 4096, "{} bytes", maps.len());
        let first_line = |b: &[u8]| b.split(|&c| c == b'\n').next().unwrap().to_vec();
        assert_eq!(first_line(&maps), first_line(&expected));

        let dir = TempDir::new("utf8");
        fs::write(dir.path("bin"), vec![0xff, 0xfe]).await.unwrap();
        let err = fs::read_to_string(dir.path("bin")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    });
}

#[test]
fn std_conversions_round_trip() {
    run("std", 1, || async {
        let dir = TempDir::new("std");
        let path = dir.path("f");
        let mut std_file = std::fs::File::create(&path).unwrap();
        std_file.write_all(b"from std").unwrap();
        let file = File::from_std(std_file);
        assert!(format!("{file:?}").contains("File"));
        let (n, buf) = file.read_at(Vec::with_capacity(16), 0).await;
        assert!(n.is_err(), "write-only: {buf:?}");
        let std_back = file.into_std();
        drop(std_back);
        let file = File::from(std::fs::File::open(&path).unwrap());
        let (n, buf) = file.read_at(Vec::with_capacity(16), 0).await;
        assert_eq!(n.unwrap(), 8);
        assert_eq!(buf, b"from std");
    });
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn fifo_read_dropped_mid_flight_frees_its_buffer_only_after_the_cqe() {
    // One worker: the task never moves, so between the drop and the task's next
    // suspension nobody can reap the cancellation's CQE.
    run("fifo", 1, || async {
        let dir = TempDir::new("fifo");
        let path = dir.path("fifo");
        mkfifo(&path);
        // O_NONBLOCK lets the open return without a writer; io_uring still waits for
        // data (it polls the pipe) instead of failing with EAGAIN.
        let reader = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .await
            .unwrap();
        // A reader exists, so this open does not block; holding it keeps reads from
        // seeing end of file.
        let mut writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();

        let live = Arc::new(AtomicUsize::new(0));
        let mut read = Box::pin(reader.read_at(CountedBuf::new(64, &live), u64::MAX));
        assert!(poll_once(read.as_mut()).await.is_pending());
        // Let the worker submit the SQE and the kernel start waiting on the pipe.
        for _ in 0..10 {
            uringo::task::yield_now().await;
        }
        assert!(
            poll_once(read.as_mut()).await.is_pending(),
            "no data, no writer activity: the read waits"
        );
        drop(read);
        assert_eq!(
            live.load(Ordering::SeqCst),
            1,
            "the kernel may still write into the buffer: it must not be freed yet"
        );
        let mut waited = 0;
        while live.load(Ordering::SeqCst) != 0 {
            assert!(
                waited < 10_000,
                "the cancelled read's buffer was never freed"
            );
            uringo::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }

        writer.write_all(b"after").unwrap();
        let (n, buf) = reader.read_at(CountedBuf::new(64, &live), u64::MAX).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf.data, b"after", "the cancelled read consumed nothing");
        drop(buf);
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn one_hundred_tasks_write_and_read_their_own_files() {
    run("hundred", 2, || async {
        let dir = Arc::new(TempDir::new("hundred"));
        let tasks: Vec<_> = (0..100u32)
            .map(|i| {
                let dir = dir.clone();
                uringo::spawn(async move {
                    let path = dir.path(&format!("file-{i}"));
                    // Distinct contents per task, several pages, written in two halves.
                    let contents: Vec<u8> = (0..20_000u32)
                        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
                        .collect();
                    let file = rw_options().open(&path).await.unwrap();
                    let half = contents.len() / 2;
                    let (res, _) = file
                        .write_all_at(contents[half..].to_vec(), half as u64)
                        .await;
                    res.unwrap();
                    let (res, _) = file.write_all_at(contents[..half].to_vec(), 0).await;
                    res.unwrap();
                    file.sync_data().await.unwrap();
                    let (res, back) = file
                        .read_exact_at(Vec::with_capacity(contents.len()), 0)
                        .await;
                    res.unwrap();
                    file.close().await.unwrap();
                    let whole = fs::read(&path).await.unwrap();
                    (i, back == contents, whole == contents)
                })
            })
            .collect();
        for task in tasks {
            let (i, positional, whole) = task.await.unwrap();
            assert!(positional, "file {i}: read_exact_at saw other contents");
            assert!(whole, "file {i}: fs::read saw other contents");
        }
    });
}
