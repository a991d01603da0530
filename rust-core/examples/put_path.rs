//! The write path alone, for instruction counts per write:
//! `cargo run --release --example put_path -- [MODE] [N]` writes N puts of
//! 100-byte values to keys drawn from 100,000 (`key:000000012345`, as
//! redis-benchmark's `-r 100000` makes them), `--sync never`, one thread,
//! each write as the C ABI's batch call makes it (`write_borrowed_begin`).
//! MODE `mset` writes them as batches of 10 (Redis MSET), `incr` increments
//! the keys instead (`update_begin`), `overwrite` writes every key once
//! before the N puts (so each of them replaces a version, where most of
//! the plain mode's puts at N = 40,000 create their key). Run it under
//! `valgrind --tool=callgrind` at two N and divide the difference of the
//! totals by the difference of N: the instructions of one write, without
//! the open and close.

use mantisdb_core::{Db, Expiry, Options, SyncPolicy, Update};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("set", String::as_str).to_string();
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);
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
        format!("key:{:012}", x % 100_000)
    };
    if mode == "overwrite" {
        for i in 0..100_000u64 {
            let k = format!("key:{i:012}");
            db.write_borrowed_begin(std::iter::once((false, k.as_bytes(), &value[..], Expiry::Never)))
                .expect("write");
        }
    }
    match mode.as_str() {
        "mset" => {
            for _ in 0..n / 10 {
                let keys: Vec<String> = (0..10).map(|_| next_key()).collect();
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
    db.close().expect("close");
}
