//! An in-memory file system that simulates a power cut.
//!
//! Each file keeps two contents: what it holds now and what was made durable
//! by its last `sync_data`/`sync_all`. Each directory keeps its names now,
//! its names as of its last `sync_dir`, and the name changes made since
//! (create, rename, link, remove) in order.
//!
//! Every mutating call (append, sync, set_len, file creation, rename,
//! remove, link, directory creation or sync) is numbered from 0. With
//! `crash_at(n)`, call `n` and every later mutating call fail with `EIO`, as
//! if the machine lost power just before call `n`: nothing it or a later
//! call would have done happens. [`SimFs::image`] then builds what a reboot
//! would find, under one of three models:
//!
//! - `Keep::Synced`: only what was synced: each directory's names as of its
//!   last sync, each file's content as of its last sync;
//! - `Keep::Everything`: everything, as after a process crash (the kernel
//!   wrote all it had);
//! - `Keep::Random`: what was synced plus a random part of what was not:
//!   per directory, a random prefix of its unsynced name changes (journaled
//!   file systems commit metadata in order); per file, when it is no
//!   shorter than at its last sync, the synced content with a random prefix
//!   of the changed bytes (from the first byte that differs) replaced by the
//!   current ones: appended bytes, or records written over preallocated
//!   zeros, reach the disk in order, and a write is torn anywhere; when it
//!   became shorter (cut), either the synced or the current content.
//!
//! [`SimFile::preallocate`] extends a file with zeros that are, like
//! appended bytes, durable only once synced; [`SimFile::write_at`]
//! overwrites bytes in place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mantisdb_core::vfs::{FileHandle, FileSystem, OpenMode, Stat};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::Rng;

/// Which unsynced state a crash image keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Only what was synced.
    Synced,
    /// Everything (a process crash).
    Everything,
    /// What was synced plus a random part of the rest.
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(usize),
    Dir,
}

#[derive(Debug, Clone)]
enum DirOp {
    Set(OsString, Entry),
    Remove(OsString),
    /// A rename within the directory: atomic in every crash image.
    Rename(OsString, OsString, Entry),
}

impl DirOp {
    fn apply_to(&self, entries: &mut BTreeMap<OsString, Entry>) {
        match self {
            DirOp::Set(name, e) => {
                entries.insert(name.clone(), *e);
            }
            DirOp::Remove(name) => {
                entries.remove(name);
            }
            DirOp::Rename(from, to, e) => {
                entries.remove(from);
                entries.insert(to.clone(), *e);
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Dir {
    entries: BTreeMap<OsString, Entry>,
    durable: BTreeMap<OsString, Entry>,
    pending: Vec<DirOp>,
}

impl Dir {
    fn apply(&mut self, op: DirOp) {
        op.apply_to(&mut self.entries);
        self.pending.push(op);
    }
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    dirs: HashMap<PathBuf, Dir>,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    locks: HashSet<PathBuf>,
    /// Print every mutating call (`MANTIS_SIMFS_TRACE=1`).
    trace: bool,
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", p.display()),
    )
}

fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_os_string())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name", path.display()),
        )),
    }
}

impl State {
    /// Counts one mutating call; fails it (and marks the crash) at the crash point.
    fn mutate(&mut self, what: &str, path: &Path) -> io::Result<()> {
        if self.trace {
            eprintln!(
                "simfs call {}: {what} {}{}",
                self.ops,
                path.display(),
                if self.crashed || self.crash_at == Some(self.ops) {
                    " (power cut)"
                } else {
                    ""
                }
            );
        }
        if self.crashed {
            return Err(eio());
        }
        if self.crash_at == Some(self.ops) {
            self.crashed = true;
            return Err(eio());
        }
        self.ops += 1;
        Ok(())
    }

    fn lookup(&self, path: &Path) -> io::Result<Entry> {
        if self.dirs.contains_key(path) {
            return Ok(Entry::Dir);
        }
        let (parent, name) = split(path)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.entries.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn file(&self, path: &Path) -> io::Result<usize> {
        match self.lookup(path)? {
            Entry::File(ino) => Ok(ino),
            Entry::Dir => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}", path.display()),
            )),
        }
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }
}

/// The simulated file system; clones share it.
#[derive(Debug, Clone)]
pub struct SimFs {
    st: Arc<Mutex<State>>,
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty file system holding only `/`.
    pub fn new() -> SimFs {
        let mut st = State {
            trace: std::env::var_os("MANTIS_SIMFS_TRACE").is_some(),
            ..State::default()
        };
        st.dirs.insert(PathBuf::from("/"), Dir::default());
        SimFs {
            st: Arc::new(Mutex::new(st)),
        }
    }

    /// Makes mutating call `n` (counted from 0 since creation) and every later one fail.
    pub fn crash_at(&self, n: u64) {
        self.st.lock().crash_at = Some(n);
    }

    /// Mutating calls done so far.
    pub fn ops(&self) -> u64 {
        self.st.lock().ops
    }

    /// True once the crash point was reached.
    pub fn crashed(&self) -> bool {
        self.st.lock().crashed
    }

    /// What a reboot finds now, as a new file system (see the module docs).
    pub fn image(&self, keep: Keep, rng: &mut StdRng) -> SimFs {
        let st = self.st.lock();
        let mut out = State {
            trace: st.trace,
            ..State::default()
        };
        let mut inode_map: HashMap<usize, usize> = HashMap::new();
        let mut stack = vec![PathBuf::from("/")];
        while let Some(path) = stack.pop() {
            let Some(dir) = st.dirs.get(&path) else { continue };
            let mut entries = dir.durable.clone();
            let keep_ops = match keep {
                Keep::Synced => 0,
                Keep::Everything => dir.pending.len(),
                Keep::Random => rng.random_range(0..=dir.pending.len()),
            };
            for op in &dir.pending[..keep_ops] {
                op.apply_to(&mut entries);
            }
            let mut new_dir = Dir::default();
            for (name, e) in entries {
                let e = match e {
                    Entry::Dir => {
                        stack.push(path.join(&name));
                        Entry::Dir
                    }
                    Entry::File(ino) => {
                        let next = out.inodes.len();
                        let new_ino = *inode_map.entry(ino).or_insert(next);
                        if new_ino == next {
                            let node = &st.inodes[ino];
                            let data = survivor(node, keep, rng);
                            out.inodes.push(Inode {
                                durable: data.clone(),
                                data,
                            });
                        }
                        Entry::File(new_ino)
                    }
                };
                new_dir.entries.insert(name.clone(), e);
                new_dir.durable.insert(name, e);
            }
            out.dirs.insert(path, new_dir);
        }
        SimFs {
            st: Arc::new(Mutex::new(out)),
        }
    }

    /// The content of the file at `path` (for test assertions).
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.st.lock();
        let ino = st.file(path)?;
        Ok(st.inodes[ino].data.clone())
    }
}

/// The content a file has after a reboot.
fn survivor(node: &Inode, keep: Keep, rng: &mut StdRng) -> Vec<u8> {
    match keep {
        Keep::Synced => node.durable.clone(),
        Keep::Everything => node.data.clone(),
        Keep::Random if node.data.len() >= node.durable.len() => {
            let (data, durable) = (&node.data, &node.durable);
            let first_diff = data
                .iter()
                .zip(durable.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(durable.len());
            let extra = data.len() - first_diff;
            // Often all or nothing, else a random cut.
            let n = match rng.random_range(0..4) {
                0 => 0,
                1 => extra,
                _ => rng.random_range(0..=extra),
            };
            let end = first_diff + n;
            let mut out = data[..end].to_vec();
            if end < durable.len() {
                out.extend_from_slice(&durable[end..]);
            }
            out
        }
        Keep::Random => {
            if rng.random_bool(0.5) {
                node.durable.clone()
            } else {
                node.data.clone()
            }
        }
    }
}

#[derive(Debug)]
struct SimFile {
    st: Arc<Mutex<State>>,
    path: PathBuf,
    ino: usize,
    writable: bool,
    /// Set for a lock handle: the lock released on drop.
    lock: Option<PathBuf>,
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if let Some(p) = self.lock.take() {
            self.st.lock().locks.remove(&p);
        }
    }
}

impl SimFile {
    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }
}

impl FileHandle for SimFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.st.lock();
        st.mutate(&format!("append {} bytes to", buf.len()), &self.path)?;
        st.inodes[self.ino].data.extend_from_slice(buf);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.st.lock();
        st.mutate(&format!("write {} bytes at {offset} of", buf.len()), &self.path)?;
        let data = &mut st.inodes[self.ino].data;
        let (start, end) = (offset as usize, offset as usize + buf.len());
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.st.lock();
        if st.inodes[self.ino].data.len() as u64 >= len {
            return Ok(());
        }
        st.mutate(&format!("preallocate to {len} bytes"), &self.path)?;
        st.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let st = self.st.lock();
        let data = &st.inodes[self.ino].data;
        let start = offset as usize;
        match data.get(start..start + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            )),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.st.lock();
        st.mutate("sync", &self.path)?;
        let node = &mut st.inodes[self.ino];
        node.durable = node.data.clone();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        let mut st = self.st.lock();
        st.mutate(&format!("set_len {len}"), &self.path)?;
        st.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.st.lock().inodes[self.ino].data.len() as u64)
    }

    fn links(&self) -> io::Result<u64> {
        let st = self.st.lock();
        let names = st
            .dirs
            .values()
            .flat_map(|d| d.entries.values())
            .filter(|e| matches!(e, Entry::File(ino) if *ino == self.ino))
            .count();
        Ok(names as u64)
    }
}

impl FileSystem for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut st = self.st.lock();
        let existing = st.file(path);
        let ino = match (mode, existing) {
            (OpenMode::Read | OpenMode::Append | OpenMode::Resize | OpenMode::Write, r) => r?,
            (OpenMode::CreateNew, Ok(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}", path.display()),
                ))
            }
            (OpenMode::Replace, Ok(ino)) => {
                st.mutate("truncate", path)?;
                st.inodes[ino].data.clear();
                ino
            }
            (OpenMode::CreateNew | OpenMode::Replace, Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                let (parent, name) = split(path)?;
                st.dir_mut(&parent)?;
                st.mutate("create", path)?;
                let ino = st.inodes.len();
                st.inodes.push(Inode::default());
                st.dir_mut(&parent)?.apply(DirOp::Set(name, Entry::File(ino)));
                ino
            }
            (_, Err(e)) => return Err(e),
        };
        Ok(Box::new(SimFile {
            st: Arc::clone(&self.st),
            path: path.to_path_buf(),
            ino,
            writable: mode != OpenMode::Read,
            lock: None,
        }))
    }

    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let st = self.st.lock();
        Ok(match st.lookup(path)? {
            Entry::Dir => Stat { is_dir: true, len: 0 },
            Entry::File(ino) => Stat {
                is_dir: false,
                len: st.inodes[ino].data.len() as u64,
            },
        })
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let st = self.st.lock();
        let d = st.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.entries.keys().cloned().collect())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(p) = at {
            if st.dirs.contains_key(p) {
                break;
            }
            if st.lookup(p).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is a file", p.display()),
                ));
            }
            missing.push(p.to_path_buf());
            at = p.parent();
        }
        for p in missing.into_iter().rev() {
            st.mutate("mkdir", &p)?;
            let (parent, name) = split(&p)?;
            st.dir_mut(&parent)?.apply(DirOp::Set(name, Entry::Dir));
            st.dirs.insert(p, Dir::default());
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        let ino = st.file(from)?;
        let (fp, fname) = split(from)?;
        let (tp, tname) = split(to)?;
        st.dir_mut(&tp)?;
        st.mutate(&format!("rename to {} from", to.display()), from)?;
        if fp == tp {
            st.dir_mut(&fp)?.apply(DirOp::Rename(fname, tname, Entry::File(ino)));
        } else {
            st.dir_mut(&tp)?.apply(DirOp::Set(tname, Entry::File(ino)));
            st.dir_mut(&fp)?.apply(DirOp::Remove(fname));
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        st.file(path)?;
        let (parent, name) = split(path)?;
        st.mutate("remove", path)?;
        st.dir_mut(&parent)?.apply(DirOp::Remove(name));
        Ok(())
    }

    fn hard_link(&self, src: &Path, dst: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        let ino = st.file(src)?;
        if st.lookup(dst).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}", dst.display()),
            ));
        }
        let (parent, name) = split(dst)?;
        st.dir_mut(&parent)?;
        st.mutate("link", dst)?;
        st.dir_mut(&parent)?.apply(DirOp::Set(name, Entry::File(ino)));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.st.lock();
        st.dir_mut(dir)?;
        st.mutate("sync_dir", dir)?;
        let d = st.dir_mut(dir)?;
        d.durable = d.entries.clone();
        d.pending.clear();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let handle = match self.open(path, OpenMode::Append) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.open(path, OpenMode::CreateNew)?,
            Err(e) => return Err(e),
        };
        drop(handle);
        let mut st = self.st.lock();
        let ino = st.file(path)?;
        if !st.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        Ok(Box::new(SimFile {
            st: Arc::clone(&self.st),
            path: path.to_path_buf(),
            ino,
            writable: false,
            lock: Some(path.to_path_buf()),
        }))
    }
}
