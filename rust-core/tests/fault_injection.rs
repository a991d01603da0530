//! Fault injection: the engine on the real file system, wrapped by
//! `support::faultfs::FaultFs`, which fails chosen calls with `ENOSPC` or
//! `EIO`, writes half a buffer then fails, or fails a sync, rename, unlink
//! or link.
//!
//! What each test proves:
//! - group commit: every caller whose commit was in the failed write or
//!   sync gets `Error::Io` carrying the OS error, none is acknowledged; later
//!   writes get `Error::Poisoned` (also after the fault clears) until the
//!   database is reopened; reads (of acknowledged data too) go on; after the
//!   reopen every acknowledged write is there and no failed batch is
//!   half-applied, and writes work again;
//! - compaction: fails with an error, data intact, writes unaffected, the
//!   next compaction after the fault clears succeeds, no temporary file left;
//! - hint files: a failed hint write is reported, the next open reads the
//!   segment instead (and reports the hint it could not write), nothing lost;
//! - checkpoint: the error is returned and the destination left empty, so
//!   the same directory works once the fault clears; a failed hard link
//!   falls back to copying;
//! - write-back errors: a write whose write-back fails is reported by the
//!   group sync that follows it even when the thread zeroing log space
//!   ahead syncs the same file meanwhile (Linux reports such an error once
//!   per open file description);
//! - open: a failure while recovering (listing, reading, cutting a torn
//!   tail) is a clear `Error::Io`, and changes nothing on disk.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mantisdb_core::vfs::OsFileSystem;
use mantisdb_core::{Db, Error, Options, SyncPolicy, WriteBatch};
use support::faultfs::{Fault, FaultFs, Op, Rule, Target};

fn fault_fs() -> FaultFs {
    FaultFs::new(Arc::new(OsFileSystem))
}

fn options(fs: &FaultFs) -> Options {
    Options {
        sync: SyncPolicy::Always,
        segment_size: 8192,
        background_compaction: false,
        compaction_interval: Duration::from_secs(3600),
        ..Options::default()
    }
    .with_file_system(Arc::new(fs.clone()))
}

fn scan_all(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan(Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn is_os_error(e: &Error, code: i32) -> bool {
    matches!(e, Error::Io { source, .. } if source.raw_os_error() == Some(code))
}

/// Names of the files in `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Acked,
    /// `Error::Io` with the injected OS error: the commit was in the failed group.
    FailedGroup,
    /// `Error::Poisoned`: refused after the failure.
    Refused,
}

/// One commit of a writer thread: a put of one key, or a batch of three.
fn commit(db: &Db, t: usize, i: usize) -> mantisdb_core::Result<()> {
    let value = format!("t{t}-i{i}-").repeat(8).into_bytes();
    if i % 3 == 2 {
        let mut b = WriteBatch::new();
        for j in 0..3 {
            b.put(format!("batch-{t}-{i}-{j}").into_bytes(), value.clone());
        }
        db.write(&b)
    } else {
        db.put(format!("one-{t}-{i}").as_bytes(), &value)
    }
}

fn keys_of(t: usize, i: usize) -> Vec<Vec<u8>> {
    if i % 3 == 2 {
        (0..3).map(|j| format!("batch-{t}-{i}-{j}").into_bytes()).collect()
    } else {
        vec![format!("one-{t}-{i}").into_bytes()]
    }
}

/// A group-commit write of at least this many bytes holds several commits
/// (a put's record is about 110 bytes, a batch's about 300).
const GROUP: usize = 700;

/// Many writers; one write or sync of the log fails. See the module docs.
/// The failed group must have had at least `min_group` callers.
fn group_commit_fault(fault_rule: Rule, code: i32, min_group: usize) {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let fs = fault_fs();
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    for i in 0..50 {
        db.put(format!("pre-{i}").as_bytes(), b"before the fault").unwrap();
    }
    // Slow syncs line the writers up in big groups; then the fault strikes
    // a few groups in.
    fs.add(fault_rule);
    fs.add(Rule::new(Op::Sync, Fault::Delay(Duration::from_millis(10))).on(Target::Segments));
    let barrier = Arc::new(Barrier::new(THREADS));
    let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = db.clone();
                let barrier = Arc::clone(&barrier);
                s.spawn(move || {
                    barrier.wait();
                    (0..PER_THREAD)
                        .map(|i| match commit(&db, t, i) {
                            Ok(()) => Outcome::Acked,
                            Err(e) if is_os_error(&e, code) => {
                                assert!(e.to_string().contains("refuses writes until it is reopened"), "{e}");
                                Outcome::FailedGroup
                            }
                            Err(Error::Poisoned(reason)) => {
                                assert!(reason.contains("segment"), "{reason}");
                                Outcome::Refused
                            }
                            Err(e) => panic!("unexpected error: {e:?}"),
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(fs.fired(), 1, "the fault fired once");
    let count = |o: Outcome| outcomes.iter().flatten().filter(|&&x| x == o).count();
    let (acked, failed, refused) = (
        count(Outcome::Acked),
        count(Outcome::FailedGroup),
        count(Outcome::Refused),
    );
    eprintln!("fault {code}: {acked} acknowledged, {failed} in the failed group, {refused} refused");
    assert!(acked > 0, "some groups committed before the fault");
    assert!(
        failed >= min_group,
        "the failed group had {failed} callers: the test needs at least {min_group}"
    );
    for (t, o) in outcomes.iter().enumerate() {
        // Once a thread saw the failure, it never gets an acknowledgement again.
        let first_err = o.iter().position(|&x| x != Outcome::Acked).unwrap_or(o.len());
        assert!(
            o[first_err..].iter().all(|&x| x != Outcome::Acked),
            "thread {t} was acknowledged after a failure: {o:?}"
        );
    }

    // Reads go on, acknowledged data included.
    for i in 0..50 {
        assert_eq!(
            db.get(format!("pre-{i}").as_bytes()).unwrap().as_deref(),
            Some(&b"before the fault"[..])
        );
    }
    let live = scan_all(&db);
    for (t, o) in outcomes.iter().enumerate() {
        for (i, &x) in o.iter().enumerate() {
            for k in keys_of(t, i) {
                // Before the reopen, exactly the acknowledged commits are visible.
                assert_eq!(
                    live.contains_key(&k),
                    x == Outcome::Acked,
                    "{}",
                    String::from_utf8_lossy(&k)
                );
            }
        }
    }
    // Writes stay refused, also once the fault has cleared, until reopened.
    fs.clear();
    match db.put(b"after", b"x") {
        Err(Error::Poisoned(reason)) => assert!(reason.contains(&std::io::Error::from_raw_os_error(code).to_string())),
        other => panic!("expected Error::Poisoned, got {other:?}"),
    }
    let txn = db.begin().and_then(|mut t| {
        t.put(b"in-txn", b"x")?;
        t.commit()
    });
    assert!(matches!(txn, Err(Error::Poisoned(_))), "{txn:?}");
    drop(db);

    let db = Db::open(dir.path(), options(&fs)).unwrap();
    let after = scan_all(&db);
    for (t, o) in outcomes.iter().enumerate() {
        for (i, &x) in o.iter().enumerate() {
            let keys = keys_of(t, i);
            let present = keys.iter().filter(|k| after.contains_key(*k)).count();
            match x {
                Outcome::Acked => assert_eq!(present, keys.len(), "acknowledged commit t{t} i{i} lost"),
                // Not acknowledged: whole or absent (a failed sync may still
                // have reached the disk), never half a batch.
                _ => assert!(present == 0 || present == keys.len(), "commit t{t} i{i} half-applied"),
            }
            if x == Outcome::Refused {
                assert_eq!(present, 0, "a refused commit t{t} i{i} was written");
            }
        }
    }
    for i in 0..50 {
        assert!(after.contains_key(format!("pre-{i}").as_bytes()));
    }
    db.put(b"after-reopen", b"works").unwrap();
    assert_eq!(db.get(b"after-reopen").unwrap().as_deref(), Some(&b"works"[..]));
}

#[test]
fn enospc_on_a_group_commit_write() {
    group_commit_fault(
        Rule::new(Op::Write, Fault::Errno(libc::ENOSPC))
            .on(Target::Segments)
            .min_len(GROUP)
            .times(1),
        libc::ENOSPC,
        2,
    );
}

/// Running out of space when the writer extends a segment's preallocated
/// space fails that group's commits with `ENOSPC`, like a failed write.
/// The extension comes with the first write into a new segment, usually
/// led at once by the writer that rolled it: that group may be of one.
#[test]
fn enospc_when_preallocating_a_segment() {
    group_commit_fault(
        Rule::new(Op::Preallocate, Fault::Errno(libc::ENOSPC))
            .on(Target::Segments)
            .after(1)
            .times(1),
        libc::ENOSPC,
        1,
    );
}

#[test]
fn eio_on_a_group_commit_write() {
    group_commit_fault(
        Rule::new(Op::Write, Fault::Errno(libc::EIO))
            .on(Target::Segments)
            .min_len(GROUP)
            .times(1),
        libc::EIO,
        2,
    );
}

#[test]
fn short_write_on_a_group_commit() {
    group_commit_fault(
        Rule::new(Op::Write, Fault::Short(libc::ENOSPC))
            .on(Target::Segments)
            .min_len(GROUP)
            .times(1),
        libc::ENOSPC,
        2,
    );
}

#[test]
fn failed_fsync_on_a_group_commit() {
    group_commit_fault(
        Rule::new(Op::Sync, Fault::Errno(libc::EIO))
            .on(Target::Segments)
            .min_len(GROUP)
            .times(1),
        libc::EIO,
        2,
    );
}

/// Fills a database with data across several segments, half of it overwritten.
fn fill(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for round in 0..2 {
        for i in 0..40 {
            let k = format!("key-{i:02}").into_bytes();
            let v = format!("round {round} value {i} ").repeat(20).into_bytes();
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    for i in 0..10 {
        let k = format!("key-{i:02}").into_bytes();
        db.delete(&k).unwrap();
        model.remove(&k);
    }
    model
}

#[test]
fn compaction_faults_fail_cleanly_and_the_next_pass_succeeds() {
    let cases = [
        (
            "output write",
            Rule::new(Op::Write, Fault::Errno(libc::ENOSPC)).on(Target::Temp),
        ),
        (
            "output short write",
            Rule::new(Op::Write, Fault::Short(libc::ENOSPC)).on(Target::Temp),
        ),
        (
            "output sync",
            Rule::new(Op::Sync, Fault::Errno(libc::EIO)).on(Target::Temp),
        ),
        (
            "output rename",
            Rule::new(Op::Rename, Fault::Errno(libc::EIO)).on(Target::Temp),
        ),
        (
            "directory sync",
            Rule::new(Op::SyncDir, Fault::Errno(libc::EIO)).after(1),
        ),
        (
            "input unlink",
            Rule::new(Op::Remove, Fault::Errno(libc::EIO)).on(Target::Segments),
        ),
        (
            // A retired input's file kept for reuse is renamed, not removed.
            "input rename for reuse",
            Rule::new(Op::Rename, Fault::Errno(libc::EIO)).on(Target::Segments),
        ),
        (
            "input read",
            Rule::new(Op::Read, Fault::Errno(libc::EIO)).on(Target::Segments),
        ),
    ];
    for (what, rule) in cases {
        let dir = tempfile::tempdir().unwrap();
        let fs = fault_fs();
        let opts = match what {
            // Every input removed: none kept for reuse.
            "input unlink" => Options {
                recycle_segments: 0,
                ..options(&fs)
            },
            _ => options(&fs),
        };
        let db = Db::open(dir.path(), opts).unwrap();
        let mut model = fill(&db);
        db.compact().unwrap(); // writes the hints of the closed segments
        for i in 10..40 {
            let k = format!("key-{i:02}").into_bytes();
            let v = format!("round 2 value {i} ").repeat(20).into_bytes();
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        fs.add(rule.times(1).this_thread());
        let err = db.compact().expect_err(what);
        assert!(matches!(err, Error::Io { .. }), "{what}: {err:?}");
        assert_eq!(fs.fired(), 1, "{what}: the fault did not fire");
        // Data intact, writes unaffected.
        assert_eq!(scan_all(&db), model, "{what}: data changed by a failed compaction");
        db.put(b"during", b"ok").unwrap();
        model.insert(b"during".to_vec(), b"ok".to_vec());
        // The fault clears: the next pass works.
        fs.clear();
        db.compact()
            .unwrap_or_else(|e| panic!("{what}: compaction after the fault: {e}"));
        assert_eq!(scan_all(&db), model, "{what}");
        assert!(
            files(dir.path()).iter().all(|f| !f.ends_with(".tmp")),
            "{what}: temporary files left: {:?}",
            files(dir.path())
        );
        drop(db);
        let db = Db::open(dir.path(), options(&fs)).unwrap();
        assert_eq!(scan_all(&db), model, "{what}: after reopen");
        assert!(
            db.recovery_report().bad_hints.is_empty(),
            "{what}: {:?}",
            db.recovery_report()
        );
    }
}

#[test]
fn a_failed_hint_write_falls_back_to_reading_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = fault_fs();
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    fs.add(Rule::new(Op::Write, Fault::Errno(libc::ENOSPC)).on(Target::Hints));
    let model = fill(&db);
    let err = db.compact().expect_err("hint writes fail");
    assert!(is_os_error(&err, libc::ENOSPC), "{err:?}");
    // Writes and reads go on.
    db.put(b"more", b"data").unwrap();
    let mut model = model;
    model.insert(b"more".to_vec(), b"data".to_vec());
    assert_eq!(scan_all(&db), model);
    drop(db);
    // (Checked once the background thread, which also tries, has stopped.)
    assert!(files(dir.path())
        .iter()
        .all(|f| !f.ends_with(".hint") && !f.ends_with(".tmp")));
    // Still failing at open: the segments are read instead, and the open says so.
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    assert_eq!(scan_all(&db), model);
    let report = db.recovery_report().clone();
    assert!(report.hinted_segments == 0 && report.records > 0, "{report:?}");
    assert!(report.bad_hints.iter().any(|h| h.contains("not written")), "{report:?}");
    drop(db);
    // Once the disk has room, the next open writes them, and the one after uses them.
    fs.clear();
    drop(Db::open(dir.path(), options(&fs)).unwrap());
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    assert!(db.recovery_report().hinted_segments > 0, "{:?}", db.recovery_report());
    assert_eq!(scan_all(&db), model);
}

#[test]
fn a_failed_checkpoint_leaves_its_directory_empty() {
    let dir = tempfile::tempdir().unwrap();
    let dest_parent = tempfile::tempdir().unwrap();
    let dest = dest_parent.path().join("ckpt");
    let fs = fault_fs();
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    let model = fill(&db);
    let cases = [
        Rule::new(Op::Write, Fault::Errno(libc::ENOSPC)).on(Target::Under(dest.clone())),
        Rule::new(Op::Sync, Fault::Errno(libc::EIO)).on(Target::Under(dest.clone())),
        Rule::new(Op::Link, Fault::Errno(libc::ENOSPC))
            .after(1)
            .on(Target::Under(dest.clone())),
        Rule::new(Op::SyncDir, Fault::Errno(libc::EIO)).on(Target::Under(dest.clone())),
    ];
    for rule in cases {
        let what = format!("{rule:?}");
        fs.add(rule.this_thread());
        // A link that fails falls back to a copy; make that copy fail too.
        if what.contains("Link") {
            fs.add(Rule::new(Op::Create, Fault::Errno(libc::ENOSPC)).on(Target::Under(dest.clone())));
        }
        let err = db.checkpoint(&dest).expect_err(&what);
        assert!(matches!(err, Error::Io { .. }), "{what}: {err:?}");
        assert!(files(&dest).is_empty(), "{what}: left {:?}", files(&dest));
        fs.clear();
        assert_eq!(scan_all(&db), model);
    }
    // A link failing alone: the files are copied instead.
    fs.add(Rule::new(Op::Link, Fault::Errno(libc::EXDEV)).on(Target::Under(dest.clone())));
    let report = db.checkpoint(&dest).unwrap();
    assert!(report.copied_files > 1 && report.linked_files == 0, "{report:?}");
    fs.clear();
    drop(db);
    let copy = Db::open(&dest, options(&fs)).unwrap();
    assert_eq!(scan_all(&copy), model);
}

#[test]
fn open_failures_are_clear_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = fault_fs();
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    let model = fill(&db);
    // Every closed segment gets its hint, so a failed open has none to write.
    db.compact().unwrap();
    drop(db);
    // A torn tail on the writer's segment (the newest one not written by
    // compaction: header flags 0), for recovery to cut.
    let newest = files(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".seg") && std::fs::read(dir.path().join(f)).unwrap()[10..12] == [0, 0])
        .max()
        .unwrap();
    let path = dir.path().join(&newest);
    let clean_len = std::fs::metadata(&path).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0x5a; 40]).unwrap();
    }
    let snapshot = || -> HashMap<String, Vec<u8>> {
        files(dir.path())
            .into_iter()
            .filter(|f| f != "LOCK")
            .map(|f| {
                let data = std::fs::read(dir.path().join(&f)).unwrap();
                (f, data)
            })
            .collect()
    };
    let before = snapshot();
    let cases = [
        ("listing", Rule::new(Op::ReadDir, Fault::Errno(libc::EIO))),
        (
            "reading a segment",
            Rule::new(Op::Read, Fault::Errno(libc::EIO)).on(Target::Segments),
        ),
        ("cutting the torn tail", Rule::new(Op::SetLen, Fault::Errno(libc::EIO))),
        (
            "syncing the cut",
            Rule::new(Op::Sync, Fault::Errno(libc::EIO)).on(Target::Segments),
        ),
    ];
    for (what, rule) in cases {
        fs.add(rule);
        match Db::open(dir.path(), options(&fs)) {
            Err(Error::Io { context, source }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EIO), "{what}");
                assert!(!context.is_empty(), "{what}");
            }
            Err(e) => panic!("{what}: expected Error::Io, got {e:?}"),
            Ok(_) => panic!("{what}: open succeeded through the fault"),
        }
        fs.clear();
        if what != "syncing the cut" {
            // (A cut that was made but not synced is the one change allowed.)
            assert_eq!(snapshot(), before, "{what}: a failed open changed the files");
        }
    }
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    assert_eq!(scan_all(&db), model);
    // The tail is gone (cut by the open whose sync failed, or by this one).
    assert_eq!(std::fs::metadata(&path).unwrap().len(), clean_len);
    db.put(b"k", b"v").unwrap();
}

/// Under `Never`, a failed flush of the write buffer fails the write that
/// triggered it with the OS error, and later writes are refused; what was
/// acknowledged before is still readable (from the buffer) and, once the
/// database is reopened, everything that reached the file is there whole.
#[test]
fn a_failed_buffer_flush_under_never_poisons_with_the_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let fs = fault_fs();
    let opts = Options {
        sync: SyncPolicy::Never,
        write_buffer_bytes: 4096,
        flush_interval: Duration::from_secs(30),
        ..options(&fs)
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    fs.add(
        Rule::new(Op::Write, Fault::Errno(libc::ENOSPC))
            .on(Target::Segments)
            .times(1),
    );
    let mut acked = Vec::new();
    let err = loop {
        let k = format!("k{}", acked.len()).into_bytes();
        match db.put(&k, &[7u8; 300]) {
            Ok(()) => acked.push(k),
            Err(e) => break e,
        }
        assert!(acked.len() < 1000, "the flush never failed");
    };
    assert!(is_os_error(&err, libc::ENOSPC), "{err:?}");
    assert!(matches!(db.put(b"x", b"y"), Err(Error::Poisoned(_))));
    for k in &acked {
        assert_eq!(db.get(k).unwrap().as_deref(), Some(&[7u8; 300][..]));
    }
    drop(db);
    fs.clear();
    let db = Db::open(dir.path(), opts).unwrap();
    db.put(b"x", b"y").unwrap();
}

/// A compaction whose output was renamed into place but whose hint could
/// not be written fails; the output must stay a tracked segment, or the
/// values it copied come back after later compactions drop their deletes.
#[test]
fn a_compaction_output_whose_hint_failed_does_not_bring_deleted_values_back() {
    let dir = tempfile::tempdir().unwrap();
    let fs = fault_fs();
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    db.put(b"gone", &[b'g'; 500]).unwrap();
    db.put(b"filler", b"1").unwrap();
    db.put(b"filler", b"2").unwrap();
    // Segment 1 is rolled, segment 2 is the writer's next, 3 is the output.
    let output_hint = dir.path().join("0000000003.hint.tmp");
    fs.add(Rule::new(Op::Write, Fault::Errno(libc::ENOSPC)).on(Target::Under(output_hint)));
    let err = db.compact().expect_err("the output's hint write fails");
    assert!(is_os_error(&err, libc::ENOSPC), "{err:?}");
    assert!(dir.path().join("0000000003.seg").exists());
    fs.clear();
    db.delete(b"gone").unwrap();
    db.compact().unwrap();
    db.compact().unwrap();
    assert_eq!(db.get(b"gone").unwrap(), None);
    drop(db);
    let db = Db::open(dir.path(), options(&fs)).unwrap();
    assert_eq!(db.get(b"gone").unwrap(), None, "a deleted value came back");
    assert_eq!(db.get(b"filler").unwrap().as_deref(), Some(&b"2"[..]));
}

/// Under `Always` the writer zeroes log space ahead of its records and
/// syncs the zeros beside the group syncs. Linux reports a failed write-back
/// once per open file description, to the first sync through it that
/// follows. Here a commit's write succeeds but its write-back fails, and
/// while its group sync is held back the zeroing sync of the same file runs.
/// Were both through one description, the zeroer's sync would take the
/// error and the group sync would acknowledge the lost commit.
#[test]
fn a_write_back_error_reaches_the_group_sync_beside_a_zeroing_sync() {
    let dir = tempfile::tempdir().unwrap();
    let fs = fault_fs();
    let opts = Options {
        segment_size: 64 << 20,
        ..options(&fs)
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let mut acked = BTreeMap::new();
    // The first commit zeroes the first steps of the segment.
    db.put(b"first", b"v").unwrap();
    acked.insert(b"first".to_vec(), b"v".to_vec());

    // The next zeroing ahead stops for a second before extending the file,
    // then syncs it; it starts when the records near the zeros' end.
    fs.add(
        Rule::new(Op::Preallocate, Fault::Delay(Duration::from_secs(1)))
            .on(Target::Segments)
            .times(1),
    );
    let value = vec![7u8; 64 << 10];
    std::thread::scope(|s| {
        let filler = s.spawn(|| {
            let mut keys = Vec::new();
            for i in 0..64 {
                let key = format!("fill-{i:02}").into_bytes();
                if db.put(&key, &value).is_err() {
                    break;
                }
                keys.push(key);
                if fs.delayed() > 0 {
                    break;
                }
            }
            keys
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while fs.delayed() == 0 {
            assert!(std::time::Instant::now() < deadline, "no zeroing ahead began");
            std::thread::sleep(Duration::from_millis(1));
        }
        // While the zeroer waits: a commit whose write succeeds and whose
        // write-back fails, and whose sync (this thread leads it) waits
        // until the zeroer's sync is over.
        fs.add(
            Rule::new(Op::Write, Fault::LostWriteback)
                .on(Target::Segments)
                .min_len(100_000)
                .times(1),
        );
        fs.add(
            Rule::new(Op::Sync, Fault::Delay(Duration::from_secs(3)))
                .on(Target::Segments)
                .this_thread()
                .times(1),
        );
        let res = db.put(b"lost", &vec![9u8; 100_000]);
        assert_eq!(fs.fired(), 1, "the lost write-back was not injected");
        assert_eq!(fs.delayed(), 2, "the group sync was not held back");
        match res {
            Err(e) => assert!(is_os_error(&e, libc::EIO), "{e:?}"),
            Ok(()) => panic!("a commit whose write-back failed was acknowledged"),
        }
        for key in filler.join().unwrap() {
            acked.insert(key, value.clone());
        }
    });
    match db.put(b"after", b"v") {
        Err(Error::Poisoned(_)) => {}
        other => panic!("a write after the failed sync: {other:?}"),
    }
    drop(db);

    fs.clear();
    let db = Db::open(dir.path(), opts).unwrap();
    let found = scan_all(&db);
    for (k, v) in &acked {
        assert_eq!(
            found.get(k),
            Some(v),
            "acknowledged {:?} lost",
            String::from_utf8_lossy(k)
        );
    }
    db.put(b"after", b"v").unwrap();
}
