//! The exclusive lock on a database directory.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// Name of the lock file inside the database directory.
pub const LOCK_FILE: &str = "LOCK";

/// Holds `flock(LOCK_EX)` on `dir/LOCK` for as long as it lives. The lock
/// belongs to the open file description, so a second open of the same
/// directory fails whether it comes from this process or another.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock or fails with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        // SAFETY: flock takes a plain file descriptor owned by `file`, which
        // stays open for the whole call; it touches no Rust memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Error::Locked { dir: dir.to_path_buf() },
                _ => Error::io(format!("locking {}", path.display()), err),
            });
        }
        // Closing the file (on drop) releases the lock.
        Ok(DirLock { _file: file })
    }
}
