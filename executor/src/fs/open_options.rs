//! How a file is opened: `std::fs::OpenOptions`' builder and rules, opened with
//! `IORING_OP_OPENAT`.

use std::io;
use std::path::Path;

use uringo_uring::op::OpenAt;
use uringo_uring::Op;

use super::File;
use crate::runtime::coop::Coop;

/// Options for opening a file, with the same meaning and validation as
/// [`std::fs::OpenOptions`]; [`open`](OpenOptions::open) is asynchronous.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// use uringo::fs::OpenOptions;
///
/// let path = std::env::temp_dir().join(format!("uringo-options-doc-{}", std::process::id()));
/// let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await?;
/// let again = OpenOptions::new().write(true).create_new(true).open(&path).await;
/// assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// # drop(file);
/// # uringo::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: libc::mode_t,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// All options off; the mode of created files is `0o666` (less the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.write = write;
        self
    }

    /// Open for appending (implies write access): every write goes to the end of the
    /// file, whatever position [`File::write_at`] is given (`O_APPEND`).
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.append = append;
        self
    }

    /// Truncate the file to length 0 when opening it (needs write access).
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (needs write or append access).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists (`O_CREAT | O_EXCL`:
    /// atomic, no check-then-create race). Overrides `create` and `truncate`.
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// Permission bits of a file this call creates (the umask still applies).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode as libc::mode_t;
        self
    }

    /// Extra `O_*` flags (for example `O_NONBLOCK`, `O_DIRECT`, `O_NOFOLLOW`). The
    /// access-mode bits are ignored, as in std: use `read`/`write`/`append` for them.
    /// `O_CLOEXEC` is always set.
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    /// Opens `path` with these options.
    ///
    /// Invalid combinations (no access mode; create or truncate without write access;
    /// truncate with append) fail with `InvalidInput` before anything is submitted.
    ///
    /// If the future is dropped before the open completes, the open is cancelled; if
    /// the kernel had already opened the file, the new fd is closed, never leaked (a
    /// file created by `create` stays created).
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let flags = self.open_flags()?;
        let op = OpenAt::new(path.as_ref(), flags, self.mode)?;
        let fd = Coop::new(Op::new(op)).await?;
        Ok(File::from(fd))
    }

    /// The `open(2)` flags, or why this combination makes no sense.
    fn open_flags(&self) -> io::Result<i32> {
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => {
                return Err(invalid(
                    "must specify at least one of read, write, or append access",
                ))
            }
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return Err(invalid(
                        "creating or truncating a file requires write or append access",
                    ));
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return Err(invalid(
                        "truncating a file opened for appending makes no sense; drop one of them",
                    ));
                }
            }
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut OpenOptions) -> &mut OpenOptions) -> io::Result<i32> {
        f(&mut OpenOptions::new()).open_flags()
    }

    #[test]
    fn std_validation_rules() {
        let kind = |r: io::Result<i32>| r.unwrap_err().kind();
        assert_eq!(kind(flags(|o| o)), io::ErrorKind::InvalidInput);
        assert_eq!(
            kind(flags(|o| o.read(true).create(true))),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(flags(|o| o.read(true).truncate(true))),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(flags(|o| o.append(true).truncate(true))),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn flag_translation() {
        assert_eq!(flags(|o| o.read(true)).unwrap(), libc::O_RDONLY);
        assert_eq!(
            flags(|o| o.write(true).create(true).truncate(true)).unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        );
        assert_eq!(
            flags(|o| o.read(true).append(true)).unwrap(),
            libc::O_RDWR | libc::O_APPEND
        );
        assert_eq!(
            flags(|o| o.write(true).create(true).create_new(true).truncate(true)).unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            "create_new wins over create and truncate"
        );
        assert_eq!(
            flags(|o| o.read(true).custom_flags(libc::O_NONBLOCK | libc::O_RDWR)).unwrap(),
            libc::O_RDONLY | libc::O_NONBLOCK,
            "access bits in custom flags are ignored"
        );
    }
}
