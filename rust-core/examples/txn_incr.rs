//! Measures concurrent read-modify-write transactions under
//! `SyncPolicy::Always`, the way the RESP server runs `INCR`: THREADS
//! threads (default 50) each begin a transaction, read a random one of
//! 100,000 counters, write it back plus one and commit, retrying on a
//! conflict, for 2 seconds per round over ROUNDS rounds (default 5). Prints
//! each round's commits/s, the process CPU per commit (utime + stime from
//! `/proc/self/stat`), commits per fdatasync and conflicts, then medians.
//!
//! ```sh
//! cargo run --release --example txn_incr [DIR [ROUNDS [THREADS]]]
//! ```
//!
//! DIR (default: the current directory) should be on the disk to measure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Error, Options, SyncPolicy};
use rand::Rng;

/// CPU time of this process so far (utime + stime), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    // Fields after the command name (which ends with ')'): utime and stime
    // are the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').expect("a /proc stat line") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// One round: (commits/s, CPU microseconds per commit).
fn round(dir: &std::path::Path, threads: usize) -> (f64, f64) {
    let tmp = tempfile::tempdir_in(dir).expect("creating a temporary directory");
    let opts = Options {
        sync: SyncPolicy::Always,
        ..Options::default()
    };
    let db = Db::open(tmp.path(), opts).expect("opening the database");
    let conflicts = AtomicU64::new(0);
    let run_for = Duration::from_secs(2);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (db, conflicts) = (db.clone(), &conflicts);
                s.spawn(move || {
                    let mut rng = rand::rng();
                    let mut n = 0u64;
                    while start.elapsed() < run_for {
                        let key = format!("counter:{:06}", rng.random_range(0..100_000));
                        loop {
                            let mut t = db.begin().expect("begin");
                            let v: u64 = t
                                .get(key.as_bytes())
                                .expect("get")
                                .map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap());
                            t.put(key.as_bytes(), (v + 1).to_string().as_bytes()).expect("put");
                            match t.commit() {
                                Ok(()) => break,
                                Err(Error::Conflict(_)) => {
                                    conflicts.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => panic!("commit: {e}"),
                            }
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let per_sec = total as f64 / secs;
    let us_per = cpu * 1e6 / total as f64;
    println!(
        "{threads} threads: {per_sec:>8.0} commits/s, CPU {:.0}% of a core ({us_per:.1} us/commit), {:.1} commits per fdatasync, {} conflicts",
        cpu / secs * 100.0,
        db.stats().avg_group_commit,
        conflicts.load(Ordering::Relaxed)
    );
    (per_sec, us_per)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .map_or(5, |r| r.parse().expect("ROUNDS is a number"));
    let threads: usize = std::env::args()
        .nth(3)
        .map_or(50, |t| t.parse().expect("THREADS is a number"));
    let (rates, cpus): (Vec<f64>, Vec<f64>) = (0..rounds).map(|_| round(std::path::Path::new(&dir), threads)).unzip();
    println!(
        "median over {rounds} rounds: {:.0} commits/s, {:.1} us CPU per commit",
        median(rates),
        median(cpus)
    );
}
