//! The value cache beside two established cache crates, in the same run.
//!
//! 1. Hit ratio: a read-through loop (get; on a miss, insert) over keys drawn
//!    from Zipf distributions, at two cache sizes. The table goes to stdout and
//!    to `target/cache_hit_ratio.md`. It is not timed.
//! 2. Throughput (criterion): 90% gets and 10% inserts over Zipf 0.99 keys, at
//!    1 and 2 threads, each cache a member of the same group.
//!
//! Every cache weighs an entry the same way, `value.len() + ENTRY_OVERHEAD`,
//! and gets the same byte budget and the same key sequence, so the ratios
//! compare policies and concurrency, not accounting.
//!
//! Run with `cargo bench --bench cache_bench`. Under `cargo test --benches`
//! (no `--bench` flag) the hit-ratio part runs on a short trace as a smoke test;
//! a name filter that does not match `hit_ratio` skips it.

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mantisdb_core::cache::{CacheStats, ValueCache, ENTRY_OVERHEAD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// Distinct keys: 1..=KEYS.
const KEYS: u64 = 1_000_000;
const MIN_VALUE: u64 = 64;
const MAX_VALUE: u64 = 1024;

/// A value's size, derived from its key (splitmix64), in MIN_VALUE..=MAX_VALUE.
fn value_len(key: u64) -> usize {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (MIN_VALUE + z % (MAX_VALUE - MIN_VALUE + 1)) as usize
}

fn weight(value: &[u8]) -> u64 {
    value.len() as u64 + ENTRY_OVERHEAD
}

/// The charge of every key's value: what a cache holding all keys would need.
fn total_bytes() -> u64 {
    (1..=KEYS).map(|key| value_len(key) as u64 + ENTRY_OVERHEAD).sum()
}

fn zipf_trace(s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(KEYS as f64, s).expect("valid Zipf parameters");
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| zipf.sample(&mut rng) as u64).collect()
}

/// The operations each contender offers, so one loop drives them all.
trait Contender: Sync {
    fn get(&self, key: u64) -> Option<Arc<[u8]>>;
    fn insert(&self, key: u64, value: Arc<[u8]>);
    /// Brings the cache's policy up to date (moka applies it asynchronously).
    fn settle(&self) {}
}

impl Contender for ValueCache<u64> {
    fn get(&self, key: u64) -> Option<Arc<[u8]>> {
        ValueCache::get(self, &key)
    }
    fn insert(&self, key: u64, value: Arc<[u8]>) {
        ValueCache::insert(self, key, value)
    }
}

impl Contender for moka::sync::Cache<u64, Arc<[u8]>> {
    fn get(&self, key: u64) -> Option<Arc<[u8]>> {
        moka::sync::Cache::get(self, &key)
    }
    fn insert(&self, key: u64, value: Arc<[u8]>) {
        moka::sync::Cache::insert(self, key, value)
    }
    fn settle(&self) {
        self.run_pending_tasks();
    }
}

#[derive(Clone)]
struct BytesWeighter;

impl quick_cache::Weighter<u64, Arc<[u8]>> for BytesWeighter {
    fn weight(&self, _key: &u64, value: &Arc<[u8]>) -> u64 {
        weight(value)
    }
}

type QuickCache = quick_cache::sync::Cache<u64, Arc<[u8]>, BytesWeighter>;

impl Contender for QuickCache {
    fn get(&self, key: u64) -> Option<Arc<[u8]>> {
        QuickCache::get(self, &key)
    }
    fn insert(&self, key: u64, value: Arc<[u8]>) {
        QuickCache::insert(self, key, value)
    }
}

const NAMES: [&str; 3] = ["mantisdb ValueCache", "moka 0.12", "quick_cache 0.7"];

fn contenders(capacity: u64) -> [Box<dyn Contender>; 3] {
    let moka = moka::sync::Cache::builder()
        .max_capacity(capacity)
        .weigher(|_key: &u64, value: &Arc<[u8]>| u32::try_from(weight(value)).unwrap_or(u32::MAX))
        .build();
    let average = (MIN_VALUE + MAX_VALUE) / 2 + ENTRY_OVERHEAD;
    let items = usize::try_from(capacity / average).unwrap_or(usize::MAX);
    [
        Box::new(ValueCache::<u64>::new(capacity)),
        Box::new(moka),
        Box::new(QuickCache::with_weighter(items, capacity, BytesWeighter)),
    ]
}

/// One read-through access; returns whether it hit.
fn read_through(cache: &dyn Contender, key: u64) -> bool {
    if cache.get(key).is_some() {
        return true;
    }
    cache.insert(key, vec![0u8; value_len(key)].into());
    // moka admits and evicts in batches, off the insert path; settling after
    // every insert holds it to its byte budget at each step, as the others
    // are, so its hit ratio is neither flattered by overshooting the budget
    // nor penalised by a policy it has not applied yet.
    cache.settle();
    false
}

/// Whether this is a real run (`cargo bench`) rather than the smoke test that
/// `cargo test --benches` makes of it.
fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn hit_ratio_table(_c: &mut Criterion) {
    // The table is no criterion benchmark, so honour a name filter by hand:
    // `cargo bench --bench cache_bench -- get90` skips it.
    let mut args = std::env::args().skip(1);
    if args.any(|arg| !arg.starts_with('-') && !"hit_ratio".contains(arg.as_str())) {
        return;
    }
    let full = full_run();
    let (warm_up, measured) = if full { (1_000_000, 2_000_000) } else { (10_000, 20_000) };
    let total = total_bytes();
    let mut table = String::new();
    writeln!(
        table,
        "Read-through hit ratio, {KEYS} keys, values {MIN_VALUE}..={MAX_VALUE} bytes \
         (charge = len + {ENTRY_OVERHEAD}, all keys = {} MiB), {warm_up} warm-up + {measured} \
         measured accesses.\n",
        total >> 20
    )
    .unwrap();
    writeln!(table, "| Zipf s | capacity | {} |", NAMES.join(" | ")).unwrap();
    writeln!(table, "|---|---|---:|---:|---:|").unwrap();
    for (i, s) in [0.9, 0.99, 1.1].into_iter().enumerate() {
        let trace = zipf_trace(s, warm_up + measured, 42 + i as u64);
        for percent in [1, 10] {
            let capacity = total * percent / 100;
            let mut row = format!("| {s} | {percent}% |");
            for (name, cache) in NAMES.iter().zip(contenders(capacity)) {
                let started = Instant::now();
                for &key in &trace[..warm_up] {
                    read_through(&*cache, key);
                }
                let hits = trace[warm_up..]
                    .iter()
                    .filter(|&&key| read_through(&*cache, key))
                    .count();
                let ratio = 100.0 * hits as f64 / measured as f64;
                write!(row, " {ratio:.2}% |").unwrap();
                eprintln!(
                    "hit ratio s={s} {percent}% {name}: {ratio:.2}% in {:?}",
                    started.elapsed()
                );
            }
            writeln!(table, "{row}").unwrap();
        }
    }
    println!("\n{table}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let written = std::fs::create_dir_all(&path).and_then(|()| std::fs::write(path.join("cache_hit_ratio.md"), &table));
    if let Err(err) = written {
        eprintln!("could not write target/cache_hit_ratio.md: {err}");
    }
    check_own_counters(full);
}

/// Our cache's counters agree with what the loop observed.
fn check_own_counters(full: bool) {
    let accesses = if full { 200_000 } else { 10_000 };
    let cache = ValueCache::<u64>::new(total_bytes() / 100);
    let hits = zipf_trace(0.99, accesses, 7)
        .into_iter()
        .filter(|&key| read_through(&cache, key))
        .count() as u64;
    let stats: CacheStats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (hits, accesses as u64 - hits));
    assert!(stats.resident_bytes <= stats.capacity_bytes);
}

/// Operations per thread per iteration.
const BATCH: usize = 10_000;
/// Precomputed operations per thread in a full run (a multiple of BATCH).
const OPS: usize = 100 * BATCH;

/// One thread's precomputed work: keys, whether each is an insert, and a
/// value for every size so inserts do not measure the allocator.
struct Workload {
    ops: Vec<(u64, bool)>,
    values: Vec<Arc<[u8]>>,
}

impl Workload {
    fn new(seed: u64, len: usize) -> Self {
        let keys = zipf_trace(0.99, len, seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let ops = keys.into_iter().map(|key| (key, rng.random_bool(0.1))).collect();
        let values = (MIN_VALUE..=MAX_VALUE)
            .map(|len| vec![0u8; len as usize].into())
            .collect();
        Self { ops, values }
    }

    fn run(&self, cache: &dyn Contender, iters: u64) {
        for i in 0..iters as usize {
            let start = i * BATCH % self.ops.len();
            for &(key, insert) in &self.ops[start..start + BATCH] {
                if insert {
                    let value = &self.values[value_len(key) - MIN_VALUE as usize];
                    cache.insert(key, Arc::clone(value));
                } else {
                    black_box(cache.get(key));
                }
            }
        }
    }
}

fn throughput(c: &mut Criterion) {
    let capacity = total_bytes() / 10;
    let (ops, warm_up) = if full_run() { (OPS, 1_000_000) } else { (BATCH, 1_000) };
    let workloads = [Workload::new(1, ops), Workload::new(2, ops)];
    let caches = contenders(capacity);
    for cache in &caches {
        for &key in &zipf_trace(0.99, warm_up, 3) {
            read_through(&**cache, key);
        }
    }
    let mut group = c.benchmark_group("get90_insert10_zipf0.99");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for threads in [1, 2] {
        group.throughput(Throughput::Elements((BATCH * threads) as u64));
        for (name, cache) in NAMES.iter().zip(&caches) {
            let cache = &**cache;
            group.bench_function(BenchmarkId::new(*name, format!("{threads} threads")), |b| {
                b.iter_custom(|iters| {
                    let started = Instant::now();
                    std::thread::scope(|scope| {
                        for workload in &workloads[1..threads] {
                            scope.spawn(move || workload.run(cache, iters));
                        }
                        workloads[0].run(cache, iters);
                    });
                    started.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hit_ratio_table, throughput);
criterion_main!(benches);
