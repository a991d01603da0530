//! Recovery of torn tails and detection of corruption.
//!
//! Proves, against a model of the writes:
//! - a newest segment cut at EVERY byte offset inside its last records opens,
//!   holds exactly the commits whose frames end at or before the cut (so no
//!   batch is ever torn), reports the cut in `recovery_report().truncated`,
//!   and takes further writes that survive another reopen;
//! - garbage after the last record (zeros, random bytes, a frame header that
//!   promises more than the file holds) is a torn tail and is cut off;
//! - a damaged record in an older segment (with or without its hint file),
//!   or in the middle of the newest one, refuses to open with
//!   `Error::Corruption` naming that segment file and the frame offset of the
//!   damaged record (walked here with `record::decode`);
//! - `Options { repair: true, .. }` opens the same damage, keeps every record
//!   before it, and names the dropped region in `recovery_report().repaired`;
//! - a segment header with a bad magic number or a future format version is
//!   corruption with a clear message;
//! - a zero-length (or header-short) newest segment, left by a crash during
//!   segment creation, is removed on open.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use mantisdb_core::log::hint;
use mantisdb_core::log::record::{self, OpKind, OpRef};
use mantisdb_core::log::segment::{self, SEGMENT_HEADER_LEN};
use mantisdb_core::{Cut, Db, Error, Options, RecoveryReport, SyncPolicy, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// One commit: a single put or delete, or a batch (one record).
#[derive(Debug, Clone)]
enum Commit {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

impl Commit {
    fn apply(&self, m: &mut Model) {
        match self {
            Commit::Put(k, v) => {
                m.insert(k.clone(), v.clone());
            }
            Commit::Del(k) => {
                m.remove(k);
            }
            Commit::Batch(ops) => {
                for (k, v) in ops {
                    match v {
                        Some(v) => m.insert(k.clone(), v.clone()),
                        None => m.remove(k),
                    };
                }
            }
        }
    }

    fn write(&self, db: &Db) {
        match self {
            Commit::Put(k, v) => db.put(k, v).unwrap(),
            Commit::Del(k) => db.delete(k).unwrap(),
            Commit::Batch(ops) => {
                let mut b = WriteBatch::new();
                for (k, v) in ops {
                    match v {
                        Some(v) => b.put(k.clone(), v.clone()),
                        None => b.delete(k.clone()),
                    };
                }
                db.write(&b).unwrap();
            }
        }
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        match self {
            Commit::Put(k, _) | Commit::Del(k) => vec![k.clone()],
            Commit::Batch(ops) => ops.iter().map(|(k, _)| k.clone()).collect(),
        }
    }
}

/// The model after the commits with sequence numbers `1..=seq` (a fresh
/// database numbers its commits from 1 in write order).
fn model_upto(commits: &[Commit], seq: u64) -> Model {
    let mut m = Model::new();
    for c in &commits[..seq as usize] {
        c.apply(&mut m);
    }
    m
}

fn opts(segment_size: u64) -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size,
        // Frame offsets are computed from the files as written: no
        // compaction may rewrite them behind the test's back. (Hint files
        // are still written for closed segments, and checked on open.)
        background_compaction: false,
        ..Options::default()
    }
}

fn value(rng: &mut StdRng, tag: usize) -> Vec<u8> {
    // Both inline (<= 64 bytes) and on-disk values.
    let len = rng.random_range(0..200usize);
    let mut v = format!("v{tag}:").into_bytes();
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(tag as u8)));
    v
}

/// `n` random commits over a small key set, ending with a batch that writes
/// one key twice and deletes another, a large single put, and a single delete.
fn commits(seed: u64, n: usize) -> Vec<Commit> {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = |rng: &mut StdRng| format!("key-{:02}", rng.random_range(0..30u32)).into_bytes();
    let mut out = Vec::new();
    for i in 0..n {
        let c = match rng.random_range(0..10u32) {
            0..=4 => Commit::Put(key(&mut rng), value(&mut rng, i)),
            5 => Commit::Del(key(&mut rng)),
            _ => {
                let ops = (0..rng.random_range(1..6usize))
                    .map(|_| {
                        let v = if rng.random_bool(0.8) {
                            Some(value(&mut rng, i))
                        } else {
                            None
                        };
                        (key(&mut rng), v)
                    })
                    .collect();
                Commit::Batch(ops)
            }
        };
        out.push(c);
    }
    out.push(Commit::Batch(vec![
        (b"key-00".to_vec(), Some(b"first".to_vec())),
        (b"batch-a".to_vec(), Some(vec![1u8; 90])),
        (b"key-01".to_vec(), None),
        (b"key-00".to_vec(), Some(b"second".to_vec())),
        (b"batch-b".to_vec(), Some(vec![2u8; 20])),
    ]));
    out.push(Commit::Put(b"big".to_vec(), vec![0xab; 150]));
    out.push(Commit::Del(b"key-02".to_vec()));
    out
}

/// Writes `commits` into `dir` and closes the database.
fn build(dir: &Path, o: &Options, commits: &[Commit]) {
    let db = Db::open(dir, o.clone()).unwrap();
    for c in commits {
        c.write(&db);
    }
    db.close().unwrap();
}

fn universe(commits: &[Commit]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = commits.iter().flat_map(Commit::keys).collect();
    keys.push(b"never-written".to_vec());
    keys.sort();
    keys.dedup();
    keys
}

/// Asserts the database holds exactly `model`, by full scan and by point reads.
fn assert_state(db: &Db, model: &Model, keys: &[Vec<u8>], ctx: &str) {
    let got: Model = db
        .scan_prefix(b"")
        .unwrap()
        .map(|r| r.map(|(k, v)| (k, v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{ctx}: scan failed: {e}"));
    if &got != model {
        let missing: Vec<_> = model
            .keys()
            .filter(|k| !got.contains_key(*k))
            .map(|k| show(k))
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !model.contains_key(*k))
            .map(|k| show(k))
            .collect();
        let differ: Vec<_> = model
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
            .map(|(k, _)| show(k))
            .collect();
        panic!("{ctx}: state differs from the model: missing {missing:?}, extra {extra:?}, wrong value {differ:?}");
    }
    for k in keys {
        let got = db.get(k).unwrap().map(|v| v.to_vec());
        assert_eq!(got.as_ref(), model.get(k), "{ctx}: get({})", show(k));
    }
}

fn show(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

/// Frames of a segment file: (offset, end, seq), walked from the header.
fn frames(path: &Path) -> Vec<(u64, u64, u64)> {
    let data = fs::read(path).unwrap();
    let mut at = SEGMENT_HEADER_LEN as usize;
    let mut out = Vec::new();
    while at < data.len() {
        let rec = record::decode_salted(&data[at..], segment::frame_salt(&data))
            .unwrap_or_else(|e| panic!("{}: bad frame at {at}: {e:?}", path.display()));
        out.push((at as u64, (at + rec.frame_len) as u64, rec.seq));
        at += rec.frame_len;
    }
    out
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|id| dir.join(segment::segment_file_name(id)))
        .collect()
}

fn copy_dir(src: &Path, dst: &Path) {
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn flip(path: &Path, at: u64, mask: u8) {
    let mut data = fs::read(path).unwrap();
    data[at as usize] ^= mask;
    fs::write(path, data).unwrap();
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Opens, expecting corruption in `file` at `offset`; returns the message.
fn expect_corruption(dir: &Path, o: Options, file: &Path, offset: u64) -> String {
    match Db::open(dir, o) {
        Err(e @ Error::Corruption { .. }) => {
            let msg = e.to_string();
            let Error::Corruption {
                file: f, offset: off, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(f, file, "corruption names the wrong file: {msg}");
            assert_eq!(*off, offset, "corruption names the wrong offset: {msg}");
            assert!(msg.contains(&path_str(file)), "message does not name the file: {msg}");
            assert!(
                msg.contains(&format!("offset {offset}")),
                "message does not name the offset: {msg}"
            );
            msg
        }
        Err(e) => panic!("expected corruption in {} at {offset}, got {e}", file.display()),
        Ok(_) => panic!(
            "expected corruption in {} at {offset}, but open succeeded",
            file.display()
        ),
    }
}

/// Write one more key, reopen, and check that both the old state and the new key are there.
fn write_after_and_reopen(dir: &Path, o: &Options, db: Db, model: &Model, keys: &[Vec<u8>], ctx: &str) {
    db.put(b"after-recovery", ctx.as_bytes()).unwrap();
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir, o.clone()).unwrap_or_else(|e| panic!("{ctx}: reopen after recovery failed: {e}"));
    assert!(
        db.recovery_report().truncated.is_empty(),
        "{ctx}: second open cut again"
    );
    assert!(
        db.recovery_report().repaired.is_empty(),
        "{ctx}: second open repaired again"
    );
    let mut m = model.clone();
    m.insert(b"after-recovery".to_vec(), ctx.as_bytes().to_vec());
    assert_state(&db, &m, keys, &format!("{ctx}, after reopen"));
}

/// Cuts the newest segment at every offset inside its `from_end`-th last
/// record (1 = the last), and at that record's end.
fn torn_tail_inside_record(from_end: usize) {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let commits = commits(1, 60);
    build(src.path(), &o, &commits);
    let segs = segment_paths(src.path());
    assert!(segs.len() >= 3, "want several segments, got {}", segs.len());
    let newest = segs.last().unwrap();
    let name = newest.file_name().unwrap().to_owned();
    let fr = frames(newest);
    assert!(
        fr.len() >= 4,
        "newest segment holds only {} records; adjust the setup",
        fr.len()
    );
    assert_eq!(fr.last().unwrap().2, commits.len() as u64);
    let first_in_newest = fr[0].2;
    let file_len = fs::metadata(newest).unwrap().len();
    assert_eq!(fr.last().unwrap().1, file_len);
    let keys = universe(&commits);
    // Every cut gets a further write and reopen when exhaustive, else every third.
    let reopen_every = if std::env::var_os("MANTIS_RECOVERY_EXHAUSTIVE").is_some() {
        1
    } else {
        3
    };

    let (rec_start, rec_end, _) = fr[fr.len() - from_end];
    for cut in rec_start..=rec_end {
        let ctx = format!("cut at {cut} of {file_len}");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&name);
        truncate(&path, cut);

        // Commits whose frames end at or before the cut survive.
        let whole = fr.iter().take_while(|f| f.1 <= cut).count();
        let last_seq = if whole == 0 {
            first_in_newest - 1
        } else {
            fr[whole - 1].2
        };
        let torn = fr.iter().find(|f| f.0 < cut && cut < f.1);

        let db = Db::open(dir.path(), o.clone()).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        let report = db.recovery_report().clone();
        let expected = match torn {
            Some(&(frame_start, _, _)) => vec![Cut {
                file: path_str(&path),
                offset: frame_start,
                bytes: cut - frame_start,
            }],
            None => vec![],
        };
        assert_eq!(torn.is_some(), cut != rec_start && cut != rec_end);
        assert_eq!(report.truncated, expected, "{ctx}: truncation report");
        assert!(report.repaired.is_empty(), "{ctx}");
        if report.hinted_segments == 0 {
            assert_eq!(report.records, last_seq, "{ctx}: records replayed");
        } else {
            // Closed segments came from their hints; the newest was read whole.
            assert!(report.records >= whole as u64, "{ctx}: records replayed");
        }
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            torn.map_or(cut, |f| f.0),
            "{ctx}: file length after recovery"
        );
        let model = model_upto(&commits, last_seq);
        assert_state(&db, &model, &keys, &ctx);
        if (cut - rec_start) % reopen_every == 0 || cut == rec_end || cut + 1 == rec_end {
            write_after_and_reopen(dir.path(), &o, db, &model, &keys, &ctx);
        }
    }
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    torn_tail_inside_record(1);
}

#[test]
fn torn_tail_at_every_offset_of_the_second_to_last_record() {
    torn_tail_inside_record(2);
}

#[test]
fn torn_tail_at_every_offset_of_the_third_to_last_record() {
    // The batch that writes one key twice and deletes another: never torn.
    torn_tail_inside_record(3);
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(1 << 16);
    let commits = commits(2, 30);
    build(src.path(), &o, &commits);
    let newest = segment_paths(src.path()).pop().unwrap();
    let name = newest.file_name().unwrap().to_owned();
    let len = fs::metadata(&newest).unwrap().len();
    let model = model_upto(&commits, commits.len() as u64);
    let keys = universe(&commits);
    let last_frame = {
        let data = fs::read(&newest).unwrap();
        let (start, end, _) = *frames(&newest).last().unwrap();
        data[start as usize..end as usize].to_vec()
    };

    let mut garbages: Vec<(String, Vec<u8>)> = vec![
        ("1 zero".into(), vec![0]),
        ("7 zeros".into(), vec![0; 7]),
        ("8 zeros".into(), vec![0; 8]),
        ("100 zeros".into(), vec![0; 100]),
        ("a page of zeros".into(), vec![0; 4096]),
        ("0xff bytes".into(), vec![0xff; 64]),
        ("a header promising 1 MB".into(), {
            let mut h = vec![0x12, 0x34, 0x56, 0x78];
            h.extend_from_slice(&1_000_000u32.to_le_bytes());
            h.extend_from_slice(&[7; 40]);
            h
        }),
        ("a header promising u32::MAX".into(), {
            let mut h = vec![0; 4];
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h
        }),
        (
            "a cut copy of the last frame".into(),
            last_frame[..last_frame.len() - 1].to_vec(),
        ),
    ];
    let mut rng = StdRng::seed_from_u64(99);
    for i in 0..12 {
        let n = rng.random_range(1..600usize);
        garbages.push((
            format!("random bytes #{i} ({n})"),
            (0..n).map(|_| rng.random()).collect(),
        ));
    }

    for (what, garbage) in garbages {
        let ctx = format!("garbage: {what}");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&name);
        append(&path, &garbage);
        let db = Db::open(dir.path(), o.clone()).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        // Zeros are the writer's preallocated space, the end of the log:
        // cut like a torn tail, but not reported as one.
        let expected = if garbage.iter().all(|&b| b == 0) {
            vec![]
        } else {
            vec![Cut {
                file: path_str(&path),
                offset: len,
                bytes: garbage.len() as u64,
            }]
        };
        assert_eq!(db.recovery_report().truncated, expected, "{ctx}");
        assert_eq!(fs::metadata(&path).unwrap().len(), len, "{ctx}: file not cut back");
        if db.recovery_report().hinted_segments == 0 {
            assert_eq!(db.recovery_report().records, commits.len() as u64, "{ctx}");
        }
        assert_state(&db, &model, &keys, &ctx);
        write_after_and_reopen(dir.path(), &o, db, &model, &keys, &ctx);
    }
}

/// Ways to damage one record: (name, byte offset inside the frame, xor mask).
fn damages(frame_len: u64) -> Vec<(&'static str, u64, u8)> {
    vec![
        ("frame crc", 1, 0x10),
        ("length field", 4, 0x01),
        ("length field high byte", 7, 0x80),
        ("sequence number", 9, 0x04),
        ("op count", 16, 0x02),
        ("last byte of the value", frame_len - 1, 0x40),
    ]
}

/// A database with several segments; returns its commits.
fn multi_segment_db(dir: &Path, o: &Options) -> Vec<Commit> {
    let commits = commits(3, 120);
    build(dir, o, &commits);
    // One more open writes a hint file for every closed segment that lacks one.
    Db::open(dir, o.clone()).unwrap().close().unwrap();
    let segs = segment_paths(dir);
    assert!(segs.len() >= 4, "want at least 4 segments, got {}", segs.len());
    for s in &segs[..segs.len() - 1] {
        assert!(hint_of(s).exists(), "no hint file beside {}", s.display());
    }
    commits
}

/// The hint file beside a segment.
fn hint_of(segment_path: &Path) -> PathBuf {
    let name = segment_path.file_name().unwrap().to_str().unwrap();
    let id = segment::parse_segment_file_name(name).unwrap();
    segment_path.with_file_name(hint::hint_file_name(id))
}

/// The model when the record at `(seg_index, offset)` and everything after it
/// in that segment is dropped, later segments kept (what `repair` promises).
fn model_without(dir: &Path, commits: &[Commit], seg_index: usize, offset: u64) -> (Model, u64) {
    let mut dropped = std::collections::HashSet::new();
    let segs = segment_paths(dir);
    for (start, _, seq) in frames(&segs[seg_index]) {
        if start >= offset {
            dropped.insert(seq);
        }
    }
    let mut m = Model::new();
    for (i, c) in commits.iter().enumerate() {
        if !dropped.contains(&(i as u64 + 1)) {
            c.apply(&mut m);
        }
    }
    (m, commits.len() as u64 - dropped.len() as u64)
}

fn corruption_case(src: &Path, o: &Options, commits: &[Commit], seg_index: usize, frame_index: usize) {
    let keys = universe(commits);
    let seg_name = segment_paths(src)[seg_index].file_name().unwrap().to_owned();
    let fr = frames(&src.join(&seg_name));
    assert!(
        frame_index + 1 < fr.len(),
        "the damaged record must have whole records after it"
    );
    let (start, end, _) = fr[frame_index];
    let seg_len = fs::metadata(src.join(&seg_name)).unwrap().len();
    let closed = seg_index + 1 < segment_paths(src).len();
    // A closed segment is checked against its hint file's checksum on open,
    // and decoded frame by frame when it has no hint: both must find the damage.
    let hint_cases: &[bool] = if closed { &[true, false] } else { &[false] };
    let cases = damages(end - start)
        .into_iter()
        .flat_map(|d| hint_cases.iter().map(move |&h| (d, h)));
    for ((what, rel, mask), keep_hint) in cases {
        let ctx = format!(
            "{} record {frame_index} at {start}: damaged {what}, hint {}",
            show(seg_name.as_encoded_bytes()),
            if keep_hint { "kept" } else { "absent" }
        );
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src, dir.path());
        let path = dir.path().join(&seg_name);
        flip(&path, start + rel, mask);
        if closed && !keep_hint {
            fs::remove_file(hint_of(&path)).unwrap();
        }

        let msg = expect_corruption(dir.path(), o.clone(), &path, start);
        // Refusing to open must not have changed anything on disk.
        assert_eq!(fs::metadata(&path).unwrap().len(), seg_len, "{ctx}: {msg}");

        // With repair, everything before the damage (and every later segment) is kept.
        let ro = Options {
            repair: true,
            ..o.clone()
        };
        let db = Db::open(dir.path(), ro).unwrap_or_else(|e| panic!("{ctx}: repair open failed: {e}"));
        let RecoveryReport {
            records,
            hinted_segments,
            truncated,
            repaired,
            ..
        } = db.recovery_report().clone();
        assert_eq!(
            repaired,
            vec![Cut {
                file: path_str(&path),
                offset: start,
                bytes: seg_len - start
            }],
            "{ctx}"
        );
        assert!(truncated.is_empty(), "{ctx}: {truncated:?}");
        let (model, kept) = model_without(src, commits, seg_index, start);
        if hinted_segments == 0 {
            assert_eq!(records, kept, "{ctx}: records kept");
        }
        assert_state(&db, &model, &keys, &format!("{ctx}, repaired"));
        // The repair is durable: a plain open now succeeds with the same state.
        write_after_and_reopen(dir.path(), o, db, &model, &keys, &ctx);
    }
}

#[test]
fn corruption_in_an_older_segment_is_refused_with_file_and_offset() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let commits = multi_segment_db(src.path(), &o);
    let n = frames(&segment_paths(src.path())[1]).len();
    corruption_case(src.path(), &o, &commits, 1, n / 2);
    // The first record of the very first segment, too.
    corruption_case(src.path(), &o, &commits, 0, 0);
}

#[test]
fn corruption_in_the_middle_of_the_newest_segment_is_refused() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let commits = multi_segment_db(src.path(), &o);
    let segs = segment_paths(src.path());
    let n = frames(segs.last().unwrap()).len();
    assert!(n >= 3);
    corruption_case(src.path(), &o, &commits, segs.len() - 1, n / 2);
    // The newest segment's second-to-last record: one whole record follows.
    corruption_case(src.path(), &o, &commits, segs.len() - 1, n - 2);
    // Its first record: the damage is the first thing recovery reads in it.
    corruption_case(src.path(), &o, &commits, segs.len() - 1, 0);
}

#[test]
fn a_torn_record_in_an_older_segment_is_corruption() {
    // Only the newest segment can have a torn tail: an older one was complete
    // (and, unless `Never`, synced) before the next was created.
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let _commits = multi_segment_db(src.path(), &o);
    let path = segment_paths(src.path())[1].clone();
    let (start, end, _) = *frames(&path).last().unwrap();
    truncate(&path, end - 3);
    let msg = expect_corruption(src.path(), o, &path, start);
    assert!(msg.contains("cut short") || msg.contains("checksum"), "{msg}");
}

#[test]
fn bad_segment_headers_are_corruption() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let _commits = multi_segment_db(src.path(), &o);
    let segs = segment_paths(src.path());
    for seg_index in [0, segs.len() - 1] {
        let name = segs[seg_index].file_name().unwrap().to_owned();
        let id = segment::parse_segment_file_name(name.to_str().unwrap()).unwrap();

        // Bad magic.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&name);
        flip(&path, 0, 0x20);
        let msg = expect_corruption(dir.path(), o.clone(), &path, 0);
        assert!(msg.contains("magic"), "{msg}");

        // A future format version, with a header checksum that matches.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&name);
        let mut data = fs::read(&path).unwrap();
        let mut h = segment::encode_header(id, 0, 0);
        h[8..10].copy_from_slice(&(segment::SEGMENT_FORMAT_VERSION + 1).to_le_bytes());
        let crc = crc32c::crc32c(&h[..segment::HEADER_CRC_AT]);
        h[segment::HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        data[..h.len()].copy_from_slice(&h);
        fs::write(&path, data).unwrap();
        let msg = expect_corruption(dir.path(), o.clone(), &path, 0);
        assert!(
            msg.contains(&format!("version {}", segment::SEGMENT_FORMAT_VERSION + 1)) && msg.contains("not supported"),
            "{msg}"
        );

        // A header naming another segment.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&name);
        let mut data = fs::read(&path).unwrap();
        let h = segment::encode_header(id + 100, 0, 0);
        data[..h.len()].copy_from_slice(&h);
        fs::write(&path, data).unwrap();
        let msg = expect_corruption(dir.path(), o.clone(), &path, 0);
        assert!(msg.contains("names segment"), "{msg}");
    }
}

#[test]
fn a_short_newest_segment_left_by_a_crash_during_creation_is_removed() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let commits = multi_segment_db(src.path(), &o);
    let model = model_upto(&commits, commits.len() as u64);
    let keys = universe(&commits);
    let last_id = *segment::list(src.path()).unwrap().last().unwrap();
    for short_len in [0usize, 10, SEGMENT_HEADER_LEN as usize - 1] {
        let ctx = format!("newest segment of {short_len} bytes");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(segment::segment_file_name(last_id + 1));
        fs::write(&path, &segment::encode_header(last_id + 1, 0, 0)[..short_len]).unwrap();
        let db = Db::open(dir.path(), o.clone()).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
        assert!(!path.exists(), "{ctx}: the short segment is still there");
        assert_eq!(
            db.recovery_report().truncated,
            vec![Cut {
                file: path_str(&path),
                offset: 0,
                bytes: short_len as u64
            }],
            "{ctx}"
        );
        assert_state(&db, &model, &keys, &ctx);
        write_after_and_reopen(dir.path(), &o, db, &model, &keys, &ctx);
    }
}

/// Only the newest writer segment can be cut below its header by a crash:
/// any older one was whole once, since a newer writer segment was created
/// after it. Cut short later, its records are gone, which is corruption,
/// not a crash's loss; repair removes it and reports what it dropped.
#[test]
fn an_older_segment_cut_below_its_header_is_corruption() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let commits = multi_segment_db(src.path(), &o);
    let keys = universe(&commits);
    let seg_index = 1;
    let seg_name = segment_paths(src.path())[seg_index].file_name().unwrap().to_owned();
    for short_len in [0u64, 10, SEGMENT_HEADER_LEN - 1] {
        let ctx = format!("segment {seg_index} cut to {short_len} bytes");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&seg_name);
        truncate(&path, short_len);
        let msg = expect_corruption(dir.path(), o.clone(), &path, 0);
        assert!(msg.contains("records are missing"), "{ctx}: {msg}");
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            short_len,
            "{ctx}: refusing changed the file"
        );

        let ro = Options {
            repair: true,
            ..o.clone()
        };
        let db = Db::open(dir.path(), ro).unwrap_or_else(|e| panic!("{ctx}: repair open failed: {e}"));
        assert!(!path.exists(), "{ctx}: repair kept the short segment");
        assert_eq!(
            db.recovery_report().repaired.first(),
            Some(&Cut {
                file: path_str(&path),
                offset: 0,
                bytes: short_len
            }),
            "{ctx}"
        );
        let (model, _) = model_without(src.path(), &commits, seg_index, 0);
        assert_state(&db, &model, &keys, &format!("{ctx}, repaired"));
        write_after_and_reopen(dir.path(), &o, db, &model, &keys, &ctx);
    }
}

#[test]
fn an_empty_database_with_only_a_header_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(4096);
    Db::open(dir.path(), o.clone()).unwrap().close().unwrap();
    let db = Db::open(dir.path(), o.clone()).unwrap();
    assert_eq!(db.recovery_report(), &RecoveryReport::default());
    assert_state(&db, &Model::new(), &[], "empty");
}

/// A value may hold any bytes, including the bytes of a whole, valid record
/// with a higher sequence number (a database storing a copy of another
/// database's log, say). When the record carrying such a value is torn by a
/// crash, the tail is still a torn tail: recovery must cut it, not refuse to
/// open because it "found a valid record after the bad one".
#[test]
fn a_torn_record_whose_value_holds_a_valid_frame_is_still_a_torn_tail() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(1 << 16);
    let mut inner = Vec::new();
    // Sealed as a frame of the segment it will sit in (the first one), so
    // it would pass that segment's checksum.
    record::encode_salted(
        &mut inner,
        1_000_000,
        &[OpRef {
            kind: OpKind::Put,
            key: b"inner",
            value: b"bytes that look like a record",
            expires_at: 0,
        }],
        &mut Vec::new(),
        record::Salt::of_segment(1),
    );
    let mut payload = b"log copy:".to_vec();
    payload.extend_from_slice(&inner);
    payload.extend_from_slice(b"...and more after it");
    let commits = vec![
        Commit::Put(b"a".to_vec(), b"1".to_vec()),
        Commit::Put(b"log".to_vec(), payload),
    ];
    build(src.path(), &o, &commits);
    let path = segment_paths(src.path()).pop().unwrap();
    assert_eq!(path, src.path().join(segment::segment_file_name(1)));
    let (start, end, _) = *frames(&path).last().unwrap();
    // The crash cut the last record after the embedded frame but before its end.
    truncate(&path, end - 5);
    let db = match Db::open(src.path(), o) {
        Ok(db) => db,
        Err(e) => panic!("a torn last record made the database unopenable: {e}"),
    };
    assert_eq!(
        db.recovery_report().truncated,
        vec![Cut {
            file: path_str(&path),
            offset: start,
            bytes: end - 5 - start
        }]
    );
    assert_state(&db, &model_upto(&commits, 1), &universe(&commits), "embedded frame");
}

/// Damage in the middle of the newest segment stays corruption even when a
/// crash also left a torn tail behind it: the whole records between the two
/// must not be silently dropped as if everything after the damage were torn.
#[test]
fn damage_in_the_middle_and_a_torn_tail_is_still_corruption() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(1 << 16);
    let commits = commits(4, 40);
    build(src.path(), &o, &commits);
    let path = segment_paths(src.path()).pop().unwrap();
    let fr = frames(&path);
    let (bad, _, _) = fr[fr.len() / 2];
    let (_, last_end, _) = *fr.last().unwrap();
    flip(&path, bad + 1, 0x08);
    truncate(&path, last_end - 3);
    let msg = expect_corruption(src.path(), o.clone(), &path, bad);
    assert!(msg.contains("checksum"), "{msg}");
    // Repair keeps everything before the damage.
    let db = Db::open(src.path(), Options { repair: true, ..o }).unwrap();
    let seq_before = fr[fr.len() / 2 - 1].2;
    assert_state(&db, &model_upto(&commits, seq_before), &universe(&commits), "repaired");
}

/// A closed segment cut exactly at a record boundary decodes cleanly, but the
/// next writer segment's header says where it ended: open refuses it, naming
/// the file and the cut, whether or not its hint file is there; `repair`
/// accepts the loss once, and later plain opens succeed.
#[test]
fn a_closed_segment_cut_at_a_record_boundary_is_corruption() {
    let src = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let commits = multi_segment_db(src.path(), &o);
    let keys = universe(&commits);
    let seg_index = 1;
    let seg_name = segment_paths(src.path())[seg_index].file_name().unwrap().to_owned();
    let fr = frames(&src.path().join(&seg_name));
    assert!(fr.len() >= 3, "want a few records in the segment");
    let cut_at = fr[fr.len() / 2].0;
    for keep_hint in [true, false] {
        let ctx = format!("cut at {cut_at}, hint {}", if keep_hint { "kept" } else { "absent" });
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = dir.path().join(&seg_name);
        truncate(&path, cut_at);
        if !keep_hint {
            fs::remove_file(hint_of(&path)).unwrap();
        }
        let msg = expect_corruption(dir.path(), o.clone(), &path, cut_at);
        assert!(msg.contains("records are missing"), "{ctx}: {msg}");
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            cut_at,
            "{ctx}: refusing changed the file"
        );

        let ro = Options {
            repair: true,
            ..o.clone()
        };
        let db = Db::open(dir.path(), ro).unwrap_or_else(|e| panic!("{ctx}: repair open failed: {e}"));
        assert_eq!(
            db.recovery_report().repaired,
            vec![Cut {
                file: path_str(&path),
                offset: cut_at,
                bytes: 0
            }],
            "{ctx}"
        );
        let (model, _) = model_without(src.path(), &commits, seg_index, cut_at);
        assert_state(&db, &model, &keys, &format!("{ctx}, repaired"));
        write_after_and_reopen(dir.path(), &o, db, &model, &keys, &ctx);
    }
}
