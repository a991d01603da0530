//! Reuse of retired segment files (`Options::recycle_segments`) and the
//! segment format that makes it safe (version 2: salted frame checksums),
//! on the operating system's file system:
//!
//! - a retired file joins the pool and the writer's next segment starts in
//!   it, and everything reads back after reopen;
//! - a file a checkpoint hard-linked is never reused (the checkpoint keeps
//!   its content);
//! - files kept at close are taken back at open, or removed when reuse is off;
//! - a data directory written in segment format version 1 (unsalted frames)
//!   opens, takes writes into its version 1 segment, and compacts into
//!   version 2 segments.
//!
//! Crashes inside reuse (torn writes over old records, power cuts at every
//! call) are in `powercut.rs`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use mantisdb_core::log::record::{self, OpKind, OpRef, Salt};
use mantisdb_core::log::segment::{self, SEGMENT_FORMAT_V1, SEGMENT_HEADER_LEN};
use mantisdb_core::{Db, Options, SyncPolicy};

const SEGMENT: u64 = 64 << 10;

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Always,
        segment_size: SEGMENT,
        background_compaction: false,
        ..Options::default()
    }
}

fn dump(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan(Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn free_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".free"))
        .collect();
    names.sort();
    names
}

/// Writes `rounds` x 40 values of 4 KiB over the same 40 keys (about 2.5
/// segments a round), so every segment but the newest ends up dead.
fn overwrite(db: &Db, rounds: usize, tag: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for r in 0..rounds {
        for k in 0..40 {
            let key = format!("key-{k:02}").into_bytes();
            let mut value = format!("{tag}-{r}-{k}-").into_bytes();
            value.resize(4096, b'a' + (r % 26) as u8);
            db.put(&key, &value).unwrap();
            model.insert(key, value);
        }
    }
    model
}

#[test]
fn retired_files_are_reused_and_everything_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut model = overwrite(&db, 3, "a");
    db.compact().unwrap();
    let kept = db.stats().free_segment_files;
    assert_eq!(kept, 2, "the pool holds two files: {:?}", db.stats());
    assert_eq!(free_files(dir.path()).len(), 2);
    // The next rolls start in the kept files.
    model.extend(overwrite(&db, 2, "b"));
    let stats = db.stats();
    assert!(stats.recycled_segments >= 2, "{stats:?}");
    assert_eq!(dump(&db), model);
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&db), model);
    assert!(db.recovery_report().truncated.is_empty(), "{:?}", db.recovery_report());
    // Again after the files kept now are reused across a reopen.
    db.compact().unwrap();
    model.extend(overwrite(&db, 2, "c"));
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(dump(&db), model);
}

#[test]
fn a_file_a_checkpoint_linked_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let data = dir.path().join("db");
    let db = Db::open(&data, opts()).unwrap();
    let model = overwrite(&db, 2, "a");
    let report = db.checkpoint(&ckpt).unwrap();
    assert!(report.linked_files > 0, "{report:?}");
    // Every segment the checkpoint linked goes dead and is retired.
    overwrite(&db, 3, "b");
    db.compact().unwrap();
    let linked_left = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| std::os::unix::fs::MetadataExt::nlink(m) > 1)
        .count();
    assert_eq!(linked_left, 0, "a linked segment survived the compaction");
    // Only files of segments written after the checkpoint may be kept.
    overwrite(&db, 3, "c");
    db.compact().unwrap();
    overwrite(&db, 3, "d");
    drop(db);
    let copy = Db::open(&ckpt, opts()).unwrap();
    assert_eq!(dump(&copy), model, "the checkpoint changed under reuse");
}

#[test]
fn kept_files_are_taken_back_at_open_or_removed_when_reuse_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let model = overwrite(&db, 3, "a");
    db.compact().unwrap();
    assert_eq!(free_files(dir.path()).len(), 2);
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.stats().free_segment_files, 2);
    drop(db);
    // Fewer kept than found: the oldest go.
    let one = Options {
        recycle_segments: 1,
        ..opts()
    };
    let db = Db::open(dir.path(), one).unwrap();
    assert_eq!(db.stats().free_segment_files, 1);
    assert_eq!(free_files(dir.path()).len(), 1);
    drop(db);
    // Reuse off (or a policy that does not preallocate): none kept.
    let never = Options {
        sync: SyncPolicy::Never,
        ..opts()
    };
    let db = Db::open(dir.path(), never).unwrap();
    assert_eq!(db.stats().free_segment_files, 0);
    assert!(free_files(dir.path()).is_empty());
    assert_eq!(dump(&db), model);
    overwrite(&db, 3, "b");
    db.compact().unwrap();
    assert!(free_files(dir.path()).is_empty(), "kept a file it would never reuse");
}

/// A segment file as a build writing format version 1 left it: the header
/// says version 1 and the frame checksums have no salt.
fn v1_segment(id: u32, base_seq: u64, puts: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut h = segment::encode_header(id, 0, base_seq);
    h[8..10].copy_from_slice(&SEGMENT_FORMAT_V1.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    let mut out = h.to_vec();
    for (i, (k, v)) in puts.iter().enumerate() {
        let op = OpRef {
            kind: OpKind::Put,
            key: k,
            value: v,
            expires_at: 0,
        };
        record::encode(&mut out, base_seq + 1 + i as u64, &[op], &mut Vec::new());
    }
    out
}

#[test]
fn a_version_1_directory_opens_takes_writes_and_compacts_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let first = segment::segment_file_name(1);
    let bytes = v1_segment(1, 0, &[(b"k1", b"one"), (b"k2", b"two")]);
    std::fs::write(dir.path().join(&first), &bytes).unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.get(b"k1").unwrap().as_deref(), Some(&b"one"[..]));
    // The writer resumes the version 1 segment: its records stay unsalted.
    db.put(b"k3", b"three").unwrap();
    db.close().unwrap();
    drop(db);
    let data = std::fs::read(dir.path().join(&first)).unwrap();
    assert_eq!(segment::frame_salt(&data), Salt::NONE);
    let mut at = SEGMENT_HEADER_LEN as usize;
    let mut seqs = Vec::new();
    while at < data.len() {
        let rec = record::decode(&data[at..]).expect("an unsalted frame");
        seqs.push(rec.seq);
        at += rec.frame_len;
    }
    assert_eq!(seqs, [1, 2, 3]);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.get(b"k3").unwrap().as_deref(), Some(&b"three"[..]));
    // Overwrites make segment 1 dead; compaction moves what lives on into
    // version 2 segments.
    db.put(b"k1", b"uno").unwrap();
    db.compact().unwrap();
    db.put(b"k4", b"four").unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [
        (&b"k1"[..], &b"uno"[..]),
        (b"k2", b"two"),
        (b"k3", b"three"),
        (b"k4", b"four"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_vec(), v.to_vec()))
    .collect();
    assert_eq!(dump(&db), want);
    for id in segment::list(dir.path()).unwrap() {
        let data = std::fs::read(dir.path().join(segment::segment_file_name(id))).unwrap();
        assert_eq!(
            segment::check_header(&data, id).unwrap().salt,
            Salt::of_segment(id),
            "segment {id} is not of version 2"
        );
    }
}

/// What the salt guards against, made directly: a reused file whose old
/// bytes hold, right where the new records end, a whole frame of its
/// previous life carrying exactly the next sequence number. Sequence
/// numbers alone would take it for the next record; its checksum, salted
/// with the old segment's id (or with none, from a version 1 file), fails
/// under the new one, so it ends the log and its key never appears.
#[test]
fn an_old_frame_with_the_next_sequence_number_is_not_replayed() {
    let put = |k: &'static [u8], v: &'static [u8]| OpRef {
        kind: OpKind::Put,
        key: k,
        value: v,
        expires_at: 0,
    };
    for (old_salt, what) in [(Salt::of_segment(3), "salted"), (Salt::NONE, "unsalted")] {
        let dir = tempfile::tempdir().unwrap();
        let id = 5;
        let mut data = segment::encode_header(id, 0, 10).to_vec();
        record::encode_salted(
            &mut data,
            11,
            &[put(b"new", b"1")],
            &mut Vec::new(),
            Salt::of_segment(id),
        );
        let end = data.len();
        record::encode_salted(&mut data, 12, &[put(b"stale", b"old life")], &mut Vec::new(), old_salt);
        data.extend_from_slice(&[0xa5; 100]);
        let path = dir.path().join(segment::segment_file_name(id));
        std::fs::write(&path, &data).unwrap();
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(db.get(b"new").unwrap().as_deref(), Some(&b"1"[..]), "{what}");
        assert_eq!(db.get(b"stale").unwrap(), None, "{what}: an old frame was replayed");
        let report = db.recovery_report();
        assert_eq!(report.truncated.len(), 1, "{what}: {report:?}");
        assert_eq!(report.truncated[0].offset, end as u64, "{what}: {report:?}");
        // The next commit takes the sequence number the old frame had.
        db.put(b"next", b"2").unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(db.get(b"stale").unwrap(), None, "{what}");
        assert_eq!(db.get(b"next").unwrap().as_deref(), Some(&b"2"[..]), "{what}");
    }
}

/// An iterator reads through segment files it opened itself: while one
/// (or any snapshot) is open, compaction keeps no retired file for reuse,
/// so the iterator's files are never written over under it.
#[test]
fn no_file_is_kept_while_an_iterator_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let model = overwrite(&db, 3, "a");
    let mut it = db.scan(Bound::Unbounded, Bound::Unbounded).unwrap();
    let mut seen = BTreeMap::new();
    let (k, v) = it.next().unwrap().unwrap();
    seen.insert(k.to_vec(), v.to_vec());
    db.compact().unwrap();
    assert_eq!(
        db.stats().free_segment_files,
        0,
        "a file was kept under an open iterator"
    );
    overwrite(&db, 3, "b");
    db.compact().unwrap();
    assert_eq!(db.stats().free_segment_files, 0);
    for item in it {
        let (k, v) = item.unwrap();
        seen.insert(k.to_vec(), v.to_vec());
    }
    assert_eq!(seen, model, "the iterator did not read its snapshot");
    // Once it is gone, files are kept again.
    overwrite(&db, 3, "c");
    db.compact().unwrap();
    assert!(db.stats().free_segment_files > 0, "{:?}", db.stats());
}
