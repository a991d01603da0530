//! Open applies hint files from several threads at once
//! (`Options::recovery_threads`), in no fixed order across segments. These
//! tests build databases whose segments overlap in every way a key can
//! (overwrites across segments, deletes, re-puts after deletes, expiring
//! keys, batches touching a key twice, compaction copying old records into
//! newer sealed segments), then open copies of the same files:
//!
//! - from hint files on 1 thread,
//! - from hint files on 2 and 5 threads (more threads than cores forces
//!   interleaving),
//! - with every hint file removed (a full replay of the segments),
//!
//! and require every key's value, sequence number and expiry, the key
//! count, the live and dead byte totals and the last sequence number to be
//! identical, and equal to a model of what was committed; and the same
//! when some hint files are damaged (their segments are read instead).
//! On the operating system's file system hint files are mapped; through a
//! file system that does not map (here the fault-injecting wrapper) they
//! are read into memory: both are compared with the full replay.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod support;
use support::faultfs::{Fault, FaultFs, Op, Rule, Target};

/// A key's expected state: value and whether it carries a (one-hour) expiry.
type Model = BTreeMap<Vec<u8>, (Vec<u8>, bool)>;

fn opts(threads: usize) -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 4 << 10,
        // Compaction rewrites only segments mostly dead, so many remain.
        compaction_threshold: 0.9,
        inline_threshold: 24,
        background_compaction: false,
        recovery_threads: threads,
        ..Options::default()
    }
}

fn key(i: u32) -> Vec<u8> {
    // Short keys and a few longer than the index keeps inline.
    if i.is_multiple_of(7) {
        format!("long-key-{i:04}-padded-past-the-inline-size").into_bytes()
    } else {
        format!("k{i:04}").into_bytes()
    }
}

fn value(rng: &mut StdRng, tag: u32) -> Vec<u8> {
    // Inline (<= 24 B) and on-disk values.
    let len = if rng.random_bool(0.5) {
        rng.random_range(0..24)
    } else {
        rng.random_range(25..300)
    };
    let mut v = tag.to_le_bytes().to_vec();
    v.resize(len.max(4), (tag % 251) as u8);
    v
}

/// Writes a random history into `dir` and returns the model of the result.
fn build(dir: &Path, seed: u64) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model::new();
    let db = Db::open(dir, opts(1)).unwrap();
    let keys = 300;
    for step in 0..3000u32 {
        let k = key(rng.random_range(0..keys));
        match rng.random_range(0..100) {
            0..=54 => {
                let v = value(&mut rng, step);
                db.put(&k, &v).unwrap();
                model.insert(k, (v, false));
            }
            55..=64 => {
                let v = value(&mut rng, step);
                db.put_with_ttl(&k, &v, Duration::from_secs(3600)).unwrap();
                model.insert(k, (v, true));
            }
            65..=79 => {
                db.delete(&k).unwrap();
                model.remove(&k);
            }
            80..=98 => {
                // A batch, sometimes writing one key twice (the later op wins).
                let mut b = WriteBatch::new();
                let mut touched = Vec::new();
                for j in 0..rng.random_range(1..6u32) {
                    let bk = if j > 0 && rng.random_bool(0.2) {
                        k.clone()
                    } else {
                        key(rng.random_range(0..keys))
                    };
                    if rng.random_bool(0.8) {
                        let v = value(&mut rng, step * 8 + j);
                        b.put(bk.clone(), v.clone());
                        touched.push((bk, Some(v)));
                    } else {
                        b.delete(bk.clone());
                        touched.push((bk, None));
                    }
                }
                db.write(&b).unwrap();
                for (bk, v) in touched {
                    match v {
                        Some(v) => model.insert(bk, (v, false)),
                        None => model.remove(&bk),
                    };
                }
            }
            _ => {
                db.compact().unwrap();
            }
        }
    }
    // Close the active segment so it gets a hint too, then leave a few
    // records in a new active segment (always decoded, never hinted).
    db.compact().unwrap();
    for i in 0..20 {
        let k = key(i * 3);
        let v = value(&mut rng, 90_000 + i);
        db.put(&k, &v).unwrap();
        model.insert(k, (v, false));
    }
    db.close().unwrap();
    model
}

/// Everything open recovered, as the public API shows it.
#[derive(Debug)]
struct State {
    /// Every key of the key space: value, sequence, expiry (None: absent).
    keys: Vec<Option<(Vec<u8>, u64, u64)>>,
    live_keys: u64,
    live_bytes: u64,
    dead_bytes: u64,
    segments: u64,
    last_seq: u64,
}

fn state(db: &Db) -> State {
    let keys = (0..300)
        .map(|i| {
            db.get_with_meta(&key(i))
                .unwrap()
                .map(|(v, m)| (v.to_vec(), m.seq, m.expires_at_ms))
        })
        .collect();
    let s = db.stats();
    State {
        keys,
        live_keys: s.keys,
        live_bytes: s.live_bytes,
        dead_bytes: s.dead_bytes,
        segments: s.segments,
        last_seq: s.last_seq,
    }
}

/// Panics naming the first difference between two states.
fn assert_same(got: &State, want: &State, ctx: &str) {
    for (i, (g, w)) in got.keys.iter().zip(&want.keys).enumerate() {
        let brief = |x: &Option<(Vec<u8>, u64, u64)>| {
            x.as_ref()
                .map(|(v, s, e)| (v.len(), v.get(..4).map(<[u8]>::to_vec), *s, *e))
        };
        assert!(
            g == w,
            "{ctx}: key {}: got {:?}, want {:?}",
            String::from_utf8_lossy(&key(i as u32)),
            brief(g),
            brief(w)
        );
    }
    let figures = |s: &State| (s.live_keys, s.live_bytes, s.dead_bytes, s.segments, s.last_seq);
    assert_eq!(
        figures(got),
        figures(want),
        "{ctx}: (live keys, live bytes, dead bytes, segments, last seq)"
    );
}

fn copy_dir(src: &Path, dst: &Path, with_hints: bool) {
    for e in fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hint") && !with_hints {
            continue;
        }
        fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
}

/// Opens a copy of `src` and returns its state and how many segments came from hints.
fn reopen(src: &Path, with_hints: bool, threads: usize) -> (State, u64) {
    reopen_with(src, with_hints, opts(threads))
}

fn reopen_with(src: &Path, with_hints: bool, o: Options) -> (State, u64) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(src, dir.path(), with_hints);
    let db = Db::open(dir.path(), o).unwrap();
    let report = db.recovery_report().clone();
    assert!(report.bad_hints.is_empty(), "{:?}", report.bad_hints);
    let st = state(&db);
    db.close().unwrap();
    (st, report.hinted_segments)
}

fn check_seed(seed: u64) {
    let src = tempfile::tempdir().unwrap();
    let model = build(src.path(), seed);
    let segments = fs::read_dir(src.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "hint"))
        .count() as u64;
    assert!(segments >= 8, "seed {seed}: only {segments} hinted segments");
    let (replayed, hinted) = reopen(src.path(), false, 1);
    assert_eq!(hinted, 0, "seed {seed}: the replay used hints");
    // The model: present keys with their values and expiry.
    for (i, got) in replayed.keys.iter().enumerate() {
        let k = key(i as u32);
        match (model.get(&k), got) {
            (None, None) => {}
            (Some((v, ttl)), Some((gv, seq, exp))) => {
                assert_eq!(v, gv, "seed {seed}: value of {}", String::from_utf8_lossy(&k));
                assert!(*seq > 0 && *seq <= replayed.last_seq);
                assert_eq!(
                    *ttl,
                    *exp != 0,
                    "seed {seed}: expiry of {}",
                    String::from_utf8_lossy(&k)
                );
            }
            (m, g) => panic!(
                "seed {seed}: {}: model {m:?}, replay {g:?}",
                String::from_utf8_lossy(&k)
            ),
        }
    }
    assert_eq!(replayed.live_keys, model.len() as u64, "seed {seed}: live keys");
    for threads in [1, 2, 5] {
        let (st, hinted) = reopen(src.path(), true, threads);
        assert_eq!(hinted, segments, "seed {seed}, {threads} threads: hinted segments");
        assert_same(
            &st,
            &replayed,
            &format!("seed {seed}: hints on {threads} threads vs full replay"),
        );
    }
    // Hint files read with `pread` instead of mapped.
    let o = Options {
        map_reads: false,
        ..opts(2)
    };
    let (st, hinted) = reopen_with(src.path(), true, o);
    assert_eq!(hinted, segments, "seed {seed}, maps off: hinted segments");
    assert_same(
        &st,
        &replayed,
        &format!("seed {seed}: hints read without maps vs full replay"),
    );
}

#[test]
fn parallel_hint_load_matches_full_replay() {
    for seed in 1..=3 {
        check_seed(seed);
    }
}

/// The same comparison repeated many times on one database: thread timing
/// varies from open to open, so different interleavings are exercised.
#[test]
fn parallel_hint_load_is_the_same_every_time() {
    let src = tempfile::tempdir().unwrap();
    build(src.path(), 99);
    let (first, _) = reopen(src.path(), true, 1);
    for round in 0..5 {
        let (st, _) = reopen(src.path(), true, 3);
        assert_same(&st, &first, &format!("round {round}"));
    }
}

/// Damaged hint files (a flipped byte, a cut file) are reported and their
/// segments read instead, while the other segments still come from their
/// hints in key order: the result is the full replay's, and the hints are
/// written again, so the next open uses them all.
#[test]
fn damaged_hints_fall_back_to_their_segments() {
    let src = tempfile::tempdir().unwrap();
    build(src.path(), 7);
    let (replayed, _) = reopen(src.path(), false, 1);
    let mut hints: Vec<_> = fs::read_dir(src.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .collect();
    hints.sort();
    assert!(hints.len() >= 8);
    for threads in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path(), true);
        // One in the middle flipped, the last one cut short.
        let flipped = dir.path().join(hints[hints.len() / 2].file_name().unwrap());
        let mut b = fs::read(&flipped).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x20;
        fs::write(&flipped, &b).unwrap();
        let cut = dir.path().join(hints[hints.len() - 1].file_name().unwrap());
        let b = fs::read(&cut).unwrap();
        fs::write(&cut, &b[..b.len() - 10]).unwrap();
        let db = Db::open(dir.path(), opts(threads)).unwrap();
        let report = db.recovery_report().clone();
        assert_eq!(report.hinted_segments, hints.len() as u64 - 2, "{threads} threads");
        assert_eq!(report.bad_hints.len(), 2, "{:?}", report.bad_hints);
        for damaged in [&flipped, &cut] {
            let name = damaged.display().to_string();
            assert!(
                report.bad_hints.iter().any(|h| h.starts_with(&name)),
                "{name} not reported: {:?}",
                report.bad_hints
            );
        }
        assert_same(
            &state(&db),
            &replayed,
            &format!("{threads} threads, two hints damaged vs full replay"),
        );
        db.close().unwrap();
        drop(db);
        let db = Db::open(dir.path(), opts(threads)).unwrap();
        let report = db.recovery_report().clone();
        assert!(report.bad_hints.is_empty(), "{:?}", report.bad_hints);
        assert_eq!(report.hinted_segments, hints.len() as u64);
        assert_same(&state(&db), &replayed, &format!("{threads} threads, hints rewritten"));
        db.close().unwrap();
    }
}

/// Through a file system that does not map files, hint files are read into
/// memory instead of mapped: the same result on 1 to 5 threads, and when,
/// in the middle of a parallel load, one hint file is damaged and reading
/// another one fails, both segments are read instead and reported.
#[test]
fn hints_read_without_maps_match_the_full_replay_with_damage_and_read_errors() {
    let src = tempfile::tempdir().unwrap();
    build(src.path(), 5);
    let (replayed, _) = reopen(src.path(), false, 1);
    let hints: Vec<_> = fs::read_dir(src.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .collect();
    assert!(hints.len() >= 8);
    let open = |dir: &Path, threads: usize, fault: bool| {
        let ffs = Arc::new(FaultFs::new(mantisdb_core::vfs::os()));
        if fault {
            // The body of the first hint read after two others (header and body each).
            ffs.add(
                Rule::new(Op::Read, Fault::Errno(libc::EIO))
                    .on(Target::Hints)
                    .after(5)
                    .times(1),
            );
        }
        let db = Db::open(dir, opts(threads).with_file_system(ffs.clone())).unwrap();
        (db, ffs.fired())
    };
    for threads in [1, 2, 5] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path(), true);
        let (db, _) = open(dir.path(), threads, false);
        let report = db.recovery_report().clone();
        assert_eq!(report.hinted_segments, hints.len() as u64, "{threads} threads");
        assert!(report.bad_hints.is_empty(), "{:?}", report.bad_hints);
        assert_same(
            &state(&db),
            &replayed,
            &format!("{threads} threads, hints read, not mapped"),
        );
        db.close().unwrap();
        drop(db);
        // One hint in the middle flipped, and a read error on another.
        let mut names: Vec<_> = hints.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        names.sort();
        let flipped = dir.path().join(&names[names.len() / 2]);
        let mut b = fs::read(&flipped).unwrap();
        let at = b.len() / 3;
        b[at] ^= 0x04;
        fs::write(&flipped, &b).unwrap();
        let (db, fired) = open(dir.path(), threads, true);
        assert_eq!(fired, 1, "the read error was injected");
        let report = db.recovery_report().clone();
        assert_eq!(report.bad_hints.len(), 2, "{threads} threads: {:?}", report.bad_hints);
        assert_eq!(report.hinted_segments, hints.len() as u64 - 2, "{threads} threads");
        let name = flipped.display().to_string();
        assert!(
            report.bad_hints.iter().any(|h| h.starts_with(&name)),
            "{:?}",
            report.bad_hints
        );
        assert_same(
            &state(&db),
            &replayed,
            &format!("{threads} threads, a damaged and an unreadable hint"),
        );
        db.close().unwrap();
    }
}
