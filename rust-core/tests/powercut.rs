//! Simulated power cuts at every file-system call.
//!
//! The database runs on `support::simfs::SimFs`, an in-memory file system
//! that remembers what was synced. A seeded workload (puts, deletes, batches,
//! transactions, TTL writes, forced compactions with their hint files, syncs
//! and checkpoints) runs once to count its mutating calls (writes, syncs,
//! renames, removes, links, creations). Then, for each call index `n`, it runs
//! again with the file system failing call `n` and every later one, as if the
//! power went just before it; the workload stops at the first error. The
//! image a reboot would find is built three ways: only what was synced;
//! everything (a process crash); and what was synced plus a random part of
//! the rest (a random prefix of each file's unsynced appends and of each
//! directory's unsynced name changes). On each image the test proves:
//!
//! - the database opens (recovery never refuses a crash image);
//! - its content equals the model after every acknowledged operation, or
//!   after those plus the one in flight (a batch or transaction whole or not
//!   at all): every acknowledged write is there and nothing else is;
//! - each checkpoint that returned Ok opens as a database holding exactly
//!   the content at its moment;
//! - after a second power cut during that recovery (some runs), the same holds;
//! - the recovered database takes writes that survive a clean reopen.
//!
//! Defaults (`cargo test`): one seed of 60 operations, every call index,
//! three images each. Longer runs: `MANTIS_POWERCUT_SEEDS=N` seeds,
//! `MANTIS_POWERCUT_OPS=N` operations per workload,
//! `MANTIS_POWERCUT_POINTS=N` call indexes sampled per seed (0 = all),
//! `MANTIS_POWERCUT_SEED=S` first seed, `MANTIS_POWERCUT_AT=N` only call
//! index N (to replay a failure). A failure names seed, call index and image.

mod support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::simfs::{Keep, SimFs};

const DB: &str = "/data/db";
const KEYS: usize = 14;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

fn options(fs: &SimFs) -> Options {
    Options {
        sync: SyncPolicy::Always,
        segment_size: 4096,
        cache_bytes: 1 << 16,
        background_compaction: false,
        compaction_interval: Duration::from_secs(3600),
        ..Options::default()
    }
    .with_file_system(Arc::new(fs.clone()))
}

/// A model value: the bytes, and whether it expires (1 ms TTL) before the check.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MVal {
    bytes: Vec<u8>,
    expires: bool,
}

type Model = BTreeMap<Vec<u8>, MVal>;

/// What a reader sees of a model once every short TTL has passed.
fn visible(m: &Model) -> BTreeMap<Vec<u8>, Vec<u8>> {
    m.iter()
        .filter(|(_, v)| !v.expires)
        .map(|(k, v)| (k.clone(), v.bytes.clone()))
        .collect()
}

#[derive(Debug, Clone)]
enum Write {
    Put(Vec<u8>, Vec<u8>),
    /// A put with a TTL: 1 ms (expired at the check) or an hour.
    PutTtl(Vec<u8>, Vec<u8>, bool),
    Delete(Vec<u8>),
}

impl Write {
    fn apply(&self, m: &mut Model) {
        match self {
            Write::Put(k, v) => {
                m.insert(
                    k.clone(),
                    MVal {
                        bytes: v.clone(),
                        expires: false,
                    },
                );
            }
            Write::PutTtl(k, v, short) => {
                m.insert(
                    k.clone(),
                    MVal {
                        bytes: v.clone(),
                        expires: *short,
                    },
                );
            }
            Write::Delete(k) => {
                m.remove(k);
            }
        }
    }
}

fn ttl(short: bool) -> Duration {
    if short {
        Duration::from_millis(1)
    } else {
        Duration::from_secs(3600)
    }
}

#[derive(Debug, Clone)]
enum Step {
    One(Write),
    Batch(Vec<Write>),
    /// A transaction: reads the first key, then applies the writes.
    Txn(Vec<u8>, Vec<Write>),
    Compact,
    Sync,
    Checkpoint(PathBuf),
}

impl Step {
    fn apply(&self, m: &mut Model) {
        match self {
            Step::One(w) => w.apply(m),
            Step::Batch(ws) | Step::Txn(_, ws) => ws.iter().for_each(|w| w.apply(m)),
            Step::Compact | Step::Sync | Step::Checkpoint(_) => {}
        }
    }

    fn has_short_ttl(&self) -> bool {
        let short = |w: &Write| matches!(w, Write::PutTtl(_, _, true));
        match self {
            Step::One(w) => short(w),
            Step::Batch(ws) | Step::Txn(_, ws) => ws.iter().any(short),
            Step::Compact | Step::Sync | Step::Checkpoint(_) => false,
        }
    }

    fn run(&self, db: &Db) -> mantisdb_core::Result<()> {
        match self {
            Step::One(Write::Put(k, v)) => db.put(k, v),
            Step::One(Write::PutTtl(k, v, short)) => db.put_with_ttl(k, v, ttl(*short)),
            Step::One(Write::Delete(k)) => db.delete(k),
            Step::Batch(ws) => {
                let mut b = WriteBatch::new();
                for w in ws {
                    match w {
                        Write::Put(k, v) => b.put(k.clone(), v.clone()),
                        Write::PutTtl(k, v, short) => b.put_with_ttl(k.clone(), v.clone(), ttl(*short)),
                        Write::Delete(k) => b.delete(k.clone()),
                    };
                }
                db.write(&b)
            }
            Step::Txn(read, ws) => {
                let mut t = db.begin()?;
                t.get(read)?;
                for w in ws {
                    match w {
                        Write::Put(k, v) => t.put(k, v)?,
                        Write::PutTtl(k, v, short) => t.put_with_ttl(k, v, ttl(*short))?,
                        Write::Delete(k) => t.delete(k)?,
                    }
                }
                t.commit()
            }
            Step::Compact => db.compact().map(drop),
            Step::Sync => db.sync(),
            Step::Checkpoint(dir) => db.checkpoint(dir).map(drop),
        }
    }
}

/// The seeded workload.
fn workload(seed: u64, n: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = |rng: &mut StdRng| format!("key-{:02}", rng.random_range(0..KEYS)).into_bytes();
    let mut steps = Vec::with_capacity(n);
    let mut checkpoints = 0;
    for i in 0..n {
        let write = |rng: &mut StdRng, tag: usize| -> Write {
            let k = key(rng);
            // Inline, cached and larger-than-a-few-per-segment values.
            let len = [12usize, 150, 900][rng.random_range(0..3)];
            let mut v = format!("v{i}.{tag}-").into_bytes();
            v.resize(len, b'a' + (i % 26) as u8);
            match rng.random_range(0..100) {
                0..=64 => Write::Put(k, v),
                65..=71 => Write::PutTtl(k, v, rng.random_bool(0.5)),
                _ => Write::Delete(k),
            }
        };
        let step = match rng.random_range(0..100) {
            0..=54 => Step::One(write(&mut rng, 0)),
            55..=69 => {
                let len = rng.random_range(2..=4);
                Step::Batch((0..len).map(|t| write(&mut rng, t)).collect())
            }
            70..=79 => {
                let read = key(&mut rng);
                let len = rng.random_range(1..=3);
                Step::Txn(read, (0..len).map(|t| write(&mut rng, t)).collect())
            }
            80..=89 => Step::Compact,
            90..=93 => Step::Sync,
            _ => {
                checkpoints += 1;
                Step::Checkpoint(PathBuf::from(format!("/data/ckpt-{checkpoints}")))
            }
        };
        steps.push(step);
    }
    steps
}

fn scan_all(db: &Db) -> mantisdb_core::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for item in db.scan(Bound::Unbounded, Bound::Unbounded)? {
        let (k, v) = item?;
        out.insert(k.to_vec(), v.to_vec());
    }
    Ok(out)
}

/// What one run under a crash point did.
struct Run {
    /// Mutating file-system calls made.
    ops: u64,
    /// Model after the acknowledged steps.
    acked: Model,
    /// Model with the in-flight step applied too.
    in_flight: Option<Model>,
    /// Checkpoints that returned Ok, with the model at their moment.
    checkpoints: Vec<(PathBuf, Model)>,
    /// When the last step with a short TTL was issued.
    last_short_ttl: Option<Instant>,
    /// Segments the writer started in a retired segment's file.
    recycled: u64,
}

fn run(steps: &[Step], fs: &SimFs) -> Run {
    let mut r = Run {
        ops: 0,
        acked: Model::new(),
        in_flight: None,
        checkpoints: Vec::new(),
        last_short_ttl: None,
        recycled: 0,
    };
    let db = match Db::open(DB, options(fs)) {
        Ok(db) => db,
        Err(_) => {
            assert!(fs.crashed(), "open failed without a crash");
            r.ops = fs.ops();
            return r;
        }
    };
    for step in steps {
        if step.has_short_ttl() {
            r.last_short_ttl = Some(Instant::now());
        }
        match step.run(&db) {
            Ok(()) => {
                step.apply(&mut r.acked);
                if let Step::Checkpoint(dir) = step {
                    r.checkpoints.push((dir.clone(), r.acked.clone()));
                }
            }
            Err(e) => {
                assert!(fs.crashed(), "{step:?} failed without a crash: {e}");
                let mut m = r.acked.clone();
                step.apply(&mut m);
                r.in_flight = Some(m);
                break;
            }
        }
    }
    r.recycled = db.stats().recycled_segments;
    drop(db);
    r.ops = fs.ops();
    r
}

/// Opens `dir` on `fs` and checks its content is one of `allowed`; returns
/// the database and the index of the first model it equals.
fn check_db(fs: &SimFs, dir: &str, allowed: &[&Model], ctx: &str) -> (Db, usize) {
    let db = Db::open(dir, options(fs)).unwrap_or_else(|e| panic!("{ctx}: open of {dir} failed: {e}"));
    let got = scan_all(&db).unwrap_or_else(|e| panic!("{ctx}: scan of {dir} failed: {e}"));
    let Some(which) = allowed.iter().position(|m| visible(m) == got) else {
        let want: Vec<String> = allowed.iter().map(|m| show(&visible(m))).collect();
        panic!(
            "{ctx}: {dir} holds a state that is no prefix of the history\n got:  {}\n want: {}",
            show(&got),
            want.join("\n   or: ")
        );
    };
    // Every point read agrees with the scan.
    for (k, v) in &got {
        let one = db.get(k).unwrap_or_else(|e| panic!("{ctx}: get failed: {e}"));
        assert_eq!(one.as_deref(), Some(&v[..]), "{ctx}: get disagrees with scan");
    }
    (db, which)
}

/// Checks the image; returns true when it kept the in-flight commit (and
/// that commit changed the content).
fn verify(image: &SimFs, keep: Keep, r: &Run, rng: &mut StdRng, ctx: &str) -> bool {
    if let Some(t) = r.last_short_ttl {
        // Short TTLs are 1 ms: make sure they have passed.
        let wait = Duration::from_millis(3).saturating_sub(t.elapsed());
        std::thread::sleep(wait);
    }
    let mut allowed = vec![&r.acked];
    if let Some(m) = &r.in_flight {
        allowed.push(m);
    }
    // Now and then a second power cut, during recovery itself (the image
    // as it is is checked first, on a copy).
    let image = if keep == Keep::Random && rng.random_bool(0.3) {
        drop(check_db(&image.image(Keep::Everything, rng), DB, &allowed, ctx));
        let again = image.image(Keep::Everything, rng);
        let cut = rng.random_range(0..12);
        again.crash_at(cut);
        match Db::open(DB, options(&again)) {
            Ok(db) => {
                // Recovery finished before the cut: the state must be right already.
                check_db_open(&db, &allowed, ctx);
                drop(db);
            }
            Err(e) => assert!(again.crashed(), "{ctx}: open failed without a crash: {e}"),
        }
        again.image(Keep::Random, rng)
    } else {
        image.clone()
    };
    let (db, which) = check_db(&image, DB, &allowed, ctx);
    for (dir, m) in &r.checkpoints {
        let (copy, _) = check_db(&image, dir.to_str().unwrap(), &[m], &format!("{ctx}, checkpoint"));
        drop(copy);
    }
    if keep == Keep::Random {
        // The recovered database takes writes that last.
        db.put(b"after-recovery", b"yes")
            .unwrap_or_else(|e| panic!("{ctx}: write after recovery failed: {e}"));
        db.close().unwrap();
        drop(db);
        let db = Db::open(DB, options(&image)).unwrap_or_else(|e| panic!("{ctx}: second open failed: {e}"));
        assert_eq!(
            db.get(b"after-recovery").unwrap().as_deref(),
            Some(&b"yes"[..]),
            "{ctx}: write after recovery lost"
        );
    }
    which == 1 && r.in_flight.as_ref().is_some_and(|m| visible(m) != visible(&r.acked))
}

fn check_db_open(db: &Db, allowed: &[&Model], ctx: &str) {
    let got = scan_all(db).unwrap_or_else(|e| panic!("{ctx}: scan failed: {e}"));
    if !allowed.iter().any(|m| visible(m) == got) {
        let want: Vec<String> = allowed.iter().map(|m| show(&visible(m))).collect();
        panic!(
            "{ctx}: state after an interrupted recovery is no prefix of the history\n got:  {}\n want: {}\n report: {:?}",
            show(&got),
            want.join("\n   or: "),
            db.recovery_report()
        );
    }
}

fn show(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    m.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(&v[..v.len().min(12)])
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn power_cut_at_every_file_system_call() {
    let started = Instant::now();
    let first = env_u64("MANTIS_POWERCUT_SEED").unwrap_or(0x5eed_0001);
    let seeds = env_u64("MANTIS_POWERCUT_SEEDS").unwrap_or(1);
    let n_ops = env_u64("MANTIS_POWERCUT_OPS").unwrap_or(60) as usize;
    let sample = env_u64("MANTIS_POWERCUT_POINTS").unwrap_or(0);
    let mut checked = 0u64;
    let mut in_flight_kept = 0u64;
    let mut recycled = 0u64;
    for seed in first..first + seeds {
        let steps = workload(seed, n_ops);
        let reference = run(&steps, &SimFs::new());
        assert!(reference.in_flight.is_none());
        recycled += reference.recycled;
        let total = reference.ops;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
        let points: Vec<u64> = if let Some(at) = env_u64("MANTIS_POWERCUT_AT") {
            vec![at]
        } else if sample == 0 || sample >= total {
            (0..total).collect()
        } else {
            (0..sample).map(|_| rng.random_range(0..total)).collect()
        };
        for &point in &points {
            let fs = SimFs::new();
            fs.crash_at(point);
            let r = run(&steps, &fs);
            // Three reboots of the same crashed machine.
            for keep in [Keep::Synced, Keep::Everything, Keep::Random] {
                let image = fs.image(keep, &mut rng);
                let ctx = format!("seed {seed:#x}, power cut at call {point} of {total}, image {keep:?}");
                in_flight_kept += u64::from(verify(&image, keep, &r, &mut rng, &ctx));
                checked += 1;
            }
        }
        eprintln!(
            "seed {seed:#x}: {} steps, {total} mutating calls, {} crash points",
            steps.len(),
            points.len()
        );
    }
    eprintln!(
        "power cut: {checked} crash images checked ({in_flight_kept} kept the in-flight commit, \
         {recycled} segments started in recycled files by the uncut runs) in {:.1?}",
        started.elapsed()
    );
    // The workloads' compactions retire segments whose files the writer
    // reuses: crashes land inside that path too.
    assert!(
        recycled > 0 || seeds == 0,
        "no segment was recycled: the test no longer covers reuse"
    );
}

/// The directory a database is created in is made durable: a power cut
/// right after the first acknowledged write keeps it.
#[test]
fn a_new_database_directory_survives_a_power_cut() {
    let fs = SimFs::new();
    let db = Db::open(DB, options(&fs)).unwrap();
    db.put(b"k", b"v").unwrap();
    fs.crash_at(fs.ops());
    let image = fs.image(Keep::Synced, &mut StdRng::seed_from_u64(1));
    drop(db);
    let db = Db::open(DB, options(&image)).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// A checkpoint that returned Ok survives a power cut right after it.
#[test]
fn a_completed_checkpoint_survives_a_power_cut() {
    let fs = SimFs::new();
    let db = Db::open(DB, options(&fs)).unwrap();
    for i in 0..20u32 {
        db.put(format!("k{i}").as_bytes(), &[b'x'; 500]).unwrap();
    }
    let dest = Path::new("/backups/nested/ckpt");
    db.checkpoint(dest).unwrap();
    fs.crash_at(fs.ops());
    let image = fs.image(Keep::Synced, &mut StdRng::seed_from_u64(2));
    drop(db);
    let copy = Db::open(dest, options(&image)).unwrap();
    assert_eq!(scan_all(&copy).unwrap().len(), 20);
}

/// A compaction whose inputs hold a delete (in one segment) and the older
/// value it shadows (in another) unlinks them one by one: a crash between
/// the unlinks must not bring the deleted value back.
#[test]
fn a_deleted_key_stays_deleted_across_a_crash_between_compaction_unlinks() {
    // Returns the database and the calls made before the last compaction.
    let scenario = |fs: &SimFs, crash_in_last_compaction: Option<u64>| -> (Db, u64) {
        let db = Db::open(DB, options(fs)).unwrap();
        db.put(b"gone", &[b'g'; 900]).unwrap();
        db.put(b"filler", &[b'f'; 900]).unwrap();
        db.put(b"filler", &[b'F'; 900]).unwrap();
        // The value moves into a sealed segment with a higher id...
        db.compact().unwrap();
        // ...and its delete goes into the writer's segment, with a lower one.
        db.delete(b"gone").unwrap();
        let before = fs.ops();
        if let Some(n) = crash_in_last_compaction {
            fs.crash_at(before + n);
        }
        let _ = db.compact();
        (db, before)
    };
    let fs = SimFs::new();
    let (db, before) = scenario(&fs, None);
    let calls = fs.ops() - before;
    drop(db);
    assert!(calls > 5, "the last compaction made only {calls} calls");
    for n in 0..calls {
        let fs = SimFs::new();
        let (db, _) = scenario(&fs, Some(n));
        let image = fs.image(Keep::Everything, &mut StdRng::seed_from_u64(n));
        drop(db);
        let db = Db::open(DB, options(&image)).unwrap();
        assert_eq!(db.get(b"gone").unwrap(), None, "crash at call {n} of the compaction");
        assert_eq!(db.get(b"filler").unwrap().as_deref(), Some(&[b'F'; 900][..]));
    }
}

/// After a recovery in the torn-write tests: a write still works, and a
/// clean reopen finds it, finds `second` exactly when it survived the cut,
/// and reports no tail. Returns the reopened database.
fn write_after_recovery(db: Db, image: &SimFs, second: bool, ctx: &str) -> Db {
    db.put(b"third", b"after recovery").unwrap();
    drop(db);
    let db = Db::open(DB, options(image)).unwrap();
    assert_eq!(
        db.get(b"third").unwrap().as_deref(),
        Some(&b"after recovery"[..]),
        "{ctx}"
    );
    assert_eq!(db.get(b"second").unwrap().is_some(), second, "{ctx}");
    assert!(
        db.recovery_report().truncated.is_empty(),
        "{ctx}: a clean close leaves no tail"
    );
    db
}

/// The writer preallocates segment space: zeros after the last record are
/// the end of the log, never a record, and a record only partly written into
/// that space (its first bytes, or only its later bytes, reached the disk)
/// is still a torn tail: cut, and the commit before it intact.
#[test]
fn a_torn_write_into_preallocated_space_is_caught() {
    use mantisdb_core::vfs::{FileSystem, OpenMode};
    let fs = SimFs::new();
    let db = Db::open(DB, options(&fs)).unwrap();
    let seg = Path::new(DB).join("0000000001.seg");
    // The end of the records: the last byte of each value is not zero.
    let records_end = |fs: &SimFs| {
        let data = fs.read(&seg).unwrap();
        (data.iter().rposition(|&b| b != 0).unwrap() + 1, data.len())
    };
    db.put(b"first", b"synced value 1").unwrap();
    let (end_a, _) = records_end(&fs);
    db.put(b"second", b"synced value 2").unwrap();
    let (end_b, file_len) = records_end(&fs);
    assert!(
        file_len > end_b,
        "the segment has no preallocated space after its records ({file_len} bytes, records end at {end_b})"
    );
    let mid = (end_a + end_b) / 2;
    // (what is zeroed in the image, torn tail expected, whether "second" survives)
    let cases: [(std::ops::Range<usize>, bool, bool); 4] = [
        (0..0, false, true),          // everything reached the disk
        (end_a..end_b, false, false), // the second record never did
        (mid..end_b, true, false),    // only its first half did
        (end_a..mid, true, false),    // only its second half did
    ];
    for (n, (zeroed, torn, second)) in cases.into_iter().enumerate() {
        let image = fs.image(Keep::Everything, &mut StdRng::seed_from_u64(n as u64));
        if !zeroed.is_empty() {
            let f = image.open(&seg, OpenMode::Write).unwrap();
            f.write_at(&vec![0u8; zeroed.len()], zeroed.start as u64).unwrap();
            f.sync_data().unwrap();
        }
        let db = Db::open(DB, options(&image)).unwrap();
        let ctx = format!("case {n}: bytes {zeroed:?} zeroed");
        assert_eq!(
            db.get(b"first").unwrap().as_deref(),
            Some(&b"synced value 1"[..]),
            "{ctx}"
        );
        assert_eq!(db.get(b"second").unwrap().is_some(), second, "{ctx}");
        let report = db.recovery_report();
        assert_eq!(!report.truncated.is_empty(), torn, "{ctx}: {report:?}");
        if torn {
            assert_eq!(report.truncated[0].offset, end_a as u64, "{ctx}: {report:?}");
        }
        // Recovery cut the file back to its whole records.
        let expected_len = if second { end_b } else { end_a };
        assert_eq!(image.read(&seg).unwrap().len(), expected_len, "{ctx}");
        drop(write_after_recovery(db, &image, second, &ctx));
    }
    drop(db);
}

/// Segments larger than a preallocation step: the writer zeroes the active
/// segment ahead of its records off the commit path (a writer whose commit
/// is durable extends the zeros and syncs them) and the records then land in
/// that space. A power cut at any call of such a run (sampled: every
/// `POINTS`-th call index, or all with `MANTIS_POWERCUT_POINTS=0`), under
/// each image model, keeps every acknowledged put and nothing else but the
/// one in flight, whole: the zeros are never taken for records, a record torn
/// into them is cut, and the closed segment (cut back to its records at the
/// roll) is never extended again.
#[test]
fn a_power_cut_while_zeroing_ahead_loses_no_acknowledged_write() {
    const SEGMENT: u64 = 3 << 20;
    const PUTS: usize = 180; // 180 x 24 KiB = 4.2 MiB: one roll
    const STEP: u64 = 1 << 20;
    let opts = |fs: &SimFs| Options {
        segment_size: SEGMENT,
        ..options(fs)
    };
    let key = |i: usize| format!("z{i:04}").into_bytes();
    // Never zero in its last byte, so the end of the records is visible.
    let value = |i: usize| vec![(i % 250) as u8 + 1; 24 << 10];
    let first_seg = Path::new(DB).join("0000000001.seg");
    // Runs the puts; returns how many were acknowledged, and the largest
    // stretch of zeros seen past the records of the first segment.
    let run = |fs: &SimFs, watch: bool| -> (usize, u64) {
        let Ok(db) = Db::open(DB, opts(fs)) else {
            assert!(fs.crashed());
            return (0, 0);
        };
        let (mut acked, mut ahead) = (0, 0u64);
        for i in 0..PUTS {
            if let Err(e) = db.put(&key(i), &value(i)) {
                assert!(fs.crashed(), "put {i} failed without a crash: {e}");
                break;
            }
            acked += 1;
            if watch {
                let data = fs.read(&first_seg).unwrap();
                let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                ahead = ahead.max((data.len() - end) as u64);
            }
        }
        drop(db);
        (acked, ahead)
    };
    let reference = SimFs::new();
    let (acked, ahead) = run(&reference, true);
    assert_eq!(acked, PUTS);
    assert!(
        ahead > STEP,
        "the segment was never zeroed more than one step ahead ({ahead} bytes): zero-ahead did not run"
    );
    let total = reference.ops();
    let sample = env_u64("MANTIS_POWERCUT_POINTS").unwrap_or(24);
    let points: Vec<u64> = if let Some(at) = env_u64("MANTIS_POWERCUT_AT") {
        vec![at]
    } else if sample == 0 || sample >= total {
        (0..total).collect()
    } else {
        (0..sample).map(|n| n * total / sample + n % 3).collect()
    };
    let mut rng = StdRng::seed_from_u64(0x2e70);
    for &point in &points {
        let fs = SimFs::new();
        fs.crash_at(point);
        let (acked, _) = run(&fs, false);
        for keep in [Keep::Synced, Keep::Everything, Keep::Random] {
            let ctx = format!("power cut at call {point} of {total}, image {keep:?}");
            let image = fs.image(keep, &mut rng);
            let db = Db::open(DB, opts(&image)).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
            let report = db.recovery_report();
            assert!(report.repaired.is_empty(), "{ctx}: {report:?}");
            for i in 0..PUTS {
                let got = db.get(&key(i)).unwrap_or_else(|e| panic!("{ctx}: get {i} failed: {e}"));
                match got {
                    Some(v) => {
                        assert!(i <= acked, "{ctx}: put {i} was never made, yet it is there");
                        assert_eq!(&v[..], &value(i)[..], "{ctx}: put {i} has a wrong value");
                    }
                    None => assert!(i >= acked, "{ctx}: acknowledged put {i} is lost ({report:?})"),
                }
            }
            // The recovered log takes writes that survive a clean reopen.
            db.put(b"after", b"yes").unwrap();
            drop(db);
            let db = Db::open(DB, opts(&image)).unwrap_or_else(|e| panic!("{ctx}: second open failed: {e}"));
            assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"yes"[..]), "{ctx}");
            assert!(
                db.recovery_report().truncated.is_empty(),
                "{ctx}: a clean close leaves no tail"
            );
        }
    }
    eprintln!("zero-ahead power cut: {} crash points of {total} calls", points.len());
}

/// A retired segment's file kept for reuse: compaction renames it to
/// `{id}.free` and the writer's next segment starts in it, its records
/// written over the records of the file's previous life. Those old records
/// are never replayed (their checksums carry the old segment's salt), even
/// when every delete that shadowed them is gone; and a record only partly
/// written over them (its first or only its later bytes reached the disk,
/// the rest of its place still holding old bytes) is a torn tail: cut, with
/// the commit before it intact.
#[test]
fn a_torn_write_into_a_recycled_segment_file_is_caught() {
    use mantisdb_core::log::record::{self, Salt};
    use mantisdb_core::log::segment;
    use mantisdb_core::vfs::{FileSystem, OpenMode};
    let fs = SimFs::new();
    let db = Db::open(DB, options(&fs)).unwrap();
    // Segments full of values that are deleted next: all dead.
    let old_key = |i: usize| format!("old-{i:02}").into_bytes();
    for i in 0..12 {
        db.put(&old_key(i), &[b'o'; 900]).unwrap();
    }
    for i in 0..12 {
        db.delete(&old_key(i)).unwrap();
    }
    // Rolls, then retires the dead segments: their files join the pool.
    db.compact().unwrap();
    assert!(db.stats().free_segment_files > 0, "{:?}", db.stats());
    // Rolls into a kept file; this pass also drops the deletes, whose
    // older records are gone: nothing shadows the old puts any more.
    db.put(b"filler", b"x").unwrap();
    db.compact().unwrap();
    let stats = db.stats();
    assert_eq!(stats.recycled_segments, 1, "{stats:?}");
    let active = *segment::list_in(&fs, Path::new(DB)).unwrap().last().unwrap();
    let seg = Path::new(DB).join(segment::segment_file_name(active));
    let salt = Salt::of_segment(active);
    // Ends of the records in the active segment, walking its frames.
    let ends = |data: &[u8]| {
        let mut at = segment::SEGMENT_HEADER_LEN as usize;
        let mut ends = vec![at];
        while let Ok(rec) = record::decode_salted(&data[at..], salt) {
            at += rec.frame_len;
            ends.push(at);
        }
        ends
    };
    let before = fs.read(&seg).unwrap();
    assert_eq!(ends(&before).len(), 1, "the recycled file holds no record yet");
    assert!(
        before.windows(4).any(|w| w == b"old-") && before.len() > 2048,
        "the active segment is no recycled file holding old records ({} bytes)",
        before.len()
    );
    db.put(b"first", b"synced value 1").unwrap();
    db.put(b"second", b"synced value 2").unwrap();
    let after = fs.read(&seg).unwrap();
    let e = ends(&after);
    assert_eq!(e.len(), 3, "two records expected");
    let (end_a, end_b) = (e[1], e[2]);
    assert!(after.len() >= before.len(), "the file was cut");
    assert_ne!(&after[end_a..end_b], &before[end_a..end_b]);
    let mid = (end_a + end_b) / 2;
    // (bytes given back their old content in the image, whether "second" survives)
    let cases: [(std::ops::Range<usize>, bool); 4] = [
        (0..0, true),          // everything reached the disk
        (end_a..end_b, false), // the second record never did
        (mid..end_b, false),   // only its first half did
        (end_a..mid, false),   // only its second half did
    ];
    for (n, (old, second)) in cases.into_iter().enumerate() {
        let image = fs.image(Keep::Everything, &mut StdRng::seed_from_u64(n as u64));
        if !old.is_empty() {
            let f = image.open(&seg, OpenMode::Write).unwrap();
            f.write_at(&before[old.clone()], old.start as u64).unwrap();
            f.sync_data().unwrap();
        }
        let ctx = format!("case {n}: bytes {old:?} hold their old content");
        let db = Db::open(DB, options(&image)).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = [
            (&b"filler"[..], &b"x"[..]),
            (b"first", b"synced value 1"),
            (b"second", b"synced value 2"),
        ]
        .into_iter()
        .filter(|(k, _)| second || *k != b"second")
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
        assert_eq!(scan_all(&db).unwrap(), expected, "{ctx}: {:?}", db.recovery_report());
        let report = db.recovery_report();
        assert!(report.repaired.is_empty(), "{ctx}: {report:?}");
        // The old bytes past the records are cut like a torn tail.
        let end = if second { end_b } else { end_a };
        assert_eq!(report.truncated.len(), 1, "{ctx}: {report:?}");
        assert_eq!(report.truncated[0].offset, end as u64, "{ctx}: {report:?}");
        assert_eq!(image.read(&seg).unwrap().len(), end, "{ctx}");
        let db = write_after_recovery(db, &image, second, &ctx);
        assert_eq!(db.get(&old_key(0)).unwrap(), None, "{ctx}");
    }
    drop(db);
}
