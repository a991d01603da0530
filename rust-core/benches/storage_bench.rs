//! Criterion benchmarks of the storage core, each beside a raw
//! `crossbeam_skiplist::SkipMap<Vec<u8>, Vec<u8>>` doing the same work in the
//! same run, so the result is a ratio read off one run (`benches/ratios.py`
//! prints the table; `docs/performance/core-vs-skipmap.md` at the repository
//! root holds the figures).
//!
//! Every group holds 1M keys (`key:{:012}`, 16 bytes) with 100-byte values,
//! loaded once per fixture in a shuffled order into both engines. Members are
//! named `skipmap/<N>t` and `mantisdb/<N>t` (N threads, total throughput);
//! one iteration is one operation, one batch of 100 puts, or one scan of
//! 1,000 keys, and criterion reports elements per second.
//!
//! - `get_cached`: `Never`, inline threshold 0, cache 512 MiB (every value
//!   cached); random-order gets, 1 and 2 threads.
//! - `get_inline`: `Never`, inline threshold 128 (values live in the index).
//! - `get_disk`: `Never`, inline threshold 0, cache 0: every get is a pread
//!   (the page cache is warm).
//! - `put`: `Never`, default cache and inline threshold; puts of fresh keys
//!   in a scattered order (never an overwrite), 1 and 2 threads.
//! - `batch_put`: as `put`, 100 puts per `WriteBatch`; an element is one put.
//! - `prefix_scan`: 1,000-key prefix scans of the `get_cached` database
//!   (`mantisdb_inline`: of the `get_inline` one); an element is one owned
//!   key and value.
//! - `group_commit`: `Always` (the default options), 1 writer vs 64 writer
//!   threads; `fdatasync/1w` is a bare record-sized write + fdatasync, the
//!   device's own rate in the same run.
//!
//! The baseline clones values out (`Vec<u8>`) because a user needs an owned
//! value; MantisDB returns a shared `Arc<[u8]>`. Both sides insert from
//! borrowed bytes (the SkipMap pays for the two `to_vec`s it needs).
//!
//! Environment: `MANTIS_BENCH_KEYS` (default 1,000,000, a multiple of 1,000)
//! shrinks the key set for a smoke run; `MANTIS_BENCH_DIR` (default cargo's
//! `CARGO_TARGET_TMPDIR`) is where databases are created: it must be a real
//! disk, or the group commit figures measure nothing.

use std::hint::black_box;
use std::io::Write as _;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_skiplist::SkipMap;
use mantisdb_core::{prefix_successor, Db, Options, SyncPolicy, WriteBatch};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use tempfile::TempDir;

/// A 16-byte key `key:{:012}`.
type Key = [u8; KEY_LEN];
type RawMap = SkipMap<Vec<u8>, Vec<u8>>;

const KEY_LEN: usize = 16;
const VALUE: [u8; 100] = [0x5a; 100];
const BATCH: usize = 100;
/// Keys under one scan prefix (`key:` plus the first 9 of 12 digits).
const SCAN_KEYS: usize = 1000;
const GROUP_COMMIT_WRITERS: usize = 64;
const SEED: u64 = 0x6d61_6e74_6973;

fn key(id: u64) -> Key {
    let mut k = [0u8; KEY_LEN];
    write!(&mut k[..], "key:{id:012}").expect("id below 10^12");
    k
}

/// Number of preloaded keys.
fn n_keys() -> u64 {
    static N: OnceLock<u64> = OnceLock::new();
    *N.get_or_init(|| {
        let n =
            std::env::var("MANTIS_BENCH_KEYS").map_or(1_000_000, |s| s.parse().expect("MANTIS_BENCH_KEYS is a number"));
        assert!(
            n >= SCAN_KEYS as u64 && n.is_multiple_of(SCAN_KEYS as u64),
            "MANTIS_BENCH_KEYS must be a multiple of 1000"
        );
        n
    })
}

/// Every preloaded key, shuffled: the load order and the random read order.
fn shuffled_keys() -> &'static [Key] {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut ids: Vec<u64> = (0..n_keys()).collect();
        ids.shuffle(&mut StdRng::seed_from_u64(SEED));
        ids.into_iter().map(key).collect()
    })
}

/// The i-th fresh key of a fixture: ids past the preloaded ones, scattered
/// over 2^36 ids by an odd multiplier (a bijection), so inserts land all over
/// the key space and never repeat.
fn fresh_key(i: u64) -> Key {
    const MASK: u64 = (1 << 36) - 1;
    key(n_keys() + (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & MASK))
}

fn bench_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("MANTIS_BENCH_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
        std::fs::create_dir_all(&dir).expect("creating the bench directory");
        let (fstype, device) = filesystem_of(&dir);
        eprintln!("bench databases in {} ({fstype} on {device})", dir.display());
        if fstype == "tmpfs" || fstype == "ramfs" {
            eprintln!(
                "WARNING: {fstype} has no real fsync: group_commit figures are meaningless; set MANTIS_BENCH_DIR"
            );
        }
        dir
    })
}

/// Filesystem type and device of the mount holding `dir`, from /proc/self/mounts.
fn filesystem_of(dir: &Path) -> (String, String) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && dir.starts_with(f[1])).then(|| (f[1].len(), f[2].to_string(), f[0].to_string()))
        })
        .max_by_key(|m| m.0)
        .map_or(("unknown".into(), "unknown".into()), |m| (m.1, m.2))
}

fn load_raw() -> RawMap {
    let start = Instant::now();
    let map = SkipMap::new();
    for k in shuffled_keys() {
        map.insert(k.to_vec(), VALUE.to_vec());
    }
    eprintln!(
        "  (loaded {} keys into a SkipMap in {:.2?})",
        map.len(),
        start.elapsed()
    );
    map
}

/// A database in a temporary directory; the directory is removed after the
/// database is closed (field order).
struct DbFixture {
    db: Db,
    _dir: TempDir,
}

fn load_db(opts: Options) -> DbFixture {
    let start = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("mantis-bench-")
        .tempdir_in(bench_dir())
        .expect("creating a bench database directory");
    let db = Db::open(dir.path(), opts).expect("opening the bench database");
    let mut batch = WriteBatch::new();
    for chunk in shuffled_keys().chunks(1000) {
        batch.clear();
        for k in chunk {
            batch.put(k.to_vec(), VALUE.to_vec());
        }
        db.write(&batch).expect("preloading");
    }
    db.sync().expect("syncing the preload");
    eprintln!(
        "  (loaded {} keys into MantisDB in {:.2?})",
        db.stats().keys,
        start.elapsed()
    );
    DbFixture { db, _dir: dir }
}

fn never(cache_bytes: u64, inline_threshold: usize) -> Options {
    Options {
        sync: SyncPolicy::Never,
        cache_bytes,
        inline_threshold,
        ..Options::default()
    }
}

/// Runs `work(first, ops)` on `threads` threads, splitting the operations
/// `0..iters` into one contiguous share each, and returns the wall time from a
/// common start to the last thread's end (thread start-up is not timed).
fn timed_threads(threads: usize, iters: u64, work: impl Fn(u64, u64) + Sync) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        work(0, iters);
        return start.elapsed();
    }
    let barrier = Barrier::new(threads + 1);
    let (share, rest) = (iters / threads as u64, iters % threads as u64);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let first = t * share + t.min(rest);
                let ops = share + u64::from(t < rest);
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    work(first, ops);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("bench thread panicked");
        }
        start.elapsed()
    })
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, elements: u64) {
    group
        .throughput(Throughput::Elements(elements))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn id(engine: &str, threads: usize) -> BenchmarkId {
    BenchmarkId::new(engine, format!("{threads}t"))
}

/// One member reading keys in the shuffled order; the read position carries
/// over from call to call so every key gets its turn.
fn bench_reads<'f, F: Sync + 'f>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    threads: usize,
    fixture: impl Fn() -> &'f F,
    read: impl Fn(&F, &Key) + Sync,
) {
    let cursor = AtomicUsize::new(0);
    group.bench_function(id(engine, threads), |b| {
        let f = fixture();
        let keys = shuffled_keys();
        b.iter_custom(|iters| {
            timed_threads(threads, iters, |_, ops| {
                let ops = ops as usize;
                let mut j = cursor.fetch_add(ops, Ordering::Relaxed) % keys.len();
                for _ in 0..ops {
                    read(f, &keys[j]);
                    j += 1;
                    if j == keys.len() {
                        j = 0;
                    }
                }
            })
        })
    });
}

fn raw_get(map: &RawMap, k: &Key) {
    black_box(map.get(&k[..]).map(|e| e.value().clone()));
}

fn db_get(f: &DbFixture, k: &Key) {
    black_box(f.db.get(k).expect("get"));
}

/// Checks that `db` answers every key with the value, which also warms the
/// cache (and the page cache) before timing.
fn verified(f: DbFixture) -> DbFixture {
    let start = Instant::now();
    for k in shuffled_keys() {
        let v = f.db.get(k).expect("get").expect("preloaded key present");
        assert_eq!(&*v, &VALUE[..]);
    }
    eprintln!("  (read back every key in {:.2?})", start.elapsed());
    f
}

/// Fixtures read by several groups, each loaded on first use and dropped
/// (databases closed, directories removed) at the end of the run.
#[derive(Default)]
struct Shared {
    raw: OnceLock<RawMap>,
    cached: OnceLock<DbFixture>,
    inline: OnceLock<DbFixture>,
    disk: OnceLock<DbFixture>,
}

impl Shared {
    /// The baseline holding every preloaded key.
    fn raw(&self) -> &RawMap {
        self.raw.get_or_init(load_raw)
    }

    /// Every value in the value cache, none inline.
    fn cached(&self) -> &DbFixture {
        self.cached.get_or_init(|| verified(load_db(never(512 << 20, 0))))
    }

    /// Every value inline in the index.
    fn inline(&self) -> &DbFixture {
        self.inline.get_or_init(|| verified(load_db(never(0, 128))))
    }

    /// No cache and nothing inline: every get is a pread.
    fn disk(&self) -> &DbFixture {
        self.disk.get_or_init(|| verified(load_db(never(0, 0))))
    }
}

fn get_group<'s>(c: &mut Criterion, name: &str, shared: &'s Shared, db: impl Fn() -> &'s DbFixture) {
    let mut group = c.benchmark_group(name);
    configure(&mut group, 1);
    for threads in [1, 2] {
        bench_reads(&mut group, "skipmap", threads, || shared.raw(), raw_get);
        bench_reads(&mut group, "mantisdb", threads, &db, db_get);
    }
    group.finish();
}

/// One member inserting fresh keys into its own preloaded fixture: each
/// call generates its keys untimed, then `threads` threads insert disjoint
/// halves. With `batch`, one element is a batch of `batch` puts.
fn bench_inserts<F: Sync>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    threads: usize,
    per_iter: usize,
    make: impl Fn() -> F,
    insert: impl Fn(&F, &[Key]) + Sync,
) {
    let fixture = OnceLock::new();
    let next = AtomicU64::new(0);
    group.bench_function(id(engine, threads), |b| {
        let f = fixture.get_or_init(&make);
        b.iter_custom(|iters| {
            let n = iters * per_iter as u64;
            let first = next.fetch_add(n, Ordering::Relaxed);
            let keys: Vec<Key> = (first..first + n).map(fresh_key).collect();
            timed_threads(threads, iters, |first, ops| {
                let (start, end) = (first as usize * per_iter, (first + ops) as usize * per_iter);
                insert(f, &keys[start..end]);
            })
        })
    });
}

fn put(c: &mut Criterion) {
    let mut group = c.benchmark_group("put");
    configure(&mut group, 1);
    for threads in [1, 2] {
        bench_inserts(&mut group, "skipmap", threads, 1, load_raw, |map, keys| {
            for k in keys {
                map.insert(k.to_vec(), VALUE.to_vec());
            }
        });
        bench_inserts(
            &mut group,
            "mantisdb",
            threads,
            1,
            || {
                load_db(never(
                    Options::default().cache_bytes,
                    Options::default().inline_threshold,
                ))
            },
            |f, keys| {
                for k in keys {
                    f.db.put(k, &VALUE).expect("put");
                }
            },
        );
    }
    group.finish();
}

fn batch_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_put");
    configure(&mut group, BATCH as u64);
    bench_inserts(&mut group, "skipmap", 1, BATCH, load_raw, |map, keys| {
        for k in keys {
            map.insert(k.to_vec(), VALUE.to_vec());
        }
    });
    bench_inserts(
        &mut group,
        "mantisdb",
        1,
        BATCH,
        || {
            load_db(never(
                Options::default().cache_bytes,
                Options::default().inline_threshold,
            ))
        },
        |f, keys| {
            let mut batch = WriteBatch::new();
            for chunk in keys.chunks(BATCH) {
                batch.clear();
                for k in chunk {
                    batch.put(k.to_vec(), VALUE.to_vec());
                }
                f.db.write(&batch).expect("write");
            }
        },
    );
    group.finish();
}

/// The prefixes `key:{:09}`, each covering 1,000 preloaded keys, shuffled.
fn scan_prefixes() -> Vec<Vec<u8>> {
    let mut ids: Vec<u64> = (0..n_keys() / SCAN_KEYS as u64).collect();
    ids.shuffle(&mut StdRng::seed_from_u64(SEED + 1));
    ids.into_iter().map(|i| format!("key:{i:09}").into_bytes()).collect()
}

/// One member scanning the prefixes in a shuffled order; `scan` returns how
/// many entries it collected, which must be the 1,000 keys of the prefix.
fn bench_scans<'f, F: 'f>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    fixture: impl Fn() -> &'f F,
    mut scan: impl FnMut(&F, &[u8]) -> usize,
) {
    let prefixes = scan_prefixes();
    let mut next = 0;
    group.bench_function(id(engine, 1), |b| {
        let f = fixture();
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                assert_eq!(scan(f, &prefixes[next]), SCAN_KEYS);
                next = (next + 1) % prefixes.len();
            }
            start.elapsed()
        })
    });
}

fn prefix_scan(c: &mut Criterion, shared: &Shared) {
    let mut group = c.benchmark_group("prefix_scan");
    configure(&mut group, SCAN_KEYS as u64);
    let mut raw_out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(SCAN_KEYS);
    bench_scans(
        &mut group,
        "skipmap",
        || shared.raw(),
        |map, prefix| {
            let upper = prefix_successor(prefix).expect("prefix has a successor");
            raw_out.clear();
            for e in map.range::<[u8], _>((Bound::Included(prefix), Bound::Excluded(&upper[..]))) {
                raw_out.push((e.key().clone(), e.value().clone()));
            }
            black_box(&raw_out);
            raw_out.len()
        },
    );
    let mut db_out = Vec::with_capacity(SCAN_KEYS);
    let mut db_scan = |f: &DbFixture, prefix: &[u8]| {
        db_out.clear();
        for item in f.db.scan_prefix(prefix).expect("scan") {
            db_out.push(item.expect("scan item"));
        }
        black_box(&db_out);
        db_out.len()
    };
    bench_scans(&mut group, "mantisdb", || shared.cached(), &mut db_scan);
    // The same scan over inline values: no value cache lookup per key.
    bench_scans(&mut group, "mantisdb_inline", || shared.inline(), &mut db_scan);
    group.finish();
}

/// `writers` threads each put `iters` fresh keys under `SyncPolicy::Always`;
/// one element is one put, so throughput is the total commit rate. The
/// `fdatasync/1w` member appends a record-sized write and syncs it, the
/// device's own rate in the same run, which bounds the one-writer figure.
fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("fdatasync", "1w"), |b| {
        let dir = tempfile::Builder::new()
            .prefix("mantis-bench-")
            .tempdir_in(bench_dir())
            .expect("creating a bench directory");
        let mut file = std::fs::File::create(dir.path().join("fdatasync.log")).expect("creating the sync file");
        // A put's record: frame and op headers, key, value.
        let record = [0xa5u8; 31 + KEY_LEN + VALUE.len()];
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                file.write_all(&record)
                    .and_then(|()| file.sync_data())
                    .expect("write and sync");
            }
            start.elapsed()
        })
    });
    for writers in [1, GROUP_COMMIT_WRITERS] {
        group.throughput(Throughput::Elements(writers as u64));
        let fixture: OnceLock<DbFixture> = OnceLock::new();
        let next = AtomicU64::new(0);
        group.bench_function(BenchmarkId::new("mantisdb", format!("{writers}w")), |b| {
            let f = fixture.get_or_init(|| {
                let dir = tempfile::Builder::new()
                    .prefix("mantis-bench-")
                    .tempdir_in(bench_dir())
                    .expect("creating a bench database directory");
                let db = Db::open(dir.path(), Options::default()).expect("opening the bench database");
                DbFixture { db, _dir: dir }
            });
            b.iter_custom(|iters| {
                let first = next.fetch_add(iters * writers as u64, Ordering::Relaxed);
                timed_threads(writers, iters * writers as u64, |share, ops| {
                    for i in first + share..first + share + ops {
                        f.db.put(&fresh_key(i), &VALUE).expect("put");
                    }
                })
            })
        });
        if let Some(f) = fixture.get() {
            let s = f.db.stats();
            eprintln!(
                "group_commit/{writers}w: {} commits in {} fdatasyncs, {:.1} commits per sync",
                s.synced_commits, s.syncs, s.avg_group_commit
            );
        }
    }
    group.finish();
}

fn main() {
    let shared = Shared::default();
    let mut c = Criterion::default().configure_from_args();
    get_group(&mut c, "get_cached", &shared, || shared.cached());
    get_group(&mut c, "get_inline", &shared, || shared.inline());
    get_group(&mut c, "get_disk", &shared, || shared.disk());
    put(&mut c);
    batch_put(&mut c);
    prefix_scan(&mut c, &shared);
    group_commit(&mut c);
    c.final_summary();
}
