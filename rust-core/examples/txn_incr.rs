//! Measures concurrent read-modify-write transactions under
//! `SyncPolicy::Always`, the way the RESP server runs `INCR`: THREADS
//! threads (default 50) each begin a transaction, read a random one of
//! 100,000 counters, write it back plus one and commit, retrying on a
//! conflict, for 2 seconds per round over ROUNDS rounds (default 5). Prints
//! each round's commits/s, the process CPU per commit (utime + stime from
//! `getrusage`), commits per fdatasync and conflicts, then medians.
//!
//! ```sh
//! cargo run --release --example txn_incr [DIR [ROUNDS [THREADS]]]
//! ```
//!
//! DIR (default: the current directory) should be on the disk to measure.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mantisdb_core::{Db, Error, Options, SyncPolicy};
use rand::Rng;

#[path = "support/measure.rs"]
mod measure;
use measure::{arg, median, run_threads};

/// One round: (commits/s, CPU microseconds per commit).
fn round(dir: &Path, threads: usize) -> (f64, f64) {
    let tmp = tempfile::tempdir_in(dir).expect("creating a temporary directory");
    let opts = Options {
        sync: SyncPolicy::Always,
        ..Options::default()
    };
    let db = Db::open(tmp.path(), opts).expect("opening the database");
    let conflicts = AtomicU64::new(0);
    let run = run_threads(threads, Duration::from_secs(2), |_| {
        let (db, conflicts) = (db.clone(), &conflicts);
        let mut rng = rand::rng();
        move |_| {
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
        }
    });
    let secs = run.wall.as_secs_f64();
    let cpu = run.cpu.as_secs_f64();
    let per_sec = run.ops as f64 / secs;
    let us_per = cpu * 1e6 / run.ops as f64;
    println!(
        "{threads} threads: {per_sec:>8.0} commits/s, CPU {:.0}% of a core ({us_per:.1} us/commit), {:.1} commits per fdatasync, {} conflicts",
        cpu / secs * 100.0,
        db.stats().avg_group_commit,
        conflicts.load(Ordering::Relaxed)
    );
    (per_sec, us_per)
}

fn main() {
    let dir: PathBuf = arg(1, "DIR", ".".into());
    let rounds: usize = arg(2, "ROUNDS", 5);
    let threads: usize = arg(3, "THREADS", 50);
    let (mut rates, mut cpus): (Vec<f64>, Vec<f64>) = (0..rounds).map(|_| round(&dir, threads)).unzip();
    println!(
        "median over {rounds} rounds: {:.0} commits/s, {:.1} us CPU per commit",
        median(&mut rates),
        median(&mut cpus)
    );
}
