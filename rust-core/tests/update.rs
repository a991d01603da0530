//! Read-modify-writes evaluated inside their own commit (`Db::update`,
//! Redis's INCRBY family and APPEND): concurrent updates of one key are
//! each counted exactly once and share group commits; an update takes its
//! place in the commit order among puts, deletes, batches and transactions
//! of the same key (its result is what the commits before it left); values
//! in the index, the write buffer or a file are read alike; refusals write
//! nothing; every acknowledged update survives a power cut.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mantisdb_core::{Db, Error, Options, SyncPolicy, Update, Updated};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::simfs::{Keep, SimFs};

fn open_with(dir: &std::path::Path, sync: SyncPolicy, f: impl FnOnce(&mut Options)) -> Db {
    let mut o = Options {
        sync,
        ..Options::default()
    };
    f(&mut o);
    Db::open(dir, o).unwrap()
}

fn int(db: &Db, key: &[u8]) -> Option<i64> {
    db.get(key)
        .unwrap()
        .map(|v| std::str::from_utf8(&v).unwrap().parse().unwrap())
}

#[test]
fn concurrent_increments_of_one_key_are_each_counted_once_and_share_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_with(tmp.path(), SyncPolicy::Always, |_| {});
    const THREADS: usize = 8;
    const EACH: usize = 300;
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, start) = (db.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                (0..EACH)
                    .map(|_| match db.update(b"ctr", &Update::IncrBy(1)).unwrap() {
                        Updated::Int(n) => n,
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen: Vec<i64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    seen.sort_unstable();
    let want: Vec<i64> = (1..=(THREADS * EACH) as i64).collect();
    assert_eq!(seen, want, "every increment answered a distinct count");
    assert_eq!(int(&db, b"ctr"), Some((THREADS * EACH) as i64));
    let s = db.stats();
    assert!(
        s.syncs < (THREADS * EACH) as u64,
        "{} syncs for {} increments: no group commit",
        s.syncs,
        THREADS * EACH
    );
    drop(db);
    let db = open_with(tmp.path(), SyncPolicy::Always, |_| {});
    assert_eq!(int(&db, b"ctr"), Some((THREADS * EACH) as i64));
}

/// Many threads incrementing and appending to a few keys at once, under
/// both policies, with values inline in the index and (no inlining, no
/// cache) in the write buffer and the files: per key, the answers ordered
/// form one chain (each is the one before plus its own delta, so no two
/// increments read the same value), the final value is the sum of every
/// delta, every appended piece is there once, and a reopen replays the log
/// to the same values.
#[test]
fn racing_updates_of_few_keys_lose_nothing_and_replay_the_same() {
    const THREADS: usize = 8;
    const EACH: usize = 250;
    const KEYS: usize = 3;
    for sync in [SyncPolicy::Never, SyncPolicy::Always] {
        for on_disk in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let opts = |o: &mut Options| {
                if on_disk {
                    o.inline_threshold = 0;
                    o.cache_bytes = 0;
                    o.segment_size = 64 << 10;
                }
            };
            let db = open_with(tmp.path(), sync, opts);
            let start = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (db, start) = (db.clone(), Arc::clone(&start));
                    std::thread::spawn(move || {
                        let mut rng = StdRng::seed_from_u64(t as u64 + 100);
                        let mut got = Vec::new();
                        let mut pieces = Vec::new();
                        start.wait();
                        for i in 0..EACH {
                            if i % 5 == 4 {
                                let piece = format!("[{t}.{i}]");
                                let up = Update::Append {
                                    suffix: piece.as_bytes(),
                                    max_len: 1 << 20,
                                };
                                match db.update(b"text", &up).unwrap() {
                                    Updated::Len(n) => pieces.push((n, piece)),
                                    other => panic!("{other:?}"),
                                }
                                continue;
                            }
                            let k = rng.random_range(0..KEYS);
                            let delta = rng.random_range(1..=3i64);
                            match db.update(format!("n{k}").as_bytes(), &Update::IncrBy(delta)).unwrap() {
                                Updated::Int(n) => got.push((k, delta, n)),
                                other => panic!("{other:?}"),
                            }
                        }
                        (got, pieces)
                    })
                })
                .collect();
            let mut got = Vec::new();
            let mut pieces = Vec::new();
            for h in handles {
                let (g, p) = h.join().unwrap();
                got.extend(g);
                pieces.extend(p);
            }
            let what = format!("{sync:?}, values on disk: {on_disk}");
            let mut want = BTreeMap::new();
            for k in 0..KEYS {
                let mut chain: Vec<(i64, i64)> = got
                    .iter()
                    .filter(|(key, _, _)| *key == k)
                    .map(|&(_, delta, n)| (n, delta))
                    .collect();
                chain.sort_unstable();
                let mut prev = 0;
                for &(n, delta) in &chain {
                    assert_eq!(
                        n - delta,
                        prev,
                        "n{k} ({what}): an increment read a value another one read"
                    );
                    prev = n;
                }
                let sum: i64 = chain.iter().map(|(_, d)| d).sum();
                assert_eq!(prev, sum, "n{k} ({what})");
                assert_eq!(
                    int(&db, format!("n{k}").as_bytes()),
                    (sum > 0).then_some(sum),
                    "n{k} ({what})"
                );
                want.insert(k, sum);
            }
            // Each append answered the length it made: ordered by length,
            // the pieces rebuild the value exactly.
            pieces.sort_unstable();
            let mut text = String::new();
            for (n, piece) in &pieces {
                text.push_str(piece);
                assert_eq!(text.len(), *n, "text ({what}): two appends read the same value");
            }
            assert_eq!(db.get(b"text").unwrap().as_deref(), Some(text.as_bytes()), "{what}");
            drop(db);
            let db = open_with(tmp.path(), sync, opts);
            for (k, sum) in want {
                assert_eq!(
                    int(&db, format!("n{k}").as_bytes()),
                    (sum > 0).then_some(sum),
                    "n{k} after reopen ({what})"
                );
            }
            assert_eq!(
                db.get(b"text").unwrap().as_deref(),
                Some(text.as_bytes()),
                "text after reopen ({what})"
            );
        }
    }
}

/// One op of the ordering test, with the commit sequence it got.
#[derive(Debug, Clone)]
enum Op {
    Put(i64),
    Delete,
    Incr { delta: i64, got: i64 },
}

#[test]
fn an_update_sees_exactly_the_commits_before_it() {
    for sync in [SyncPolicy::Always] {
        let tmp = tempfile::tempdir().unwrap();
        // Tiny inline threshold and no cache: values live in the write
        // buffer and the files, so the locked read path is exercised too.
        let db = open_with(tmp.path(), sync, |o| {
            o.inline_threshold = 0;
            o.cache_bytes = 0;
            o.segment_size = 64 << 10;
        });
        const THREADS: usize = 6;
        const KEYS: usize = 3;
        let start = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (db, start) = (db.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t as u64 + 7);
                    let mut log: Vec<(u64, usize, Op)> = Vec::new();
                    start.wait();
                    for _ in 0..400 {
                        let k = rng.random_range(0..KEYS);
                        let key = format!("key{k}");
                        let (ticket, op) = match rng.random_range(0..10) {
                            0 | 1 => {
                                let v = rng.random_range(-50..50i64);
                                (
                                    db.put_begin(key.as_bytes(), v.to_string().as_bytes()).unwrap(),
                                    Op::Put(v),
                                )
                            }
                            2 => (db.delete_begin(key.as_bytes()).unwrap(), Op::Delete),
                            _ => {
                                let delta = rng.random_range(-3..=5i64);
                                match db.update_begin(key.as_bytes(), &Update::IncrBy(delta)).unwrap() {
                                    (Updated::Int(got), t) => (t, Op::Incr { delta, got }),
                                    other => panic!("{other:?}"),
                                }
                            }
                        };
                        let ticket = ticket.expect("a ticket under Always");
                        if rng.random_bool(0.5) {
                            db.commit_wait(ticket).unwrap();
                        }
                        log.push((ticket, k, op));
                    }
                    let last = log.iter().map(|(s, _, _)| *s).max().unwrap_or(0);
                    db.commit_wait(last).unwrap();
                    log
                })
            })
            .collect();
        let mut all: Vec<(u64, usize, Op)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_by_key(|(seq, _, _)| *seq);
        let mut model: BTreeMap<usize, i64> = BTreeMap::new();
        let mut incrs = 0;
        for (seq, k, op) in &all {
            match op {
                Op::Put(v) => {
                    model.insert(*k, *v);
                }
                Op::Delete => {
                    model.remove(k);
                }
                Op::Incr { delta, got } => {
                    let want = model.get(k).copied().unwrap_or(0) + delta;
                    assert_eq!(*got, want, "increment at seq {seq} of key{k}");
                    model.insert(*k, want);
                    incrs += 1;
                }
            }
        }
        assert!(incrs > 1000);
        for k in 0..KEYS {
            assert_eq!(int(&db, format!("key{k}").as_bytes()), model.get(&k).copied(), "key{k}");
        }
    }
}

#[test]
fn updates_and_transactions_of_one_key_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_with(tmp.path(), SyncPolicy::Always, |_| {});
    let start = Arc::new(Barrier::new(6));
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (db, start) = (db.clone(), Arc::clone(&start));
        handles.push(std::thread::spawn(move || {
            start.wait();
            for _ in 0..300 {
                db.update(b"n", &Update::IncrBy(1)).unwrap();
            }
        }));
    }
    for _ in 0..2 {
        let (db, start) = (db.clone(), Arc::clone(&start));
        handles.push(std::thread::spawn(move || {
            start.wait();
            for _ in 0..100 {
                loop {
                    let mut tx = db.begin().unwrap();
                    let cur = tx
                        .get(b"n")
                        .unwrap()
                        .map_or(0, |v| std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap());
                    tx.put(b"n", (cur + 10).to_string().as_bytes()).unwrap();
                    match tx.commit() {
                        Ok(()) => break,
                        Err(Error::Conflict(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(int(&db, b"n"), Some(4 * 300 + 2 * 100 * 10));
}

#[test]
fn refusals_write_nothing_and_updates_keep_the_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_with(tmp.path(), SyncPolicy::Never, |_| {});
    db.put(b"s", b"abc").unwrap();
    let before = db.get_with_meta(b"s").unwrap().unwrap().1;
    assert_eq!(db.update(b"s", &Update::IncrBy(1)).unwrap(), Updated::NotInteger);
    db.put(b"big", i64::MAX.to_string().as_bytes()).unwrap();
    assert_eq!(db.update(b"big", &Update::IncrBy(1)).unwrap(), Updated::Overflow);
    assert_eq!(
        db.update(b"big", &Update::IncrBy(-1)).unwrap(),
        Updated::Int(i64::MAX - 1)
    );
    let long = Update::Append {
        suffix: b"def",
        max_len: 5,
    };
    assert_eq!(db.update(b"s", &long).unwrap(), Updated::TooLong);
    assert_eq!(
        db.get_with_meta(b"s").unwrap().unwrap().1,
        before,
        "a refusal is no commit"
    );
    let fits = Update::Append {
        suffix: b"de",
        max_len: 5,
    };
    assert_eq!(db.update(b"s", &fits).unwrap(), Updated::Len(5));
    assert_eq!(db.get(b"s").unwrap().as_deref(), Some(&b"abcde"[..]));
    assert!(
        db.get_with_meta(b"s").unwrap().unwrap().1.seq > before.seq,
        "a new version"
    );
    assert_eq!(db.update(b"new", &fits).unwrap(), Updated::Len(2));
    // The expiry stays with the key; an expired key starts from nothing.
    let at = now_ms() + 60_000;
    db.put_with_expiry(b"t", b"41", at).unwrap();
    assert_eq!(db.update(b"t", &Update::IncrBy(1)).unwrap(), Updated::Int(42));
    assert_eq!(db.get_with_meta(b"t").unwrap().unwrap().1.expires_at_ms, at);
    db.put_with_ttl(b"gone", b"7", Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(db.update(b"gone", &Update::IncrBy(3)).unwrap(), Updated::Int(3));
    assert_eq!(db.get_with_meta(b"gone").unwrap().unwrap().1.expires_at_ms, 0);
    assert!(matches!(
        db.update(b"", &Update::IncrBy(1)),
        Err(Error::InvalidKey { .. })
    ));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Values on disk and in the write buffer (no inlining, no cache), read
/// under the append lock, across segment rolls and a reopen.
#[test]
fn updates_read_values_in_the_buffer_and_in_files() {
    for sync in [SyncPolicy::Never, SyncPolicy::Always] {
        let tmp = tempfile::tempdir().unwrap();
        let opts = |o: &mut Options| {
            o.inline_threshold = 0;
            o.cache_bytes = 0;
            o.segment_size = 4096;
        };
        let db = open_with(tmp.path(), sync, opts);
        let mut want = Vec::new();
        for i in 0..200 {
            let suffix = format!("<{i}>");
            want.extend_from_slice(suffix.as_bytes());
            let up = Update::Append {
                suffix: suffix.as_bytes(),
                max_len: 1 << 20,
            };
            assert_eq!(db.update(b"a", &up).unwrap(), Updated::Len(want.len()));
            assert_eq!(db.update(b"c", &Update::IncrBy(2)).unwrap(), Updated::Int(2 * (i + 1)));
            if i % 50 == 0 {
                db.sync().unwrap();
            }
        }
        assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&want[..]));
        drop(db);
        let db = open_with(tmp.path(), sync, opts);
        assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&want[..]));
        assert_eq!(int(&db, b"c"), Some(400));
    }
}

/// A power cut at every file-system call of a run of increments (with
/// puts that roll segments between them): the counter after the reboot is
/// at least the last acknowledged value, and at most one more increment
/// (the one in flight).
#[test]
fn every_acknowledged_increment_survives_a_power_cut() {
    const DB: &str = "/data/db";
    let options = |fs: &SimFs| {
        Options {
            sync: SyncPolicy::Always,
            segment_size: 4096,
            background_compaction: false,
            ..Options::default()
        }
        .with_file_system(Arc::new(fs.clone()))
    };
    let run = |fs: &SimFs| -> i64 {
        let Ok(db) = Db::open(DB, options(fs)) else { return 0 };
        let mut acked = 0;
        for i in 0..60 {
            if i % 7 == 3 && db.put(format!("pad{i}").as_bytes(), &[b'x'; 900]).is_err() {
                break;
            }
            match db.update(b"ctr", &Update::IncrBy(1)) {
                Ok(Updated::Int(n)) => acked = n,
                Ok(other) => panic!("{other:?}"),
                Err(_) => break,
            }
        }
        acked
    };
    let reference = SimFs::new();
    assert_eq!(run(&reference), 60);
    let total = reference.ops();
    let mut rng = StdRng::seed_from_u64(5);
    for point in 0..total {
        let fs = SimFs::new();
        fs.crash_at(point);
        let acked = run(&fs);
        for keep in [Keep::Synced, Keep::Everything, Keep::Random] {
            let image = fs.image(keep, &mut rng);
            let db = Db::open(DB, options(&image)).unwrap_or_else(|e| panic!("cut at {point}, {keep:?}: {e}"));
            let got = int(&db, b"ctr").unwrap_or(0);
            assert!(
                got >= acked && got <= acked + 1,
                "cut at call {point} of {total}, image {keep:?}: counter {got}, last acknowledged {acked}"
            );
        }
    }
}
