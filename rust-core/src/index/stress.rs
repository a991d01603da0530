//! Writers, deleters whose tombstones are collected as soon as no older
//! write is in flight, readers and range walks race on a handful of keys,
//! and every read is checked against what was written. In test builds the index
//! yields the processor at its race points (between a hash probe and the
//! lock it leads to, and between the steps of an unlink), so the
//! interleavings of [`super::Index`]'s comment happen often: a write that
//! lands in an entry being unlinked instead of retrying on a fresh one is
//! lost, and the writer's own read-back or a reader notices.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Index, Lookup, ValueRef, ValueView, Version};

const KEYS: usize = 4;
const WRITERS: usize = 2;
const DELETERS: usize = 2;
const READERS: usize = 2;
const SCANNERS: usize = 2;
/// Ops per writer and per deleter; the run also stops after `LIMIT`.
const OPS: u64 = 60_000;
const LIMIT: Duration = Duration::from_secs(10);

fn key(k: usize) -> Vec<u8> {
    // Two inline keys and two kept on the heap.
    if k.is_multiple_of(2) {
        format!("k{k}").into_bytes()
    } else {
        format!("a-key-longer-than-the-inline-size-{k}").into_bytes()
    }
}

use super::tests::del;

/// A put whose inline value is its own sequence number.
fn put(seq: u64) -> Version {
    super::tests::put(seq, &seq.to_le_bytes())
}

/// Sequence numbers and the watermark, as the engine keeps them: an op
/// takes the next sequence number, and the watermark stays below every op
/// still being inserted (so a tombstone is collected only once every older
/// op of its key is in the index, as the engine's watermark guarantees).
struct Clock {
    next: AtomicU64,
    /// Per thread: a lower bound of the op it is inserting, or `u64::MAX`.
    in_flight: Vec<AtomicU64>,
}

impl Clock {
    fn new(threads: usize) -> Clock {
        Clock {
            next: AtomicU64::new(1),
            in_flight: (0..threads).map(|_| AtomicU64::new(u64::MAX)).collect(),
        }
    }

    /// Starts an op of thread `t`: its sequence number.
    fn begin(&self, t: usize) -> u64 {
        self.in_flight[t].store(self.next.load(SeqCst), SeqCst);
        self.next.fetch_add(1, SeqCst)
    }

    fn end(&self, t: usize) {
        self.in_flight[t].store(u64::MAX, SeqCst);
    }

    /// Every op at or below the result is in the index.
    fn watermark(&self) -> u64 {
        let next = self.next.load(SeqCst);
        let oldest = self.in_flight.iter().map(|x| x.load(SeqCst)).min().unwrap_or(u64::MAX);
        next.min(oldest) - 1
    }
}

/// What was written to one key: the highest sequence number of a put and
/// of a tombstone inserted (or about to be) so far.
#[derive(Default)]
struct KeyModel {
    max_put: AtomicU64,
    max_del: AtomicU64,
}

/// Checks what a read at the newest sequence returned for a key whose put
/// `at_least` (0: none) is known to be in the index: the read must show that
/// put or something newer, or nothing only when a newer tombstone exists.
fn check_read(got: &Lookup, at_least: u64, m: &KeyModel, who: &str) {
    match got {
        Lookup::Found(v) => assert!(
            v.seq >= at_least,
            "{who}: read seq {} after seeing {at_least}: a write was lost",
            v.seq
        ),
        Lookup::Missing => assert!(
            at_least == 0 || m.max_del.load(SeqCst) > at_least,
            "{who}: key missing after put {at_least} with no newer tombstone (newest tombstone {}): a write was lost",
            m.max_del.load(SeqCst)
        ),
        Lookup::Stale => panic!("{who}: a read at the newest sequence is never stale"),
    }
}

/// Counts a worker out when it ends, by returning or by panicking.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[test]
fn writers_deleters_and_readers_race_on_few_keys() {
    let index = Index::new();
    let clock = Clock::new(WRITERS + DELETERS);
    let models: Vec<KeyModel> = (0..KEYS).map(|_| KeyModel::default()).collect();
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    // Writers and deleters still running (a panicking one counts as done,
    // so the readers stop and the failure is reported).
    let running = AtomicUsize::new(WRITERS + DELETERS);
    let collected = AtomicU64::new(0);
    let start = Instant::now();
    // A writer that keeps meeting an unlinked entry (one published to the
    // map after its removal) never finishes: fail instead of hanging.
    let (finished, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let waited = watchdog.recv_timeout(LIMIT + Duration::from_secs(30));
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("index::stress: the workers did not finish: a writer or reader is stuck");
            std::process::abort();
        }
    });
    std::thread::scope(|s| {
        let (index, clock, models, keys, running, collected) = (&index, &clock, &models, &keys, &running, &collected);
        let mut workers = Vec::new();
        for w in 0..WRITERS {
            workers.push(s.spawn(move || {
                let _running = Running(running);
                let mut rng = StdRng::seed_from_u64(w as u64);
                for _ in 0..OPS {
                    if start.elapsed() > LIMIT {
                        break;
                    }
                    let k = rng.random_range(0..KEYS);
                    let seq = clock.begin(w);
                    index.insert(&keys[k], put(seq), clock.watermark());
                    models[k].max_put.fetch_max(seq, SeqCst);
                    clock.end(w);
                    // The put just inserted, or something newer.
                    check_read(&index.get(&keys[k], u64::MAX), seq, &models[k], "writer");
                }
            }));
        }
        for d in 0..DELETERS {
            let t = WRITERS + d;
            workers.push(s.spawn(move || {
                let _running = Running(running);
                let mut rng = StdRng::seed_from_u64(100 + d as u64);
                // Tombstones waiting for the watermark, as the engine queues them.
                let mut queue = std::collections::VecDeque::new();
                for _ in 0..OPS {
                    if start.elapsed() > LIMIT {
                        break;
                    }
                    let k = rng.random_range(0..KEYS);
                    let seq = clock.begin(t);
                    models[k].max_del.fetch_max(seq, SeqCst);
                    index.insert(&keys[k], del(seq), clock.watermark());
                    clock.end(t);
                    queue.push_back((k, seq));
                    let watermark = clock.watermark();
                    while queue.front().is_some_and(|&(_, s)| s <= watermark) {
                        let (k, s) = queue.pop_front().unwrap();
                        if index.remove_tombstone(&keys[k], s, watermark) {
                            collected.fetch_add(1, SeqCst);
                        }
                    }
                }
            }));
        }
        for r in 0..READERS {
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(200 + r as u64);
                // Per key, the newest put seen: later reads must not go back.
                let mut seen = [0u64; KEYS];
                while running.load(SeqCst) > 0 {
                    let k = rng.random_range(0..KEYS);
                    let got = index.get(&keys[k], u64::MAX);
                    check_read(&got, seen[k], &models[k], "reader");
                    if let Lookup::Found(v) = &got {
                        if !matches!(v.value, ValueRef::Tombstone) {
                            assert_eq!(v.value, put(v.seq).value);
                            seen[k] = v.seq;
                        }
                    }
                }
            });
        }
        for r in 0..SCANNERS {
            s.spawn(move || {
                // Range walks lend inline values past the key's lock (see
                // `retire`): each value read must still be the one its
                // version was written with, never freed and reused memory.
                let mut scans = 0u64;
                while running.load(SeqCst) > 0 || scans == 0 {
                    index.range_views(Bound::Unbounded, Bound::Unbounded, u64::MAX, usize::MAX, |k, v| {
                        assert!(keys.iter().any(|x| x == k), "scanner {r}: key {k:?}");
                        match v.value {
                            ValueView::Small(_) | ValueView::Inline(_) => {
                                let bytes = v.held_bytes().expect("a value held in the index");
                                assert_eq!(bytes, v.seq.to_le_bytes(), "scanner {r}: value of {k:?} at {}", v.seq)
                            }
                            ValueView::Tombstone => {}
                            ValueView::Disk { .. } => panic!("scanner {r}: a value on disk"),
                        }
                        std::ops::ControlFlow::Continue(())
                    });
                    scans += 1;
                }
            });
        }
        for h in workers {
            h.join().unwrap();
        }
        let _ = finished.send(());
    });
    // The end state is the model's: each key's newest op.
    for (k, m) in models.iter().enumerate() {
        let (p, d) = (m.max_put.load(SeqCst), m.max_del.load(SeqCst));
        match index.get(&keys[k], u64::MAX) {
            Lookup::Found(v) if p > d => assert_eq!(v.seq, p, "key {k}"),
            Lookup::Found(v) => assert!(v.seq == d && v.value == ValueRef::Tombstone, "key {k}: {v:?}"),
            Lookup::Missing => assert!(d > p, "key {k}: missing, newest put {p}, newest tombstone {d}"),
            Lookup::Stale => panic!("stale"),
        }
    }
    // The hash map and the skiplist hold the same keys.
    assert_eq!(index.len(), index.hashed_len());
    let mut walked = 0;
    index.range_from(Bound::Unbounded, Bound::Unbounded, u64::MAX, usize::MAX, |k, v| {
        walked += 1;
        assert!(matches!(index.get(k, u64::MAX), Lookup::Found(x) if x == *v));
    });
    assert_eq!(walked, index.len());
    // The race under test happened: tombstones were collected while
    // writers wrote the same keys.
    assert!(
        collected.load(SeqCst) > 10,
        "only {} tombstones collected",
        collected.load(SeqCst)
    );
}
