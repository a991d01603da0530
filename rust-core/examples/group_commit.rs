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

use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options};

fn rate(dir: &std::path::Path, threads: usize, preallocate: bool, value_len: usize) -> f64 {
    let tmp = tempfile::tempdir_in(dir).expect("creating a temporary directory");
    let opts = Options {
        preallocate,
        ..Options::default()
    };
    let db = Db::open(tmp.path(), opts).expect("opening the database");
    let run_for = Duration::from_secs(2);
    let cpu_before = cpu_time();
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let db = db.clone();
                let value = vec![1u8; value_len];
                s.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < run_for {
                        db.put(format!("t{t}-{n}").as_bytes(), &value).expect("put");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("writer thread")).sum()
    });
    let per_sec = total as f64 / start.elapsed().as_secs_f64();
    let cpu_us = (cpu_time() - cpu_before).as_secs_f64() * 1e6 / total.max(1) as f64;
    println!(
        "preallocate {preallocate:<5} {threads:>3} writers: {per_sec:>9.0} commits/s, {:.1} commits per fdatasync, \
         {cpu_us:.1} us CPU per commit",
        db.stats().avg_group_commit
    );
    per_sec
}

/// CPU time (user + system) of the whole process so far.
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer, which points
    // to a zeroed, properly aligned `rusage` owned by this frame.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: getrusage returned 0, so it filled the struct (it was zeroed before anyway).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
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
    let value_len: usize = std::env::args()
        .nth(3)
        .map_or(100, |v| v.parse().expect("VALUE_BYTES is a number"));
    let dir = std::path::Path::new(&dir);
    // [preallocate][one writer, 64 writers]
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for _ in 0..rounds {
        for preallocate in [false, true] {
            let one = rate(dir, 1, preallocate, value_len);
            let many = rate(dir, 64, preallocate, value_len);
            println!("preallocate {preallocate:<5} 64 writers / 1 writer: {:.2}x", many / one);
            rates[preallocate as usize][0].push(one);
            rates[preallocate as usize][1].push(many);
        }
    }
    let [[off1, off64], [on1, on64]] = rates.map(|r| r.map(median));
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
