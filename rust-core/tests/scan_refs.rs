//! Scans through `mantis_iter_next_refs`, the C API's batch that lends
//! every pair where it lies (chunk buffers, memory maps of closed
//! segments, shared values) instead of copying it: every pair arrives, in
//! order, with the right bytes; the references of one batch stay valid
//! together until the next call; and a damaged value in a mapped segment
//! is still reported, in key order, never lent.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr;

use mantisdb_core::ffi::*;

fn key(i: usize) -> Vec<u8> {
    format!("key/{i:06}").into_bytes()
}

/// 1 KiB of pseudo-random bytes seeded by `i` (any 32 of them are found
/// in no other value); every fifth
/// value is short enough to stay inline in the index.
fn value(i: usize) -> Vec<u8> {
    let len = if i.is_multiple_of(5) { 40 } else { 1024 };
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

unsafe fn open(dir: &Path) -> *mut MantisDb {
    let mut opts = mantis_options_default();
    // Small segments, so most values lie in closed (mapped) ones; no value
    // cache and no background compaction, so nothing moves or answers
    // from elsewhere.
    opts.segment_size = 64 << 10;
    opts.cache_bytes = 0;
    opts.inline_threshold = 64;
    opts.background_compaction = false;
    opts.map_reads = true;
    let path = dir.to_str().unwrap();
    let mut db = ptr::null_mut();
    let st = unsafe { mantis_open(path.as_ptr(), path.len(), &opts, &mut db, ptr::null_mut()) };
    assert_eq!(st, MantisStatus::MantisOk);
    db
}

unsafe fn fill(db: *mut MantisDb, n: usize) {
    for i in 0..n {
        let (k, v) = (key(i), value(i));
        let st = unsafe { mantis_put(db, k.as_ptr(), k.len(), v.as_ptr(), v.len(), ptr::null_mut()) };
        assert_eq!(st, MantisStatus::MantisOk);
    }
}

unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(p, len) }
    }
}

/// Scans everything in batches of `max`, checking each batch whole after
/// it arrived (so every reference of a batch must still be valid), and
/// returns the keys seen, or the status of the error that ended the scan.
unsafe fn scan(db: *mut MantisDb, max: usize) -> (Vec<Vec<u8>>, MantisStatus) {
    let mut it = ptr::null_mut();
    let st = unsafe { mantis_iter_new(db, ptr::null(), 0, ptr::null(), 0, false, &mut it, ptr::null_mut()) };
    assert_eq!(st, MantisStatus::MantisOk);
    let mut seen = Vec::new();
    let status = loop {
        let mut pairs: *const MantisPairRef = ptr::null();
        let mut count = 0usize;
        let mut err = ptr::null_mut();
        let st = unsafe { mantis_iter_next_refs(it, max, &mut pairs, &mut count, &mut err) };
        if st != MantisStatus::MantisOk {
            unsafe { mantis_error_free(err) };
            break st;
        }
        if count == 0 {
            assert!(pairs.is_null());
            break st;
        }
        assert!(count <= max.max(1));
        let batch = unsafe { std::slice::from_raw_parts(pairs, count) };
        for r in batch {
            let k = unsafe { bytes(r.key, r.key_len) };
            let v = unsafe { bytes(r.value, r.value_len) };
            let i = seen.len();
            assert_eq!(k, key(i), "pair {i}");
            assert_eq!(v, value(i), "value of pair {i}");
            seen.push(k.to_vec());
        }
    };
    unsafe { mantis_iter_free(it) };
    (seen, status)
}

#[test]
fn refs_batches_lend_every_pair_in_order() {
    let dir = tempfile::tempdir().unwrap();
    unsafe {
        let db = open(dir.path());
        fill(db, 700);
        for max in [1, 3, 16, 100, 256, 1000] {
            let (seen, st) = scan(db, max);
            assert_eq!(st, MantisStatus::MantisOk, "batches of {max}");
            assert_eq!(seen.len(), 700, "batches of {max}");
        }
        // A NULL out-parameter is refused.
        let mut it = ptr::null_mut();
        mantis_iter_new(db, ptr::null(), 0, ptr::null(), 0, false, &mut it, ptr::null_mut());
        let mut count = 0usize;
        let st = mantis_iter_next_refs(it, 4, ptr::null_mut(), &mut count, ptr::null_mut());
        assert_eq!(st, MantisStatus::MantisNullParameter);
        mantis_iter_free(it);
        mantis_db_free(db);
    }
}

/// Flips one byte in the middle of the stored value of `i` and returns the
/// segment file it is in.
fn damage(dir: &Path, i: usize) -> String {
    let needle = &value(i)[500..532];
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| mantisdb_core::log::segment::parse_segment_file_name(n).is_some())
        .collect();
    names.sort();
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&[bytes[at] ^ 0x01], at as u64).unwrap();
            file.sync_all().unwrap();
            assert_ne!(Some(name), names.last(), "the damage is in a closed segment");
            return name.clone();
        }
    }
    panic!("value {i} not found on disk");
}

#[test]
fn a_damaged_value_in_a_mapped_segment_ends_a_refs_scan_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    unsafe {
        let db = open(dir.path());
        fill(db, 700);
        // Every segment is mapped and every value checked once before the
        // damage: the check is made again on every scan, not remembered.
        let (seen, st) = scan(db, 100);
        assert_eq!((seen.len(), st), (700, MantisStatus::MantisOk));
        let victim = 233;
        damage(dir.path(), victim);
        for max in [1, 7, 100, 256] {
            let (seen, st) = scan(db, max);
            assert_eq!(st, MantisStatus::MantisCorruption, "batches of {max}");
            // Every pair before the damaged one's batch arrived, in order;
            // none at or after it.
            assert!(seen.len() <= victim, "batches of {max}: {} pairs", seen.len());
            assert!(seen.len() + max > victim, "batches of {max}: {} pairs", seen.len());
        }
        mantis_db_free(db);
    }
}
