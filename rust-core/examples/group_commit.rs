//! Measures group commit on this machine's disk: puts under `SyncPolicy::Always`
//! from 1 writer and from 64 writer threads, 2 seconds each, with the log's
//! segments written three ways, alternated, over ROUNDS rounds (default 5);
//! then the median of each and the ratios of the medians. Each line also
//! gives the process's CPU time (user + system) per commit, which the
//! disk's latency does not distort as it does the rates.
//!
//! - `off`: no preallocation (`preallocate: false`): every write appends,
//!   and every fdatasync also commits the grown file length.
//! - `zeroed`: preallocation into new files (`recycle_segments: 0`): the
//!   writer zeroes each segment ahead of its records, so the zeros are
//!   written too.
//! - `recycled`: preallocation with retired segment files reused (the
//!   default): before the 1-writer run, a fill of overwritten 1 MiB values
//!   and two compactions leave the active segment in a reused file and
//!   [`POOL`] - 1 more kept, which the 64-writer run (started on the same
//!   database) rolls into; both runs write over blocks written before,
//!   with neither zeros nor length changes. The fill is synced and not timed.
//!
//! ```sh
//! cargo run --release --example group_commit [DIR [ROUNDS [VALUE_BYTES [MODES]]]]
//! ```
//!
//! DIR (default: the current directory) should be on the disk to measure;
//! values are VALUE_BYTES long (default 100); MODES is the order the modes
//! run in within a round (default `off,zeroed,recycled`), to check that a
//! mode's place in the round does not decide its result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mantisdb_core::{Db, Options, WriteBatch};

#[path = "support/measure.rs"]
mod measure;
use measure::{arg, median, run_threads};

/// Retired files kept for the `recycled` runs: with the default 64 MiB
/// segments, 256 MiB of reused space, more than 64 writers of 4 KiB values
/// write in 2 seconds on this machine.
const POOL: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Off,
    Zeroed,
    Recycled,
}

impl Mode {
    fn options(self) -> Options {
        // No background compaction (hint files are still written): the
        // `recycled` preparation decides when segments are retired, and no
        // run leaves dead bytes to compact.
        let d = Options {
            background_compaction: false,
            ..Options::default()
        };
        match self {
            Mode::Off => Options {
                preallocate: false,
                ..d
            },
            Mode::Zeroed => Options {
                recycle_segments: 0,
                ..d
            },
            Mode::Recycled => Options {
                recycle_segments: POOL,
                ..d
            },
        }
    }
}

/// Opens a database for `mode` in a new directory under `dir`; for
/// `Recycled`, leaves its writer in a reused file with the pool full.
fn prepare(dir: &Path, mode: Mode) -> (tempfile::TempDir, Db) {
    let tmp = tempfile::tempdir_in(dir).expect("creating a temporary directory");
    let opts = mode.options();
    let segment = opts.segment_size;
    let db = Db::open(tmp.path(), opts).expect("opening the database");
    if mode == Mode::Recycled {
        // POOL + 1 segments of overwrites of 8 keys: all dead but the last batch.
        let value = vec![7u8; 1 << 20];
        let batches = (POOL as u64 + 1) * segment / (8 << 20) + 1;
        for _ in 0..batches {
            let mut b = WriteBatch::new();
            for k in 0..8 {
                b.put(format!("fill-{k}").into_bytes(), value.clone());
            }
            db.write(&b).expect("fill");
        }
        // Rolls (into a new file: the pool is empty) and retires the dead
        // segments into the pool; then rolls again, into a kept file.
        db.compact().expect("compaction");
        db.put(b"fill-roll", b"x").expect("put");
        db.compact().expect("compaction");
        let st = db.stats();
        assert_eq!(st.recycled_segments, 1, "the writer is not in a reused file: {st:?}");
        assert_eq!(st.free_segment_files as usize, POOL - 1, "{st:?}");
    }
    (tmp, db)
}

fn rate(db: &Db, mode: Mode, threads: usize, value_len: usize) -> f64 {
    let before = db.stats();
    let run = run_threads(threads, Duration::from_secs(2), |t| {
        let db = db.clone();
        let value = vec![1u8; value_len];
        move |n| db.put(format!("w{threads}-t{t}-{n}").as_bytes(), &value).expect("put")
    });
    let per_sec = run.ops as f64 / run.wall.as_secs_f64();
    let cpu_us = run.cpu.as_secs_f64() * 1e6 / run.ops.max(1) as f64;
    let after = db.stats();
    let syncs = after.syncs - before.syncs;
    println!(
        "mode {:<8} {threads:>3} writers: {per_sec:>9.0} commits/s, {:.1} commits per fdatasync, \
         {cpu_us:.1} us CPU per commit, {} segments started in reused files",
        format!("{mode:?}").to_lowercase(),
        (after.synced_commits - before.synced_commits) as f64 / syncs.max(1) as f64,
        after.recycled_segments - before.recycled_segments,
    );
    per_sec
}

fn main() {
    let dir: PathBuf = arg(1, "DIR", ".".into());
    let rounds: usize = arg(2, "ROUNDS", 5);
    let value_len: usize = arg(3, "VALUE_BYTES", 100);
    let order: Vec<Mode> = std::env::args()
        .nth(4)
        .unwrap_or_else(|| "off,zeroed,recycled".into())
        .split(',')
        .map(|m| match m {
            "off" => Mode::Off,
            "zeroed" => Mode::Zeroed,
            "recycled" => Mode::Recycled,
            other => panic!("unknown mode {other} (off, zeroed, recycled)"),
        })
        .collect();
    let modes = [Mode::Off, Mode::Zeroed, Mode::Recycled];
    // [mode][one writer, 64 writers]
    let mut rates: [[Vec<f64>; 2]; 3] = Default::default();
    for _ in 0..rounds {
        for &mode in &order {
            let m = modes.iter().position(|&x| x == mode).expect("a known mode");
            let (tmp, db) = prepare(&dir, mode);
            let one = rate(&db, mode, 1, value_len);
            let many = rate(&db, mode, 64, value_len);
            drop(db);
            drop(tmp);
            rates[m][0].push(one);
            rates[m][1].push(many);
        }
    }
    let rates = rates.map(|r| r.map(|mut v| if v.is_empty() { f64::NAN } else { median(&mut v) }));
    let [[off1, off64], [zero1, zero64], [re1, re64]] = rates;
    println!("medians over {rounds} rounds, commits/s:");
    for (name, one, many) in [("off", off1, off64), ("zeroed", zero1, zero64), ("recycled", re1, re64)] {
        println!(
            "  {name:<8}: 1 writer {one:.0}, 64 writers {many:.0}, 64/1 = {:.2}x",
            many / one
        );
    }
    println!(
        "  zeroed / off: 1 writer {:.2}x, 64 writers {:.2}x",
        zero1 / off1,
        zero64 / off64
    );
    println!(
        "  recycled / off: 1 writer {:.2}x, 64 writers {:.2}x",
        re1 / off1,
        re64 / off64
    );
    println!(
        "  recycled / zeroed: 1 writer {:.2}x, 64 writers {:.2}x",
        re1 / zero1,
        re64 / zero64
    );
}
