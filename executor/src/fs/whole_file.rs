//! Reading and writing a whole file in one call.

use std::io;
use std::path::Path;

use uringo_uring::IoBuf;

use super::File;

/// The smallest read issued: a file whose size statx does not know (`/proc`, `/sys`,
/// FIFOs) starts here and the buffer doubles as it fills.
const MIN_READ: usize = 4096;

/// Reads the whole file at `path`.
///
/// The size `statx` reports is only a hint: reading goes on until end of file, growing
/// the buffer, so files that report size 0 (`/proc/self/status`) or grow meanwhile are
/// read in full.
///
/// Dropping the future closes the file; what was read so far is lost.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let status = uringo::fs::read("/proc/self/status").await?;
/// assert!(status.starts_with(b"Name:"));
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path).await?;
    let hint = file.metadata().await.map_or(0, |m| m.len());
    // One byte beyond the hint, so a file of exactly that size ends on a 0-byte read
    // rather than a doubling first.
    let first = usize::try_from(hint)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .max(MIN_READ);
    let mut buf = Vec::new();
    buf.try_reserve_exact(first)
        .map_err(|_| out_of_memory(first))?;
    loop {
        if buf.len() == buf.capacity() {
            let more = buf.capacity();
            buf.try_reserve(more).map_err(|_| out_of_memory(more))?;
        }
        let (start, end) = (buf.len(), buf.capacity());
        // u64::MAX: read at the file's own position, which also works for files that
        // cannot be read at an offset (FIFOs, some character devices).
        let (res, slice) = file.read_at(buf.slice(start..end), u64::MAX).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(buf)
}

fn out_of_memory(bytes: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("cannot allocate {bytes} more bytes to read the file into"),
    )
}

/// Reads the whole file at `path` as UTF-8 (see [`read`]); invalid UTF-8 is an
/// `InvalidData` error.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "file is not valid UTF-8 (at byte {})",
                err.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Writes `contents` as the whole file at `path`, creating it or truncating it first,
/// and closes it through the ring (so a close error is reported).
///
/// If the future is dropped, the file may hold any prefix of `contents`; `contents` is
/// freed only once the kernel is done with it.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let path = std::env::temp_dir().join(format!("uringo-write-doc-{}", std::process::id()));
/// uringo::fs::write(&path, "contents").await?;
/// assert_eq!(uringo::fs::read(&path).await?, b"contents");
/// # uringo::fs::remove_file(&path).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl IoBuf) -> io::Result<()> {
    let file = File::create(path).await?;
    let (res, _) = file.write_all_at(contents, 0).await;
    res?;
    file.close().await
}
