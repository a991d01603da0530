//! Compaction, hint files, version reclamation and checkpoints: space is
//! reclaimed, nothing live is lost, deletes and expiries stay in force after
//! compaction and reopen, and results match a model under concurrent load.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 64 << 10,
        background_compaction: false,
        ..Options::default()
    }
}

/// Bytes of the files in `dir`. The engine's background threads may
/// remove or rename a file between the listing and its size (a hint
/// written, a retired segment released): such a file counts as gone.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| match e.and_then(|e| e.metadata()) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => panic!("size of a file in {}: {e}", dir.display()),
        })
        .sum()
}

fn dump(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan_prefix(b"")
        .unwrap()
        .map(|r| r.map(|(k, v)| (k, v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn overwrites_then_compaction_bring_disk_use_near_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let keys = 2_000u32;
    let value_len = 256;
    for round in 0..10u8 {
        for i in 0..keys {
            db.put(format!("key{i:08}").as_bytes(), &vec![round; value_len])
                .unwrap();
        }
    }
    let before = dir_bytes(dir.path());
    let report = db.compact().unwrap();
    assert!(report.segments_in > 0);
    let after = dir_bytes(dir.path());
    let live_data = keys as u64 * (11 + value_len as u64);
    let ratio = after as f64 / live_data as f64;
    println!("disk before {before} B, after {after} B, live data {live_data} B, ratio {ratio:.2}");
    assert!(ratio <= 1.5, "disk use {after} B is {ratio:.2}x the live data");
    for i in (0..keys).step_by(7) {
        assert_eq!(
            db.get(format!("key{i:08}").as_bytes()).unwrap().unwrap().to_vec(),
            vec![9u8; value_len]
        );
    }
    let st = db.stats();
    assert_eq!(st.keys, keys as u64);
    assert!(st.dead_bytes < st.live_bytes / 10, "{st:?}");
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.stats().keys, keys as u64);
    assert_eq!(db.get(b"key00000042").unwrap().unwrap().to_vec(), vec![9u8; value_len]);
}

#[test]
fn deletes_and_expiries_stay_in_force_after_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for i in 0..1000u32 {
            db.put(format!("k{i:04}").as_bytes(), &[1u8; 300]).unwrap();
        }
        db.put_with_ttl(b"ttl-key", &[2u8; 300], Duration::from_millis(20))
            .unwrap();
        // Deletes land in later segments than the puts they shadow.
        for i in (0..1000u32).step_by(2) {
            db.delete(format!("k{i:04}").as_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(40));
        // Compact only part of the log first (older segments stay), then all.
        db.compact().unwrap();
        for i in 1000..1100u32 {
            db.put(format!("k{i:04}").as_bytes(), &[3u8; 300]).unwrap();
        }
        db.compact().unwrap();
        assert_eq!(db.get(b"ttl-key").unwrap(), None);
        assert_eq!(db.stats().keys, 600);
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    let all = dump(&db);
    assert_eq!(all.len(), 600, "deleted or expired keys came back");
    assert!(all.keys().all(|k| k.as_slice() != b"ttl-key"));
    for i in 0..1000u32 {
        let present = db.get(format!("k{i:04}").as_bytes()).unwrap().is_some();
        assert_eq!(present, i % 2 == 1, "k{i:04}");
    }
    // Compacting again after reopen keeps it that way.
    db.compact().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&db).len(), 600);
}

#[test]
fn reopen_uses_hint_files_and_recovers_from_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for i in 0..3000u32 {
            db.put(format!("h{i:05}").as_bytes(), format!("value-{i}").as_bytes())
                .unwrap();
        }
        db.compact().unwrap();
        expected = dump(&db);
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    let rep = db.recovery_report().clone();
    assert!(rep.hinted_segments > 0, "{rep:?}");
    assert_eq!(dump(&db), expected);
    drop(db);
    // Damage one hint: open falls back to its segment and rewrites the hint.
    let hint = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "hint"))
        .unwrap();
    let mut bytes = fs::read(&hint).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&hint, &bytes).unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.recovery_report().bad_hints.len(), 1, "{:?}", db.recovery_report());
    assert_eq!(dump(&db), expected);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.recovery_report().bad_hints.is_empty());
    assert_eq!(dump(&db), expected);
    // A segment that no longer matches its hint is read instead of trusted.
    drop(db);
    let seg = hint.with_extension("seg");
    let mut data = fs::read(&seg).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x01;
    fs::write(&seg, &data).unwrap();
    match Db::open(dir.path(), opts()) {
        Err(mantisdb_core::Error::Corruption { file, .. }) => assert_eq!(file, seg),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a corrupt segment with a valid hint was opened without complaint"),
    }
}

#[test]
fn old_versions_are_reclaimed_once_no_snapshot_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for i in 0..500u32 {
        db.put(format!("v{i}").as_bytes(), b"0").unwrap();
    }
    let snap = db.snapshot().unwrap();
    for round in 1..=20u32 {
        for i in 0..500u32 {
            db.put(format!("v{i}").as_bytes(), round.to_string().as_bytes())
                .unwrap();
        }
    }
    // The snapshot pins the versions it can see.
    assert_eq!(snap.get(b"v7").unwrap().as_deref(), Some(&b"0"[..]));
    assert!(db.debug_version_count() > 500);
    drop(snap);
    // With no snapshot, a steady overwrite load keeps at most two versions per
    // key: the newest, and the one before it, which readers need until the
    // newest is published and which the next write of the key drops. The
    // count stays flat however long the load runs.
    let mut counts = Vec::new();
    for round in 21..=40u32 {
        for i in 0..500u32 {
            db.put(format!("v{i}").as_bytes(), round.to_string().as_bytes())
                .unwrap();
        }
        counts.push(db.debug_version_count());
    }
    assert!(counts.iter().all(|&c| c <= 2 * 500), "{counts:?}");
    assert_eq!(counts[5], *counts.last().unwrap(), "version count drifts: {counts:?}");
    // Compaction prunes the extra versions it meets.
    db.compact().unwrap();
    assert!(
        db.debug_version_count() < 2 * 500,
        "{} versions",
        db.debug_version_count()
    );
}

#[test]
fn compaction_under_concurrent_writers_and_readers_matches_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            segment_size: 16 << 10,
            background_compaction: true,
            compaction_threshold: 0.3,
            compaction_interval: Duration::from_millis(5),
            ..opts()
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let models: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = std::thread::scope(|s| {
        let compactor = {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) && n < 200 {
                    db.compact().unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let writers: Vec<_> = (0..2u32)
            .map(|t| {
                let db = db.clone();
                s.spawn(move || {
                    let mut model = BTreeMap::new();
                    let mut x = 0x9e3779b9u32.wrapping_mul(t + 1);
                    for step in 0..4000u32 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let key = format!("w{t}-{:03}", x % 300).into_bytes();
                        match x % 10 {
                            0 => {
                                db.delete(&key).unwrap();
                                model.remove(&key);
                            }
                            1 => {
                                let mut b = WriteBatch::new();
                                let k2 = format!("w{t}-{:03}", (x / 7) % 300).into_bytes();
                                b.put(key.clone(), step.to_le_bytes().to_vec()).delete(k2.clone());
                                db.write(&b).unwrap();
                                model.insert(key.clone(), step.to_le_bytes().to_vec());
                                // When k2 is key, the later op (the delete) wins.
                                model.remove(&k2);
                            }
                            _ => {
                                let v = vec![(step % 251) as u8; 20 + (x % 200) as usize];
                                db.put(&key, &v).unwrap();
                                model.insert(key.clone(), v);
                            }
                        }
                        if step % 97 == 0 {
                            assert_eq!(db.get(&key).unwrap().map(|v| v.to_vec()), model.get(&key).cloned());
                        }
                    }
                    model
                })
            })
            .collect();
        let reader = {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            s.spawn(move || {
                let mut scans = 0;
                while !stop.load(Ordering::Acquire) && scans < 2000 {
                    // Every scan must complete without errors while files move.
                    let mut n = 0;
                    for item in db.scan_prefix(b"w").unwrap() {
                        item.unwrap();
                        n += 1;
                    }
                    assert!(n <= 600);
                    scans += 1;
                }
            })
        };
        let models = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Release);
        compactor.join().unwrap();
        reader.join().unwrap();
        models
    });
    let mut expected = BTreeMap::new();
    for m in models {
        expected.extend(m);
    }
    assert_eq!(dump(&db), expected);
    assert!(db.stats().compactions > 0);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&db), expected, "reopen after compaction differs from the model");
}

#[test]
fn checkpoint_is_a_consistent_copy_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let backup_root = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            segment_size: 16 << 10,
            ..opts()
        },
    )
    .unwrap();
    for i in 0..10u32 {
        db.put(format!("pair{i}").as_bytes(), b"0").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reports = std::thread::scope(|s| {
        let writer = {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            s.spawn(move || {
                let mut n = 1u32;
                while !stop.load(Ordering::Acquire) && n < 100_000 {
                    let mut b = WriteBatch::new();
                    for i in 0..10u32 {
                        b.put(format!("pair{i}").into_bytes(), n.to_string().into_bytes());
                    }
                    db.write(&b).unwrap();
                    db.put(format!("seq{n:06}").as_bytes(), &[7u8; 100]).unwrap();
                    n += 1;
                }
            })
        };
        let mut reports = Vec::new();
        for c in 0..5 {
            std::thread::sleep(Duration::from_millis(15));
            reports.push(db.checkpoint(backup_root.path().join(format!("cp{c}"))).unwrap());
        }
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        reports
    });
    for (c, rep) in reports.iter().enumerate() {
        let copy = Db::open(backup_root.path().join(format!("cp{c}")), opts()).unwrap();
        assert_eq!(
            copy.stats().last_seq,
            rep.seq,
            "copy {c} is not at its checkpoint's sequence"
        );
        let vals: Vec<_> = (0..10u32)
            .map(|i| copy.get(format!("pair{i}").as_bytes()).unwrap())
            .collect();
        assert!(
            vals.iter().all(|v| *v == vals[0]),
            "copy {c} holds half a batch: {vals:?}"
        );
        let n: u32 = std::str::from_utf8(vals[0].as_deref().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        // Every single put before the last whole batch is there, in order.
        let seqs = copy.scan_prefix(b"seq").unwrap().count() as u32;
        assert!(seqs == n || seqs + 1 == n, "copy {c}: batch {n} but {seqs} puts");
    }
    assert!(
        db.checkpoint(backup_root.path().join("cp0")).is_err(),
        "a non-empty target was accepted"
    );
}

#[test]
fn sequence_numbers_are_not_reused_after_compaction_drops_the_newest_records() {
    let dir = tempfile::tempdir().unwrap();
    let seq_before;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        db.put(b"k", b"v").unwrap();
        for _ in 0..5 {
            db.delete(b"k").unwrap();
        }
        db.put(b"other", b"x").unwrap();
        db.delete(b"other").unwrap();
        // Closes the active segment and drops every record: all are dead.
        db.compact().unwrap();
        seq_before = db.stats().last_seq;
    }
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        assert!(
            db.stats().last_seq >= seq_before,
            "sequence went back to {}",
            db.stats().last_seq
        );
        db.put(b"after", b"1").unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"k").unwrap(), None);
}

/// A process that restarts more often than the compaction interval still
/// gets its space back: background work runs a pass as soon as it opens.
#[test]
fn background_compaction_runs_right_after_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for round in 0..6u8 {
            for i in 0..1_000u32 {
                db.put(format!("key{i:06}").as_bytes(), &[round; 200]).unwrap();
            }
        }
        db.close().unwrap();
    }
    let o = Options {
        background_compaction: true,
        compaction_interval: Duration::from_secs(3600),
        ..opts()
    };
    let db = Db::open(dir.path(), o).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.stats().compactions == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        db.stats().compactions > 0,
        "no compaction within 20 s of open with a one-hour interval"
    );
    for i in (0..1_000u32).step_by(37) {
        assert_eq!(
            db.get(format!("key{i:06}").as_bytes()).unwrap().as_deref(),
            Some(&[5u8; 200][..])
        );
    }
}

#[test]
fn a_hint_cut_short_by_a_crash_is_ignored_and_rewritten_the_same() {
    // Segments large enough that each hint is streamed in several writes.
    let opts = || Options {
        segment_size: 2 << 20,
        ..opts()
    };
    let dir = tempfile::tempdir().unwrap();
    let expected;
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for i in 0..30_000u32 {
            db.put(format!("c{:07}", (i * 7919) % 30_000).as_bytes(), &[i as u8; 150])
                .unwrap();
        }
        expected = dump(&db);
    }
    // The open writes the hints of the closed segments; the next one uses them.
    drop(Db::open(dir.path(), opts()).unwrap());
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.recovery_report().hinted_segments >= 2, "{:?}", db.recovery_report());
    drop(db);
    let hint = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "hint"))
        .unwrap();
    let whole = fs::read(&hint).unwrap();
    assert!(whole.len() > 256 << 10, "hint of {} bytes", whole.len());
    // A crash while streaming leaves a prefix of the file (under its
    // temporary name, or, on a file system that reorders, its final one).
    let tmp = hint.with_extension("hint.tmp");
    for cut in [24, 100 << 10, 200 << 10, whole.len() - 1] {
        fs::write(&tmp, &whole[..cut]).unwrap();
        fs::write(&hint, &whole[..cut]).unwrap();
        let db = Db::open(dir.path(), opts()).unwrap();
        let rep = db.recovery_report().clone();
        assert_eq!(rep.bad_hints.len(), 1, "cut at {cut}: {rep:?}");
        assert_eq!(dump(&db), expected, "cut at {cut}");
        drop(db);
        assert!(!tmp.exists(), "cut at {cut}: temporary hint left behind");
        // Rewritten at that open, byte for byte as before.
        assert!(
            fs::read(&hint).unwrap() == whole,
            "cut at {cut}: rewritten hint differs"
        );
        let db = Db::open(dir.path(), opts()).unwrap();
        assert!(db.recovery_report().bad_hints.is_empty(), "{:?}", db.recovery_report());
        assert_eq!(dump(&db), expected);
    }
}

/// The OS file system, recording the largest single read of a segment
/// file while armed.
#[derive(Debug, Default)]
struct ReadSizes {
    armed: AtomicBool,
    largest: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
struct CountingFs(Arc<ReadSizes>);

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn mantisdb_core::vfs::FileHandle>,
    segment: bool,
    sizes: Arc<ReadSizes>,
}

impl CountingFile {
    fn note(&self, len: usize) {
        if self.segment && self.sizes.armed.load(Ordering::Relaxed) {
            self.sizes.largest.fetch_max(len, Ordering::Relaxed);
            self.sizes.reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl mantisdb_core::vfs::FileHandle for CountingFile {
    fn append(&self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.append(buf)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn preallocate(&self, len: u64) -> std::io::Result<()> {
        self.inner.preallocate(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.note(buf.len());
        self.inner.read_exact_at(buf, offset)
    }
    fn read_split_at(
        &self,
        head: &mut [u8],
        tail: &mut [std::mem::MaybeUninit<u8>],
        offset: u64,
    ) -> std::io::Result<()> {
        self.note(head.len() + tail.len());
        self.inner.read_split_at(head, tail, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }
    fn links(&self) -> std::io::Result<u64> {
        self.inner.links()
    }
}

impl mantisdb_core::vfs::FileSystem for CountingFs {
    fn open(
        &self,
        path: &Path,
        mode: mantisdb_core::vfs::OpenMode,
    ) -> std::io::Result<Box<dyn mantisdb_core::vfs::FileHandle>> {
        let segment = path.to_string_lossy().ends_with(".seg");
        Ok(Box::new(CountingFile {
            inner: mantisdb_core::vfs::OsFileSystem.open(path, mode)?,
            segment,
            sizes: Arc::clone(&self.0),
        }))
    }
    fn stat(&self, path: &Path) -> std::io::Result<mantisdb_core::vfs::Stat> {
        mantisdb_core::vfs::OsFileSystem.stat(path)
    }
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        mantisdb_core::vfs::OsFileSystem.read_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        mantisdb_core::vfs::OsFileSystem.create_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        mantisdb_core::vfs::OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        mantisdb_core::vfs::OsFileSystem.remove_file(path)
    }
    fn hard_link(&self, src: &Path, dst: &Path) -> std::io::Result<()> {
        mantisdb_core::vfs::OsFileSystem.hard_link(src, dst)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        mantisdb_core::vfs::OsFileSystem.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> std::io::Result<Box<dyn mantisdb_core::vfs::FileHandle>> {
        mantisdb_core::vfs::OsFileSystem.lock(path)
    }
}

#[test]
fn hints_and_compaction_read_segments_through_a_window_not_whole() {
    use mantisdb_core::log::frames::WINDOW;
    let dir = tempfile::tempdir().unwrap();
    let sizes = Arc::new(ReadSizes::default());
    let segment_size = 4 * WINDOW as u64;
    let options = || Options { segment_size, ..opts() }.with_file_system(Arc::new(CountingFs(Arc::clone(&sizes))));
    let db = Db::open(dir.path(), options()).unwrap();
    let mut model = BTreeMap::new();
    // Two rounds over the keys, so every early segment is half dead; values
    // of varied lengths, so frames straddle the window's end anywhere.
    for round in 0..2u8 {
        for i in 0..14_000u32 {
            let k = format!("key{i:08}").into_bytes();
            let v = vec![round ^ (i as u8); 200 + (i as usize * 131) % 1400];
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    assert!(
        dir_bytes(dir.path()) > 4 * segment_size,
        "too little data to span segments"
    );
    sizes.armed.store(true, Ordering::Relaxed);
    let report = db.compact().unwrap();
    sizes.armed.store(false, Ordering::Relaxed);
    assert!(report.segments_in >= 3, "{report:?}");
    assert!(report.bytes_in > 3 * segment_size, "{report:?}");
    let largest = sizes.largest.load(Ordering::Relaxed);
    println!(
        "{report:?}: {} segment reads, the largest {largest} bytes",
        sizes.reads.load(Ordering::Relaxed)
    );
    // Every closed segment was read for its hint and compacted, yet no read
    // was larger than the window (a whole-segment read is 4 windows).
    assert!(largest > 0 && largest <= WINDOW, "a read of {largest} bytes");
    assert_eq!(dump(&db), model);
    drop(db);
    // The hints written from windows are valid: open uses them.
    let db = Db::open(dir.path(), options()).unwrap();
    let rec = db.recovery_report();
    assert!(rec.bad_hints.is_empty(), "{rec:?}");
    assert!(rec.hinted_segments > 0, "{rec:?}");
    assert_eq!(dump(&db), model);
}
