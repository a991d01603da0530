//! The write path alone, for instruction counts per write:
//! `cargo run --release --example put_path -- [MODE] [N] [KEYS]` writes N
//! puts of 100-byte values to keys drawn from KEYS (default 100,000;
//! `key:000000012345`, as redis-benchmark's `-r 100000` makes them),
//! `--sync never`, one thread, each write as the C ABI's batch call makes
//! it (`write_borrowed_begin`).
//! MODE `mset` writes them as batches of 10 (Redis MSET), `batch` as
//! batches of 100, `incr` increments the keys instead (`update_begin`),
//! `overwrite` writes every key once before the N puts (so each of them
//! replaces a version, where most of the plain mode's puts at N = 40,000
//! create their key); `mset-overwrite` and `batch-overwrite` are the
//! batched modes after the same prefill. Run it under
//! `valgrind --tool=callgrind` at two N and divide the difference of the
//! totals by the difference of N: the instructions of one write, without
//! the open and close. The wall time and the writing thread's CPU time per
//! measured write, and the process's minor page faults and resident-set
//! growth during the writes, go to stderr.

use mantisdb_core::{Db, Expiry, Options, SyncPolicy, Update};

/// CPU time of the calling thread, in ns (the writer's own work, without
/// the background thread's and without time spent descheduled).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one `timespec` into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The process's resident set, in KiB.
fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Minor page faults of the process so far (fresh pages mapped).
fn minor_faults() -> i64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    ru.ru_minflt
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("set", String::as_str).to_string();
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let keys: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Db::open(
        dir.path(),
        Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        },
    )
    .expect("open");
    let value = [b'x'; 100];
    // A fixed xorshift sequence, so every run writes the same keys.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_key = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("key:{:012}", x % keys)
    };
    if mode.ends_with("overwrite") {
        for i in 0..keys {
            let k = format!("key:{i:012}");
            db.write_borrowed_begin(std::iter::once((false, k.as_bytes(), &value[..], Expiry::Never)))
                .expect("write");
        }
    }
    let batch = match mode.as_str() {
        "mset" | "mset-overwrite" => 10,
        "batch" | "batch-overwrite" => 100,
        _ => 1,
    };
    let start = std::time::Instant::now();
    let cpu_start = thread_cpu_ns();
    let faults_start = minor_faults();
    let rss_start = rss_kib();
    match mode.as_str() {
        _ if batch > 1 => {
            for _ in 0..n / batch {
                let keys: Vec<String> = (0..batch).map(|_| next_key()).collect();
                db.write_borrowed_begin(keys.iter().map(|k| (false, k.as_bytes(), &value[..], Expiry::Never)))
                    .expect("write");
            }
        }
        "incr" => {
            for _ in 0..n {
                let k = next_key();
                db.update_begin(k.as_bytes(), &Update::IncrBy(1)).expect("update");
            }
        }
        _ => {
            for _ in 0..n {
                let k = next_key();
                db.write_borrowed_begin(std::iter::once((false, k.as_bytes(), &value[..], Expiry::Never)))
                    .expect("write");
            }
        }
    }
    // The wall time of the measured writes (stderr, so callgrind runs
    // keep a quiet stdout): for side-by-side timing outside valgrind.
    eprintln!(
        "mode={mode} writes={n} keys={keys} ns_per_write={:.0} cpu_ns_per_write={:.0} minor_faults={} \
         rss_growth_mib={:.1}",
        start.elapsed().as_nanos() as f64 / n as f64,
        (thread_cpu_ns() - cpu_start) as f64 / n as f64,
        minor_faults() - faults_start,
        (rss_kib() - rss_start) as f64 / 1024.0
    );
    db.close().expect("close");
}
