//! Measures group commit on this machine's disk: puts under `SyncPolicy::Always`
//! from 1 writer and from 64 writer threads, 2 seconds each, with segment
//! preallocation on (the default) and off, alternated, over ROUNDS rounds
//! (default 5); then the median of each and the ratios of the medians. Each
//! line also gives the process's CPU time (user + system) per commit, which
//! the disk's latency does not distort as it does the rates.
//!
//! ```sh
//! cargo run --release --example group_commit [DIR [ROUNDS [VALUE_BYTES]]]
//! ```
//!
//! DIR (default: the current directory) should be on the disk to measure;
//! values are VALUE_BYTES long (default 100).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mantisdb_core::{Db, Options};

#[path = "support/measure.rs"]
mod measure;
use measure::{arg, median, run_threads};

fn rate(dir: &Path, threads: usize, preallocate: bool, value_len: usize) -> f64 {
    let tmp = tempfile::tempdir_in(dir).expect("creating a temporary directory");
    let opts = Options {
        preallocate,
        ..Options::default()
    };
    let db = Db::open(tmp.path(), opts).expect("opening the database");
    let run = run_threads(threads, Duration::from_secs(2), |t| {
        let db = db.clone();
        let value = vec![1u8; value_len];
        move |n| db.put(format!("t{t}-{n}").as_bytes(), &value).expect("put")
    });
    let per_sec = run.ops as f64 / run.wall.as_secs_f64();
    let cpu_us = run.cpu.as_secs_f64() * 1e6 / run.ops.max(1) as f64;
    println!(
        "preallocate {preallocate:<5} {threads:>3} writers: {per_sec:>9.0} commits/s, {:.1} commits per fdatasync, \
         {cpu_us:.1} us CPU per commit",
        db.stats().avg_group_commit
    );
    per_sec
}

fn main() {
    let dir: PathBuf = arg(1, "DIR", ".".into());
    let rounds: usize = arg(2, "ROUNDS", 5);
    let value_len: usize = arg(3, "VALUE_BYTES", 100);
    // [preallocate][one writer, 64 writers]
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for _ in 0..rounds {
        for preallocate in [false, true] {
            let one = rate(&dir, 1, preallocate, value_len);
            let many = rate(&dir, 64, preallocate, value_len);
            println!("preallocate {preallocate:<5} 64 writers / 1 writer: {:.2}x", many / one);
            rates[preallocate as usize][0].push(one);
            rates[preallocate as usize][1].push(many);
        }
    }
    let [[off1, off64], [on1, on64]] = rates.map(|r| r.map(|mut v| median(&mut v)));
    println!("medians over {rounds} rounds, commits/s:");
    println!(
        "  preallocate off: 1 writer {off1:.0}, 64 writers {off64:.0}, 64/1 = {:.2}x",
        off64 / off1
    );
    println!(
        "  preallocate on:  1 writer {on1:.0}, 64 writers {on64:.0}, 64/1 = {:.2}x",
        on64 / on1
    );
    println!(
        "  on / off: 1 writer {:.2}x, 64 writers {:.2}x",
        on1 / off1,
        on64 / off64
    );
}
