//! File-system operations: no thread pool, the kernel does them (or its io-wq does).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use io_uring::{opcode, squeue, types};

use super::future::into_op_future;
use super::net::close_orphan_fd;
use crate::cqe::Cqe;
use crate::operation::Operation;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains an interior NUL byte",
        )
    })
}

/// `IORING_OP_OPENAT`. The new fd is always `O_CLOEXEC`; if the future is dropped after
/// the kernel opened the file, the fd is closed rather than leaked.
///
/// ```
/// use uringo_uring::{op::OpenAt, Ring};
/// let ring = Ring::new()?;
/// let fd = ring.block_on(async { OpenAt::new("/proc/self/stat", libc::O_RDONLY, 0)?.await })?;
/// # drop(fd);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OpenAt {
    dirfd: RawFd,
    path: CString,
    flags: i32,
    mode: libc::mode_t,
}

impl OpenAt {
    /// Opens `path` (relative to the working directory) with `O_*` `flags` and `mode`.
    pub fn new(path: impl AsRef<Path>, flags: i32, mode: libc::mode_t) -> io::Result<Self> {
        Self::at(libc::AT_FDCWD, path, flags, mode)
    }

    /// Opens `path` relative to directory fd `dirfd`.
    pub fn at(
        dirfd: RawFd,
        path: impl AsRef<Path>,
        flags: i32,
        mode: libc::mode_t,
    ) -> io::Result<Self> {
        Ok(Self {
            dirfd,
            path: c_path(path.as_ref())?,
            flags: flags | libc::O_CLOEXEC,
            mode,
        })
    }
}

// SAFETY: the path's bytes are a heap CString owned by the op until the CQE.
unsafe impl Operation for OpenAt {
    type Output = io::Result<OwnedFd>;

    fn build(&mut self) -> squeue::Entry {
        opcode::OpenAt::new(types::Fd(self.dirfd), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        let fd = cqe.io_result()?;
        // SAFETY: a successful open returns a fresh fd that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    fn orphaned(self, cqe: Cqe) {
        close_orphan_fd(cqe);
    }
}

/// `IORING_OP_STATX`.
pub struct Statx {
    dirfd: RawFd,
    path: CString,
    flags: i32,
    mask: u32,
    statx: libc::statx,
}

impl std::fmt::Debug for Statx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statx")
            .field("dirfd", &self.dirfd)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Statx {
    /// Stats `path` (following symlinks), asking for the basic fields.
    pub fn new(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self {
            dirfd: libc::AT_FDCWD,
            path: c_path(path.as_ref())?,
            flags: 0,
            mask: libc::STATX_BASIC_STATS,
            // SAFETY: statx is plain data; zeroed is a valid value for the kernel to fill.
            statx: unsafe { std::mem::zeroed() },
        })
    }

    /// Stats an open fd (`AT_EMPTY_PATH`).
    pub fn fd(fd: RawFd) -> Self {
        Self {
            dirfd: fd,
            path: CString::default(),
            flags: libc::AT_EMPTY_PATH,
            mask: libc::STATX_BASIC_STATS,
            // SAFETY: as above.
            statx: unsafe { std::mem::zeroed() },
        }
    }

    /// `AT_*` flags (e.g. `AT_SYMLINK_NOFOLLOW`), added to the defaults.
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags |= flags;
        self
    }

    /// `STATX_*` mask of the fields wanted.
    pub fn mask(mut self, mask: u32) -> Self {
        self.mask = mask;
        self
    }
}

// SAFETY: the path and the statx buffer live in the op until the CQE.
unsafe impl Operation for Statx {
    type Output = io::Result<libc::statx>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Statx::new(
            types::Fd(self.dirfd),
            self.path.as_ptr(),
            &mut self.statx as *mut libc::statx as *mut types::statx,
        )
        .flags(self.flags)
        .mask(self.mask)
        .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(|_| self.statx)
    }
}

/// `IORING_OP_FSYNC`.
#[derive(Debug)]
pub struct Fsync {
    fd: RawFd,
    datasync: bool,
}

impl Fsync {
    /// Flushes `fd`'s data and metadata.
    pub fn new(fd: RawFd) -> Self {
        Self {
            fd,
            datasync: false,
        }
    }

    /// Flushes only what is needed to read the data back (`fdatasync`).
    pub fn datasync(fd: RawFd) -> Self {
        Self { fd, datasync: true }
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Fsync {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        let flags = if self.datasync {
            types::FsyncFlags::DATASYNC
        } else {
            types::FsyncFlags::empty()
        };
        opcode::Fsync::new(types::Fd(self.fd)).flags(flags).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_CLOSE`: closes an fd asynchronously, reporting the error `close` would.
///
/// The fd is never leaked: until the SQE is built the op holds it as an `OwnedFd` (so an
/// op dropped or cancelled before submission closes it synchronously), and a close whose
/// SQE never reached the kernel, or that the kernel reports as cancelled (`ECANCELED`:
/// it never ran), is done synchronously too.
#[derive(Debug)]
pub struct Close {
    fd: RawFd,
    /// The fd until the kernel is handed the close request.
    owned: Option<OwnedFd>,
}

impl Close {
    /// Closes `fd`, which the op takes ownership of.
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd: fd.as_raw_fd(),
            owned: Some(fd),
        }
    }

    /// Closes the fd here if the kernel never closed it.
    fn close_if_cancelled(self, cqe: Cqe) -> Option<Cqe> {
        if cqe.result != -libc::ECANCELED {
            return Some(cqe);
        }
        match self.owned {
            // Never handed to the kernel: dropping closes it.
            Some(fd) => drop(fd),
            // SAFETY: the kernel was asked to close `fd` but reports the request cancelled
            // before it ran, so the fd is still open and still ours.
            None => drop(unsafe { OwnedFd::from_raw_fd(self.fd) }),
        }
        None
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Close {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        // From here on the kernel closes the fd; our OwnedFd must not close it again.
        if let Some(fd) = self.owned.take() {
            let _ = fd.into_raw_fd();
        }
        opcode::Close::new(types::Fd(self.fd)).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        match self.close_if_cancelled(cqe) {
            Some(cqe) => cqe.io_result().map(drop),
            None => Ok(()),
        }
    }

    fn orphaned(self, cqe: Cqe) {
        let _ = self.close_if_cancelled(cqe);
    }

    fn not_submitted(self, _err: io::Error) -> Self::Output {
        let fd = match self.owned {
            Some(fd) => fd,
            // SAFETY: `build` handed the fd to an SQE that never reached the kernel, so
            // it is still open and still ours.
            None => unsafe { OwnedFd::from_raw_fd(self.fd) },
        };
        // The close the kernel never got, done here; its result is the op's.
        // SAFETY: `into_raw_fd` gives up ownership, so the fd is closed exactly once.
        if unsafe { libc::close(fd.into_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// `IORING_OP_RENAMEAT` (5.11+): `renameat2(2)`, moving `from` to `to`.
///
/// ```
/// use uringo_uring::{op::RenameAt, Ring};
/// let dir = std::env::temp_dir().join(format!("uringo-rename-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("a"), b"x")?;
/// let ring = Ring::new()?;
/// ring.block_on(async { RenameAt::new(dir.join("a"), dir.join("b"))?.await })?;
/// assert_eq!(std::fs::read(dir.join("b"))?, b"x");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RenameAt {
    old_dirfd: RawFd,
    old_path: CString,
    new_dirfd: RawFd,
    new_path: CString,
    flags: u32,
}

impl RenameAt {
    /// Renames `from` to `to` (both relative to the working directory), replacing `to`
    /// if it exists, as `rename(2)` does.
    pub fn new(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<Self> {
        Self::at(libc::AT_FDCWD, from, libc::AT_FDCWD, to)
    }

    /// Renames `from` (relative to `from_dirfd`) to `to` (relative to `to_dirfd`).
    pub fn at(
        from_dirfd: RawFd,
        from: impl AsRef<Path>,
        to_dirfd: RawFd,
        to: impl AsRef<Path>,
    ) -> io::Result<Self> {
        Ok(Self {
            old_dirfd: from_dirfd,
            old_path: c_path(from.as_ref())?,
            new_dirfd: to_dirfd,
            new_path: c_path(to.as_ref())?,
            flags: 0,
        })
    }

    /// `RENAME_*` flags of `renameat2(2)` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`, ...).
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
}

// SAFETY: both paths are heap CStrings owned by the op until the CQE.
unsafe impl Operation for RenameAt {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::RenameAt::new(
            types::Fd(self.old_dirfd),
            self.old_path.as_ptr(),
            types::Fd(self.new_dirfd),
            self.new_path.as_ptr(),
        )
        .flags(self.flags)
        .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_UNLINKAT` (5.11+): removes a file ([`UnlinkAt::file`]) or an empty
/// directory ([`UnlinkAt::dir`], `AT_REMOVEDIR`).
///
/// ```
/// use uringo_uring::{op::UnlinkAt, Ring};
/// let path = std::env::temp_dir().join(format!("uringo-unlink-doc-{}", std::process::id()));
/// std::fs::write(&path, b"x")?;
/// let ring = Ring::new()?;
/// ring.block_on(async { UnlinkAt::file(&path)?.await })?;
/// assert!(!path.exists());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnlinkAt {
    dirfd: RawFd,
    path: CString,
    flags: i32,
}

impl UnlinkAt {
    /// Removes the file (or symlink, or other non-directory) at `path`, like `unlink(2)`.
    pub fn file(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::at(libc::AT_FDCWD, path, 0)
    }

    /// Removes the empty directory at `path`, like `rmdir(2)`.
    pub fn dir(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::at(libc::AT_FDCWD, path, libc::AT_REMOVEDIR)
    }

    /// Removes `path` relative to `dirfd`, with `AT_*` `flags` (0 or `AT_REMOVEDIR`).
    pub fn at(dirfd: RawFd, path: impl AsRef<Path>, flags: i32) -> io::Result<Self> {
        Ok(Self {
            dirfd,
            path: c_path(path.as_ref())?,
            flags,
        })
    }
}

// SAFETY: the path is a heap CString owned by the op until the CQE.
unsafe impl Operation for UnlinkAt {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::UnlinkAt::new(types::Fd(self.dirfd), self.path.as_ptr())
            .flags(self.flags)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_MKDIRAT` (5.15+): creates one directory, like `mkdir(2)`.
///
/// ```
/// use uringo_uring::{op::MkDirAt, Ring};
/// let path = std::env::temp_dir().join(format!("uringo-mkdir-doc-{}", std::process::id()));
/// let ring = Ring::new()?;
/// ring.block_on(async { MkDirAt::new(&path, 0o755)?.await })?;
/// assert!(path.is_dir());
/// # std::fs::remove_dir(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct MkDirAt {
    dirfd: RawFd,
    path: CString,
    mode: libc::mode_t,
}

impl MkDirAt {
    /// Creates the directory `path` with permission bits `mode` (less the umask).
    pub fn new(path: impl AsRef<Path>, mode: libc::mode_t) -> io::Result<Self> {
        Self::at(libc::AT_FDCWD, path, mode)
    }

    /// Creates `path` relative to directory fd `dirfd`.
    pub fn at(dirfd: RawFd, path: impl AsRef<Path>, mode: libc::mode_t) -> io::Result<Self> {
        Ok(Self {
            dirfd,
            path: c_path(path.as_ref())?,
            mode,
        })
    }
}

// SAFETY: the path is a heap CString owned by the op until the CQE.
unsafe impl Operation for MkDirAt {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::MkDirAt::new(types::Fd(self.dirfd), self.path.as_ptr())
            .mode(self.mode)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_FALLOCATE` (5.6+): `fallocate(2)` on `len` bytes at `offset`.
///
/// With the default mode 0 the range is allocated and the file grows to cover it;
/// `FALLOC_FL_KEEP_SIZE`, `FALLOC_FL_PUNCH_HOLE` and friends go in [`Fallocate::mode`].
#[derive(Debug)]
pub struct Fallocate {
    fd: RawFd,
    offset: u64,
    len: u64,
    mode: i32,
}

impl Fallocate {
    /// Allocates `len` bytes of `fd` starting at `offset`.
    pub fn new(fd: RawFd, offset: u64, len: u64) -> Self {
        Self {
            fd,
            offset,
            len,
            mode: 0,
        }
    }

    /// `FALLOC_FL_*` flags.
    pub fn mode(mut self, mode: i32) -> Self {
        self.mode = mode;
        self
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Fallocate {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Fallocate::new(types::Fd(self.fd), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

/// `IORING_OP_FTRUNCATE` (6.9+): sets the length of `fd`'s file, like `ftruncate(2)`.
///
/// A kernel older than 6.9 does not know the opcode and completes it with `EINVAL`
/// (check first with `Ring::supports(opcodes::Ftruncate::CODE)`, or fall back to the
/// syscall on that error, as `uringo::fs::File::set_len` does).
#[derive(Debug)]
pub struct Ftruncate {
    fd: RawFd,
    len: u64,
}

impl Ftruncate {
    /// Truncates or extends `fd`'s file to `len` bytes.
    pub fn new(fd: RawFd, len: u64) -> Self {
        Self { fd, len }
    }
}

// SAFETY: the SQE carries no pointers.
unsafe impl Operation for Ftruncate {
    type Output = io::Result<()>;

    fn build(&mut self) -> squeue::Entry {
        opcode::Ftruncate::new(types::Fd(self.fd), self.len).build()
    }

    fn complete(self, cqe: Cqe) -> Self::Output {
        cqe.io_result().map(drop)
    }
}

into_op_future!(OpenAt, Statx, Fsync, Close, RenameAt, UnlinkAt, MkDirAt, Fallocate, Ftruncate,);
