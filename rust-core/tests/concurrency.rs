//! Concurrent readers and writers.
//!
//! Proves:
//! - (a) a batch becomes visible whole, and a read view (iterator, scan,
//!   `get_many`, snapshot) sees one point in time: writers commit batches that
//!   set `k0..k9` all to one counter value while readers check that every view
//!   they take holds ten equal values (under `Never` with small segments and
//!   on-disk values, and under `Always` with group commit);
//! - (b) concurrent writers to disjoint keys leave exactly the union of their
//!   per-thread models: full scan and `stats().keys` agree with it, live and
//!   after reopen; with writers contending for the same keys, `keys`,
//!   `live_bytes` and `dead_bytes` describe the final state and recovery
//!   computes the same numbers;
//! - (c) snapshots held while another thread deletes and re-puts their keys
//!   (so tombstones are collected and versions pruned meanwhile) keep
//!   answering exactly what they answered when taken;
//! - (d) every acknowledged write reads back correctly from disk (cache off,
//!   nothing inlined) while concurrent writers roll segments;
//! - (e) a read of a key whose first commit is still in flight answers
//!   "absent" or the value, never an error, while group commit publishes
//!   commits out of order and compaction runs every few milliseconds.
//!
//! Bounded in iterations; `MANTIS_CONCURRENCY_SCALE=N` multiplies them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options, SyncPolicy, Value, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn scale() -> u64 {
    std::env::var("MANTIS_CONCURRENCY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

const GROUP: usize = 10;

fn group_key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// The value every key of the group gets in batch `n`: the counter, padded so
/// that with `pad` it is stored on disk rather than inline.
fn group_value(n: u64, pad: usize) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.resize(8 + pad, (n % 251) as u8);
    v
}

fn decode_group_value(v: &[u8]) -> u64 {
    u64::from_le_bytes(v[..8].try_into().unwrap())
}

/// Checks that `view` (key, value) pairs are the whole group with one value;
/// returns that value (None before the first batch).
fn check_group(view: &[(Vec<u8>, Value)], what: &str) -> Option<u64> {
    if view.is_empty() {
        return None;
    }
    assert_eq!(
        view.len(),
        GROUP,
        "{what}: saw {} of {GROUP} keys: a batch was torn",
        view.len()
    );
    let first = &view[0].1;
    for (i, (k, v)) in view.iter().enumerate() {
        assert_eq!(k, &group_key(i), "{what}: keys out of order");
        assert_eq!(
            v,
            first,
            "{what}: {} differs from k0: a batch was torn",
            String::from_utf8_lossy(k)
        );
    }
    Some(decode_group_value(first))
}

fn batches_are_seen_whole(o: Options, writers: usize, batches_per_writer: u64, pad: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), o).unwrap();
    let counter = AtomicU64::new(1);
    let done = AtomicBool::new(false);
    let views = AtomicU64::new(0);
    let distinct = AtomicU64::new(0);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..writers {
            let (db, counter) = (db.clone(), &counter);
            handles.push(s.spawn(move || {
                let mut b = WriteBatch::new();
                for _ in 0..batches_per_writer {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    b.clear();
                    let v = group_value(n, pad);
                    for i in 0..GROUP {
                        b.put(group_key(i), v.clone());
                    }
                    db.write(&b).unwrap();
                }
            }));
        }
        for r in 0..2 {
            let (db, done, views, distinct) = (db.clone(), &done, &views, &distinct);
            s.spawn(move || {
                let keys: Vec<Vec<u8>> = (0..GROUP).map(group_key).collect();
                let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                let mut last = None;
                let mut round = 0u64;
                while !done.load(Ordering::Acquire) {
                    round += 1;
                    let seen = match (round + r) % 4 {
                        0 => {
                            let view: Vec<_> = db.scan_prefix(b"k").unwrap().map(Result::unwrap).collect();
                            check_group(&view, "scan_prefix")
                        }
                        1 => {
                            let vals = db.get_many(&key_refs).unwrap();
                            if vals.iter().all(Option::is_none) {
                                None
                            } else {
                                let view: Vec<_> = keys
                                    .iter()
                                    .zip(vals)
                                    .map(|(k, v)| (k.clone(), v.expect("get_many: a key of a batch is missing")))
                                    .collect();
                                check_group(&view, "get_many")
                            }
                        }
                        2 => {
                            // An iterator consumed slowly, interleaved with commits.
                            let it = db.scan_range(b"k0", Some(b"k:")).unwrap();
                            let mut view = Vec::new();
                            for item in it {
                                view.push(item.unwrap());
                                std::thread::yield_now();
                            }
                            check_group(&view, "scan_range")
                        }
                        _ => {
                            let snap = db.snapshot().unwrap();
                            let mut view = Vec::new();
                            for k in &keys {
                                if let Some(v) = snap.get(k).unwrap() {
                                    view.push((k.clone(), v));
                                }
                                std::thread::yield_now();
                            }
                            let a = check_group(&view, "snapshot gets");
                            // The same snapshot scanned later agrees with its point reads.
                            let scanned: Vec<_> = snap.scan_prefix(b"k").map(Result::unwrap).collect();
                            assert_eq!(check_group(&scanned, "snapshot scan"), a);
                            a
                        }
                    };
                    views.fetch_add(1, Ordering::Relaxed);
                    if seen.is_some() && seen != last {
                        distinct.fetch_add(1, Ordering::Relaxed);
                        last = seen;
                    }
                }
            });
        }
        for h in handles {
            h.join().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    let total = writers as u64 * batches_per_writer;
    let final_view: Vec<_> = db.scan_prefix(b"").unwrap().map(Result::unwrap).collect();
    let v = check_group(&final_view, "final scan").unwrap();
    assert!((1..=total).contains(&v));
    let st = db.stats();
    assert_eq!(st.writes, total * GROUP as u64);
    assert_eq!(st.keys, GROUP as u64);
    assert!(views.load(Ordering::Relaxed) > 10, "readers barely ran");
    assert!(distinct.load(Ordering::Relaxed) > 1, "readers never saw a commit land");
}

#[test]
fn batches_are_visible_whole_under_never_with_disk_values() {
    let o = Options {
        sync: SyncPolicy::Never,
        segment_size: 16 << 10,
        cache_bytes: 0,
        inline_threshold: 0,
        write_buffer_bytes: 4 << 10,
        ..Options::default()
    };
    batches_are_seen_whole(o, 3, 300 * scale(), 100);
}

#[test]
fn batches_are_visible_whole_under_always_with_group_commit() {
    let o = Options {
        sync: SyncPolicy::Always,
        ..Options::default()
    };
    batches_are_seen_whole(o, 4, 60 * scale(), 0);
}

#[test]
fn disjoint_writers_leave_the_union_of_their_models() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        sync: SyncPolicy::Never,
        segment_size: 32 << 10,
        ..Options::default()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let threads = 4u64;
    let ops = 400 * scale();
    let models: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let db = db.clone();
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t);
                    let mut model = BTreeMap::new();
                    let key = |rng: &mut StdRng| format!("t{t}/{:02}", rng.random_range(0..40u32)).into_bytes();
                    for i in 0..ops {
                        let v = format!("t{t}-op{i}").into_bytes().repeat(rng.random_range(1..20usize));
                        match rng.random_range(0..10u32) {
                            0..=4 => {
                                let k = key(&mut rng);
                                db.put(&k, &v).unwrap();
                                model.insert(k, v);
                            }
                            5..=6 => {
                                // Deleting a missing key is allowed and must not skew the count.
                                let k = key(&mut rng);
                                db.delete(&k).unwrap();
                                model.remove(&k);
                            }
                            _ => {
                                let mut b = WriteBatch::new();
                                for _ in 0..rng.random_range(1..6u32) {
                                    let k = key(&mut rng);
                                    if rng.random_bool(0.7) {
                                        b.put(k.clone(), v.clone());
                                        model.insert(k, v.clone());
                                    } else {
                                        b.delete(k.clone());
                                        model.remove(&k);
                                    }
                                }
                                db.write(&b).unwrap();
                            }
                        }
                    }
                    model
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let model: BTreeMap<Vec<u8>, Vec<u8>> = models.into_iter().flatten().collect();
    let check = |db: &Db, when: &str| {
        let got: BTreeMap<Vec<u8>, Vec<u8>> = db
            .scan_prefix(b"")
            .unwrap()
            .map(|r| r.map(|(k, v)| (k, v.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, model, "{when}: state differs from the union of the models");
        assert_eq!(db.stats().keys, model.len() as u64, "{when}: stats().keys");
    };
    check(&db, "live");
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    check(&db, "after reopen");
}

#[test]
fn contended_writers_keep_key_and_byte_counts_exact() {
    // Threads overwrite and delete the SAME keys, so commits reach the index
    // out of sequence order. Whatever wins, the counters must describe the
    // final state exactly, and recovery must compute the same numbers.
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        sync: SyncPolicy::Never,
        segment_size: 32 << 10,
        // Compaction reclaims dead bytes; off, so every op's bytes stay on disk.
        background_compaction: false,
        ..Options::default()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let ops = 500 * scale();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let db = db.clone();
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + t);
                for i in 0..ops {
                    let k = format!("shared{:02}", rng.random_range(0..30u32)).into_bytes();
                    let v = format!("t{t}-{i}").into_bytes().repeat(rng.random_range(1..12usize));
                    match rng.random_range(0..10u32) {
                        0..=5 => db.put(&k, &v).unwrap(),
                        6..=7 => db.delete(&k).unwrap(),
                        _ => {
                            let mut b = WriteBatch::new();
                            b.put(k.clone(), v.clone());
                            b.delete(format!("shared{:02}", rng.random_range(0..30u32)).into_bytes());
                            b.put(k, v);
                            db.write(&b).unwrap();
                        }
                    }
                }
            });
        }
    });
    let scan = |db: &Db| -> BTreeMap<Vec<u8>, Vec<u8>> {
        db.scan_prefix(b"")
            .unwrap()
            .map(|r| r.map(|(k, v)| (k, v.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let live_state = scan(&db);
    let live = db.stats();
    assert_eq!(
        live.keys,
        live_state.len() as u64,
        "stats().keys differs from the keys a scan finds"
    );
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(scan(&db), live_state, "reopen changed the state");
    let rec = db.stats();
    assert_eq!(rec.keys, live.keys, "recovery counts keys differently");
    assert_eq!(
        rec.live_bytes, live.live_bytes,
        "recovery counts live bytes differently"
    );
    assert_eq!(
        rec.live_bytes + rec.dead_bytes,
        live.live_bytes + live.dead_bytes,
        "live + dead bytes must be every op's log bytes, live and after recovery"
    );
}

#[test]
fn snapshots_stay_stable_while_keys_are_deleted_and_put_again() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        sync: SyncPolicy::Never,
        segment_size: 32 << 10,
        inline_threshold: 16,
        ..Options::default()
    };
    let db = Db::open(dir.path(), o).unwrap();
    let keys: Vec<Vec<u8>> = (0..20).map(|i| format!("key{i:02}").into_bytes()).collect();
    for k in &keys {
        db.put(k, b"initial").unwrap();
    }
    let rounds = 2000 * scale();
    let done = AtomicBool::new(false);
    type View = Vec<Option<Vec<u8>>>;
    type Held = (mantisdb_core::Snapshot, View, BTreeMap<Vec<u8>, Vec<u8>>);
    let read = |snap: &mantisdb_core::Snapshot| -> (View, BTreeMap<Vec<u8>, Vec<u8>>) {
        let point = keys.iter().map(|k| snap.get(k).unwrap().map(|v| v.to_vec())).collect();
        let scanned = snap
            .scan_prefix(b"key")
            .map(|r| r.map(|(k, v)| (k, v.to_vec())).unwrap())
            .collect();
        (point, scanned)
    };
    // The mutator runs its rounds, then goes on until the checker has done
    // enough checks (a fast machine finishes the rounds before the checker
    // gets going), within the deadline.
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|s| {
        let mutator = {
            let (db, keys, done, stop) = (db.clone(), &keys, &done, &stop);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(7);
                let mut i = 0;
                loop {
                    if i >= rounds {
                        done.store(true, Ordering::Release);
                        if stop.load(Ordering::Acquire) || Instant::now() >= deadline {
                            break;
                        }
                    }
                    i += 1;
                    let k = &keys[rng.random_range(0..keys.len())];
                    if rng.random_bool(0.5) {
                        db.delete(k).unwrap();
                    } else {
                        // Sometimes inline, sometimes on disk.
                        let v = format!("v{i}").repeat(rng.random_range(1..10usize));
                        db.put(k, v.as_bytes()).unwrap();
                    }
                }
            })
        };
        let mut held: Vec<Held> = Vec::new();
        let mut checks = 0u64;
        while !(done.load(Ordering::Acquire) && checks > 20) && Instant::now() < deadline {
            if held.len() < 8 {
                let snap = db.snapshot().unwrap();
                let (point, scanned) = read(&snap);
                // A snapshot's point reads and scan agree with each other.
                let from_points: BTreeMap<Vec<u8>, Vec<u8>> = keys
                    .iter()
                    .zip(&point)
                    .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                    .collect();
                assert_eq!(
                    from_points,
                    scanned,
                    "snapshot at seq {}: gets and scan disagree",
                    snap.seq()
                );
                held.push((snap, point, scanned));
            } else {
                // Drop the oldest so the watermark moves and versions get reclaimed.
                held.remove(0);
            }
            for (snap, point, scanned) in &held {
                let (p, sc) = read(snap);
                assert_eq!(&p, point, "snapshot at seq {} changed its point reads", snap.seq());
                assert_eq!(&sc, scanned, "snapshot at seq {} changed its scan", snap.seq());
                checks += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, Ordering::Release);
        mutator.join().unwrap();
        // Every snapshot still held answers as it did.
        for (snap, point, scanned) in &held {
            let (p, sc) = read(snap);
            assert_eq!(&p, point);
            assert_eq!(&sc, scanned);
        }
        assert!(checks > 20, "only {checks} snapshot checks ran");
    });
    assert_eq!(db.stats().open_snapshots, 0);
}

/// Values written concurrently must read back from the segment files (no
/// cache, nothing inlined) while segments roll under the writers.
fn concurrent_writes_read_back_across_rolls(sync: SyncPolicy) {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        sync,
        segment_size: 4096,
        cache_bytes: 0,
        inline_threshold: 0,
        ..Options::default()
    };
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let threads = 8u32;
    let per = 150u32;
    let value = |t: u32, i: u32| {
        let len = if (i + t).is_multiple_of(3) { 900 } else { 20 };
        vec![(t * 31 + i) as u8; len]
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..per {
                    db.put(format!("t{t}-{i}").as_bytes(), &value(t, i)).unwrap();
                }
            });
        }
    });
    let mut bad = Vec::new();
    for t in 0..threads {
        for i in 0..per {
            let key = format!("t{t}-{i}");
            match db.get(key.as_bytes()) {
                Ok(Some(v)) if *v == value(t, i)[..] => {}
                Ok(other) => bad.push(format!("{key}: wrong value {:?}", other.map(|v| v.len()))),
                Err(e) => bad.push(format!("{key}: {e}")),
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} acknowledged writes do not read back ({} segments); first: {:#?}",
        bad.len(),
        threads * per,
        db.stats().segments,
        &bad[..bad.len().min(3)]
    );
    // After reopen every value is found where recovery put it.
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    for t in 0..threads {
        for i in 0..per {
            assert_eq!(
                db.get(format!("t{t}-{i}").as_bytes()).unwrap().as_deref(),
                Some(&value(t, i)[..])
            );
        }
    }
}

#[test]
fn concurrent_writes_read_back_across_segment_rolls_under_always() {
    concurrent_writes_read_back_across_rolls(SyncPolicy::Always);
}

#[test]
fn concurrent_writes_read_back_across_segment_rolls_under_interval() {
    concurrent_writes_read_back_across_rolls(SyncPolicy::Interval(Duration::from_millis(1)));
}

#[test]
fn concurrent_writes_read_back_across_segment_rolls_under_never() {
    concurrent_writes_read_back_across_rolls(SyncPolicy::Never);
}

/// Writers put fresh keys under group commit while readers read the key each
/// writer is committing right now: its first version is in the index before
/// earlier commits are published, and the read must not mistake that for a
/// reclaimed version.
#[test]
fn reads_of_keys_whose_first_commit_is_in_flight_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        sync: SyncPolicy::Always,
        segment_size: 64 * 1024,
        compaction_interval: Duration::from_millis(2),
        ..Options::default()
    };
    let db = Db::open(dir.path(), o).unwrap();
    let writers = 12usize;
    let per = 300 * scale();
    let deadline = Instant::now() + Duration::from_secs(20);
    let announced: Vec<AtomicU64> = (0..writers).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let key = |w: usize, i: u64| format!("w{w}-{i}").into_bytes();
    std::thread::scope(|s| {
        for (w, slot) in announced.iter().enumerate() {
            let db = db.clone();
            let done = &done;
            s.spawn(move || {
                for i in 1..=per {
                    if done.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    slot.store(i, Ordering::Release);
                    db.put(&key(w, i), &i.to_le_bytes()).unwrap();
                    // Overwrite an older key too, so compaction has dead bytes to reclaim.
                    db.put(&key(w, i / 2), &(i / 2).to_le_bytes()).unwrap();
                }
            });
        }
        for r in 0..3u64 {
            let db = db.clone();
            let (announced, done, reads, failures) = (&announced, &done, &reads, &failures);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(r);
                while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let w = rng.random_range(0..writers);
                    let i = announced[w].load(Ordering::Acquire);
                    if i == 0 {
                        continue;
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    match db.get(&key(w, i)) {
                        Ok(None) => {}
                        Ok(Some(v)) if *v == i.to_le_bytes() => {}
                        other => failures.lock().unwrap().push(format!("w{w}-{i}: {other:?}")),
                    }
                }
            });
        }
        s.spawn(|| {
            while announced.iter().any(|a| a.load(Ordering::Relaxed) < per) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            done.store(true, Ordering::Relaxed);
        });
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} reads failed; first: {:?}",
        failures.len(),
        reads.load(Ordering::Relaxed),
        &failures[..failures.len().min(3)]
    );
    assert!(reads.load(Ordering::Relaxed) > 0);
}
