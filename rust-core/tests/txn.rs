//! Transactions: read-your-writes, write-write and read-write conflicts,
//! phantoms, read-only transactions, rollback, and atomic visibility.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mantisdb_core::{Db, Error, Options, SyncPolicy};

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
