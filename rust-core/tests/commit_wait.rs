//! A write in two halves (`*_begin`, then `commit_wait`), as the Go engine
//! uses it to wait for group commit on its side: under `Always` a begun
//! write is neither visible nor acknowledged before its ticket is waited
//! for; one wait for the newest ticket makes every earlier one durable with
//! one sync; a ticket never issued is refused instead of waited for. A
//! waiter without a thread in the library asks for a sync with
//! `commit_request` and learns of it from the commit notifier.

mod support;

use std::sync::Arc;

use mantisdb_core::vfs::OsFileSystem;
use mantisdb_core::{Db, Error, Options, SyncPolicy};
use support::faultfs::{Fault, FaultFs, Op, Rule, Target};

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

/// Waits (up to 30 s) until the notifier `fd` is readable and drains it.
#[cfg(target_os = "linux")]
fn await_signal(fd: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the descriptor is open.
    let n = unsafe { libc::poll(&mut p, 1, 30_000) };
    assert_eq!(n, 1, "the notifier was not signalled");
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a live u64 from the open eventfd.
    let r = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    assert_eq!(r, 8);
}

#[cfg(target_os = "linux")]
#[test]
fn a_requested_sync_is_led_by_the_log_and_signalled() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path(), SyncPolicy::Always);
    let fd = db.commit_notifier().unwrap();
    let syncs = db.stats().syncs;
    let t = db.put_begin(b"k", b"v").unwrap().unwrap();
    // Returns at once; the log's syncer leads the sync.
    db.commit_request(t).unwrap();
    while db.commit_request(0).unwrap() < t {
        await_signal(fd);
    }
    assert_eq!(db.stats().syncs, syncs + 1);
    // The log made it visible with its sync: readers need not wait for the
    // writer to come back for it.
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    db.commit_wait(t).unwrap();
    assert_eq!(db.stats().syncs, syncs + 1, "the wait needed no sync of its own");
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // SAFETY: the caller's descriptor, closed once.
    unsafe { libc::close(fd) };
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_requested_sync_is_signalled_and_reported_per_ticket() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = FaultFs::new(Arc::new(OsFileSystem));
    let opts = Options {
        sync: SyncPolicy::Always,
        background_compaction: false,
        ..Options::default()
    }
    .with_file_system(Arc::new(fs.clone()));
    let db = Db::open(tmp.path(), opts).unwrap();
    db.put(b"a", b"1").unwrap();
    let fd = db.commit_notifier().unwrap();
    fs.add(Rule::new(Op::Sync, Fault::Errno(libc::EIO)).on(Target::Segments));
    let t = db.put_begin(b"k", b"v").unwrap().unwrap();
    db.commit_request(t).unwrap();
    await_signal(fd);
    assert!(matches!(db.commit_request(0), Err(Error::Poisoned(_))));
    // The commit in the failed sync gets the I/O error, never an acknowledgement.
    assert!(matches!(db.commit_wait(t), Err(Error::Io { .. })));
    // One made durable before the failure stays acknowledged.
    db.commit_wait(t - 1).unwrap();
    // SAFETY: the caller's descriptor, closed once.
    unsafe { libc::close(fd) };
}
