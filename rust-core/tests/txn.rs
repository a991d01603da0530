//! Transactions: read-your-writes, write-write and read-write conflicts,
//! phantoms, read-only transactions, rollback, and atomic visibility; a
//! transaction begun while earlier commits wait for their sync neither waits
//! for them nor misses a conflict with them.

mod support;

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mantisdb_core::vfs::OsFileSystem;
use mantisdb_core::{Db, Error, Options, SyncPolicy};
use support::faultfs::{Fault, FaultFs, Op, Rule, Target};

fn open(dir: &std::path::Path) -> Db {
    Db::open(
        dir,
        Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn read_your_writes_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"a", b"1").unwrap();
    let mut t = db.begin().unwrap();
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    t.put(b"a", b"2").unwrap();
    t.put(b"b", b"3").unwrap();
    t.delete(b"c").unwrap();
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(t.get(b"c").unwrap(), None);
    // Not visible outside before commit.
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").unwrap(), None);
    let items = t.scan_prefix(b"", 10).unwrap();
    let keys: Vec<&[u8]> = items.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![&b"a"[..], &b"b"[..]]);
    t.commit().unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn rollback_and_drop_discard() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut t = db.begin().unwrap();
    t.put(b"x", b"1").unwrap();
    t.rollback();
    {
        let mut t = db.begin().unwrap();
        t.put(b"y", b"1").unwrap();
    }
    assert_eq!(db.get(b"x").unwrap(), None);
    assert_eq!(db.get(b"y").unwrap(), None);
}

#[test]
fn write_write_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut t1 = db.begin().unwrap();
    let mut t2 = db.begin().unwrap();
    t1.put(b"k", b"t1").unwrap();
    t2.put(b"k", b"t2").unwrap();
    t1.commit().unwrap();
    assert!(matches!(t2.commit(), Err(Error::Conflict(_))));
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"t1"[..]));
}

#[test]
fn read_write_conflict_with_plain_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"balance", b"10").unwrap();
    let mut t = db.begin().unwrap();
    assert_eq!(t.get(b"balance").unwrap().as_deref(), Some(&b"10"[..]));
    db.put(b"balance", b"0").unwrap();
    t.put(b"other", b"derived from 10").unwrap();
    match t.commit() {
        Err(Error::Conflict(msg)) => assert!(msg.contains("balance"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(db.get(b"other").unwrap(), None);
}

#[test]
fn phantom_insert_into_scanned_range_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"job:1", b"x").unwrap();
    let mut t = db.begin().unwrap();
    let seen = t.scan_prefix(b"job:", 100).unwrap();
    assert_eq!(seen.len(), 1);
    db.put(b"job:2", b"new").unwrap(); // a key that did not exist: a phantom
    t.put(b"count", b"1").unwrap();
    assert!(matches!(t.commit(), Err(Error::Conflict(_))));

    // A write outside the scanned range does not conflict.
    let mut t = db.begin().unwrap();
    t.scan(Bound::Included(&b"job:"[..]), Bound::Excluded(&b"job;"[..]), 100)
        .unwrap();
    db.put(b"zzz", b"elsewhere").unwrap();
    t.put(b"count", b"2").unwrap();
    t.commit().unwrap();
}

#[test]
fn limited_scan_only_guards_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for k in [b"a1", b"a2", b"a3", b"a4"] {
        db.put(k, b"v").unwrap();
    }
    let mut t = db.begin().unwrap();
    assert_eq!(t.scan_prefix(b"a", 2).unwrap().len(), 2);
    db.put(b"a9", b"beyond what was read").unwrap();
    t.put(b"x", b"1").unwrap();
    t.commit().unwrap();
}

#[test]
fn read_only_transactions_never_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"k", b"1").unwrap();
    let mut t = db.begin().unwrap();
    assert_eq!(t.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
    db.put(b"k", b"2").unwrap();
    // The snapshot still answers as of begin.
    assert_eq!(t.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
    t.commit().unwrap();
}

#[test]
fn finished_and_closed_transactions_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut t = db.begin().unwrap();
    assert!(matches!(t.put(b"", b"v"), Err(Error::InvalidKey { .. })));
    t.put(b"k", b"v").unwrap();
    db.close().unwrap();
    assert!(matches!(t.commit(), Err(Error::Closed)));
    assert!(matches!(db.begin(), Err(Error::Closed)));
}

#[test]
fn no_reader_sees_half_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let keys: Vec<Vec<u8>> = (0..8).map(|i| format!("pair{i}").into_bytes()).collect();
    for k in &keys {
        db.put(k, b"0").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (db, stop, keys) = (db.clone(), Arc::clone(&stop), keys.clone());
            s.spawn(move || {
                let mut checks = 0;
                while !stop.load(Ordering::Acquire) && checks < 20_000 {
                    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
                    let vals = db.get_many(&refs).unwrap();
                    let first = vals[0].clone();
                    assert!(vals.iter().all(|v| *v == first), "torn view: {vals:?}");
                    checks += 1;
                }
            });
        }
        for n in 1..=300u32 {
            let mut t = db.begin().unwrap();
            for k in &keys {
                t.put(k, n.to_string().as_bytes()).unwrap();
            }
            t.commit().unwrap();
        }
        stop.store(true, Ordering::Release);
    });
}

/// A database under `SyncPolicy::Always` on a file system whose next log
/// sync can be slowed down, with `x`, `y` and `z` set to "0".
fn open_slow_sync(dir: &std::path::Path) -> (Db, FaultFs) {
    let fs = FaultFs::new(Arc::new(OsFileSystem));
    let opts = Options {
        sync: SyncPolicy::Always,
        background_compaction: false,
        ..Options::default()
    }
    .with_file_system(Arc::new(fs.clone()));
    let db = Db::open(dir, opts).unwrap();
    for k in [&b"x"[..], b"y", b"z"] {
        db.put(k, b"0").unwrap();
    }
    (db, fs)
}

/// Slows the next log sync by `d` and returns once `start` has run and the
/// sync of what it appended is under way (appended, not yet visible).
fn in_flight(fs: &FaultFs, d: Duration, start: impl FnOnce()) {
    let before = fs.delayed();
    fs.add(Rule::new(Op::Sync, Fault::Delay(d)).on(Target::Segments).times(1));
    start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs.delayed() == before {
        assert!(Instant::now() < deadline, "the slowed sync never started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn begin_does_not_wait_for_commits_in_flight_and_still_conflicts_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (db, fs) = open_slow_sync(dir.path());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // W reads x and y and writes y; its commit is appended, then its
        // sync takes 600 ms, so it stays invisible meanwhile.
        in_flight(&fs, Duration::from_millis(600), || {
            s.spawn(|| {
                let mut w = db.begin().unwrap();
                w.get(b"x").unwrap();
                w.get(b"y").unwrap();
                w.put(b"y", b"w").unwrap();
                w.commit().unwrap();
                done.store(true, Ordering::Release);
            });
        });
        // Transactions begun now read without W and do not wait for it.
        let mut lost_update = db.begin().unwrap();
        let mut write_skew = db.begin().unwrap();
        let mut disjoint = db.begin().unwrap();
        assert_eq!(lost_update.get(b"y").unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(write_skew.get(b"x").unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(write_skew.get(b"y").unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(disjoint.get(b"z").unwrap().as_deref(), Some(&b"0"[..]));
        assert!(
            !done.load(Ordering::Acquire),
            "begin or a read waited for the commit in flight"
        );
        // y overwritten on a stale read: a lost update.
        lost_update.put(b"y", b"lost").unwrap();
        let e = lost_update.commit().unwrap_err();
        assert!(matches!(&e, Error::Conflict(m) if m.contains("\"y\"")), "{e}");
        // A conflict with a commit in flight returns once it is visible, so
        // a retry reads it.
        assert_eq!(db.get(b"y").unwrap().as_deref(), Some(&b"w"[..]));
        let mut retry = db.begin().unwrap();
        assert_eq!(retry.get(b"y").unwrap().as_deref(), Some(&b"w"[..]));
        // Read x and y, write x, while W read x and y and wrote y: write skew.
        write_skew.put(b"x", b"skew").unwrap();
        assert!(matches!(write_skew.commit(), Err(Error::Conflict(_))));
        // Disjoint from W: commits.
        disjoint.put(b"z", b"1").unwrap();
        disjoint.commit().unwrap();
        retry.put(b"y", b"retry").unwrap();
        retry.commit().unwrap();
    });
    assert!(done.load(Ordering::Acquire));
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(db.get(b"y").unwrap().as_deref(), Some(&b"retry"[..]));
    assert_eq!(db.get(b"z").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn begin_with_untracked_commits_in_flight_reads_them() {
    // No transaction is open while a plain write is appended, so its keys
    // are not tracked: a transaction begun then waits until it is visible.
    let dir = tempfile::tempdir().unwrap();
    let (db, fs) = open_slow_sync(dir.path());
    std::thread::scope(|s| {
        in_flight(&fs, Duration::from_millis(200), || {
            s.spawn(|| db.put(b"x", b"w").unwrap());
        });
        let mut t = db.begin().unwrap();
        assert_eq!(t.get(b"x").unwrap().as_deref(), Some(&b"w"[..]));
        t.put(b"x", b"t").unwrap();
        t.commit().unwrap();
    });
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"t"[..]));
}

#[test]
fn concurrent_increments_under_always_lose_no_update() {
    // Transactions begin while others' commits wait for their sync; every
    // increment that commits must be counted once.
    const THREADS: usize = 8;
    const PER_THREAD: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let (db, fs) = open_slow_sync(dir.path());
    fs.add(Rule::new(Op::Sync, Fault::Delay(Duration::from_millis(2))).on(Target::Segments));
    let keys = [&b"x"[..], b"y", b"z"];
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let key = keys[(t + i) % keys.len()];
                    loop {
                        let mut tx = db.begin().unwrap();
                        let n: u64 = std::str::from_utf8(&tx.get(key).unwrap().unwrap())
                            .unwrap()
                            .parse()
                            .unwrap();
                        tx.put(key, (n + 1).to_string().as_bytes()).unwrap();
                        match tx.commit() {
                            Ok(()) => break,
                            Err(Error::Conflict(_)) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let sum: u64 = keys
        .iter()
        .map(|k| {
            std::str::from_utf8(&db.get(k).unwrap().unwrap())
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(sum, (THREADS * PER_THREAD) as u64);
}

#[test]
fn a_commit_in_two_halves_is_acknowledged_by_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _fs) = open_slow_sync(dir.path());
    let mut t = db.begin().unwrap();
    assert_eq!(t.get(b"x").unwrap().as_deref(), Some(&b"0"[..]));
    t.put(b"x", b"1").unwrap();
    let ticket = t.commit_begin().unwrap().expect("a ticket under Always");
    assert!(t.put(b"y", b"1").is_err(), "the transaction is finished");
    assert_eq!(
        db.get(b"x").unwrap().as_deref(),
        Some(&b"0"[..]),
        "visible before it is durable"
    );
    db.commit_wait(ticket).unwrap();
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"1"[..]));
    drop(t);
    // A transaction without writes has nothing to wait for.
    let mut r = db.begin().unwrap();
    r.get(b"x").unwrap();
    assert_eq!(r.commit_begin().unwrap(), None);
    drop(r);
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_conflict_in_two_halves_names_the_commit_in_flight_it_lost_to() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _fs) = open_slow_sync(dir.path());
    let mut lost = db.begin().unwrap();
    assert_eq!(lost.get(b"y").unwrap().as_deref(), Some(&b"0"[..]));
    // Appended while `lost` is open, and not waited for: in flight.
    let winner = db.put_begin(b"y", b"w").unwrap().unwrap();
    lost.put(b"y", b"lost").unwrap();
    assert!(matches!(lost.commit_begin(), Err(Error::Conflict(_))));
    assert_eq!(lost.lost_to(), Some(winner));
    db.commit_wait(winner).unwrap();
    assert_eq!(lost.lost_to(), None, "the winner is visible now");
    assert_eq!(db.get(b"y").unwrap().as_deref(), Some(&b"w"[..]));
    // A conflict with a visible commit names none.
    let mut stale = db.begin().unwrap();
    stale.get(b"z").unwrap();
    db.put(b"z", b"1").unwrap();
    stale.put(b"z", b"2").unwrap();
    assert!(matches!(stale.commit_begin(), Err(Error::Conflict(_))));
    assert_eq!(stale.lost_to(), None);
}

#[test]
fn records_appended_during_a_sync_are_synced_without_a_writer_to_lead() {
    // The writers of the Go engine wait on its side and send one of them at
    // a time to wait in the core: when a sync ends with records appended
    // meanwhile and no writer parked to lead the next one, the log's syncer
    // thread leads it, so the disk does not sit idle until a writer comes.
    let dir = tempfile::tempdir().unwrap();
    let (db, fs) = open_slow_sync(dir.path());
    let syncs = db.stats().syncs;
    let mut late = 0;
    let db2 = db.clone();
    std::thread::scope(|s| {
        let db = &db2;
        let first = db.put_begin(b"x", b"1").unwrap().unwrap();
        in_flight(&fs, Duration::from_millis(200), || {
            s.spawn(move || db.commit_wait(first).unwrap());
        });
        late = db.put_begin(b"y", b"1").unwrap().unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().syncs < syncs + 2 {
        assert!(
            Instant::now() < deadline,
            "nothing synced the record appended during the sync"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    db.commit_wait(late).unwrap();
    assert_eq!(db.stats().syncs, syncs + 2, "the wait found its record durable already");
    assert_eq!(db.get(b"y").unwrap().as_deref(), Some(&b"1"[..]));
}
