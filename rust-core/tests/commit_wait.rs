//! A write in two halves (`*_begin`, then `commit_wait`), as the Go engine
//! uses it to wait for group commit on its side: under `Always` a begun
//! write is neither visible nor acknowledged before its ticket is waited
//! for; one wait for the newest ticket makes every earlier one durable with
//! one sync; a ticket never issued is refused instead of waited for.

use mantisdb_core::{Db, Error, Options, SyncPolicy};

fn open(dir: &std::path::Path, sync: SyncPolicy) -> Db {
    Db::open(
        dir,
        Options {
            sync,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn a_begun_write_is_invisible_until_its_ticket_is_waited_for() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path(), SyncPolicy::Always);
    let ticket = db.put_begin(b"k", b"v").unwrap().expect("a ticket under Always");
    assert_eq!(db.get(b"k").unwrap(), None, "visible before it is durable");
    db.commit_wait(ticket).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // Waiting again, or for an older ticket, returns at once.
    db.commit_wait(ticket).unwrap();
    drop(db);
    let db = open(tmp.path(), SyncPolicy::Always);
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn one_wait_for_the_newest_ticket_covers_every_earlier_one_with_one_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path(), SyncPolicy::Always);
    let syncs = db.stats().syncs;
    let mut last = 0;
    for i in 0..20u32 {
        let key = format!("k{i}");
        last = if i % 5 == 4 {
            db.delete_begin(key.as_bytes()).unwrap().unwrap()
        } else {
            db.put_begin(key.as_bytes(), &[i as u8; 100]).unwrap().unwrap()
        };
    }
    db.commit_wait(last).unwrap();
    assert_eq!(db.stats().syncs, syncs + 1, "one group commit for all 20 writes");
    for i in 0..20u32 {
        let got = db.get(format!("k{i}").as_bytes()).unwrap();
        assert_eq!(got.is_some(), i % 5 != 4, "key k{i}");
    }
}

#[test]
fn a_ticket_never_issued_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path(), SyncPolicy::Always);
    let t = db.put_begin(b"k", b"v").unwrap().unwrap();
    match db.commit_wait(t + 1) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("never issued"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    db.commit_wait(t).unwrap();
}

#[test]
fn without_always_a_begun_write_is_done_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path(), SyncPolicy::Never);
    assert_eq!(db.put_begin(b"k", b"v").unwrap(), None);
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}
