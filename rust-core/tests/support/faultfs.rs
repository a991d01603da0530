//! A file system wrapper that fails chosen calls, for fault-injection tests.
//!
//! Rules are added and cleared at run time. A rule names the call it
//! matches ([`Op`]), which files ([`Target`]), what happens ([`Fault`]), how
//! many matching calls to let through first, and how many to fail (or all).
//! Every call not failed goes to the wrapped file system.
//!
//! A write can also succeed and have its write-back fail later
//! ([`Fault::LostWriteback`]). Linux reports such an error once per open
//! file description, to the first sync through it that follows (it keeps a
//! count of errors per file, each description the count it last reported);
//! the wrapper does the same per path and handle, so a test can show that a
//! sync through one description does not take the error from another.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use mantisdb_core::vfs::{FileHandle, FileSystem, OpenMode, Stat};
use parking_lot::Mutex;

/// A kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `FileHandle::append` and `FileHandle::write_at`.
    Write,
    /// `FileHandle::preallocate`.
    Preallocate,
    /// `FileHandle::sync_data` and `sync_all`.
    Sync,
    /// `FileHandle::read_exact_at`.
    Read,
    /// `FileHandle::set_len`.
    SetLen,
    /// `FileSystem::open` of any mode.
    Open,
    /// `FileSystem::open` that creates (`CreateNew`, `Replace`).
    Create,
    /// `FileSystem::rename` (matched on the source).
    Rename,
    /// `FileSystem::remove_file`.
    Remove,
    /// `FileSystem::hard_link` (matched on the target).
    Link,
    /// `FileSystem::sync_dir`.
    SyncDir,
    /// `FileSystem::read_dir`.
    ReadDir,
}

/// Which paths a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any path.
    Any,
    /// Segment files (`*.seg`, also `*.seg.tmp`: a compaction output is
    /// written under that name and read through the same handle after its
    /// rename).
    Segments,
    /// Hint files (`*.hint`, also their temporary `*.hint.tmp`).
    Hints,
    /// Temporary files (`*.tmp`): compaction output and hints being written.
    Temp,
    /// Paths under this directory (say, a checkpoint's).
    Under(PathBuf),
}

impl Target {
    fn matches(&self, p: &Path) -> bool {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match self {
            Target::Any => true,
            Target::Segments => name.ends_with(".seg") || name.ends_with(".seg.tmp"),
            Target::Hints => name.ends_with(".hint") || name.ends_with(".hint.tmp"),
            Target::Temp => name.ends_with(".tmp"),
            Target::Under(dir) => p.starts_with(dir),
        }
    }
}

/// What a matching call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with this OS error (say `libc::ENOSPC`, `libc::EIO`) and does nothing.
    Errno(i32),
    /// For writes: writes the first half of the buffer, then fails with this error.
    Short(i32),
    /// Sleeps, then performs the call (to line writers up in one group commit).
    Delay(Duration),
    /// For writes: performs the write, which succeeds, and counts a failed
    /// write-back against the file: the next sync through every handle
    /// open now fails with `EIO`, once per handle (as Linux reports such an
    /// error once per open file description). Other calls are not failed.
    LostWriteback,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    op: Op,
    target: Target,
    fault: Fault,
    skip: u64,
    times: Option<u64>,
    fired: u64,
    /// Only calls made by this thread.
    thread: Option<ThreadId>,
    /// Only writes of at least this many bytes.
    min_len: usize,
}

impl Rule {
    /// Fails every call `op` on any path with `fault`.
    pub fn new(op: Op, fault: Fault) -> Rule {
        Rule {
            op,
            target: Target::Any,
            fault,
            skip: 0,
            times: None,
            fired: 0,
            thread: None,
            min_len: 0,
        }
    }

    /// Only writes of at least `n` bytes (say, a group commit of several
    /// records), or syncs of a file whose last write was.
    pub fn min_len(mut self, n: usize) -> Rule {
        self.min_len = n;
        self
    }

    /// Only calls made by the thread adding the rule (not, say, the
    /// engine's background thread).
    pub fn this_thread(mut self) -> Rule {
        self.thread = Some(std::thread::current().id());
        self
    }

    /// Only on paths matching `target`.
    pub fn on(mut self, target: Target) -> Rule {
        self.target = target;
        self
    }

    /// Lets the first `n` matching calls through.
    pub fn after(mut self, n: u64) -> Rule {
        self.skip = n;
        self
    }

    /// Fires `n` times, then stops matching.
    pub fn times(mut self, n: u64) -> Rule {
        self.times = Some(n);
        self
    }
}

#[derive(Debug, Default)]
struct Rules {
    rules: Vec<Rule>,
    fired: u64,
    /// Delays begun (counted when the sleep starts).
    delayed: u64,
}

impl Rules {
    /// The fault for a call, counting it against the first matching rule.
    fn check(&mut self, op: Op, path: &Path, len: usize) -> Option<Fault> {
        for r in &mut self.rules {
            if r.op != op
                || len < r.min_len
                || !r.target.matches(path)
                || r.times.is_some_and(|t| r.fired >= t)
                || r.thread.is_some_and(|t| t != std::thread::current().id())
            {
                continue;
            }
            if r.skip > 0 {
                r.skip -= 1;
                continue;
            }
            r.fired += 1;
            if matches!(r.fault, Fault::Delay(_)) {
                self.delayed += 1;
            } else {
                self.fired += 1;
            }
            return Some(r.fault);
        }
        None
    }
}

/// The wrapper; clones share rules.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn FileSystem>,
    rules: Arc<Mutex<Rules>>,
    /// Write-back errors counted per path (see [`Fault::LostWriteback`]).
    writeback_errors: Arc<Mutex<HashMap<PathBuf, u64>>>,
}

impl FaultFs {
    /// Wraps `inner` with no rule.
    pub fn new(inner: Arc<dyn FileSystem>) -> FaultFs {
        FaultFs {
            inner,
            rules: Arc::default(),
            writeback_errors: Arc::default(),
        }
    }

    /// Adds a rule (checked after the earlier ones).
    pub fn add(&self, rule: Rule) {
        self.rules.lock().rules.push(rule);
    }

    /// Removes every rule: the fault clears.
    pub fn clear(&self) {
        self.rules.lock().rules.clear();
    }

    /// Failures injected so far (delays not counted).
    pub fn fired(&self) -> u64 {
        self.rules.lock().fired
    }

    /// Delays begun so far: a call is sleeping or has slept (say, a sync
    /// whose records are appended but not yet durable).
    pub fn delayed(&self) -> u64 {
        self.rules.lock().delayed
    }

    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        self.check_len(op, path, 0)
    }

    fn check_len(&self, op: Op, path: &Path, len: usize) -> io::Result<()> {
        let fault = self.rules.lock().check(op, path, len);
        match fault {
            None => Ok(()),
            Some(Fault::Delay(d)) => {
                std::thread::sleep(d);
                Ok(())
            }
            Some(Fault::Errno(code) | Fault::Short(code)) => Err(io::Error::from_raw_os_error(code)),
            Some(Fault::LostWriteback) => Ok(()),
        }
    }

    /// Write-back errors counted against `path` so far.
    fn writeback_errors(&self, path: &Path) -> u64 {
        self.writeback_errors.lock().get(path).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct FaultFile {
    inner: Box<dyn FileHandle>,
    path: PathBuf,
    fs: FaultFs,
    /// Length of the last write, which a sync's `min_len` is checked against.
    last_write: AtomicUsize,
    /// The count of write-back errors of the file this handle reported
    /// last (or found when opened).
    writeback_seen: AtomicU64,
}

impl FaultFile {
    /// A write that succeeds and whose write-back fails later.
    fn lose_writeback(&self) {
        *self.fs.writeback_errors.lock().entry(self.path.clone()).or_insert(0) += 1;
    }

    /// `EIO` if a write-back of the file failed since this handle last
    /// reported one, and the error is then reported (Linux's `errseq`).
    fn writeback_error(&self) -> io::Result<()> {
        let now = self.fs.writeback_errors(&self.path);
        if self.writeback_seen.swap(now, Ordering::SeqCst) < now {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

impl FileHandle for FaultFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.last_write.store(buf.len(), Ordering::Relaxed);
        let fault = self.fs.rules.lock().check(Op::Write, &self.path, buf.len());
        match fault {
            None => self.inner.append(buf),
            Some(Fault::LostWriteback) => {
                self.inner.append(buf)?;
                self.lose_writeback();
                Ok(())
            }
            Some(Fault::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.append(buf)
            }
            Some(Fault::Errno(code)) => Err(io::Error::from_raw_os_error(code)),
            Some(Fault::Short(code)) => {
                self.inner.append(&buf[..buf.len() / 2])?;
                Err(io::Error::from_raw_os_error(code))
            }
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.last_write.store(buf.len(), Ordering::Relaxed);
        let fault = self.fs.rules.lock().check(Op::Write, &self.path, buf.len());
        match fault {
            None => self.inner.write_at(buf, offset),
            Some(Fault::LostWriteback) => {
                self.inner.write_at(buf, offset)?;
                self.lose_writeback();
                Ok(())
            }
            Some(Fault::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.write_at(buf, offset)
            }
            Some(Fault::Errno(code)) => Err(io::Error::from_raw_os_error(code)),
            Some(Fault::Short(code)) => {
                self.inner.write_at(&buf[..buf.len() / 2], offset)?;
                Err(io::Error::from_raw_os_error(code))
            }
        }
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        self.fs.check(Op::Preallocate, &self.path)?;
        self.inner.preallocate(len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.fs.check(Op::Read, &self.path)?;
        self.inner.read_exact_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fs
            .check_len(Op::Sync, &self.path, self.last_write.load(Ordering::Relaxed))?;
        self.inner.sync_data()?;
        self.writeback_error()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.fs
            .check_len(Op::Sync, &self.path, self.last_write.load(Ordering::Relaxed))?;
        self.inner.sync_all()?;
        self.writeback_error()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.check(Op::SetLen, &self.path)?;
        self.inner.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn links(&self) -> io::Result<u64> {
        self.inner.links()
    }
}

impl FileSystem for FaultFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        self.check(Op::Open, path)?;
        if matches!(mode, OpenMode::CreateNew | OpenMode::Replace) {
            self.check(Op::Create, path)?;
        }
        Ok(Box::new(FaultFile {
            inner: self.inner.open(path, mode)?,
            path: path.to_path_buf(),
            fs: self.clone(),
            last_write: AtomicUsize::new(0),
            writeback_seen: AtomicU64::new(self.writeback_errors(path)),
        }))
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.inner.stat(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.check(Op::ReadDir, dir)?;
        self.inner.read_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, from)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        self.inner.remove_file(path)
    }

    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        self.check(Op::Link, dst)?;
        self.inner.hard_link(src, dst)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir, dir)?;
        self.inner.sync_dir(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        self.inner.lock(path)
    }
}
