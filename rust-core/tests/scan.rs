//! The scan path: values inline in the index and values fetched a chunk at a
//! time (cache hits, then one read per run of nearby records), checked
//! against a model across compaction relocation, overwrites, deletes, expiry
//! during a scan, reopen, records still in the write buffer, and damage.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mantisdb_core::vfs::{FileHandle, FileSystem, OpenMode, OsFileSystem, Stat};
use mantisdb_core::{Db, Error, Options, SyncPolicy};

mod support;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// A value of `len` bytes that names its key and version.
fn value(i: usize, round: usize, len: usize) -> Vec<u8> {
    let seed = format!("{i}/{round}/");
    seed.bytes().cycle().take(len).collect()
}

fn key(i: usize) -> Vec<u8> {
    format!("s/{i:05}").into_bytes()
}

fn opts(inline_threshold: usize, cache_bytes: u64) -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 16 << 10,
        inline_threshold,
        cache_bytes,
        background_compaction: false,
        ..Options::default()
    }
}

fn scan(db: &Db, prefix: &[u8]) -> Model {
    db.scan_prefix(prefix)
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k, v.to_vec())
        })
        .collect()
}

fn assert_same(got: &Model, want: &Model, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: pair count");
    for ((gk, gv), (wk, wv)) in got.iter().zip(want) {
        assert_eq!(gk, wk, "{what}: keys");
        assert_eq!(gv, wv, "{what}: value of {}", String::from_utf8_lossy(gk));
    }
}

/// Every combination the scan path distinguishes: values inline or on disk,
/// and values on disk cached or read.
const CONFIGS: [(usize, u64); 4] = [(128, 1 << 20), (128, 0), (0, 1 << 20), (0, 0)];

#[test]
fn inline_and_fetched_values_survive_overwrites_deletes_compaction_and_reopen() {
    for (inline, cache) in CONFIGS {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::new();
        let db = Db::open(dir.path(), opts(inline, cache)).unwrap();
        // Sizes on both sides of the inline threshold.
        let size = |i: usize, round: usize| (i * 7 + round * 13) % 300;
        for i in 0..400 {
            let v = value(i, 0, size(i, 0));
            db.put(&key(i), &v).unwrap();
            model.insert(key(i), v);
        }
        for round in 1..4 {
            for i in (0..400).filter(|i| i % 3 == round % 3) {
                let v = value(i, round, size(i, round));
                db.put(&key(i), &v).unwrap();
                model.insert(key(i), v);
            }
            for i in (0..400).filter(|i| i % 11 == round) {
                db.delete(&key(i)).unwrap();
                model.remove(&key(i));
            }
        }
        assert_same(&scan(&db, b"s/"), &model, "before compaction");
        let report = db.compact().unwrap();
        assert!(report.segments_in > 0, "compaction relocated nothing: {report:?}");
        assert_same(&scan(&db, b"s/"), &model, "after compaction");
        // Values relocated by compaction, then read back after a reopen (from
        // hint files and segments).
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts(inline, cache)).unwrap();
        assert_same(&scan(&db, b"s/"), &model, "after reopen");
        // A scan that starts in the middle and pages through the rest.
        let mut it = db.scan_prefix(b"s/").unwrap();
        it.seek(&key(200));
        let tail: Model = it.map(|r| r.map(|(k, v)| (k, v.to_vec())).unwrap()).collect();
        let want: Model = model.range(key(200)..).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_same(&tail, &want, "seek");
    }
}

#[test]
fn a_scan_keeps_its_snapshot_while_keys_are_overwritten_deleted_and_compacted() {
    for (inline, cache) in CONFIGS {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(inline, cache)).unwrap();
        let mut before = Model::new();
        for i in 0..600 {
            let v = value(i, 0, if i % 2 == 0 { 40 } else { 1000 });
            db.put(&key(i), &v).unwrap();
            before.insert(key(i), v);
        }
        let mut it = db.scan_prefix(b"s/").unwrap();
        let mut got = Model::new();
        for _ in 0..50 {
            let (k, v) = it.next().unwrap().unwrap();
            got.insert(k, v.to_vec());
        }
        // Everything changes under the open scan, including values of the
        // chunk already walked and of chunks not walked yet.
        for i in 0..600 {
            if i % 5 == 0 {
                db.delete(&key(i)).unwrap();
            } else {
                db.put(&key(i), &value(i, 1, if i % 2 == 0 { 1000 } else { 40 }))
                    .unwrap();
            }
        }
        db.put(b"s/new", b"not in the snapshot").unwrap();
        // Compaction moves the versions the scan still sees.
        db.compact().unwrap();
        for r in it {
            let (k, v) = r.unwrap();
            assert!(got.insert(k, v.to_vec()).is_none(), "a key came twice");
        }
        assert_same(&got, &before, "the scan's snapshot");
        let after = scan(&db, b"s/");
        assert_eq!(after.len(), 600 - 120 + 1);
        assert_eq!(after[&key(1)], value(1, 1, 40));
    }
}

#[test]
fn expiry_during_a_scan_is_judged_at_the_scans_snapshot() {
    for (inline, cache) in CONFIGS {
        // The keys with a time to live must still be live when the scan
        // starts: on a busy machine writing them can take longer than a
        // short one, so a load that came too close is done again with a
        // longer one.
        for ttl in [300, 1200, 5000].map(Duration::from_millis) {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(dir.path(), opts(inline, cache)).unwrap();
            let mut all = Model::new();
            let start = std::time::Instant::now();
            for i in 0..300 {
                let v = value(i, 0, if i % 2 == 0 { 50 } else { 700 });
                if i % 3 == 0 {
                    db.put_with_ttl(&key(i), &v, ttl).unwrap();
                } else {
                    db.put(&key(i), &v).unwrap();
                }
                all.insert(key(i), v);
            }
            let mut it = db.scan_prefix(b"s/").unwrap();
            if start.elapsed() > ttl / 2 && ttl < Duration::from_millis(5000) {
                continue;
            }
            let mut got = Model::new();
            for _ in 0..10 {
                let (k, v) = it.next().unwrap().unwrap();
                got.insert(k, v.to_vec());
            }
            std::thread::sleep(ttl + Duration::from_millis(100));
            // Compaction may not reclaim what the open scan can still see.
            db.compact().unwrap();
            for r in it {
                let (k, v) = r.unwrap();
                got.insert(k, v.to_vec());
            }
            assert_same(&got, &all, "keys that expired during the scan");
            let live: Model = all
                .iter()
                .filter(|(k, _)| {
                    let i: usize = std::str::from_utf8(&k[2..]).unwrap().parse().unwrap();
                    !i.is_multiple_of(3)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_same(&scan(&db, b"s/"), &live, "a scan after expiry");
            db.compact().unwrap();
            assert_same(&scan(&db, b"s/"), &live, "a scan after expiry and compaction");
            break;
        }
    }
}

#[test]
fn chunked_fetch_reads_runs_gaps_and_the_write_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        // Small writes buffer and segments: a chunk's records lie in several
        // segments, some already written out and some still in the buffer.
        write_buffer_bytes: 4096,
        segment_size: 64 << 10,
        ..opts(0, 0)
    };
    let db = Db::open(dir.path(), o).unwrap();
    let mut model = Model::new();
    for i in 0..2000 {
        // Records of other prefixes between some of the scanned ones: gaps
        // small enough to read through and too large to.
        if i % 97 == 0 {
            db.put(format!("t/{i}").as_bytes(), &vec![1u8; 6000]).unwrap();
        }
        if i % 13 == 0 {
            db.put(format!("t/{i}").as_bytes(), &[2u8; 100]).unwrap();
        }
        let v = value(i, 0, 1 + (i * 31) % 900);
        db.put(&key(i), &v).unwrap();
        model.insert(key(i), v);
        // Scan while the tail of the log is still in the write buffer.
        if i % 500 == 499 {
            assert_same(&scan(&db, b"s/"), &model, "during the load");
        }
    }
    // Overwrites scatter a chunk's values over segments out of key order.
    for i in (0..2000).step_by(7) {
        let v = value(i, 1, 1 + (i * 17) % 900);
        db.put(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    assert_same(&scan(&db, b"s/"), &model, "after overwrites");
    db.sync().unwrap();
    assert_same(&scan(&db, b"s/"), &model, "after sync");
}

/// Waits (at most 10 s) until every segment of `dir` but the newest has
/// its hint file, which the background thread writes after a segment is
/// closed: a reopen then loads those segments from their hints rather than
/// replaying them, so a damaged value in one is first met by a read, not
/// by recovery's record checksum.
fn wait_for_hints(dir: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut segs: Vec<&String> = names.iter().filter(|n| n.ends_with(".seg")).collect();
        segs.sort();
        segs.pop();
        let hinted = segs.iter().all(|s| names.contains(&s.replace(".seg", ".hint")));
        if hinted || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes 300 values of 500 bytes under `s/`, damages the value of key 150
/// on disk, and reopens (value cache of `cache` bytes, segments not checked
/// at open): a store whose scans must meet the damage. Returns it with the
/// model of what was written.
fn damaged_store(dir: &Path, cache: u64) -> (Db, Model) {
    let o = Options {
        verify_segments_on_open: false,
        ..opts(0, cache)
    };
    let mut model = Model::new();
    {
        let db = Db::open(dir, o.clone()).unwrap();
        for i in 0..300 {
            let v = value(i, 0, 500);
            db.put(&key(i), &v).unwrap();
            model.insert(key(i), v);
        }
        wait_for_hints(dir);
        db.close().unwrap();
    }
    damage_value(dir, &key(150));
    (Db::open(dir, o).unwrap(), model)
}

/// Flips one byte of the value of `needle` in whichever segment holds it.
fn damage_value(dir: &Path, needle: &[u8]) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("seg") {
            continue;
        }
        let mut f = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            let pos = (at + needle.len() + 10) as u64;
            f.seek(SeekFrom::Start(pos)).unwrap();
            f.write_all(&[bytes[pos as usize] ^ 0xff]).unwrap();
            return;
        }
    }
    panic!("no segment holds the key");
}

#[test]
fn a_damaged_value_in_a_fetched_run_is_reported_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (db, model) = damaged_store(dir.path(), 0);
    let mut it = db.scan_prefix(b"s/").unwrap();
    for (k, v) in model.range(..key(150)) {
        let (gk, gv) = it.next().unwrap().unwrap();
        assert_eq!((&gk, &gv[..]), (k, &v[..]));
    }
    match it.next() {
        Some(Err(Error::Corruption { .. })) => {}
        other => panic!(
            "want a corruption error at the damaged key, got {:?}",
            other.map(|r| r.map(|p| p.0))
        ),
    }
    assert!(it.next().is_none(), "iteration ends after an error");
}

/// A lending scan (the C API's batches) with the value cache on: values
/// read with a chunk's fetch are lent from the read's own buffer after
/// their checksum matched, so a damaged value in the middle of a run must
/// still be reported, at its key, and never handed out or skipped.
#[test]
fn a_damaged_value_met_by_a_lending_scan_is_reported_at_its_key() {
    for cache in [0, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let (db, model) = damaged_store(dir.path(), cache);
        // Some values around the damaged one in the cache, as after reads:
        // the scan takes them from there and reads the rest around them.
        for i in (140..160).step_by(3).filter(|&i| i != 150) {
            assert_eq!(db.get(&key(i)).unwrap().as_deref(), Some(&model[&key(i)][..]));
        }
        let mut it = db.scan_prefix(b"s/").unwrap();
        for (k, v) in model.range(..key(150)) {
            let (gk, gv) = it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())).unwrap().unwrap();
            assert_eq!((&gk, &gv), (k, v), "cache {cache}");
        }
        match it.next_borrowed(|k, _| k.to_vec()) {
            Some(Err(Error::Corruption { .. })) => {}
            other => panic!("cache {cache}: want a corruption error at the damaged key, got {other:?}"),
        }
        assert!(it.next_borrowed(|_, _| ()).is_none(), "iteration ends after an error");
    }
}

/// A scan reads each value once: it may take values from the value cache
/// but puts none there and counts no hit or miss, so it neither evicts
/// what point reads keep nor skews the cache's hit ratio.
#[test]
fn scans_stay_out_of_the_value_cache() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_size: 1 << 20,
        ..opts(0, 1 << 20)
    };
    let mut model = Model::new();
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        for i in 0..500 {
            let v = value(i, 0, 300);
            db.put(&key(i), &v).unwrap();
            model.insert(key(i), v);
        }
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), o).unwrap();
    for i in (0..500).step_by(5) {
        db.get(&key(i)).unwrap();
    }
    let before = db.stats().cache;
    assert!(before.entries > 0);
    assert_same(&scan(&db, b"s/"), &model, "sharing scan");
    let mut lent = Model::new();
    let mut it = db.scan_prefix(b"s/").unwrap();
    while let Some(pair) = it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())) {
        let (k, v) = pair.unwrap();
        lent.insert(k, v);
    }
    assert_same(&lent, &model, "lending scan");
    let after = db.stats().cache;
    assert_eq!(
        (after.hits, after.misses, after.inserts, after.entries),
        (before.hits, before.misses, before.inserts, before.entries),
        "the scans changed the value cache"
    );
}

/// The index walk reads entries under an epoch guard without counting
/// references, and a lending scan copies inline values into its own chunk
/// buffer. Scans (lending, sharing, and both mixed in one scan) run here
/// while writers overwrite keys across the inline threshold, delete and
/// re-create them (tombstone collection unlinks entries under the walk) and
/// compaction relocates their versions; each scan must return exactly what
/// point reads at its snapshot return, in key order.
#[test]
fn lending_and_sharing_scans_agree_with_point_reads_under_writes_deletes_and_compaction() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    const KEYS: usize = 300;
    for (inline, cache) in [(128, 0), (128, 1 << 20), (0, 1 << 20)] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts(inline, cache)).unwrap();
        for i in 0..KEYS {
            db.put(&key(i), &value(i, 0, 60)).unwrap();
        }
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(20);
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                for round in 1..=60 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    for i in (0..KEYS).filter(|i| i % 4 == round % 4) {
                        if (i + round) % 7 == 0 {
                            db.delete(&key(i)).unwrap();
                        } else {
                            // Both sides of the inline threshold.
                            let len = if (i + round) % 2 == 0 { 60 } else { 300 };
                            db.put(&key(i), &value(i, round, len)).unwrap();
                        }
                    }
                }
            });
            let compactor = s.spawn(|| {
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    db.compact().unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            // At least 40 scans, and more until the writer and the
            // compactor are done, so every scan overlaps their work.
            for round in 0.. {
                let done = writer.is_finished() && compactor.is_finished();
                if (round >= 40 && done) || Instant::now() > deadline {
                    break;
                }
                let snap = db.snapshot().unwrap();
                let mut it = snap.scan_prefix(b"s/");
                let mut got = Model::new();
                let mut n = 0usize;
                loop {
                    // Lending, sharing, or alternating within one scan.
                    let lend = match round % 3 {
                        0 => true,
                        1 => false,
                        _ => n.is_multiple_of(2),
                    };
                    let item = if lend {
                        it.next_borrowed(|k, v| (k.to_vec(), v.to_vec()))
                    } else {
                        it.next_with(|k, v| (k.to_vec(), v.to_vec()))
                    };
                    let Some(item) = item else { break };
                    let (k, v) = item.unwrap();
                    if let Some((last, _)) = got.last_key_value() {
                        assert!(*last < k, "keys out of order or repeated");
                    }
                    got.insert(k, v);
                    n += 1;
                }
                let mut want = Model::new();
                for i in 0..KEYS {
                    if let Some(v) = snap.get(&key(i)).unwrap() {
                        want.insert(key(i), v.to_vec());
                    }
                }
                assert_same(&got, &want, &format!("scan {round} (inline {inline}, cache {cache})"));
                for (k, v) in &got {
                    let i: usize = std::str::from_utf8(&k[2..]).unwrap().parse().unwrap();
                    assert!(v.starts_with(format!("{i}/").as_bytes()), "value of another key");
                }
            }
            stop.store(true, Ordering::Relaxed);
            writer.join().unwrap();
            compactor.join().unwrap();
        });
        // Point reads through the lending get agree with the sharing one.
        for i in 0..KEYS {
            let shared = db.get(&key(i)).unwrap().map(|v| v.to_vec());
            assert_eq!(db.get_with(&key(i), |v| v.to_vec()).unwrap(), shared);
        }
    }
}

/// The operating system's file system, counting the files opened and the
/// bytes read through them.
#[derive(Debug, Default)]
struct Counting {
    opens: AtomicU64,
    read: Arc<AtomicU64>,
}

#[derive(Debug)]
struct CountedFile {
    file: Box<dyn FileHandle>,
    read: Arc<AtomicU64>,
}

impl FileHandle for CountedFile {
    fn append(&self, buf: &[u8]) -> std::io::Result<()> {
        self.file.append(buf)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_at(buf, offset)
    }
    fn preallocate(&self, len: u64) -> std::io::Result<()> {
        self.file.preallocate(len)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.file.read_exact_at(buf, offset)
    }
    fn read_split_at(&self, head: &mut [u8], tail: &mut [MaybeUninit<u8>], offset: u64) -> std::io::Result<()> {
        self.read.fetch_add((head.len() + tail.len()) as u64, Ordering::Relaxed);
        self.file.read_split_at(head, tail, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.file.size()
    }
    fn links(&self) -> std::io::Result<u64> {
        self.file.links()
    }
}

impl FileSystem for Counting {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FileHandle>> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(CountedFile {
            file: OsFileSystem.open(path, mode)?,
            read: Arc::clone(&self.read),
        }))
    }
    fn stat(&self, path: &Path) -> std::io::Result<Stat> {
        OsFileSystem.stat(path)
    }
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>> {
        OsFileSystem.read_dir(dir)
    }
    directory_calls_to_os!();
}

/// A database whose file reads are counted, holding `n` keys with values of
/// `len` bytes (none inline) in one segment that is never closed, so that
/// nothing but the scans reads, and every value is read through the file
/// (the segment being written has no map); with the model of its pairs.
fn counted_db(n: usize, len: usize) -> (tempfile::TempDir, Arc<Counting>, Db, Model) {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(Counting::default());
    let o = Options {
        segment_size: 64 << 20,
        ..opts(0, 0)
    }
    .with_file_system(fs.clone());
    let db = Db::open(dir.path(), o).unwrap();
    let mut model = Model::new();
    for i in 0..n {
        let v = value(i, 0, len);
        db.put(&key(i), &v).unwrap();
        model.insert(key(i), v);
    }
    db.sync().unwrap();
    (dir, fs, db, model)
}

/// A scan reads through the segments' own open files (64 scanners each
/// opening and closing up to eight files was a system call pair per file
/// per scan), and a caller that says how many pairs it takes (the C API's
/// batches: Go asks 16, then 32, ...) gets no value read past them: a
/// refill walks no more keys than asked for.
#[test]
fn scans_open_no_file_and_read_no_value_past_what_the_caller_takes() {
    let (_dir, fs, db, model) = counted_db(1000, 1024);
    let record = (key(0).len() + 1024) as u64;
    let opens = fs.opens.load(Ordering::Relaxed);
    for round in 0..3 {
        let before = fs.read.load(Ordering::Relaxed);
        let mut it = db.scan_prefix(b"s/").unwrap();
        let mut got = Model::new();
        // 16, then 32, then 52 pairs: the batches of a 100-key page.
        for batch in [16, 32, 52] {
            for n in 0..batch {
                it.want(batch - n);
                let (k, v) = it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())).unwrap().unwrap();
                got.insert(k, v);
            }
        }
        drop(it);
        let read = fs.read.load(Ordering::Relaxed) - before;
        assert_same(
            &got,
            &model.iter().take(100).map(|(k, v)| (k.clone(), v.clone())).collect(),
            "a page",
        );
        assert!(
            read >= 100 * record && read < 100 * record + 3 * 4096,
            "round {round}: a 100-pair page read {read} bytes (records of {record} bytes)"
        );
    }
    // Without a word from the caller, chunks of the usual size.
    let before = fs.read.load(Ordering::Relaxed);
    let mut it = db.scan_prefix(b"s/").unwrap();
    assert!(it.next_borrowed(|_, _| ()).is_some());
    let read = fs.read.load(Ordering::Relaxed) - before;
    assert!(read >= 32 * record, "a first chunk of 32 keys, read {read} bytes");
    drop(it);
    assert_same(&scan(&db, b"s/"), &model, "a whole scan");
    assert_eq!(fs.opens.load(Ordering::Relaxed), opens, "scans opened files");
}

/// A walk for a caller that takes many pairs at once is bounded by bytes
/// as well as by keys: values read through files (here the segment being
/// written, which has no map) go into the chunk's buffer, so a batch of
/// 40 pairs of 1 MiB values reads about 8 MiB per refill, not 40 MiB at
/// once; every pair still comes, in order, with its value.
#[test]
fn a_walk_of_large_values_read_through_files_is_bounded_by_bytes() {
    let (_dir, fs, db, model) = counted_db(40, 1 << 20);
    let before = fs.read.load(Ordering::Relaxed);
    let mut it = db.scan_prefix(b"s/").unwrap();
    it.want(40);
    let (k, v) = it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())).unwrap().unwrap();
    assert_eq!((&k, &v), model.iter().next().unwrap());
    let first_refill = fs.read.load(Ordering::Relaxed) - before;
    assert!(
        (8 << 20..10 << 20).contains(&first_refill),
        "the first refill of a 40-pair batch of 1 MiB values read {first_refill} bytes"
    );
    let mut got = Model::new();
    got.insert(k, v);
    for n in 1..40 {
        it.want(40 - n);
        let (k, v) = it.next_borrowed(|k, v| (k.to_vec(), v.to_vec())).unwrap().unwrap();
        got.insert(k, v);
    }
    assert!(it.next_borrowed(|_, _| ()).is_none());
    assert_same(&got, &model, "large values in batches bounded by bytes");
}
