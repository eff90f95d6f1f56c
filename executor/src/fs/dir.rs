//! Directory entries: create, remove and rename them.

use std::io;
use std::path::Path;

use uringo_uring::op::{MkDirAt, RenameAt, UnlinkAt};
use uringo_uring::Op;

use crate::runtime::coop::Coop;

/// Creates one directory (mode `0o777` less the umask). Its parent must exist.
///
/// If the future is dropped, the directory may or may not have been created.
///
/// ```
/// # let rt = uringo::Runtime::new().unwrap();
/// # rt.block_on(async {
/// let dir = std::env::temp_dir().join(format!("uringo-create-dir-doc-{}", std::process::id()));
/// uringo::fs::create_dir(&dir).await?;
/// let again = uringo::fs::create_dir(&dir).await;
/// assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
/// uringo::fs::remove_dir(&dir).await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    Coop::new(Op::new(MkDirAt::new(path.as_ref(), 0o777)?)).await
}

/// Creates a directory and every missing parent. A directory that already exists (or
/// that another task creates meanwhile) is not an error; anything else in the way is.
///
/// If the future is dropped, some of the missing directories may have been created.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    // Walk up until a directory can be created or is found, then create back down.
    let mut missing = Vec::new();
    let mut current = path;
    loop {
        match create_dir(current).await {
            Ok(()) => break,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                missing.push(current);
                match current.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => current = parent,
                    _ => return Err(err),
                }
            }
            Err(err) => {
                if is_dir(current).await {
                    break;
                }
                return Err(err);
            }
        }
    }
    // `missing` runs from `path` up to the child of the directory found; create downwards.
    for dir in missing.into_iter().rev() {
        if let Err(err) = create_dir(dir).await {
            if !is_dir(dir).await {
                return Err(err);
            }
        }
    }
    Ok(())
}

async fn is_dir(path: &Path) -> bool {
    super::metadata(path).await.is_ok_and(|m| m.is_dir())
}

/// Removes an empty directory.
///
/// If the future is dropped, the directory may or may not have been removed.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    Coop::new(Op::new(UnlinkAt::dir(path.as_ref())?)).await
}

/// Removes a file (or a symlink: the link, not its target).
///
/// If the future is dropped, the file may or may not have been removed.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    Coop::new(Op::new(UnlinkAt::file(path.as_ref())?)).await
}

/// Renames `from` to `to`, replacing `to` if it exists (atomically, within one file
/// system, as `rename(2)` does).
///
/// If the future is dropped, the rename may or may not have happened; never half.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    Coop::new(Op::new(RenameAt::new(from.as_ref(), to.as_ref())?)).await
}
