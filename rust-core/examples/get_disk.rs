//! Point gets of values on disk beside a raw `crossbeam_skiplist::SkipMap`,
//! timed by the CPU time of the reading thread (user + system, from
//! `CLOCK_THREAD_CPUTIME_ID`) as well as by wall time: on a machine shared
//! with other work, wall time per get mostly measures the scheduler, while
//! the thread's CPU time measures the work a get does.
//!
//! KEYS keys (`key:{:012}`, 16 bytes) with 100-byte values are loaded in a
//! shuffled order into both; the database runs with `Never`, inline
//! threshold 0 and no value cache, so every get is a positioned read (the
//! page cache is warm: every key is read once before timing). Each of ROUNDS
//! rounds times GETS gets in the shuffled order on each side, alternating;
//! the medians and the ratio (SkipMap time / MantisDB time, so 1.0 is
//! parity and higher is better for MantisDB) are printed.
//!
//! ```sh
//! cargo run --release --example get_disk [DIR [ROUNDS [KEYS [GETS]]]]
//! ```

use std::hint::black_box;
use std::time::Instant;

use crossbeam_skiplist::SkipMap;
use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

#[path = "support/measure.rs"]
mod measure;
use measure::{arg, key, median, thread_cpu};

/// Times `gets` reads starting at `from` in `keys`: (CPU ns per get, wall ns per get).
fn time(keys: &[[u8; 16]], from: usize, gets: usize, read: impl Fn(&[u8])) -> (f64, f64) {
    let (c0, w0) = (thread_cpu(), Instant::now());
    for i in 0..gets {
        read(&keys[(from + i) % keys.len()]);
    }
    let (c, w) = (thread_cpu() - c0, w0.elapsed());
    (c.as_nanos() as f64 / gets as f64, w.as_nanos() as f64 / gets as f64)
}

fn main() {
    let parent: String = arg(1, "DIR", ".".into());
    let rounds: usize = arg(2, "ROUNDS", 7);
    let n: u64 = arg(3, "KEYS", 1_000_000);
    let gets: usize = arg(4, "GETS", 200_000);
    let value = [0x5au8; 100];
    let mut ids: Vec<u64> = (0..n).collect();
    ids.shuffle(&mut StdRng::seed_from_u64(0x6d61_6e74_6973));
    let keys: Vec<[u8; 16]> = ids.into_iter().map(key).collect();

    let raw: SkipMap<Vec<u8>, Vec<u8>> = SkipMap::new();
    for k in &keys {
        raw.insert(k.to_vec(), value.to_vec());
    }
    let tmp = tempfile::tempdir_in(&parent).expect("creating a temporary directory");
    let db = Db::open(
        tmp.path(),
        Options {
            sync: SyncPolicy::Never,
            cache_bytes: 0,
            inline_threshold: 0,
            background_compaction: false,
            ..Options::default()
        },
    )
    .expect("opening the database");
    let mut b = WriteBatch::new();
    for chunk in keys.chunks(1000) {
        b.clear();
        for k in chunk {
            b.put(k.to_vec(), value.to_vec());
        }
        db.write(&b).expect("loading");
    }
    db.sync().expect("syncing");
    for k in &keys {
        assert_eq!(db.get(k).expect("get").as_deref(), Some(&value[..]));
    }

    let (mut raw_cpu, mut raw_wall, mut db_cpu, mut db_wall) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        let from = r * gets;
        let (c, w) = time(&keys, from, gets, |k| {
            black_box(raw.get(k).map(|e| e.value().clone()));
        });
        raw_cpu.push(c);
        raw_wall.push(w);
        let (c, w) = time(&keys, from, gets, |k| {
            black_box(db.get(k).expect("get"));
        });
        db_cpu.push(c);
        db_wall.push(w);
    }
    let (rc, rw, dc, dw) = (
        median(&mut raw_cpu),
        median(&mut raw_wall),
        median(&mut db_cpu),
        median(&mut db_wall),
    );
    println!("{n} keys, {rounds} rounds of {gets} gets, medians per get:");
    println!("skipmap   cpu {rc:>8.1} ns  wall {rw:>8.1} ns");
    println!("mantisdb  cpu {dc:>8.1} ns  wall {dw:>8.1} ns");
    println!("ratio (skipmap / mantisdb): cpu {:.3}x  wall {:.3}x", rc / dc, rw / dw);
}
