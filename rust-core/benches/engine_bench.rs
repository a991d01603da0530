//! Restart, compaction and transaction costs, each beside its baseline in the
//! same run:
//! - reopen of a 1M-key database from hint files (checked against segment
//!   checksums, the default, applied by one thread per core and by one
//!   thread; and trusted without the check) vs a full replay of every
//!   segment (hint files removed before each open);
//! - put throughput under a steady overwrite load with background compaction
//!   on vs off;
//! - small transactions (4 puts) vs a plain 4-put batch (`Never`).
//!
//! Sizes scale with MANTIS_BENCH_KEYS (default 1,000,000).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};

fn keys() -> u64 {
    std::env::var("MANTIS_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn never() -> Options {
    Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key0000000000000";
    let digits = format!("{i:013}");
    k[3..].copy_from_slice(digits.as_bytes());
    k
}

fn remove_hints(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hint") {
            fs::remove_file(p).unwrap();
        }
    }
}

fn reopen(c: &mut Criterion) {
    let n = keys();
    let dir = tempfile::tempdir_in(std::env::var("MANTIS_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    {
        let db = Db::open(dir.path(), never()).unwrap();
        let value = [7u8; 100];
        let mut b = WriteBatch::new();
        for i in 0..n {
            b.put(key(i).to_vec(), value.to_vec());
            if b.len() == 1000 {
                db.write(&b).unwrap();
                b.clear();
            }
        }
        db.write(&b).unwrap();
        // Close the active segment so every segment gets a hint file.
        db.compact().unwrap();
    }
    let hints = Db::open(dir.path(), never()).unwrap();
    assert_eq!(hints.stats().keys, n);
    drop(hints);
    let snapshot_hints: Vec<(std::path::PathBuf, Vec<u8>)> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let restore = || {
        for (p, b) in &snapshot_hints {
            fs::write(p, b).unwrap();
        }
    };
    let mut g = c.benchmark_group("reopen");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(n));
    g.bench_function(BenchmarkId::new("full_replay", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                remove_hints(dir.path());
                let opts = Options {
                    background_compaction: false,
                    ..never()
                };
                let t = Instant::now();
                let db = Db::open(dir.path(), opts).unwrap();
                total += t.elapsed();
                assert_eq!(db.recovery_report().hinted_segments, 0);
                drop(db);
            }
            restore();
            total
        })
    });
    // The default opens apply hint files on one thread per core;
    // `hints_verified_1t` is the same open on one thread.
    for (name, verify, threads) in [
        ("hints_verified", true, 0),
        ("hints_verified_1t", true, 1),
        ("hints_trusted", false, 0),
    ] {
        g.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    restore();
                    let opts = Options {
                        verify_segments_on_open: verify,
                        recovery_threads: threads,
                        background_compaction: false,
                        ..never()
                    };
                    let t = Instant::now();
                    let db = Db::open(dir.path(), opts).unwrap();
                    total += t.elapsed();
                    assert!(db.recovery_report().hinted_segments > 0);
                    drop(db);
                }
                total
            })
        });
    }
    g.finish();
}

fn compaction_under_load(c: &mut Criterion) {
    let live = 100_000u64;
    let mut g = c.benchmark_group("overwrite_load");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(1));
    for (name, background) in [("compaction_off", false), ("compaction_on", true)] {
        let dir = tempfile::tempdir_in(std::env::var("MANTIS_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
        let db = Db::open(
            dir.path(),
            Options {
                segment_size: 4 << 20,
                background_compaction: background,
                compaction_threshold: 0.5,
                compaction_interval: Duration::from_millis(50),
                ..never()
            },
        )
        .unwrap();
        let value = [3u8; 200];
        for i in 0..live {
            db.put(&key(i), &value).unwrap();
        }
        let mut x = 0x2545_f491u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                db.put(&key(x % live), &value).unwrap();
            })
        });
        let s = db.stats();
        println!(
            "{name}: {} compactions, live {} B, dead {} B, {} segments",
            s.compactions, s.live_bytes, s.dead_bytes, s.segments
        );
    }
    g.finish();
}

fn txn_vs_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::var("MANTIS_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let db = Db::open(dir.path(), never()).unwrap();
    let value = [5u8; 100];
    let mut g = c.benchmark_group("commit_4_puts");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("write_batch", |b| {
        b.iter(|| {
            let mut batch = WriteBatch::new();
            for j in 0..4 {
                batch.put(key((i * 4 + j) % 1_000_000).to_vec(), value.to_vec());
            }
            db.write(&batch).unwrap();
            i += 1;
        })
    });
    g.bench_function("transaction", |b| {
        b.iter(|| {
            let mut t = db.begin().unwrap();
            for j in 0..4 {
                t.put(&key((i * 4 + j) % 1_000_000), &value).unwrap();
            }
            t.commit().unwrap();
            i += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, txn_vs_batch, compaction_under_load, reopen);
criterion_main!(benches);
