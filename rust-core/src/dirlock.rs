//! The exclusive lock on a database directory.

use std::path::Path;

use crate::error::{Error, Result};
use crate::vfs::{FileHandle, FileSystem};

/// Name of the lock file inside the database directory.
pub const LOCK_FILE: &str = "LOCK";

/// Holds the lock on `dir/LOCK` for as long as it lives. With the
/// operating system's file system this is `flock(LOCK_EX)`, which belongs to
/// the open file description, so a second open of the same directory fails
/// whether it comes from this process or another.
#[derive(Debug)]
pub struct DirLock {
    _file: Box<dyn FileHandle>,
}

impl DirLock {
    /// Takes the lock or fails with [`Error::Locked`].
    pub fn acquire(fs: &dyn FileSystem, dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        match fs.lock(&path) {
            // Dropping the handle releases the lock.
            Ok(file) => Ok(DirLock { _file: file }),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Error::Locked { dir: dir.to_path_buf() }),
            Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
        }
    }
}
