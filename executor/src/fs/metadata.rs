//! File metadata from `statx(2)` (`IORING_OP_STATX`).

use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use uringo_uring::op::{Anchored, Statx};
use uringo_uring::Op;

use crate::runtime::coop::Coop;

/// The fields asked of `statx`: the classic `stat` ones plus the birth time.
const MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// Metadata of a file: what `statx(2)` reported.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let meta = uringo::fs::metadata("/").await?;
/// assert!(meta.is_dir());
/// assert!(meta.modified()? > std::time::UNIX_EPOCH);
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy)]
pub struct Metadata {
    statx: libc::statx,
}

impl Metadata {
    pub(crate) async fn of_fd(fd: &uringo_uring::op::SharedFd) -> io::Result<Metadata> {
        let op = Statx::fd(fd.as_raw_fd()).mask(MASK);
        let statx = Coop::new(Op::new(Anchored::new(op, fd.clone()))).await?;
        Ok(Metadata { statx })
    }

    /// Size in bytes (0 for many `/proc` and `/sys` files, whose size is not known
    /// until they are read).
    pub fn len(&self) -> u64 {
        self.statx.stx_size
    }

    /// Whether the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of file.
    pub fn file_type(&self) -> FileType {
        FileType(self.statx.stx_mode as libc::mode_t & libc::S_IFMT)
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type().is_file()
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type().is_dir()
    }

    /// Whether this is a symbolic link (only from [`symlink_metadata`]; the other
    /// calls follow links).
    pub fn is_symlink(&self) -> bool {
        self.file_type().is_symlink()
    }

    /// The permissions, as std's type.
    pub fn permissions(&self) -> std::fs::Permissions {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(self.mode() & 0o7777)
    }

    /// The full `st_mode`: file type and permission bits.
    pub fn mode(&self) -> u32 {
        u32::from(self.statx.stx_mode)
    }

    /// Last modification time.
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_MTIME, self.statx.stx_mtime, "modification")
    }

    /// Last access time.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_ATIME, self.statx.stx_atime, "access")
    }

    /// Creation (birth) time; an `Unsupported` error on file systems that do not
    /// record it.
    pub fn created(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_BTIME, self.statx.stx_btime, "creation")
    }

    fn time(&self, bit: u32, ts: libc::statx_timestamp, what: &str) -> io::Result<SystemTime> {
        if self.statx.stx_mask & bit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the file system did not report a {what} time for this file"),
            ));
        }
        let nanos = Duration::from_nanos(u64::from(ts.tv_nsec));
        let time = if ts.tv_sec >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(ts.tv_sec as u64) + nanos)
        } else {
            SystemTime::UNIX_EPOCH
                .checked_sub(Duration::from_secs(ts.tv_sec.unsigned_abs()))
                .and_then(|t| t.checked_add(nanos))
        };
        time.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} time out of SystemTime's range"),
            )
        })
    }

    /// The raw `statx` record, for fields not exposed above (inode, links, owner, ...).
    pub fn as_raw_statx(&self) -> &libc::statx {
        &self.statx
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("file_type", &self.file_type())
            .field("mode", &format_args!("{:#o}", self.mode() & 0o7777))
            .field("len", &self.len())
            .field("modified", &self.modified().ok())
            .finish_non_exhaustive()
    }
}

/// The kind of a file (the `S_IFMT` bits of its mode).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileType(libc::mode_t);

impl FileType {
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.0 == libc::S_IFREG
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.0 == libc::S_IFDIR
    }
    /// A symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.0 == libc::S_IFLNK
    }
    /// A named pipe.
    pub fn is_fifo(&self) -> bool {
        self.0 == libc::S_IFIFO
    }
    /// A Unix socket.
    pub fn is_socket(&self) -> bool {
        self.0 == libc::S_IFSOCK
    }
    /// A block device.
    pub fn is_block_device(&self) -> bool {
        self.0 == libc::S_IFBLK
    }
    /// A character device.
    pub fn is_char_device(&self) -> bool {
        self.0 == libc::S_IFCHR
    }
}

impl fmt::Debug for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            libc::S_IFREG => "file",
            libc::S_IFDIR => "dir",
            libc::S_IFLNK => "symlink",
            libc::S_IFIFO => "fifo",
            libc::S_IFSOCK => "socket",
            libc::S_IFBLK => "block device",
            libc::S_IFCHR => "char device",
            _ => "unknown",
        };
        f.write_str(name)
    }
}

/// Metadata of `path`, following symlinks.
///
/// Dropping the future cancels the stat; nothing is lost.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let op = Statx::new(path.as_ref())?.mask(MASK);
    let statx = Coop::new(Op::new(op)).await?;
    Ok(Metadata { statx })
}

/// Metadata of `path` itself, not following a final symlink (`AT_SYMLINK_NOFOLLOW`).
///
/// Dropping the future cancels the stat; nothing is lost.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let link = uringo::fs::symlink_metadata("/proc/self").await?;
/// assert!(link.is_symlink());
/// assert!(uringo::fs::metadata("/proc/self").await?.is_dir());
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let op = Statx::new(path.as_ref())?
        .flags(libc::AT_SYMLINK_NOFOLLOW)
        .mask(MASK);
    let statx = Coop::new(Op::new(op)).await?;
    Ok(Metadata { statx })
}
