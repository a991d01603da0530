//! Applying puts and batches to the index, where a commit under `Never` or
//! `Interval` drops the versions it superseded once it is visible (see
//! `Inner::commit_unsynced`): these tests check that nothing a reader or the
//! counters can see changes. A key written twice in one batch keeps the
//! later op, deletes and puts of one key in one batch resolve as written,
//! snapshots taken before a batch keep reading what they saw, overwritten
//! keys go back to one version, and a reopen finds the same state.

use std::collections::BTreeMap;

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn check(db: &Db, model: &Model, keys: u64, what: &str) {
    for k in 0..keys {
        let key = format!("k{k:03}").into_bytes();
        let got = db.get(&key).unwrap().map(|v| v.to_vec());
        assert_eq!(got.as_ref(), model.get(&key), "{what}: key {k}");
    }
    assert_eq!(db.stats().keys, model.len() as u64, "{what}: live keys");
}

#[test]
fn a_key_written_twice_in_a_batch_keeps_the_later_op() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put(b"d", b"old").unwrap();
    db.put(b"e", b"old").unwrap();
    let mut b = WriteBatch::new();
    // Out of key order, with every key touched at least twice.
    b.put(b"z".to_vec(), b"1".to_vec())
        .put(b"a".to_vec(), b"1".to_vec())
        .put(b"m".to_vec(), vec![b'x'; 500])
        .delete(b"d".to_vec())
        .put(b"a".to_vec(), b"2".to_vec())
        .put(b"d".to_vec(), b"new".to_vec())
        .put(b"e".to_vec(), b"gone soon".to_vec())
        .put(b"m".to_vec(), b"small".to_vec())
        .delete(b"z".to_vec())
        .delete(b"e".to_vec())
        .put(b"a".to_vec(), b"3".to_vec());
    db.write(&b).unwrap();
    let want: [(&[u8], Option<&[u8]>); 5] = [
        (b"a", Some(b"3")),
        (b"d", Some(b"new")),
        (b"e", None),
        (b"m", Some(b"small")),
        (b"z", None),
    ];
    let read = |db: &Db| {
        for (k, v) in want {
            assert_eq!(db.get(k).unwrap().as_deref(), v, "{}", String::from_utf8_lossy(k));
        }
        assert_eq!(db.stats().keys, 3);
    };
    read(&db);
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    read(&db);
}

/// Random batches over a small key space (so most batches write some key
/// more than once), each applied as one batch to one database and op by op
/// to another: values, live keys and live and dead log bytes agree with a
/// map and with each other; snapshots taken between batches keep their
/// view; a reopen finds the same state.
#[test]
fn random_batches_match_ops_applied_one_by_one() {
    const KEYS: u64 = 300;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let batched = Db::open(d1.path(), opts()).unwrap();
    let single = Db::open(d2.path(), opts()).unwrap();
    let mut model = Model::new();
    let mut rng = StdRng::seed_from_u64(0x2545_f491_4f6c_dd1d);
    let mut snaps = Vec::new();
    for round in 0..200 {
        if round % 20 == 0 {
            snaps.push((batched.snapshot().unwrap(), model.clone()));
        }
        let len = [1, 2, 3, 4, 5, 10, 100, 400][rng.random_range(0u64..8) as usize];
        let mut b = WriteBatch::new();
        for _ in 0..len {
            let key = format!("k{:03}", rng.random_range(0u64..KEYS)).into_bytes();
            if rng.random_range(0u64..4) == 0 {
                b.delete(key.clone());
                single.delete(&key).unwrap();
                model.remove(&key);
            } else {
                // Inline and on-disk values (the default inline threshold is 128 B).
                let v = vec![b'a' + (round % 26) as u8; rng.random_range(0u64..300) as usize];
                b.put(key.clone(), v.clone());
                single.put(&key, &v).unwrap();
                model.insert(key, v);
            }
        }
        batched.write(&b).unwrap();
        let (s1, s2) = (batched.stats(), single.stats());
        assert_eq!(
            (s1.keys, s1.live_bytes, s1.dead_bytes),
            (s2.keys, s2.live_bytes, s2.dead_bytes),
            "round {round}: counters of the batched and the one-by-one database"
        );
    }
    check(&batched, &model, KEYS, "batched");
    check(&single, &model, KEYS, "one by one");
    for (i, (snap, seen)) in snaps.iter().enumerate() {
        for k in 0..KEYS {
            let key = format!("k{k:03}").into_bytes();
            let got = snap.get(&key).unwrap().map(|v| v.to_vec());
            assert_eq!(got.as_ref(), seen.get(&key), "snapshot {i}: key {k}");
        }
    }
    drop(snaps);
    batched.close().unwrap();
    drop(batched);
    let batched = Db::open(d1.path(), opts()).unwrap();
    check(&batched, &model, KEYS, "batched, reopened");
}

/// Readers running while batches overwrite the same keys see every batch
/// whole: a batch writes one generation number to all its keys, in an
/// order the index does not insert them in, and a snapshot finds a single
/// generation across the keys.
#[test]
fn batches_become_visible_whole_while_readers_run() {
    const KEYS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let key = |i: usize| format!("key:{:04}", (i * 37) % KEYS).into_bytes();
    let write = |gen: u64| {
        let mut b = WriteBatch::new();
        for i in 0..KEYS {
            b.put(key(i), gen.to_string().into_bytes());
        }
        db.write(&b).unwrap();
    };
    write(0);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut checked = 0;
            for _ in 0..2_000 {
                let snap = db.snapshot().unwrap();
                let gens: Vec<_> = (0..KEYS).map(|i| snap.get(&key(i)).unwrap().unwrap()).collect();
                assert!(gens.iter().all(|g| *g == gens[0]), "a batch seen in part: {gens:?}");
                checked += 1;
            }
            checked
        });
        for gen in 1..=1_000 {
            write(gen);
        }
        assert_eq!(reader.join().unwrap(), 2_000);
    });
}

/// Without snapshots, an unsynced commit drops the versions it superseded
/// as soon as it is visible: overwritten keys hold one version each, after
/// single puts and batches (a key written twice in one batch too).
#[test]
fn unsynced_overwrites_leave_one_version_per_key() {
    unsynced_overwrites(SyncPolicy::Never);
    unsynced_overwrites(SyncPolicy::Interval(std::time::Duration::from_millis(5)));
}

fn unsynced_overwrites(sync: SyncPolicy) {
    const KEYS: u32 = 500;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            sync,
            ..Options::default()
        },
    )
    .unwrap();
    let key = |i: u32| format!("key:{i:05}").into_bytes();
    for i in 0..KEYS {
        db.put(&key(i), b"0").unwrap();
    }
    assert_eq!(db.debug_version_count(), KEYS as usize);
    for round in 1..=5u32 {
        for i in 0..KEYS {
            db.put(&key(i), round.to_string().as_bytes()).unwrap();
        }
        assert_eq!(db.debug_version_count(), KEYS as usize, "single puts, round {round}");
        let mut b = WriteBatch::new();
        for i in (0..KEYS).rev() {
            // A long value (on disk) and a short one (inline), each key twice.
            b.put(key(i), vec![b'v'; 200])
                .put(key(i), round.to_string().into_bytes());
        }
        db.write(&b).unwrap();
        assert_eq!(db.debug_version_count(), KEYS as usize, "batch, round {round}");
    }
    let mut t = db.begin().unwrap();
    t.put(&key(1), b"txn").unwrap();
    t.commit().unwrap();
    // The transaction's own snapshot is still open while it commits, so
    // what its commit replaced stays until the key's next write.
    assert_eq!(db.debug_version_count(), KEYS as usize + 1, "transaction");
    assert_eq!(db.get(&key(1)).unwrap().as_deref(), Some(&b"txn"[..]));
    db.put(&key(1), b"after").unwrap();
    assert_eq!(db.debug_version_count(), KEYS as usize, "after the transaction");
    assert_eq!(db.get(&key(2)).unwrap().as_deref(), Some(&b"5"[..]));
}

/// An open snapshot keeps every version it can read through overwrites by
/// batches; once it is gone, the next commits drop what it kept.
#[test]
fn a_snapshot_keeps_what_it_reads_through_batches() {
    const KEYS: u32 = 200;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let key = |i: u32| format!("key:{i:05}").into_bytes();
    let batch = |gen: u32| {
        let mut b = WriteBatch::new();
        for i in 0..KEYS {
            b.put(key((i * 7) % KEYS), gen.to_string().into_bytes());
        }
        db.write(&b).unwrap();
    };
    batch(0);
    let snap = db.snapshot().unwrap();
    for gen in 1..=3 {
        batch(gen);
    }
    for i in 0..KEYS {
        assert_eq!(snap.get(&key(i)).unwrap().as_deref(), Some(&b"0"[..]));
        assert_eq!(db.get(&key(i)).unwrap().as_deref(), Some(&b"3"[..]));
    }
    assert!(db.debug_version_count() >= 2 * KEYS as usize);
    drop(snap);
    batch(4);
    assert_eq!(db.debug_version_count(), KEYS as usize);
    for i in 0..KEYS {
        assert_eq!(db.get(&key(i)).unwrap().as_deref(), Some(&b"4"[..]));
    }
}

/// Point reads racing overwrites that drop superseded versions at once
/// always find a value (a reader whose version was dropped reads again at
/// the newer visible point), and never an older one than they saw before.
#[test]
fn point_reads_during_overwrites_always_find_a_value() {
    const KEYS: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    let key = |i: u64| format!("key:{i:05}").into_bytes();
    for i in 0..KEYS {
        db.put(&key(i), b"0").unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Readers that have read once: the writer starts only when both run,
    // so the reads overlap the overwrites however the threads are scheduled.
    let reading = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (db, stop, reading) = (&db, &stop, &reading);
                s.spawn(move || {
                    let mut seen = vec![0u64; KEYS as usize];
                    let mut reads = 0u64;
                    let mut i = r;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && reads < 2_000_000 {
                        i = (i + 7) % KEYS;
                        let v = db.get(&key(i)).unwrap().expect("an overwritten key is never missing");
                        let gen: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                        assert!(
                            gen >= seen[i as usize],
                            "key {i}: read {gen} after {}",
                            seen[i as usize]
                        );
                        seen[i as usize] = gen;
                        reads += 1;
                        if reads == 1 {
                            reading.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    reads
                })
            })
            .collect();
        while reading.load(std::sync::atomic::Ordering::SeqCst) < 2 && !readers.iter().any(|h| h.is_finished()) {
            std::thread::yield_now();
        }
        for gen in 1..=2_000u64 {
            if gen % 2 == 0 {
                let mut b = WriteBatch::new();
                for i in 0..KEYS {
                    b.put(key(i), gen.to_string().into_bytes());
                }
                db.write(&b).unwrap();
            } else {
                for i in 0..KEYS {
                    db.put(&key(i), gen.to_string().as_bytes()).unwrap();
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    });
    assert_eq!(db.debug_version_count(), KEYS as usize);
}
