//! Reads of closed segments through read-only memory maps
//! (`Options::map_reads`), on the operating system's file system seen
//! through a wrapper that counts the reads made through files:
//!
//! - point gets and scans of values in closed segments make no read call
//!   on those files (the map serves them); the segment being written is
//!   still read through its file; with maps off, every segment is;
//! - a damaged byte in a mapped segment is reported by a get and by a
//!   scan, as a read through the file reports it.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Bound;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mantisdb_core::cache::CacheStats;
use mantisdb_core::log::segment;
use mantisdb_core::vfs::{FileHandle, FileSystem, OpenMode, OsFileSystem, Stat};
use mantisdb_core::{Db, Error, Options, SyncPolicy};

mod support;

/// Read calls made through files, by file name.
#[derive(Debug, Default)]
struct Reads(Mutex<HashMap<String, u64>>);

impl Reads {
    fn note(&self, path: &Path) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        *self.0.lock().unwrap().entry(name).or_default() += 1;
    }

    fn take(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The operating system's file system, counting reads through files; maps
/// are made from the real file (as `OsFileSystem` makes them) unless
/// `no_map` is set.
#[derive(Debug)]
struct CountingFs {
    reads: Arc<Reads>,
    no_map: bool,
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn FileHandle>,
    path: PathBuf,
    reads: Arc<Reads>,
    no_map: bool,
}

impl FileHandle for CountingFile {
    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.inner.append(buf)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn preallocate(&self, len: u64) -> io::Result<()> {
        self.inner.preallocate(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.note(&self.path);
        self.inner.read_exact_at(buf, offset)
    }
    fn read_split_at(&self, head: &mut [u8], tail: &mut [MaybeUninit<u8>], offset: u64) -> io::Result<()> {
        self.reads.note(&self.path);
        self.inner.read_split_at(head, tail, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn links(&self) -> io::Result<u64> {
        self.inner.links()
    }
    fn map_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.no_map {
            None
        } else {
            self.inner.map_fd()
        }
    }
}

impl FileSystem for CountingFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(CountingFile {
            inner: OsFileSystem.open(path, mode)?,
            path: path.to_path_buf(),
            reads: Arc::clone(&self.reads),
            no_map: self.no_map,
        }))
    }
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        OsFileSystem.stat(path)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        OsFileSystem.read_dir(dir)
    }
    directory_calls_to_os!();
}

const VALUE: usize = 4096;

/// A counting file system (mapping unless `no_map`) and its read counts.
fn counting_fs(no_map: bool) -> (Arc<CountingFs>, Arc<Reads>) {
    let reads = Arc::new(Reads::default());
    let fs = Arc::new(CountingFs {
        reads: Arc::clone(&reads),
        no_map,
    });
    (fs, reads)
}

fn opts(fs: Arc<dyn FileSystem>) -> Options {
    Options {
        sync: SyncPolicy::Always,
        segment_size: 64 << 10,
        // Every get of a value on disk reads it (no cache to answer).
        cache_bytes: 0,
        background_compaction: false,
        file_system: Some(fs),
        ..Options::default()
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// A value no other value shares a 16-byte window with.
fn value(i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE);
    while v.len() < VALUE {
        v.extend_from_slice(format!("<{i:04}:{:05}>", v.len()).as_bytes());
    }
    v.truncate(VALUE);
    v
}

/// Writes 100 values of 4 KiB (seven segments of 64 KiB) and returns
/// them; the newest segment is still being written.
fn fill(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (0..100)
        .map(|i| {
            db.put(&key(i), &value(i)).unwrap();
            (key(i), value(i))
        })
        .collect()
}

/// The segment files in `dir`, ascending; the last is being written.
fn segment_names(dir: &Path) -> Vec<String> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(segment::segment_file_name)
        .collect()
}

fn read_everything(db: &Db, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for (k, v) in model {
        assert_eq!(&*db.get(k).unwrap().unwrap(), &v[..]);
        // A lending get: a mapped value is checked and lent from the map.
        assert_eq!(db.get_with(k, <[u8]>::to_vec).unwrap().as_ref(), Some(v));
    }
    let mut seen = BTreeMap::new();
    let mut it = db.scan(Bound::Unbounded, Bound::Unbounded).unwrap();
    while let Some(pair) = it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())) {
        let (k, v) = pair.unwrap();
        seen.insert(k, v);
    }
    assert_eq!(&seen, model);
    let owned: BTreeMap<Vec<u8>, Vec<u8>> = db
        .scan(Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k, v.to_vec())
        })
        .collect();
    assert_eq!(&owned, model);
}

/// Reads everything in `model` back and asserts that no closed segment of
/// `dir` was read through its file (only the active one may be).
fn assert_only_the_active_segment_is_read_through_its_file(
    db: &Db,
    dir: &Path,
    reads: &Reads,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let now = segment_names(dir);
    let (active, closed) = now.split_last().unwrap();
    reads.take();
    read_everything(db, model);
    let counted = reads.take();
    for name in closed {
        assert_eq!(
            counted.get(name),
            None,
            "reads through the file of closed {name}: {counted:?}"
        );
    }
    assert!(counted.keys().all(|n| n == active), "{counted:?}");
}

#[test]
fn closed_segments_are_read_through_maps_and_the_active_one_through_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, reads) = counting_fs(false);
    let db = Db::open(dir.path(), opts(fs)).unwrap();
    let model = fill(&db);
    let names = segment_names(dir.path());
    assert!(names.len() >= 5, "{names:?}");
    let (active, closed) = names.split_last().unwrap();
    reads.take();
    read_everything(&db, &model);
    let counted = reads.take();
    for name in closed {
        assert_eq!(
            counted.get(name),
            None,
            "reads through the file of closed {name}: {counted:?}"
        );
    }
    assert!(
        counted.get(active).copied().unwrap_or(0) > 0,
        "the active segment {active} is read through its file: {counted:?}"
    );
    // Compaction's output (a sealed segment) is mapped too.
    for i in 0..60 {
        db.delete(&key(i)).unwrap();
    }
    let model: BTreeMap<_, _> = model.into_iter().skip(60).collect();
    db.compact().unwrap();
    assert_only_the_active_segment_is_read_through_its_file(&db, dir.path(), &reads, &model);
    // And after a reopen, every segment found on disk but the resumed one.
    drop(db);
    let (fs, reads) = counting_fs(false);
    let db = Db::open(dir.path(), opts(fs)).unwrap();
    assert_only_the_active_segment_is_read_through_its_file(&db, dir.path(), &reads, &model);
}

#[test]
fn with_maps_off_or_a_file_system_that_does_not_map_every_read_goes_through_files() {
    for (map_reads, no_map) in [(false, false), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let (fs, reads) = counting_fs(no_map);
        let db = Db::open(dir.path(), Options { map_reads, ..opts(fs) }).unwrap();
        let model = fill(&db);
        let names = segment_names(dir.path());
        reads.take();
        read_everything(&db, &model);
        let counted = reads.take();
        for name in &names {
            assert!(
                counted.get(name).copied().unwrap_or(0) > 0,
                "map_reads {map_reads}, no_map {no_map}: no read through {name}: {counted:?}"
            );
        }
    }
}

/// Flips one byte in the middle of the stored value of `i`.
fn damage(dir: &Path, i: usize) -> String {
    let needle = &value(i)[2000..2016];
    for name in segment_names(dir) {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&[bytes[at] ^ 0x01], at as u64).unwrap();
            file.sync_all().unwrap();
            return name;
        }
    }
    panic!("value {i} not found on disk");
}

#[test]
fn a_damaged_byte_in_a_mapped_segment_is_reported_by_get_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, reads) = counting_fs(false);
    let db = Db::open(dir.path(), opts(fs)).unwrap();
    let model = fill(&db);
    // Every segment is mapped by these reads before the damage.
    read_everything(&db, &model);
    let victim = 3;
    let name = damage(dir.path(), victim);
    assert_ne!(
        Some(&name),
        segment_names(dir.path()).last(),
        "the damage is in a closed segment"
    );
    reads.take();
    match db.get(&key(victim)) {
        Err(Error::Corruption { .. }) => {}
        other => panic!("get of a damaged value: {other:?}"),
    }
    match db.get_with(&key(victim), <[u8]>::len) {
        Err(Error::Corruption { .. }) => {}
        other => panic!("lending get of a damaged value: {other:?}"),
    }
    // Its neighbours still read.
    assert_eq!(&*db.get(&key(victim + 1)).unwrap().unwrap(), &value(victim + 1)[..]);
    assert_eq!(
        db.get_with(&key(victim + 1), <[u8]>::to_vec).unwrap(),
        Some(value(victim + 1))
    );
    let mut it = db.scan(Bound::Unbounded, Bound::Unbounded).unwrap();
    let mut yielded = 0;
    let err = loop {
        match it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())) {
            Some(Ok((k, v))) => {
                assert_eq!(model.get(&k), Some(&v));
                yielded += 1;
            }
            Some(Err(e)) => break e,
            None => panic!("a scan over a damaged value ended without an error"),
        }
    };
    assert!(matches!(err, Error::Corruption { .. }), "{err:?}");
    assert_eq!(yielded, victim, "the error comes in key order");
    let owned = db
        .scan(Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .find_map(|item| item.err());
    assert!(matches!(owned, Some(Error::Corruption { .. })), "{owned:?}");
    let counted = reads.take();
    assert_eq!(
        counted.get(&name),
        None,
        "the damage was found through the map: {counted:?}"
    );
}

#[test]
fn lending_gets_of_mapped_values_leave_the_value_cache_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, reads) = counting_fs(false);
    let o = Options {
        cache_bytes: 8 << 20,
        ..opts(fs)
    };
    let db = Db::open(dir.path(), o).unwrap();
    let model = fill(&db);
    // Writes do not fill the cache.
    assert_eq!(
        db.stats().cache,
        CacheStats {
            capacity_bytes: 8 << 20,
            ..CacheStats::default()
        }
    );
    let names = segment_names(dir.path());
    reads.take();
    let rounds = 3;
    for _ in 0..rounds {
        for (k, v) in &model {
            assert_eq!(db.get_with(k, <[u8]>::to_vec).unwrap().as_ref(), Some(v));
        }
    }
    let after = db.stats().cache;
    let counted = reads.take();
    let active = names.last().unwrap();
    assert!(counted.keys().all(|n| n == active), "{counted:?}");
    // Only the values of the active segment, read through its file, went
    // through the cache: one miss each, then hits.
    let through_file = after.entries;
    assert!(through_file > 0 && through_file < model.len() as u64, "{after:?}");
    assert_eq!((after.misses, after.inserts), (through_file, through_file), "{after:?}");
    assert_eq!(after.hits, through_file * (rounds - 1), "{after:?}");
    // An owned get hands out a shared value: it goes through the cache.
    assert_eq!(&*db.get(&key(0)).unwrap().unwrap(), &value(0)[..]);
    assert_eq!(db.stats().cache.entries, through_file + 1);
}
