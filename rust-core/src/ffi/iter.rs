//! The iterator handle: an ordered range or prefix scan at one snapshot,
//! read in batches of pairs.

use std::ops::Bound;

use parking_lot::Mutex;

use super::args::{into_handle, release_handle, try_bytes, try_handle, try_out, Live};
use super::boundary::boundary;
use super::db::MantisDb;
use super::types::{MantisBuf, MantisError, MantisStatus};
use super::wire::append_pair;
use crate::Iter;

/// An ordered iterator at one snapshot.
///
/// Opaque in C (declared in cbindgen.toml); its fields are private.
///
/// cbindgen:ignore
#[repr(C)]
pub struct MantisIter {
    // First field: see `Live`.
    live: u64,
    iter: Mutex<Iter>,
}

impl Live for MantisIter {
    const TAG: u64 = u64::from_le_bytes(*b"MANTISIT");
    const KIND: &'static str = "iterator";
    fn retire(&mut self) {
        self.live = 0;
    }
}

/// Opens an iterator over keys in `[start, end)` at one snapshot; with
/// `prefix_mode` set, over keys starting with `start` (`end` ignored). An
/// `end_len` of 0 means no upper bound. Free with `mantis_iter_free`.
///
/// # Safety
/// `db` must be a live handle; `start`/`end` must point to `start_len`/`end_len`
/// readable bytes; `out` must point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn mantis_iter_new(
    db: *const MantisDb,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    prefix_mode: bool,
    out: *mut *mut MantisIter,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let h = try_handle!(db);
        let s = try_bytes!(start, start_len, "start");
        let e = try_bytes!(end, end_len, "end");
        let iter = if prefix_mode {
            h.db.scan_prefix(s)?
        } else {
            let upper = if e.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(e)
            };
            h.db.scan(Bound::Included(s), upper)?
        };
        out.set(into_handle(MantisIter {
            live: MantisIter::TAG,
            iter: Mutex::new(iter),
        }));
        Ok(MantisStatus::MantisOk)
    })
}

/// Fills `*out` with up to `max_items` pairs (stopping early once the buffer
/// passes `max_bytes`, but always at least one pair) and writes their number
/// to `*count`; 0 means the iterator is exhausted. Each pair is a header of
/// `MANTIS_ITER_PAIR_HEADER_LEN` bytes (`key_len: u32`, `value_len: u32`,
/// little-endian), then the key, then the value. Free `*out` with
/// `mantis_buf_free`.
///
/// # Safety
/// `it` must be a live iterator handle; `out` and `count` must be writable.
#[no_mangle]
pub unsafe extern "C" fn mantis_iter_next_batch(
    it: *const MantisIter,
    max_items: usize,
    max_bytes: usize,
    out: *mut MantisBuf,
    count: *mut usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let count = try_out!(count);
        let mut iter = try_handle!(it).iter.lock();
        let mut buf = Vec::new();
        let mut n = 0usize;
        while n < max_items.max(1) && (n == 0 || buf.len() < max_bytes) {
            match iter.next() {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok((k, v))) => {
                    append_pair(&mut buf, &k, &v);
                    n += 1;
                }
            }
        }
        out.set(MantisBuf::from_vec(buf));
        count.set(n);
        Ok(MantisStatus::MantisOk)
    })
}

/// Moves the iterator to the first key `>= key` (never before its range start).
///
/// # Safety
/// `it` must be a live iterator handle; `key` must point to `key_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mantis_iter_seek(
    it: *const MantisIter,
    key: *const u8,
    key_len: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(it);
        let k = try_bytes!(key, key_len, "key");
        h.iter.lock().seek(k);
        Ok(MantisStatus::MantisOk)
    })
}

/// Frees an iterator. Accepts NULL.
///
/// # Safety
/// `it` must be NULL or an iterator handle, freed once, not in use elsewhere.
#[no_mangle]
pub unsafe extern "C" fn mantis_iter_free(it: *mut MantisIter) {
    release_handle!(it)
}
