//! CPU cost of the read path, through the C
//! API the Go engine calls: point gets (`mantis_get_into`) and 1,000-key
//! prefix scans (`mantis_iter_new`, then `mantis_iter_next_view` in batches
//! of 16 pairs doubling to 256, as the Go engine asks), beside a raw
//! `crossbeam_skiplist::SkipMap` doing the same work in the same run, timed
//! by the reading thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which a
//! shared machine disturbs far less than wall time.
//!
//! KEYS keys (`key:{:012}`, 16 bytes) with VALUE-byte values (100 by
//! default: inline, as the threshold is 128; larger values are read from
//! the segments, through the 64 MiB value cache) are loaded with `Never`,
//! in a shuffled order (ORDER `shuffled`, the default: a prefix's values
//! lie all over the log) or in key order (`sequential`: a prefix's values
//! lie together, as after the fill of `bench/peers`). Each of
//! ROUNDS rounds times GETS gets in the shuffled order and 200 prefix scans
//! of 1,000 keys (`key:{:09}`) on each side, alternating. The SkipMap side
//! copies each value into a caller's buffer for a get, and each pair into
//! one reused buffer (length header, key, value) for a scan. Medians per operation are printed, with the ratio SkipMap /
//! MantisDB (1.0 is parity, higher is better for MantisDB).
//!
//! ```sh
//! cargo run --release --example read_path [DIR [ROUNDS [KEYS [GETS [VALUE [ORDER]]]]]]
//! ```

use std::hint::black_box;
use std::ops::Bound;

use crossbeam_skiplist::SkipMap;
use mantisdb_core::ffi::{
    mantis_db_free, mantis_get_into, mantis_iter_free, mantis_iter_new, mantis_iter_next_view, mantis_open,
    mantis_options_default, mantis_put, MantisDb, MantisIter, MantisStatus, MANTIS_SYNC_NEVER,
};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

#[path = "support/measure.rs"]
mod measure;
use measure::{arg, key, median, thread_cpu};

/// CPU ns per call of `op` over `n` calls.
fn time(n: usize, mut op: impl FnMut(usize)) -> f64 {
    let c0 = thread_cpu();
    for i in 0..n {
        op(i);
    }
    (thread_cpu() - c0).as_nanos() as f64 / n as f64
}

fn append(buf: &mut Vec<u8>, k: &[u8], v: &[u8]) {
    buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
    buf.extend_from_slice(k);
    buf.extend_from_slice(v);
}

const SCANS: usize = 200;
/// Pairs per scan batch, as the Go engine's iterator asks for.
const BATCH: usize = 256;

fn main() {
    let parent: String = arg(1, "DIR", ".".into());
    let rounds: usize = arg(2, "ROUNDS", 7);
    let n: u64 = arg(3, "KEYS", 1_000_000);
    let gets: usize = arg(4, "GETS", 200_000);
    let value_len: usize = arg(5, "VALUE", 100);
    let shuffled = match arg(6, "ORDER", String::from("shuffled")).as_str() {
        "shuffled" => true,
        "sequential" => false,
        other => panic!("ORDER is shuffled or sequential, not {other}"),
    };
    assert!(n >= 1000 && n.is_multiple_of(1000), "KEYS must be a multiple of 1000");
    let value = vec![0x5au8; value_len];
    let mut ids: Vec<u64> = (0..n).collect();
    if shuffled {
        ids.shuffle(&mut StdRng::seed_from_u64(0x6d61_6e74_6973));
    }
    let keys: Vec<[u8; 16]> = ids.into_iter().map(key).collect();
    let mut prefixes: Vec<Vec<u8>> = (0..n / 1000).map(|p| format!("key:{p:09}").into_bytes()).collect();
    prefixes.shuffle(&mut StdRng::seed_from_u64(7));

    let raw: SkipMap<Vec<u8>, Vec<u8>> = SkipMap::new();
    for k in &keys {
        raw.insert(k.to_vec(), value.to_vec());
    }
    let tmp = tempfile::tempdir_in(&parent).expect("creating a temporary directory");
    let path = tmp.path().to_str().expect("a UTF-8 path").as_bytes();
    let mut opts = mantis_options_default();
    opts.sync = MANTIS_SYNC_NEVER;
    opts.inline_threshold = 128;
    opts.background_compaction = false;
    let mut db: *mut MantisDb = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: every pointer passed to the C API below points to live memory
    // of the stated length, and `db` is a live handle until freed at the end.
    let st = unsafe { mantis_open(path.as_ptr(), path.len(), &opts, &mut db, &mut err) };
    assert!(st == MantisStatus::MantisOk, "open");
    for k in &keys {
        // SAFETY: as above.
        let st = unsafe { mantis_put(db, k.as_ptr(), k.len(), value.as_ptr(), value.len(), &mut err) };
        assert!(st == MantisStatus::MantisOk, "put");
    }
    let mut dst = vec![0u8; value_len.max(512)];
    let get = |k: &[u8], dst: &mut [u8]| -> usize {
        let mut n = 0usize;
        let mut err = std::ptr::null_mut();
        // SAFETY: as above.
        let st = unsafe { mantis_get_into(db, k.as_ptr(), k.len(), dst.as_mut_ptr(), dst.len(), &mut n, &mut err) };
        assert!(st == MantisStatus::MantisOk, "get");
        n
    };
    for k in &keys {
        assert_eq!(get(k, &mut dst), value.len());
        assert_eq!(dst[..value.len()], value[..]);
    }

    let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
    let mut cells: [Vec<f64>; 4] = Default::default();
    for r in 0..rounds {
        let from = r * gets;
        cells[0].push(time(gets, |i| {
            let e = raw.get(&keys[(from + i) % keys.len()][..]).expect("get");
            dst[..e.value().len()].copy_from_slice(e.value());
            black_box(&dst);
        }));
        cells[1].push(time(gets, |i| {
            black_box(get(&keys[(from + i) % keys.len()], &mut dst));
        }));
        let sfrom = r * SCANS;
        cells[2].push(time(SCANS, |i| {
            let p = &prefixes[(sfrom + i) % prefixes.len()];
            let mut upper = p.clone();
            *upper.last_mut().unwrap() += 1;
            let mut count = 0;
            let mut it = raw.range::<[u8], _>((Bound::Included(&p[..]), Bound::Excluded(&upper[..])));
            loop {
                buf.clear();
                let mut n = 0;
                for e in it.by_ref().take(BATCH) {
                    append(&mut buf, e.key(), e.value());
                    n += 1;
                }
                black_box(&buf);
                count += n;
                if n < BATCH {
                    break;
                }
            }
            assert_eq!(count, 1000);
        }));
        cells[3].push(time(SCANS, |i| {
            let p = &prefixes[(sfrom + i) % prefixes.len()];
            let mut it: *mut MantisIter = std::ptr::null_mut();
            let mut err = std::ptr::null_mut();
            // SAFETY: as above; the view is read before the next call.
            unsafe {
                let st = mantis_iter_new(db, p.as_ptr(), p.len(), std::ptr::null(), 0, true, &mut it, &mut err);
                assert!(st == MantisStatus::MantisOk, "iter");
                let (mut count, mut items) = (0, 16);
                loop {
                    let (mut data, mut len, mut n) = (std::ptr::null(), 0usize, 0usize);
                    let st = mantis_iter_next_view(it, items, 256 << 10, &mut data, &mut len, &mut n, &mut err);
                    items = (items * 2).min(BATCH);
                    assert!(st == MantisStatus::MantisOk, "next");
                    if n == 0 {
                        break;
                    }
                    black_box(std::slice::from_raw_parts(data, len));
                    count += n;
                }
                assert_eq!(count, 1000);
                mantis_iter_free(it);
            }
        }));
    }
    let m: Vec<f64> = cells.iter_mut().map(|c| median(c)).collect();
    println!(
        "{n} keys of {value_len} B loaded {}, {rounds} rounds of {gets} gets and {SCANS} scans of 1,000 keys; CPU time medians:",
        if shuffled { "shuffled" } else { "in key order" }
    );
    println!(
        "get       skipmap {:>9.1} ns  mantisdb {:>9.1} ns  ratio {:.3}x",
        m[0],
        m[1],
        m[0] / m[1]
    );
    println!(
        "scan 1000 skipmap {:>9.2} us  mantisdb {:>9.2} us  ratio {:.3}x",
        m[2] / 1e3,
        m[3] / 1e3,
        m[2] / m[3]
    );
    // SAFETY: `db` is a live handle, freed once; nothing uses it afterwards.
    unsafe { mantis_db_free(db) };
}
