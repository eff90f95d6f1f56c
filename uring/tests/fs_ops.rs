//! The path and file-size ops (rename, unlink, mkdir, fallocate, ftruncate) against a
//! real file system.

mod common;

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use common::TempDir;
use uringo_uring::op::{Fallocate, Ftruncate, MkDirAt, RenameAt, Statx, UnlinkAt};
use uringo_uring::{opcodes, Ring};

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn rename_moves_a_file_and_replaces_the_target() {
    let dir = TempDir::new("renameat");
    let (a, b) = (dir.path("a"), dir.path("b"));
    std::fs::write(&a, b"from a").unwrap();
    std::fs::write(&b, b"old b").unwrap();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        RenameAt::new(&a, &b).unwrap().await.unwrap();
        assert!(!a.exists(), "the source name is gone");
        assert_eq!(
            std::fs::read(&b).unwrap(),
            b"from a",
            "the target was replaced"
        );

        let missing = RenameAt::new(dir.path("missing"), &a).unwrap().await;
        assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);

        std::fs::write(&a, b"new a").unwrap();
        let refused = RenameAt::new(&a, &b)
            .unwrap()
            .flags(libc::RENAME_NOREPLACE)
            .await;
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read(&b).unwrap(),
            b"from a",
            "NOREPLACE left the target alone"
        );
    });
}

#[test]
fn unlink_removes_files_and_only_empty_directories() {
    let dir = TempDir::new("unlinkat");
    let file = dir.path("file");
    let sub = dir.path("sub");
    std::fs::write(&file, b"x").unwrap();
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inner"), b"y").unwrap();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        UnlinkAt::file(&file).unwrap().await.unwrap();
        assert!(!file.exists());
        let again = UnlinkAt::file(&file).unwrap().await;
        assert_eq!(again.unwrap_err().kind(), ErrorKind::NotFound);

        let not_a_file = UnlinkAt::file(&sub).unwrap().await.unwrap_err();
        assert_eq!(not_a_file.raw_os_error(), Some(libc::EISDIR));
        let not_empty = UnlinkAt::dir(&sub).unwrap().await.unwrap_err();
        assert_eq!(not_empty.raw_os_error(), Some(libc::ENOTEMPTY));
        assert!(sub.is_dir(), "a non-empty directory survives");

        UnlinkAt::file(sub.join("inner")).unwrap().await.unwrap();
        UnlinkAt::dir(&sub).unwrap().await.unwrap();
        assert!(!sub.exists());
    });
}

#[test]
fn mkdir_creates_one_level_with_the_mode() {
    let dir = TempDir::new("mkdirat");
    let sub = dir.path("sub");
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        MkDirAt::new(&sub, 0o700).unwrap().await.unwrap();
        let meta = std::fs::metadata(&sub).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);

        let exists = MkDirAt::new(&sub, 0o700).unwrap().await;
        assert_eq!(exists.unwrap_err().kind(), ErrorKind::AlreadyExists);
        let no_parent = MkDirAt::new(dir.path("x/y"), 0o700).unwrap().await;
        assert_eq!(no_parent.unwrap_err().kind(), ErrorKind::NotFound);
    });
}

#[test]
fn fallocate_grows_the_file_or_only_reserves_space() {
    let dir = TempDir::new("fallocate");
    let path = dir.path("f");
    let file = std::fs::File::create(&path).unwrap();
    let fd = file.as_raw_fd();
    let ring = Ring::new().unwrap();
    ring.block_on(async {
        Fallocate::new(fd, 4096, 8192).await.unwrap();
        assert_eq!(file_len(&path), 4096 + 8192, "mode 0 extends the file");

        let before = Statx::fd(fd).await.unwrap().stx_blocks;
        Fallocate::new(fd, 1 << 20, 1 << 16)
            .mode(libc::FALLOC_FL_KEEP_SIZE)
            .await
            .unwrap();
        assert_eq!(file_len(&path), 4096 + 8192, "KEEP_SIZE keeps the length");
        let after = Statx::fd(fd).await.unwrap().stx_blocks;
        assert!(
            after >= before + (1 << 16) / 512,
            "KEEP_SIZE still allocates: {before} -> {after} blocks"
        );

        let bad = Fallocate::new(fd, 0, 0).await.unwrap_err();
        assert_eq!(bad.raw_os_error(), Some(libc::EINVAL), "zero length");
    });
}

#[test]
fn ftruncate_shrinks_and_extends() {
    let dir = TempDir::new("ftruncate");
    let path = dir.path("f");
    std::fs::write(&path, b"0123456789").unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let read_only = std::fs::File::open(&path).unwrap();
    let ring = Ring::new().unwrap();
    let supported = ring.supports(opcodes::Ftruncate::CODE);
    ring.block_on(async {
        let shrink = Ftruncate::new(file.as_raw_fd(), 4).await;
        if !supported {
            // Pre-6.9 kernels reject the unknown opcode; the executor falls back on this.
            assert_eq!(shrink.unwrap_err().raw_os_error(), Some(libc::EINVAL));
            return;
        }
        shrink.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123");
        Ftruncate::new(file.as_raw_fd(), 6).await.unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"0123\0\0",
            "extended with zeros"
        );

        let err = Ftruncate::new(read_only.as_raw_fd(), 0).await.unwrap_err();
        assert!(
            matches!(err.raw_os_error(), Some(libc::EINVAL | libc::EBADF)),
            "a read-only fd cannot be truncated: {err}"
        );
        assert_eq!(file_len(&path), 6);
    });
}

#[test]
fn interior_nul_in_a_path_is_rejected_before_submission() {
    for err in [
        RenameAt::new("a\0b", "c").unwrap_err(),
        RenameAt::new("a", "c\0d").unwrap_err(),
        UnlinkAt::file("a\0b").unwrap_err(),
        UnlinkAt::dir("a\0b").unwrap_err(),
        MkDirAt::new("a\0b", 0o755).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

#[test]
fn close_dropped_or_cancelled_before_submission_still_closes_the_fd() {
    use std::io::Read;
    use std::os::fd::OwnedFd;
    use uringo_uring::op::Close;
    use uringo_uring::Op;

    let ring = Ring::new().unwrap();
    let _enter = ring.enter();
    for cancel_first in [false, true] {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut close = Op::new(Close::new(OwnedFd::from(a)));
        if cancel_first {
            close.cancel();
            ring.block_on(close).unwrap();
        } else {
            drop(close);
        }
        let mut byte = [0u8; 1];
        assert_eq!(
            b.read(&mut byte).unwrap(),
            0,
            "the peer sees EOF: the fd was closed (cancel first: {cancel_first})"
        );
    }
}
