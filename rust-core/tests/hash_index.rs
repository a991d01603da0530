//! The index's hash map (point reads and writes to existing keys) and its
//! ordered skiplist (scans) stay one index: keys created by racing writers
//! are in both once, and a database reopened from hint files on several
//! threads finds every key through the hash map, with the map and the
//! skiplist holding the same keys. (The race of writers, deleters and
//! readers on few keys is a unit test, `index::stress`, where the index
//! widens its race windows.)

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use mantisdb_core::index::{Index, ValueRef, Version};
use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn key(k: usize) -> Vec<u8> {
    // Inline keys and keys kept on the heap.
    if k.is_multiple_of(2) {
        format!("k{k}").into_bytes()
    } else {
        format!("a-key-longer-than-the-inline-size-{k}").into_bytes()
    }
}

fn put(seq: u64) -> Version {
    Version {
        seq,
        expires_at: 0,
        value: ValueRef::Inline(Arc::from(&seq.to_le_bytes()[..])),
        log_bytes: 10,
        segment: 1,
    }
}

#[test]
fn new_keys_raced_by_many_writers_are_found_by_hash() {
    // Threads create the same new keys at once: every key ends up in both
    // structures, once.
    let index = Index::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let index = &index;
            s.spawn(move || {
                for i in 0..5_000u64 {
                    let k = key((i % 1_000) as usize);
                    index.insert(&k, put(1 + i * 4 + t), 0);
                }
            });
        }
    });
    assert_eq!(index.len(), 1_000);
    assert_eq!(index.hashed_len(), index.len());
}

fn opts(threads: usize) -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 64 << 10,
        inline_threshold: 24,
        background_compaction: false,
        recovery_threads: threads,
        ..Options::default()
    }
}

fn db_key(i: u32) -> Vec<u8> {
    if i.is_multiple_of(5) {
        format!("user:{i:06}:a-long-suffix-kept-on-the-heap").into_bytes()
    } else {
        format!("user:{i:06}").into_bytes()
    }
}

/// Writes puts, overwrites, deletes and re-puts over many segments, closes
/// them with hints, and returns the model.
fn build(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = BTreeMap::new();
    let db = Db::open(dir, opts(1)).unwrap();
    for step in 0..30_000u32 {
        let k = db_key(rng.random_range(0..6_000));
        if rng.random_range(0..10) < 2 {
            db.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = format!("v{step}:{}", "x".repeat(rng.random_range(0..60))).into_bytes();
            let mut b = WriteBatch::new();
            b.put(k.clone(), v.clone());
            db.write(&b).unwrap();
            model.insert(k, v);
        }
    }
    db.compact().unwrap();
    db.close().unwrap();
    model
}

#[test]
fn reopen_from_hints_finds_every_key_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let model = build(dir.path());
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "hint"))
            .count()
            > 4,
        "the database should span several hinted segments"
    );
    for threads in [1, 3] {
        let db = Db::open(dir.path(), opts(threads)).unwrap();
        // Point reads go through the hash map only.
        for i in 0..6_000 {
            let k = db_key(i);
            let got = db.get(&k).unwrap().map(|v| v.to_vec());
            assert_eq!(
                got.as_ref(),
                model.get(&k),
                "{threads} threads: key {}",
                String::from_utf8_lossy(&k)
            );
        }
        // Scans walk the skiplist: the same keys, each found by hash too.
        let scanned: Vec<Vec<u8>> = db
            .scan(Bound::Unbounded, Bound::Unbounded)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(scanned, model.keys().cloned().collect::<Vec<_>>());
        let (listed, hashed) = db.debug_index_lens();
        assert_eq!(listed, hashed, "{threads} threads: skiplist and hash map disagree");
        assert_eq!(
            listed,
            model.len(),
            "tombstones are unlinked from both at the end of the open"
        );
        db.close().unwrap();
    }
}
