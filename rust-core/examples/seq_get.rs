//! Point gets of keys in ascending order, the access of the benchmark
//! mode's Sequential Reads test (`internal/bench/suite.go`), through the C
//! API the Go engine calls (`mantis_get_into`).
//!
//! KEYS keys (`k/` and ten digits, as the benchmark's main key space) with
//! VALUE-byte values (1 KiB by default: on disk, read through the 64 MiB
//! value cache and the memory-mapped segments) are loaded in key order
//! with `Never`. Then, in each of ROUNDS rounds, THREADS threads take
//! operation numbers from one shared counter for SECS seconds and get key
//! `number % KEYS`, so that the threads read neighbouring keys at the same
//! time, as the benchmark's workers do (ORDER `order`, the default); with
//! ORDER `random` each get takes a uniformly random key instead (the point
//! reads of Memory Pressure and High Throughput). Each round prints its
//! gets per second of wall time and the process CPU per get; the last line
//! the medians.
//!
//! With ROUNDS 0 the example makes one pass of GETS gets on one thread in
//! the function `read_pass` (never inlined), for instruction counts of that
//! pass alone:
//!
//! ```sh
//! cargo run --release --example seq_get [DIR [ROUNDS [KEYS [VALUE [THREADS [SECS [GETS [ORDER]]]]]]]]
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*read_pass*' \
//!     target/release/examples/seq_get DIR 0 200000 1024 1 0 400000
//! ```

use std::hint::black_box;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mantisdb_core::ffi::{
    mantis_db_free, mantis_get_into, mantis_open, mantis_options_default, mantis_put, MantisDb, MantisStatus,
    MANTIS_SYNC_NEVER,
};

#[path = "support/measure.rs"]
mod measure;
use measure::{arg, median, run_threads};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The benchmark's key of `id`: `k/` and ten digits.
fn bench_key(id: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    write!(&mut k[..], "k/{id:010}").unwrap();
    k
}

/// A handle the reading threads share.
struct Handle(*mut MantisDb);
// SAFETY: the C API's handle may be used from any thread at once.
unsafe impl Sync for Handle {}

/// Gets `key` into `dst`; the value's length.
fn get(db: &Handle, key: &[u8], dst: &mut [u8]) -> usize {
    let mut n = 0usize;
    let mut err = std::ptr::null_mut();
    // SAFETY: `db` is a live handle (freed only after every reader ended);
    // `key` and `dst` are live buffers of the lengths passed.
    let st = unsafe {
        mantis_get_into(
            db.0,
            key.as_ptr(),
            key.len(),
            dst.as_mut_ptr(),
            dst.len(),
            &mut n,
            &mut err,
        )
    };
    assert!(st == MantisStatus::MantisOk, "get");
    n
}

/// `gets` gets of keys `0..` in order (modulo `n`) on this thread.
#[inline(never)]
fn read_pass(db: &Handle, n: u64, gets: u64, dst: &mut [u8]) -> usize {
    let mut total = 0;
    for i in 0..gets {
        total += get(db, &bench_key(i % n), dst);
    }
    total
}

fn main() {
    let parent: String = arg(1, "DIR", ".".into());
    let rounds: usize = arg(2, "ROUNDS", 7);
    let n: u64 = arg(3, "KEYS", 500_000);
    let value_len: usize = arg(4, "VALUE", 1024);
    let threads: usize = arg(5, "THREADS", 2);
    let secs: f64 = arg(6, "SECS", 3.0);
    let gets: u64 = arg(7, "GETS", 2 * n);
    let random = match arg(8, "ORDER", String::from("order")).as_str() {
        "order" => false,
        "random" => true,
        other => panic!("ORDER is order or random, not {other}"),
    };

    let tmp = tempfile::tempdir_in(&parent).expect("creating a temporary directory");
    let path = tmp.path().to_str().expect("a UTF-8 path").as_bytes();
    let mut opts = mantis_options_default();
    opts.sync = MANTIS_SYNC_NEVER;
    opts.background_compaction = false;
    let mut db: *mut MantisDb = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: `path` and `opts` are live for the call; `db` and `err` are
    // writable out-pointers.
    let st = unsafe { mantis_open(path.as_ptr(), path.len(), &opts, &mut db, &mut err) };
    assert!(st == MantisStatus::MantisOk, "open");
    let value: Vec<u8> = (0..value_len).map(|i| b'a' + (i % 26) as u8).collect();
    for id in 0..n {
        let k = bench_key(id);
        // SAFETY: `db` is live; the key and value are live buffers of the lengths passed.
        let st = unsafe { mantis_put(db, k.as_ptr(), k.len(), value.as_ptr(), value.len(), &mut err) };
        assert!(st == MantisStatus::MantisOk, "put");
    }
    let h = Handle(db);
    let mut dst = vec![0u8; value_len.max(4096)];

    if rounds == 0 {
        let total = read_pass(&h, n, gets, &mut dst);
        assert_eq!(total, gets as usize * value_len);
        println!("{gets} gets of {n} keys in order, one thread");
    } else {
        let (mut rates, mut cpus) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let next = AtomicU64::new(0);
            let run = run_threads(threads, Duration::from_secs_f64(secs), |t| {
                let mut dst = vec![0u8; value_len.max(4096)];
                let (h, next) = (&h, &next);
                let mut rng = StdRng::seed_from_u64(t as u64 + 1);
                move |_| {
                    let i = if random {
                        rng.random_range(0..n)
                    } else {
                        next.fetch_add(1, Ordering::Relaxed)
                    };
                    black_box(get(h, &bench_key(i % n), &mut dst));
                }
            });
            let rate = run.ops as f64 / run.wall.as_secs_f64();
            let cpu = run.cpu.as_nanos() as f64 / run.ops as f64;
            println!("round {r}: {rate:.0} gets/s, {cpu:.0} ns CPU per get");
            rates.push(rate);
            cpus.push(cpu);
        }
        println!(
            "median: {:.0} gets/s, {:.0} ns CPU per get ({threads} threads, {n} keys of {value_len} B, {})",
            median(&mut rates),
            median(&mut cpus),
            if random { "random keys" } else { "keys in order" }
        );
    }
    // SAFETY: every reader has ended; the handle is freed once.
    unsafe { mantis_db_free(h.0) };
}
