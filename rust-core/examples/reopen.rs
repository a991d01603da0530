//! Measures reopening a database of KEYS keys (16-byte keys, which the
//! index keeps inline, 100-byte values, written in batches of 1,000 in key
//! order or, with ORDER `random`, in a shuffled order, so each hint file
//! lists keys from all over the key space; closed so every segment has a
//! hint file), in ROUNDS interleaved rounds of:
//!
//! - `full_replay`: every hint file removed, every segment decoded (and its
//!   hint written again, as a real open without hints does);
//! - `hints_verified`: from hint files, each segment's checksum checked
//!   (the default), with `recovery_threads` 1 and the default (one per core);
//! - `hints_trusted`: from hint files without the checksum check.
//!
//! For each it prints the median wall time and the median CPU time of the
//! process (user + system, all threads) per open, then the ratios of the
//! wall-time medians to `full_replay`'s (and of the CPU-time medians). CPU time shows the work done
//! whatever the machine's load; wall time is what a restart waits.
//!
//! ```sh
//! cargo run --release --example reopen [DIR [ROUNDS [KEYS [ONLY [ORDER]]]]]
//! ```
//!
//! ONLY, when given (and not empty), runs only the cases whose name
//! contains it (for a profile of one path). ORDER is `sequential` (the
//! default) or `random`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::seq::SliceRandom;
use rand::SeedableRng;

#[path = "support/measure.rs"]
mod measure;
use measure::process_cpu;

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key0000000000000";
    k[3..].copy_from_slice(format!("{i:013}").as_bytes());
    k
}

fn opts(verify: bool, threads: usize) -> Options {
    Options {
        sync: SyncPolicy::Never,
        background_compaction: false,
        verify_segments_on_open: verify,
        recovery_threads: threads,
        ..Options::default()
    }
}

fn hints(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hint"))
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parent = args.get(1).map_or(".", String::as_str);
    let rounds: usize = args.get(2).map_or(7, |s| s.parse().expect("ROUNDS"));
    let n: u64 = args.get(3).map_or(1_000_000, |s| s.parse().expect("KEYS"));
    let only = args.get(4).map_or("", String::as_str);
    let order = args.get(5).map_or("sequential", String::as_str);
    let mut ids: Vec<u64> = (0..n).collect();
    match order {
        "sequential" => {}
        "random" => ids.shuffle(&mut rand::rngs::StdRng::seed_from_u64(1)),
        other => panic!("ORDER must be sequential or random, not {other}"),
    }
    let tmp = tempfile::tempdir_in(parent).expect("creating a temporary directory");
    let dir = tmp.path();
    {
        let db = Db::open(dir, opts(true, 0)).unwrap();
        let mut b = WriteBatch::new();
        for &i in &ids {
            b.put(key(i).to_vec(), [7u8; 100].to_vec());
            if b.len() == 1000 {
                db.write(&b).unwrap();
                b.clear();
            }
        }
        db.write(&b).unwrap();
        db.compact().unwrap();
        db.close().unwrap();
    }
    let saved = hints(dir);
    println!(
        "{n} keys written in {order} order, {} hinted segments, {} cores",
        saved.len(),
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    let cases: [(&str, bool, bool, usize); 4] = [
        ("full_replay", false, true, 0),
        ("hints_verified/1_thread", true, true, 1),
        ("hints_verified", true, true, 0),
        ("hints_trusted", true, false, 0),
    ];
    let mut wall = vec![Vec::new(); cases.len()];
    let mut cpu = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (c, &(name, with_hints, verify, threads)) in cases.iter().enumerate() {
            if !name.contains(only) {
                continue;
            }
            for (p, _) in hints(dir) {
                fs::remove_file(p).unwrap();
            }
            if with_hints {
                for (p, b) in &saved {
                    fs::write(p, b).unwrap();
                }
            }
            let (t, c0) = (Instant::now(), process_cpu());
            let db = Db::open(dir, opts(verify, threads)).unwrap();
            let (w, u) = (t.elapsed(), process_cpu() - c0);
            assert_eq!(db.stats().keys, n);
            assert_eq!(db.recovery_report().hinted_segments > 0, with_hints);
            drop(db);
            wall[c].push(w);
            cpu[c].push(u);
        }
    }
    let (base, base_cpu) = if wall[0].is_empty() {
        (Duration::ZERO, Duration::ZERO)
    } else {
        (median(&mut wall[0].clone()), median(&mut cpu[0].clone()))
    };
    for (c, (name, ..)) in cases.iter().enumerate() {
        if wall[c].is_empty() {
            continue;
        }
        let w = median(&mut wall[c]);
        let u = median(&mut cpu[c]);
        println!(
            "{name:<24} wall {:>8.1} ms  cpu {:>8.1} ms  full_replay/this {:.2}x (cpu {:.2}x)",
            w.as_secs_f64() * 1e3,
            u.as_secs_f64() * 1e3,
            base.as_secs_f64() / w.as_secs_f64(),
            base_cpu.as_secs_f64() / u.as_secs_f64()
        );
    }
}
