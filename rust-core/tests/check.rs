//! Offline verification of a database directory (`check::check_dir`).
//!
//! Proves:
//! - a healthy directory (several segments, closed and sealed, with hints,
//!   overwrites, deletes and expiring keys) has no damage, and the counts
//!   (keys, expired, deleted, sequence range, hints, live + dead bytes)
//!   agree with what the open database says;
//! - check changes nothing: every file's bytes, the file list, and no lock
//!   file is created, also when it finds a torn tail open would cut;
//! - a flipped byte in a record of a closed segment, or in the middle of the
//!   active one, is damage naming that file and the offset of the record,
//!   and `Db::open` refuses the same directory naming the same file and offset;
//! - zeroed (preallocated) space after the active segment's last record is
//!   the end of the log: neither damage nor a note;
//! - a torn tail of the active segment is a note, not damage, and so is a
//!   newest segment shorter than its header; an older one is damage;
//! - a closed writer segment cut at a record boundary breaks the link to
//!   the next segment and is damage;
//! - a hint file with a flipped byte, or one that describes another
//!   segment's records, is damage naming the hint file;
//! - a directory a database has open is reported as in use, and a segment
//!   retired between the listing and the read is then a note (otherwise an
//!   error of the check).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mantisdb_core::check::{check_dir, check_dir_in, HintState};
use mantisdb_core::log::hint;
use mantisdb_core::log::record;
use mantisdb_core::log::segment::{self, SEGMENT_HEADER_LEN};
use mantisdb_core::vfs::{FileHandle, FileSystem, OpenMode, OsFileSystem, Stat};
use mantisdb_core::{Db, Error, Options, SyncPolicy, WriteBatch};

mod support;

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 16 << 10,
        background_compaction: false,
        ..Options::default()
    }
}

/// A closed database of 1,201 live keys over several segments:
/// overwrites, deletes, a key expiring far ahead and one already expired,
/// one compaction (sealed segments), writer segments closed after it, and
/// hints for every closed segment.
fn build(dir: &Path) {
    let db = Db::open(dir, opts()).unwrap();
    for i in 0..600u32 {
        db.put(format!("key:{i:05}").as_bytes(), &vec![b'v'; (i % 200) as usize])
            .unwrap();
    }
    for i in (0..600u32).step_by(2) {
        db.put(format!("key:{i:05}").as_bytes(), b"first").unwrap();
    }
    db.compact().unwrap();
    for i in (0..600u32).step_by(3) {
        db.put(format!("key:{i:05}").as_bytes(), b"second").unwrap();
    }
    let mut batch = WriteBatch::new();
    for i in (1..600u32).step_by(10) {
        batch.delete(format!("key:{i:05}").into_bytes());
    }
    db.write(&batch).unwrap();
    db.put_with_ttl(b"ttl:long", b"x", Duration::from_secs(3600)).unwrap();
    db.put_with_ttl(b"ttl:short", b"x", Duration::from_millis(1)).unwrap();
    // Writer segments closed after the compaction.
    for i in 0..600u32 {
        db.put(format!("more:{i:05}").as_bytes(), &[b'm'; 100]).unwrap();
    }
    db.close().unwrap();
    drop(db);
    // Reopening writes the hint of every closed segment still without one.
    Db::open(dir, opts()).unwrap().close().unwrap();
    std::thread::sleep(Duration::from_millis(5)); // ttl:short has expired
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
        })
        .collect()
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(segment::segment_file_name(id))
}

/// Offsets of the records of a segment file.
fn record_offsets(data: &[u8]) -> Vec<usize> {
    let mut at = SEGMENT_HEADER_LEN as usize;
    let mut out = Vec::new();
    let salt = segment::frame_salt(data);
    while let Some(Ok(rec)) = data.get(at..).map(|d| record::decode_salted(d, salt)) {
        out.push(at);
        at += rec.frame_len;
    }
    out
}

fn flip(path: &Path, offset: usize) {
    let mut data = fs::read(path).unwrap();
    data[offset] ^= 0x20;
    fs::write(path, data).unwrap();
}

/// The newest segment (the active one after `build`).
fn newest_segment(dir: &Path) -> u32 {
    *segment::list(dir).unwrap().last().unwrap()
}

/// The oldest writer segment that has a hint (closed, not sealed).
fn closed_writer_segment(dir: &Path) -> u32 {
    let rep = check_dir(dir).unwrap();
    rep.segments
        .iter()
        .find(|s| !s.sealed && !s.active && s.hint == HintState::Valid && s.records > 2)
        .expect("a closed writer segment with records")
        .id
}

#[test]
fn healthy_directory_has_no_damage_and_its_counts_match_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let before = snapshot(dir);
    let rep = check_dir(dir).unwrap();
    assert!(rep.damage.is_empty(), "damage in a healthy directory: {:?}", rep.damage);
    assert!(!rep.in_use);
    assert!(rep.segments.len() > 3, "{} segments", rep.segments.len());
    assert!(rep.segments.iter().any(|s| s.sealed), "no sealed segment");
    assert_eq!(rep.segments.iter().filter(|s| s.active).count(), 1);
    assert_eq!(rep.keys, 600 - 60 + 1 + 600, "600 keys, 60 deleted, ttl:long, 600 more");
    assert_eq!(rep.expired_keys, 1);
    assert_eq!(rep.keys_with_expiry, 1);
    assert!(rep.deleted_keys <= 60);
    assert_eq!(rep.hints_invalid, 0);
    assert!(rep.hints_valid >= 2);
    assert!(rep.dead_bytes > 0 && rep.live_bytes > 0);
    assert!(rep.index_estimate_bytes > rep.keys * 100);
    assert_eq!(snapshot(dir), before, "check changed the directory");
    assert!(!dir.join("LOCK").exists() || before.contains_key("LOCK"));

    let db = Db::open(dir, opts()).unwrap();
    let stats = db.stats();
    assert_eq!(db.scan_prefix(b"").unwrap().count() as u64, rep.keys);
    assert_eq!(stats.live_bytes + stats.dead_bytes, rep.live_bytes + rep.dead_bytes);
    db.put(b"one more", b"commit").unwrap();
    db.close().unwrap();
    drop(db);
    assert_eq!(
        check_dir(dir).unwrap().last_seq,
        rep.last_seq + 1,
        "the next commit follows last_seq"
    );
    let json = rep.to_json();
    assert!(
        json.starts_with('{') && json.contains("\"damage\":[]") && json.contains(&format!("\"keys\":{}", rep.keys))
    );
}

#[test]
fn check_creates_no_lock_and_cuts_no_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    fs::remove_file(dir.join("LOCK")).unwrap();
    let active = segment_path(dir, newest_segment(dir));
    let mut data = fs::read(&active).unwrap();
    let whole = data.len() as u64;
    data.extend_from_slice(&[0xAB; 37]); // a torn write
    fs::write(&active, &data).unwrap();
    let before = snapshot(dir);

    let rep = check_dir(dir).unwrap();
    assert!(rep.damage.is_empty(), "a torn tail is not damage: {:?}", rep.damage);
    let seg = rep.segments.iter().find(|s| s.active).unwrap();
    assert_eq!(seg.torn_tail, Some((whole, 37)));
    assert!(rep
        .notes
        .iter()
        .any(|n| n.contains("torn tail") && n.contains(&whole.to_string())));
    assert_eq!(snapshot(dir), before, "check changed the directory");
    assert!(!dir.join("LOCK").exists(), "check created the lock file");
}

/// A flipped byte inside record `n` of segment `id`: check names the file
/// and the record's offset, and open refuses it the same way.
#[test]
fn zeroed_space_after_the_last_record_is_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let clean = check_dir(dir.path()).unwrap();
    let newest = segment_path(dir.path(), newest_segment(dir.path()));
    let len = fs::metadata(&newest).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&newest).unwrap();
    f.set_len(len + (1 << 20)).unwrap();
    drop(f);
    let rep = check_dir(dir.path()).unwrap();
    assert!(rep.damage.is_empty(), "zeroed tail taken for damage: {:?}", rep.damage);
    assert_eq!(rep.notes, clean.notes, "zeroed tail reported");
    assert_eq!((rep.records, rep.last_seq), (clean.records, clean.last_seq));
    // Open reads it the same way: the newest writes are there.
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.get(b"ttl:long").unwrap().is_some());
    assert!(db.recovery_report().truncated.is_empty(), "{:?}", db.recovery_report());
}

fn assert_flip_found(dir: &Path, id: u32, n: usize) {
    let path = segment_path(dir, id);
    let offsets = record_offsets(&fs::read(&path).unwrap());
    assert!(offsets.len() > n + 1, "segment {id} has {} records", offsets.len());
    let at = offsets[n];
    flip(&path, at + 14); // inside the payload
    let rep = check_dir(dir).unwrap();
    let first = rep.first_damage().expect("the flip was not found");
    assert_eq!(
        (first.file.as_path(), first.offset),
        (path.as_path(), at as u64),
        "{first:?}"
    );
    assert!(first.reason.contains("checksum"), "{}", first.reason);
    match Db::open(dir, opts()) {
        Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (path, at as u64)),
        Err(other) => panic!("open of the damaged directory: {other}"),
        Ok(_) => panic!("the damaged directory opened"),
    }
}

#[test]
fn a_flipped_byte_in_a_closed_segment_is_named_with_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let id = closed_writer_segment(tmp.path());
    // The hint still matches the segment's length, so open trusts it only
    // after the whole-file checksum (on by default) fails; both report.
    assert_flip_found(tmp.path(), id, 1);
    let rep = check_dir(tmp.path()).unwrap();
    assert!(
        rep.damage.iter().any(|d| d.file == hint::hint_path(tmp.path(), id)),
        "the hint no longer matching its segment is reported too: {:?}",
        rep.damage
    );
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_active_segment_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let db = Db::open(dir, opts()).unwrap();
    for i in 0..20u32 {
        db.put(format!("late:{i}").as_bytes(), b"value").unwrap();
    }
    db.close().unwrap();
    drop(db);
    assert_flip_found(dir, newest_segment(dir), 2);
}

#[test]
fn a_closed_segment_cut_at_a_record_boundary_breaks_the_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let id = closed_writer_segment(dir);
    let path = segment_path(dir, id);
    let data = fs::read(&path).unwrap();
    let last = *record_offsets(&data).last().unwrap();
    fs::write(&path, &data[..last]).unwrap();
    fs::remove_file(hint::hint_path(dir, id)).unwrap();
    let rep = check_dir(dir).unwrap();
    let first = rep.first_damage().expect("the cut was not found");
    assert_eq!((first.file.as_path(), first.offset), (path.as_path(), last as u64));
    assert!(first.reason.contains("records are missing"), "{}", first.reason);
}

#[test]
fn a_short_segment_is_a_crash_only_when_it_is_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    // The newest: cut while it was created, which open removes.
    let newest = newest_segment(dir);
    let created = segment_path(dir, newest + 1);
    fs::write(&created, [0u8; 10]).unwrap();
    let rep = check_dir(dir).unwrap();
    assert!(rep.damage.is_empty(), "{:?}", rep.damage);
    assert!(rep.notes.iter().any(|n| n.contains("cut while it was created")));
    fs::remove_file(&created).unwrap();
    // An older one: it was whole once, so records are missing.
    let older = segment_path(dir, closed_writer_segment(dir));
    fs::write(&older, [0u8; 10]).unwrap();
    let rep = check_dir(dir).unwrap();
    let first = rep.first_damage().expect("a short older segment was not found");
    assert_eq!((first.file.as_path(), first.offset), (older.as_path(), 0));
    assert!(first.reason.contains("records are missing"), "{}", first.reason);
    match Db::open(dir, opts()) {
        Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (older, 0)),
        Err(other) => panic!("open of the damaged directory: {other}"),
        Ok(_) => panic!("the damaged directory opened"),
    }
}

#[test]
fn damaged_or_foreign_hints_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let id = closed_writer_segment(dir);
    let hint_file = hint::hint_path(dir, id);
    let len = fs::read(&hint_file).unwrap().len();
    flip(&hint_file, len - 3);
    let rep = check_dir(dir).unwrap();
    assert_eq!(rep.damage.len(), 1, "{:?}", rep.damage);
    assert_eq!(rep.damage[0].file, hint_file);
    assert!(
        rep.damage[0].reason.contains("checksum mismatch"),
        "{}",
        rep.damage[0].reason
    );
    assert_eq!(rep.hints_invalid, 1);

    // A valid hint whose entries are not the segment's: written by
    // `hint::write` for this segment's bytes, but listing nothing.
    let seg = fs::read(segment_path(dir, id)).unwrap();
    hint::write(&mantisdb_core::vfs::OsFileSystem, dir, id, &seg, Vec::new()).unwrap();
    let rep = check_dir(dir).unwrap();
    assert_eq!(rep.damage.len(), 1, "{:?}", rep.damage);
    assert!(
        rep.damage[0].reason.contains("lists 0 entries"),
        "{}",
        rep.damage[0].reason
    );
}

#[test]
fn an_open_directory_is_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path(), opts()).unwrap();
    db.put(b"k", b"v").unwrap();
    let rep = check_dir(tmp.path()).unwrap();
    assert!(rep.in_use);
    assert!(rep.notes.iter().any(|n| n.contains("open in another process")));
    db.close().unwrap();
    drop(db);
    assert!(!check_dir(tmp.path()).unwrap().in_use);
}

/// The operating system's file system, listing one segment that is not
/// there: a segment compaction retired between the listing and the read.
#[derive(Debug)]
struct RetiredSegment(PathBuf);

impl FileSystem for RetiredSegment {
    fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Box<dyn FileHandle>> {
        OsFileSystem.open(path, mode)
    }
    fn stat(&self, path: &Path) -> std::io::Result<Stat> {
        OsFileSystem.stat(path)
    }
    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<OsString>> {
        let mut names = OsFileSystem.read_dir(dir)?;
        names.push(self.0.file_name().unwrap().to_os_string());
        Ok(names)
    }
    directory_calls_to_os!();
}

#[test]
fn a_segment_retired_while_a_server_runs_is_a_note_and_otherwise_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let fs = RetiredSegment(segment_path(dir, 0));
    assert!(
        matches!(check_dir_in(&fs, dir), Err(Error::Io { .. })),
        "a vanished segment of a closed directory must fail the check"
    );
    let db = Db::open(dir, opts()).unwrap();
    let rep = check_dir_in(&fs, dir).unwrap();
    assert!(rep.in_use && rep.damage.is_empty(), "{:?}", rep.damage);
    assert!(
        rep.notes.iter().any(|n| n.contains("removed by the running server")),
        "{:?}",
        rep.notes
    );
    db.close().unwrap();
}

#[test]
fn a_missing_directory_is_an_error_not_a_report() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(check_dir(&tmp.path().join("nope")), Err(Error::Io { .. })));
}
