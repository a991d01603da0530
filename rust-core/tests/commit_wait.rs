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

/// Opens a database under `Always` on a fault-injecting file system.
#[cfg(target_os = "linux")]
fn open_faulty(dir: &std::path::Path) -> (Db, FaultFs) {
    let fs = FaultFs::new(Arc::new(OsFileSystem));
    let opts = Options {
        sync: SyncPolicy::Always,
        background_compaction: false,
        ..Options::default()
    }
    .with_file_system(Arc::new(fs.clone()));
    (Db::open(dir, opts).unwrap(), fs)
}

/// Polls (up to 30 s) until `f` holds.
#[cfg(target_os = "linux")]
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A commit that lands while a sync runs gets a sync of its own at once,
/// beside the running one, rather than after it. The durable point still
/// waits for the earlier sync: a later one that ends first is held until
/// every sync started before it ended well.
#[cfg(target_os = "linux")]
#[test]
fn a_later_sync_runs_beside_an_earlier_one_and_waits_for_it_to_count() {
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let (db, fs) = open_faulty(tmp.path());
    db.put(b"a", b"0").unwrap();
    let fd = db.commit_notifier().unwrap();
    let base = db.stats().syncs;
    let slow = Duration::from_secs(3);
    // The first sync from here sleeps before it syncs; the next ones do not.
    fs.add(Rule::new(Op::Sync, Fault::Delay(slow)).on(Target::Segments).times(1));
    let started = Instant::now();
    let t1 = db.put_begin(b"k1", b"v1").unwrap().unwrap();
    db.commit_request(t1).unwrap();
    until("the first sync to start", || fs.delayed() == 1);
    let t2 = db.put_begin(b"k2", b"v2").unwrap().unwrap();
    db.commit_request(t2).unwrap();
    // The second sync ran and ended while the first still sleeps.
    until("the second sync to end", || db.stats().syncs == base + 1);
    assert!(
        started.elapsed() < slow,
        "the second sync ended only after the first one's delay"
    );
    assert!(
        db.commit_request(0).unwrap() < t1,
        "the durable point passed a running sync"
    );
    assert_eq!(db.get(b"k2").unwrap(), None, "visible before the sync before it ended");
    while db.commit_request(0).unwrap() < t2 {
        await_signal(fd);
    }
    assert_eq!(db.stats().syncs, base + 2);
    db.commit_wait(t1).unwrap();
    db.commit_wait(t2).unwrap();
    assert_eq!(db.get(b"k1").unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(db.get(b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
    // SAFETY: the caller's descriptor, closed once.
    unsafe { libc::close(fd) };
}

/// Three syncs run at once: the first sleeps and then succeeds, the second
/// fails after a while, the third succeeds at once. The commits the failed
/// sync covered (its own and the first's) get its I/O error, the third's
/// commit the refusal of a stopped writer; none is acknowledged, though
/// the syncs of the first and third ended well, and the durable point
/// never moved past the last commit synced before.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_sync_among_several_fails_the_commits_it_covers_and_holds_the_rest() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let (db, fs) = open_faulty(tmp.path());
    db.put(b"a", b"0").unwrap();
    let fd = db.commit_notifier().unwrap();
    let durable_before = db.commit_request(0).unwrap();
    let base = db.stats().syncs;
    fs.add(
        Rule::new(Op::Sync, Fault::Delay(Duration::from_secs(2)))
            .on(Target::Segments)
            .times(1),
    );
    fs.add(
        Rule::new(Op::Sync, Fault::DelayThenErrno(Duration::from_secs(1), libc::EIO))
            .on(Target::Segments)
            .times(1),
    );
    let t1 = db.put_begin(b"k1", b"v1").unwrap().unwrap();
    db.commit_request(t1).unwrap();
    until("the first sync to start", || fs.delayed() == 1);
    let t2 = db.put_begin(b"k2", b"v2").unwrap().unwrap();
    db.commit_request(t2).unwrap();
    until("the second sync to start", || fs.fired() == 1);
    let t3 = db.put_begin(b"k3", b"v3").unwrap().unwrap();
    db.commit_request(t3).unwrap();
    until("the third sync to end", || db.stats().syncs == base + 1);
    assert_eq!(
        db.commit_request(0).unwrap(),
        durable_before,
        "the durable point passed a running sync"
    );
    // The second sync fails; the first ends well after it.
    until("the writer to stop", || db.commit_request(0).is_err());
    until("the first sync to end", || db.stats().syncs == base + 2);
    for t in [t1, t2] {
        match db.commit_wait(t) {
            Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EIO), "ticket {t}"),
            other => panic!("ticket {t} covered by the failed sync: expected its I/O error, got {other:?}"),
        }
    }
    assert!(
        matches!(db.commit_wait(t3), Err(Error::Poisoned(_))),
        "ticket {t3} after the failed sync"
    );
    db.commit_wait(durable_before).unwrap();
    for k in [&b"k1"[..], b"k2", b"k3"] {
        assert_eq!(db.get(k).unwrap(), None, "an unacknowledged commit became visible");
    }
    drop(db);
    // SAFETY: the caller's descriptor, closed once.
    unsafe { libc::close(fd) };
}

/// Many writers waiting inside the library (no notifier) share syncs and
/// lead several at once; every commit is durable and visible when its
/// wait returns, and after a reopen.
#[test]
fn writers_waiting_in_the_library_all_get_durable_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(open(tmp.path(), SyncPolicy::Always));
    let threads: Vec<_> = (0..16)
        .map(|w| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let key = format!("w{w}-{i}");
                    let t = db.put_begin(key.as_bytes(), key.as_bytes()).unwrap().unwrap();
                    db.commit_wait(t).unwrap();
                    assert_eq!(db.get(key.as_bytes()).unwrap().as_deref(), Some(key.as_bytes()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = db.stats();
    assert!(stats.syncs <= 16 * 50, "{} syncs for {} commits", stats.syncs, 16 * 50);
    drop(db);
    let db = open(tmp.path(), SyncPolicy::Always);
    for w in 0..16 {
        for i in 0..50 {
            let key = format!("w{w}-{i}");
            assert_eq!(db.get(key.as_bytes()).unwrap().as_deref(), Some(key.as_bytes()));
        }
    }
}
