//! Measures group commit on this machine's disk: puts under `SyncPolicy::Always`
//! from 1 writer and from 64 writer threads, 3 seconds each, twice.
//!
//! ```sh
//! cargo run --release --example group_commit [DIR]
//! ```
//!
//! DIR (default: the current directory) should be on the disk to measure.

use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options};

fn rate(dir: &std::path::Path, threads: usize) -> f64 {
    let tmp = tempfile::tempdir_in(dir).expect("creating a temporary directory");
    let db = Db::open(tmp.path(), Options::default()).expect("opening the database");
    let run_for = Duration::from_secs(3);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let db = db.clone();
                s.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < run_for {
                        db.put(format!("t{t}-{n}").as_bytes(), &[1u8; 100]).expect("put");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("writer thread")).sum()
    });
    let per_sec = total as f64 / start.elapsed().as_secs_f64();
    println!(
        "{threads:>3} writers: {per_sec:>9.0} commits/s, {:.1} commits per fdatasync",
        db.stats().avg_group_commit
    );
    per_sec
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = std::path::Path::new(&dir);
    for _ in 0..2 {
        let one = rate(dir, 1);
        let many = rate(dir, 64);
        println!("64 writers / 1 writer: {:.2}x", many / one);
    }
}
