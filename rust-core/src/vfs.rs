//! The file layer: every file and directory operation of the engine goes
//! through a [`FileSystem`].
//!
//! The default, [`OsFileSystem`], is a thin veneer over `std::fs` and the
//! POSIX calls the engine always made (one dynamic call per system call).
//! Another implementation can be passed in [`crate::Options::file_system`]
//! to test or instrument the engine: the crate's tests use one that injects
//! faults (`ENOSPC`, `EIO`, short writes, failed syncs and renames) and an
//! in-memory one that simulates a power cut, keeping only what was synced.
//!
//! The contract, which is all the engine relies on:
//!
//! - Files are written at their end with [`FileHandle::append`], except the
//!   log writer's segment, opened with [`OpenMode::Write`]: it is extended
//!   ahead of its records with zeroed space ([`FileHandle::preallocate`])
//!   that [`FileHandle::write_at`] then overwrites, so a sync of a record
//!   does not also have to commit a new file length. Data is durable once
//!   [`FileHandle::sync_data`] or [`FileHandle::sync_all`] returned Ok.
//! - A name (a created, renamed, linked or removed file, or a created
//!   directory) is durable once its directory was synced with
//!   [`FileSystem::sync_dir`] afterwards.
//! - [`FileSystem::rename`] replaces the target atomically.
//! - A handle keeps reading its file after the name was removed.
//! - [`FileHandle::map_fd`] may offer a descriptor to map the file
//!   read-only (the operating system's does); the engine maps only files
//!   it no longer writes (closed segments). A test file system that
//!   returns `None` (the default) sees every read as a call.
//! - Files are created with mode `0600`; directories the engine creates get `0700`.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

/// How [`FileSystem::open`] opens a file. Every mode that writes appends,
/// except [`OpenMode::Write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for reading.
    Read,
    /// An existing file, for reading and appending.
    Append,
    /// A new file (the call fails if the name exists), for reading and appending.
    CreateNew,
    /// A new or emptied file (created, or truncated to 0), for reading and appending.
    Replace,
    /// An existing file, to change its length with [`FileHandle::set_len`].
    Resize,
    /// An existing file, for reading, and writing at given offsets with
    /// [`FileHandle::write_at`] (not in append mode).
    Write,
}

/// What [`FileSystem::stat`] tells about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The path names a directory.
    pub is_dir: bool,
    /// Length in bytes (files).
    pub len: u64,
}

/// An open file.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Writes all of `buf` after the file's last byte. On error, any prefix
    /// of `buf` may have been written.
    fn append(&self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (a handle opened with
    /// [`OpenMode::Write`]). On error, any part of `buf` may have been written.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file at least `len` bytes long: the bytes past its old end
    /// read as zeros and their disk space is allocated now, so running out
    /// of space fails here (`ENOSPC`) rather than at a later write, and a
    /// later [`FileHandle::write_at`] into them changes no file metadata.
    /// A file already `len` bytes or longer is left as it is.
    fn preallocate(&self, len: u64) -> io::Result<()>;
    /// Fills `buf` from `offset`; a file too short is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Reads `head.len() + tail.len()` bytes from `offset`, the first ones
    /// into `head` and the rest into `tail`, which need not be initialized
    /// and is, in full, on success; a file too short is an `UnexpectedEof`
    /// error. For reading a record's key beside its value straight into the
    /// value's final buffer. The default makes one
    /// [`FileHandle::read_exact_at`] call into a temporary buffer and
    /// copies from it.
    fn read_split_at(&self, head: &mut [u8], tail: &mut [MaybeUninit<u8>], offset: u64) -> io::Result<()> {
        let mut buf = vec![0u8; head.len() + tail.len()];
        self.read_exact_at(&mut buf, offset)?;
        let (h, t) = buf.split_at(head.len());
        head.copy_from_slice(h);
        for (d, s) in tail.iter_mut().zip(t) {
            d.write(*s);
        }
        Ok(())
    }
    /// Makes the file's data (and its length) durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length now.
    fn size(&self) -> io::Result<u64>;
    /// How many names the file has (hard links). The engine reuses a
    /// retired segment's file only when it has no name but its own (a
    /// checkpoint may have linked it). The default says it cannot tell
    /// (`Unsupported`), and such files are never reused.
    fn links(&self) -> io::Result<u64> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// The descriptor through which the file may be mapped into memory,
    /// read-only, or `None` (the default) when this file system does not
    /// map: every read then goes through [`FileHandle::read_exact_at`] or
    /// [`FileHandle::read_split_at`]. The engine maps only closed segments,
    /// files it never writes, cuts or reuses while a map of them lives
    /// (see [`crate::log::segment::Segment::mapped`]).
    fn map_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// The file and directory operations the engine uses. See the module
/// documentation for the contract an implementation keeps.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Opens (or creates, mode `0600`) the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>>;
    /// Whether `path` is a directory, and its length.
    fn stat(&self, path: &Path) -> io::Result<Stat>;
    /// The names in directory `dir`, in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Creates `dir` and any missing parent, then gives `dir` mode `0700`
    /// (also when it existed).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the name `path` (open handles keep reading the file).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes `dst` a second name of the file `src`.
    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()>;
    /// Makes the names in directory `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file `path` (created if missing), held
    /// until the returned handle is dropped. Fails with
    /// [`io::ErrorKind::WouldBlock`] when another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
}

/// The operating system's file system (`std::fs` and POSIX calls).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileSystem;

/// The default file system, shared.
pub fn os() -> Arc<dyn FileSystem> {
    Arc::new(OsFileSystem)
}

#[derive(Debug)]
struct OsFile(File);

/// Zeros written per call by [`OsFile::preallocate`].
const ZERO_CHUNK: u64 = 256 << 10;

fn to_off_t(n: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file length too large"))
}

impl FileHandle for OsFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        (&self.0).write_all(buf)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        let old = self.size()?;
        if old >= len {
            return Ok(());
        }
        let (start, extra) = (to_off_t(old)?, to_off_t(len - old)?);
        // SAFETY: fallocate takes a file descriptor owned by `self.0`, open
        // for the whole call, and two integers; it touches no Rust memory.
        let rc = unsafe { libc::fallocate(self.0.as_raw_fd(), 0, start, extra) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // A file system without fallocate gets its zeros written below.
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
        // fallocate leaves unwritten extents: the first write into each
        // would convert it, a metadata change every fdatasync would then
        // have to journal. Writing the zeros now pays that once, here.
        let zeros = vec![0u8; ZERO_CHUNK.min(len - old) as usize];
        let mut at = old;
        while at < len {
            let n = (len - at).min(ZERO_CHUNK) as usize;
            self.0.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn read_split_at(&self, head: &mut [u8], tail: &mut [MaybeUninit<u8>], offset: u64) -> io::Result<()> {
        // One preadv: the kernel fills both buffers, `tail` without first
        // being zeroed and without a copy through a buffer of our own.
        let (mut h, mut t, mut at) = (0usize, 0usize, offset);
        while h < head.len() || t < tail.len() {
            let iov = [
                libc::iovec {
                    iov_base: head[h..].as_mut_ptr().cast(),
                    iov_len: head.len() - h,
                },
                libc::iovec {
                    iov_base: tail[t..].as_mut_ptr().cast(),
                    iov_len: tail.len() - t,
                },
            ];
            // SAFETY: both iovecs describe memory this call borrows
            // mutably for its whole duration (`head[h..]`, `tail[t..]`,
            // lengths taken from those slices); the kernel only writes
            // bytes into them, which is valid for `u8` and for
            // `MaybeUninit<u8>`. The descriptor is owned by `self.0`.
            let n = unsafe { libc::preadv(self.0.as_raw_fd(), iov.as_ptr(), 2, to_off_t(at)?) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the file",
                ));
            }
            let n = n as usize;
            let into_head = n.min(head.len() - h);
            h += into_head;
            t += n - into_head;
            at += n as u64;
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }

    fn links(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        self.0.metadata().map(|m| m.nlink())
    }

    fn map_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }
}

impl FileSystem for OsFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::Append => o.read(true).append(true),
            OpenMode::CreateNew => o.read(true).append(true).create_new(true).mode(0o600),
            // O_APPEND cannot be combined with O_TRUNC here; the file starts
            // empty and is only written sequentially, so writes append anyway.
            OpenMode::Replace => o.read(true).write(true).create(true).truncate(true).mode(0o600),
            OpenMode::Resize => o.write(true),
            OpenMode::Write => o.read(true).write(true),
        };
        Ok(Box::new(OsFile(o.open(path)?)))
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let m = fs::metadata(path)?;
        Ok(Stat {
            is_dir: m.is_dir(),
            len: m.len(),
        })
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        // Mode 0700 whatever the umask, and also for a directory that existed.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        fs::hard_link(src, dst)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)?;
        // SAFETY: flock takes a plain file descriptor owned by `file`, which
        // stays open for the whole call; it touches no Rust memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // The lock belongs to the open file description: closing the file
        // (dropping the handle) releases it.
        Ok(Box::new(OsFile(file)))
    }
}

/// Reads the whole file at `path`.
pub(crate) fn read_file(fs: &dyn FileSystem, path: &Path) -> io::Result<Vec<u8>> {
    let f = fs.open(path, OpenMode::Read)?;
    read_all(&*f)
}

/// Reads the whole file behind `f`.
pub(crate) fn read_all(f: &dyn FileHandle) -> io::Result<Vec<u8>> {
    let len = f.size()?;
    let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Creates `dir` (and missing parents) with mode `0700` and makes the new
/// names durable: each parent of a directory created here is synced.
pub(crate) fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || fs.stat(p).is_ok() {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    fs.create_dir_all(dir)?;
    for p in missing.iter().rev() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => fs.sync_dir(parent)?,
            _ => fs.sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}
