//! Model-based property test of the engine's semantics.
//!
//! Random sequences of put, put_with_ttl, delete, batch (mixed ops, a key
//! written twice), churn (many commits, so old versions and tombstones are
//! reclaimed), compact, reopen, and snapshot take/check/drop run against the
//! engine and against a `BTreeMap<key, (value, expiry)>` model. After every
//! step the engine must agree with the model on: point reads of the touched
//! keys, `get_many` of random keys, a full scan, a prefix scan and a
//! `scan_range` (bounds in any order), and every held snapshot must keep
//! answering like the model did when it was taken. Keys come from a tiny
//! alphabet (including 0x00 and 0xff) so collisions and shared prefixes are
//! common; values are 0..200 bytes so both inline and on-disk values occur.
//! Options vary per case: inline threshold, cache, segment size (small, so
//! segments roll), write buffer, sync policy (`Never` or `Always`), and
//! compaction (explicit `compact` steps, background compaction off or every
//! few milliseconds, two thresholds), which must never change an answer.
//!
//! TTLs are either an hour (never expires during a case) or 1 ms. A 1 ms key
//! may be seen or not while the case runs; after a 5 ms sleep at the end it
//! must be gone, live and after one more reopen.
//!
//! 64 cases by default; `PROPTEST_CASES=N` overrides.

use std::collections::BTreeMap;
use std::time::Duration;

use mantisdb_core::{Db, Options, Snapshot, SyncPolicy, WriteBatch};
use proptest::prelude::*;

type Key = Vec<u8>;
type Val = Vec<u8>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ttl {
    /// One hour: never expires while a case runs.
    Long,
    /// One millisecond: may or may not be expired until the final check.
    Short,
}

impl Ttl {
    fn duration(self) -> Duration {
        match self {
            Ttl::Long => Duration::from_secs(3600),
            Ttl::Short => Duration::from_millis(1),
        }
    }
}

#[derive(Debug, Clone)]
enum BatchOp {
    Put(Key, Val, Option<Ttl>),
    Del(Key),
}

#[derive(Debug, Clone)]
enum Step {
    Put(Key, Val),
    PutTtl(Key, Val, Ttl),
    Del(Key),
    Batch(Vec<BatchOp>),
    Reopen,
    TakeSnapshot,
    CheckSnapshot(usize),
    DropSnapshot(usize),
    /// Many commits (puts and deletes cycling over a few keys), so sequence
    /// numbers pass the points where the engine reclaims old versions and
    /// collects tombstones while snapshots are held.
    Churn(Vec<Key>, u8, u8),
    /// `Db::compact`: rolls the active segment and rewrites closed ones.
    Compact,
}

/// What to read after a step.
#[derive(Debug, Clone)]
struct Probe {
    prefix: Key,
    start: Key,
    end: Option<Key>,
    many: Vec<Key>,
}

#[derive(Debug, Clone)]
struct Config {
    inline_threshold: usize,
    cache_bytes: u64,
    segment_size: u64,
    write_buffer_bytes: usize,
    always: bool,
    /// Background compaction every this many ms, or off.
    background_ms: Option<u64>,
    compaction_threshold: f64,
}

impl Config {
    fn options(&self) -> Options {
        Options {
            sync: if self.always {
                SyncPolicy::Always
            } else {
                SyncPolicy::Never
            },
            segment_size: self.segment_size,
            cache_bytes: self.cache_bytes,
            inline_threshold: self.inline_threshold,
            write_buffer_bytes: self.write_buffer_bytes,
            background_compaction: self.background_ms.is_some(),
            compaction_interval: Duration::from_millis(self.background_ms.unwrap_or(1000)),
            compaction_threshold: self.compaction_threshold,
            ..Options::default()
        }
    }
}

/// key -> (value, ttl it was written with).
type Model = BTreeMap<Key, (Val, Option<Ttl>)>;

fn key() -> impl Strategy<Value = Key> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0x00, 0xff]), 1..=3)
}

fn bound_key() -> impl Strategy<Value = Key> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0x00, 0xff]), 0..=3)
}

fn value() -> impl Strategy<Value = Val> {
    prop::collection::vec(any::<u8>(), 0..200)
}

fn ttl() -> impl Strategy<Value = Ttl> {
    prop_oneof![3 => Just(Ttl::Long), 1 => Just(Ttl::Short)]
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        4 => (key(), value()).prop_map(|(k, v)| BatchOp::Put(k, v, None)),
        1 => (key(), value(), ttl()).prop_map(|(k, v, t)| BatchOp::Put(k, v, Some(t))),
        2 => key().prop_map(BatchOp::Del),
    ]
}

fn batch() -> impl Strategy<Value = Vec<BatchOp>> {
    // Often writes one key twice: the later op must win.
    (prop::collection::vec(batch_op(), 1..8), any::<bool>(), value()).prop_map(|(mut ops, twice, v)| {
        if twice {
            let k = match &ops[0] {
                BatchOp::Put(k, ..) | BatchOp::Del(k) => k.clone(),
            };
            ops.push(BatchOp::Put(k, v, None));
        }
        ops
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (key(), value()).prop_map(|(k, v)| Step::Put(k, v)),
        3 => (key(), value(), ttl()).prop_map(|(k, v, t)| Step::PutTtl(k, v, t)),
        4 => key().prop_map(Step::Del),
        5 => batch().prop_map(Step::Batch),
        1 => Just(Step::Reopen),
        2 => Just(Step::TakeSnapshot),
        2 => any::<usize>().prop_map(Step::CheckSnapshot),
        1 => any::<usize>().prop_map(Step::DropSnapshot),
        1 => (prop::collection::vec(key(), 1..4), 60u8..140, 0u8..100).prop_map(|(k, n, big)| Step::Churn(k, n, big)),
        1 => Just(Step::Compact),
    ]
}

fn probe() -> impl Strategy<Value = Probe> {
    (
        bound_key(),
        bound_key(),
        prop::option::weighted(0.8, bound_key()),
        prop::collection::vec(key(), 0..6),
    )
        .prop_map(|(prefix, start, end, many)| Probe {
            prefix: prefix.into_iter().take(2).collect(),
            start,
            end,
            many,
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::sample::select(vec![0usize, 64, 128]),
        prop::sample::select(vec![0u64, 1 << 20]),
        4096u64..=65536,
        prop::sample::select(vec![512usize, 256 << 10]),
        any::<bool>(),
        prop::sample::select(vec![None, Some(2u64), Some(20)]),
        prop::sample::select(vec![0.2f64, 0.5]),
    )
        .prop_map(
            |(inline_threshold, cache_bytes, segment_size, write_buffer_bytes, always, background_ms, threshold)| {
                Config {
                    inline_threshold,
                    cache_bytes,
                    segment_size,
                    write_buffer_bytes,
                    always,
                    background_ms,
                    compaction_threshold: threshold,
                }
            },
        )
}

/// What a read of a key must return.
#[derive(Debug, PartialEq)]
enum Expect<'a> {
    Present(&'a [u8]),
    Absent,
    /// A 1 ms TTL key before the final check: present with this value, or absent.
    Either(&'a [u8]),
}

fn expect<'a>(model: &'a Model, k: &[u8], expired: bool) -> Expect<'a> {
    match model.get(k) {
        None => Expect::Absent,
        Some((v, Some(Ttl::Short))) => {
            if expired {
                Expect::Absent
            } else {
                Expect::Either(v)
            }
        }
        Some((v, _)) => Expect::Present(v),
    }
}

fn show(k: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(k))
}

fn check_value(got: Option<&[u8]>, exp: Expect<'_>, what: &str) {
    let ok = match (&exp, got) {
        (Expect::Present(v), Some(g)) => *v == g,
        (Expect::Absent, None) => true,
        (Expect::Either(_), None) => true,
        (Expect::Either(v), Some(g)) => *v == g,
        _ => false,
    };
    assert!(
        ok,
        "{what}: got {:?}, model expects {exp:?}",
        got.map(|g| format!("{} bytes", g.len()))
    );
}

/// Checks a scan result against the model restricted to `in_range`.
fn check_scan(
    got: Vec<(Vec<u8>, mantisdb_core::Value)>,
    model: &Model,
    in_range: impl Fn(&[u8]) -> bool,
    expired: bool,
    what: &str,
) {
    for w in got.windows(2) {
        assert!(
            w[0].0 < w[1].0,
            "{what}: keys not strictly ascending: {} then {}",
            show(&w[0].0),
            show(&w[1].0)
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in &got {
        assert!(in_range(k), "{what}: key {} is outside the range", show(k));
        let exp = expect(model, k, expired);
        assert_ne!(exp, Expect::Absent, "{what}: key {} should be absent", show(k));
        check_value(Some(v), exp, &format!("{what}: key {}", show(k)));
        seen.insert(k.clone());
    }
    for k in model.keys().filter(|k| in_range(k)) {
        if let Expect::Present(_) = expect(model, k, expired) {
            assert!(seen.contains(k), "{what}: key {} is missing", show(k));
        }
    }
}

fn collect(it: mantisdb_core::Iter, what: &str) -> Vec<(Vec<u8>, mantisdb_core::Value)> {
    it.collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{what}: iteration failed: {e}"))
}

/// Every read a probe asks for, through the database.
fn check_db(db: &Db, model: &Model, touched: &[Key], p: &Probe, expired: bool, ctx: &str) {
    for k in touched {
        let got = db.get(k).unwrap_or_else(|e| panic!("{ctx}: get failed: {e}"));
        check_value(
            got.as_deref(),
            expect(model, k, expired),
            &format!("{ctx}: get {}", show(k)),
        );
    }
    let many: Vec<&[u8]> = p.many.iter().map(Vec::as_slice).collect();
    let got = db.get_many(&many).unwrap();
    assert_eq!(got.len(), many.len());
    for (k, g) in many.iter().zip(&got) {
        check_value(
            g.as_deref(),
            expect(model, k, expired),
            &format!("{ctx}: get_many {}", show(k)),
        );
    }
    check_scan(
        collect(db.scan_prefix(b"").unwrap(), ctx),
        model,
        |_| true,
        expired,
        &format!("{ctx}: full scan"),
    );
    let prefix = &p.prefix;
    check_scan(
        collect(db.scan_prefix(prefix).unwrap(), ctx),
        model,
        |k| k.starts_with(prefix),
        expired,
        &format!("{ctx}: prefix scan {}", show(prefix)),
    );
    let (start, end) = (&p.start, p.end.as_deref());
    check_scan(
        collect(db.scan_range(start, end).unwrap(), ctx),
        model,
        |k| k >= start.as_slice() && end.is_none_or(|e| k < e),
        expired,
        &format!("{ctx}: scan_range [{}, {:?})", show(start), end.map(show)),
    );
    // Stats count every key holding a value (expired ones until reclaimed).
    let keys = db.stats().keys;
    let certain = model.values().filter(|(_, t)| *t != Some(Ttl::Short)).count() as u64;
    assert!(
        (certain..=model.len() as u64).contains(&keys),
        "{ctx}: stats().keys = {keys}, model has {certain}..={} keys",
        model.len()
    );
}

/// Every read of a held snapshot, against the model at the time it was taken.
fn check_snapshot(snap: &Snapshot, model: &Model, p: &Probe, ctx: &str) {
    let ctx = format!("{ctx}: snapshot at seq {}", snap.seq());
    for k in model.keys().chain(&p.many) {
        let got = snap.get(k).unwrap();
        check_value(
            got.as_deref(),
            expect(model, k, false),
            &format!("{ctx}: get {}", show(k)),
        );
    }
    let many: Vec<&[u8]> = p.many.iter().map(Vec::as_slice).collect();
    for (k, g) in many.iter().zip(snap.get_many(&many).unwrap()) {
        check_value(
            g.as_deref(),
            expect(model, k, false),
            &format!("{ctx}: get_many {}", show(k)),
        );
    }
    check_scan(
        collect(snap.scan_prefix(b""), &ctx),
        model,
        |_| true,
        false,
        &format!("{ctx}: full scan"),
    );
    let prefix = &p.prefix;
    check_scan(
        collect(snap.scan_prefix(prefix), &ctx),
        model,
        |k| k.starts_with(prefix),
        false,
        &format!("{ctx}: prefix scan"),
    );
    let (start, end) = (&p.start, p.end.as_deref());
    check_scan(
        collect(snap.scan_range(start, end), &ctx),
        model,
        |k| k >= start.as_slice() && end.is_none_or(|e| k < e),
        false,
        &format!("{ctx}: scan_range"),
    );
}

fn run_case(cfg: &Config, steps: &[(Step, Probe)]) {
    let dir = tempfile::tempdir().unwrap();
    let opts = cfg.options();
    let mut db = Some(Db::open(dir.path(), opts.clone()).unwrap());
    let mut model = Model::new();
    let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
    let mut universe: std::collections::BTreeSet<Key> = std::collections::BTreeSet::new();

    for (i, (step, probe)) in steps.iter().enumerate() {
        let ctx = format!("step {i} ({step:?})");
        let d = db.as_ref().unwrap();
        let mut touched: Vec<Key> = Vec::new();
        match step {
            Step::Put(k, v) => {
                d.put(k, v).unwrap();
                model.insert(k.clone(), (v.clone(), None));
                touched.push(k.clone());
            }
            Step::PutTtl(k, v, t) => {
                d.put_with_ttl(k, v, t.duration()).unwrap();
                model.insert(k.clone(), (v.clone(), Some(*t)));
                touched.push(k.clone());
            }
            Step::Del(k) => {
                d.delete(k).unwrap();
                model.remove(k);
                touched.push(k.clone());
            }
            Step::Batch(ops) => {
                let mut b = WriteBatch::new();
                for op in ops {
                    match op {
                        BatchOp::Put(k, v, None) => {
                            b.put(k.clone(), v.clone());
                            model.insert(k.clone(), (v.clone(), None));
                            touched.push(k.clone());
                        }
                        BatchOp::Put(k, v, Some(t)) => {
                            b.put_with_ttl(k.clone(), v.clone(), t.duration());
                            model.insert(k.clone(), (v.clone(), Some(*t)));
                            touched.push(k.clone());
                        }
                        BatchOp::Del(k) => {
                            b.delete(k.clone());
                            model.remove(k);
                            touched.push(k.clone());
                        }
                    }
                }
                d.write(&b).unwrap();
            }
            Step::Churn(keys, n, big) => {
                for i in 0..*n {
                    let k = &keys[i as usize % keys.len()];
                    if i % 3 == 2 {
                        d.delete(k).unwrap();
                        model.remove(k);
                    } else {
                        // Every `big`-th value goes to disk, the rest are small.
                        let mut v = format!("churn{i}").into_bytes();
                        if *big > 0 && i % big == 0 {
                            v.resize(150, b'z');
                        }
                        d.put(k, &v).unwrap();
                        model.insert(k.clone(), (v, None));
                    }
                }
                touched.extend(keys.iter().cloned());
            }
            Step::Compact => {
                d.compact().unwrap_or_else(|e| panic!("{ctx}: compact failed: {e}"));
                touched.extend(universe.iter().cloned());
            }
            Step::Reopen => {
                // Held snapshots pin the database open; check and release them first.
                for (s, m) in &snaps {
                    check_snapshot(s, m, probe, &ctx);
                }
                snaps.clear();
                let old = db.take().unwrap();
                old.close().unwrap();
                drop(old);
                let reopened =
                    Db::open(dir.path(), opts.clone()).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
                assert!(
                    reopened.recovery_report().truncated.is_empty(),
                    "{ctx}: clean close left a torn tail"
                );
                db = Some(reopened);
                touched.extend(universe.iter().cloned());
            }
            Step::TakeSnapshot => {
                let s = d.snapshot().unwrap();
                check_snapshot(&s, &model, probe, &ctx);
                snaps.push((s, model.clone()));
            }
            Step::CheckSnapshot(n) => {
                if !snaps.is_empty() {
                    let (s, m) = &snaps[n % snaps.len()];
                    check_snapshot(s, m, probe, &ctx);
                }
            }
            Step::DropSnapshot(n) => {
                if !snaps.is_empty() {
                    let idx = n % snaps.len();
                    snaps.remove(idx);
                }
            }
        }
        universe.extend(touched.iter().cloned());
        check_db(db.as_ref().unwrap(), &model, &touched, probe, false, &ctx);
    }

    // Every 1 ms TTL has passed: those keys are gone, live and after reopen.
    std::thread::sleep(Duration::from_millis(5));
    let all: Vec<Key> = universe.iter().cloned().collect();
    let p = Probe {
        prefix: Vec::new(),
        start: Vec::new(),
        end: None,
        many: all.clone(),
    };
    for (s, m) in &snaps {
        check_snapshot(s, m, &p, "end");
    }
    check_db(db.as_ref().unwrap(), &model, &all, &p, true, "end");
    snaps.clear();
    let d = db.take().unwrap();
    d.close().unwrap();
    drop(d);
    let d = Db::open(dir.path(), opts).unwrap();
    check_db(&d, &model, &all, &p, true, "end, after reopen");
}

fn proptest_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn engine_matches_the_model(cfg in config(), steps in prop::collection::vec((step(), probe()), 1..48)) {
        run_case(&cfg, &steps);
    }
}

#[test]
fn reversed_and_empty_scan_bounds_are_empty_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        },
    )
    .unwrap();
    for k in [&b"a"[..], b"b", b"c"] {
        db.put(k, k).unwrap();
    }
    assert_eq!(db.scan_range(b"c", Some(b"a")).unwrap().count(), 0);
    assert_eq!(db.scan_range(b"b", Some(b"b")).unwrap().count(), 0);
    assert_eq!(db.scan_prefix(b"\xff").unwrap().count(), 0);
    assert_eq!(db.scan_range(b"", None).unwrap().count(), 3);
}
