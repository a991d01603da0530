//! Measures what the tuning options do, one setting per run, so two runs
//! that differ in one option show its effect (docs/guide/tuning.md).
//!
//! ```sh
//! cargo run --release --example tuning -- --sync never --segment 4MiB
//! ```
//!
//! Options (the engine's defaults unless given): `--sync always|never|interval:MS`,
//! `--cache SIZE`, `--inline BYTES`, `--segment SIZE`; the workload:
//! `--keys N` (100000), `--value BYTES` (256), `--writes N` (200000),
//! `--writers N` (4), `--reads N` (1000000), `--readers N` (2),
//! `--dir PATH` (where the temporary database goes; default the current
//! directory, which should be a real disk: tmpfs has no real fsync).
//!
//! Phases: load every key in atomic batches of 1,000; overwrite random keys
//! with single puts from the writers (each put is one commit: the sync policy
//! shows here); read random keys from the readers (cache and inline threshold
//! show here); wait 2 s for background compaction; close and reopen (the
//! segment size shows in the disk use and the reopen time).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};

struct Workload {
    keys: u64,
    value: usize,
    writes: u64,
    writers: u64,
    reads: u64,
    readers: u64,
    dir: PathBuf,
}

fn parse_size(s: &str) -> u64 {
    let lower = s.to_ascii_lowercase();
    let (num, mult) = [("gib", 1u64 << 30), ("mib", 1 << 20), ("kib", 1 << 10), ("b", 1)]
        .iter()
        .find_map(|(suffix, mult)| lower.strip_suffix(suffix).map(|n| (n.to_string(), *mult)))
        .unwrap_or((lower.clone(), 1));
    num.trim()
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("{s:?} is not a size like 4096, 64KiB or 64MiB"))
        * mult
}

fn parse_args() -> (Options, Workload) {
    let mut opts = Options::default();
    let mut w = Workload {
        keys: 100_000,
        value: 256,
        writes: 200_000,
        writers: 4,
        reads: 1_000_000,
        readers: 2,
        dir: PathBuf::from("."),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, val] = pair else {
            panic!("{} needs a value", pair[0])
        };
        let n = || {
            val.parse::<u64>()
                .unwrap_or_else(|_| panic!("{flag} wants a number, got {val:?}"))
        };
        match flag.as_str() {
            "--sync" => {
                opts.sync = match val.as_str() {
                    "always" => SyncPolicy::Always,
                    "never" => SyncPolicy::Never,
                    other => match other.strip_prefix("interval:").map(str::parse::<u64>) {
                        Some(Ok(ms)) => SyncPolicy::Interval(Duration::from_millis(ms)),
                        _ => panic!("--sync wants always, never or interval:MS, got {other:?}"),
                    },
                }
            }
            "--cache" => opts.cache_bytes = parse_size(val),
            "--inline" => opts.inline_threshold = n() as usize,
            "--segment" => opts.segment_size = parse_size(val),
            "--keys" => w.keys = n(),
            "--value" => w.value = n() as usize,
            "--writes" => w.writes = n(),
            "--writers" => w.writers = n().max(1),
            "--reads" => w.reads = n(),
            "--readers" => w.readers = n().max(1),
            "--dir" => w.dir = PathBuf::from(val),
            _ => panic!("unknown option {flag} (see the top of examples/tuning.rs)"),
        }
    }
    (opts, w)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key:000000000000";
    k[4..].copy_from_slice(format!("{i:012}").as_bytes());
    k
}

/// A small xorshift generator: each thread its own, seeded by its index.
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Runs `total` operations split over `threads`; returns operations a second.
fn run_threads(threads: u64, total: u64, op: impl Fn(&mut u64) + Sync) -> f64 {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (op, done) = (&op, &done);
            s.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (t + 1);
                while done.fetch_add(1, Ordering::Relaxed) < total {
                    op(&mut rng);
                }
            });
        }
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Resident memory of this process in MiB (Linux), or None.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    let (opts, w) = parse_args();
    let tmp = tempfile::tempdir_in(&w.dir).expect("creating the database directory");
    println!(
        "options: sync {:?}, cache {} B, inline {} B, segment {} B; workload: {} keys of {} B, {} writes by {} writers, {} reads by {} readers",
        opts.sync, opts.cache_bytes, opts.inline_threshold, opts.segment_size, w.keys, w.value, w.writes, w.writers, w.reads, w.readers
    );
    let db = Db::open(tmp.path(), opts.clone()).expect("open");
    let value = vec![b'v'; w.value];

    let start = Instant::now();
    let mut batch = WriteBatch::new();
    for i in 0..w.keys {
        batch.put(key(i).to_vec(), value.clone());
        if batch.len() == 1000 || i + 1 == w.keys {
            db.write(&batch).expect("load");
            batch.clear();
        }
    }
    println!(
        "load:    {:>10.0} keys/s (atomic batches of 1000)",
        w.keys as f64 / start.elapsed().as_secs_f64()
    );

    let before = db.stats();
    let rate = run_threads(w.writers, w.writes, |rng| {
        db.put(&key(next_rand(rng) % w.keys), &value).expect("put");
    });
    let after = db.stats();
    let syncs = after.syncs - before.syncs;
    let per_sync = if syncs == 0 {
        0.0
    } else {
        (after.synced_commits - before.synced_commits) as f64 / syncs as f64
    };
    println!("writes:  {rate:>10.0} puts/s ({syncs} syncs, {per_sync:.1} commits per sync)");

    let before = db.stats();
    let rate = run_threads(w.readers, w.reads, |rng| {
        let v = db.get(&key(next_rand(rng) % w.keys)).expect("get").expect("present");
        assert_eq!(v.len(), w.value);
    });
    let cache = db.stats().cache;
    let (hits, misses) = (cache.hits - before.cache.hits, cache.misses - before.cache.misses);
    let hit_rate = if hits + misses == 0 {
        "n/a (no cache lookups)".to_string()
    } else {
        format!("{:.1}%", 100.0 * hits as f64 / (hits + misses) as f64)
    };
    let rss = rss_mib().map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    println!(
        "reads:   {rate:>10.0} gets/s (cache hit rate {hit_rate}, cache holds {} entries in {:.1} MiB; process RSS {rss})",
        cache.entries,
        cache.resident_bytes as f64 / (1 << 20) as f64
    );

    std::thread::sleep(Duration::from_secs(2));
    let st = db.stats();
    println!(
        "disk:    {:.1} MiB in {} segments (live {:.1} MiB, dead {:.1} MiB, {} compactions)",
        dir_bytes(tmp.path()) as f64 / (1 << 20) as f64,
        st.segments,
        st.live_bytes as f64 / (1 << 20) as f64,
        st.dead_bytes as f64 / (1 << 20) as f64,
        st.compactions
    );
    db.close().expect("close");
    drop(db);

    let start = Instant::now();
    let db = Db::open(tmp.path(), opts).expect("reopen");
    let took = start.elapsed();
    let rep = db.recovery_report();
    println!(
        "reopen:  {:>10.1} ms ({} segments from hint files, {} records replayed)",
        took.as_secs_f64() * 1000.0,
        rep.hinted_segments,
        rep.records
    );
    db.close().expect("close");
}
