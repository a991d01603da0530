//! The iterator handle: an ordered range or prefix scan at one snapshot,
//! read in batches of pairs.

use std::ops::Bound;

use parking_lot::Mutex;

use super::args::{into_handle, release_handle, try_bytes, try_handle, try_out, Live};
use super::boundary::boundary;
use super::db::MantisDb;
use super::types::{MantisBuf, MantisError, MantisStatus};
use super::wire::append_pair;
use crate::iter::Lent;
use crate::{Iter, Value};

/// An ordered iterator at one snapshot.
///
/// Opaque in C (declared in cbindgen.toml); its fields are private.
///
/// cbindgen:ignore
#[repr(C)]
pub struct MantisIter {
    // First field: see `Live`.
    live: u64,
    state: Mutex<IterState>,
}

/// An iterator and the buffer its borrowed batches are encoded into.
struct IterState {
    iter: Iter,
    /// The last batch of `mantis_iter_next_view`, reused by the next one, so
    /// a long scan allocates its batch buffer once.
    view: Vec<u8>,
    /// The last batch of `mantis_iter_next_refs`: where each pair's bytes
    /// lie, reused by the next batch.
    refs: Vec<MantisPairRef>,
    /// The shared values (kept in the index or the value cache) the refs of
    /// the last batch point into, held until the next batch.
    held: Vec<Value>,
}

/// Where one pair of a `mantis_iter_next_refs` batch lies: the key's and
/// the value's bytes, borrowed from the library (see that function for how
/// long they stay valid). A pointer is not NULL, except perhaps when its
/// length is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MantisPairRef {
    /// The key's first byte.
    pub key: *const u8,
    /// The key's length in bytes.
    pub key_len: usize,
    /// The value's first byte.
    pub value: *const u8,
    /// The value's length in bytes.
    pub value_len: usize,
}

// SAFETY: a `MantisPairRef` is two addresses and two lengths; the library
// never reads through them, and the caller reads through them only under
// the contract of `mantis_iter_next_refs` (one caller at a time, before the
// next call on the iterator). Sending one between threads with its
// iterator (which the handle's mutex allows) is sound.
unsafe impl Send for MantisPairRef {}

/// A view buffer that grew past this (one batch of very large values) is
/// released before the next batch rather than kept for the iterator's life.
const VIEW_RETAIN_BYTES: usize = 4 << 20;

/// View buffers kept from freed iterators for the next ones, and the bytes
/// they hold: a scan from Go is one iterator, and a view buffer allocated
/// anew for each came from fresh pages (the allocator gives the pages of
/// freed blocks back), which the kernel zeroes on first touch. The pool
/// holds a buffer per scan running at once (64 in the heavy benchmark).
static SPARE_VIEWS: Mutex<(Vec<Vec<u8>>, usize)> = Mutex::new((Vec::new(), 0));
/// Buffers [`SPARE_VIEWS`] keeps at most, and their bytes at most.
const SPARE_VIEWS_MAX: usize = 128;
const SPARE_VIEWS_BYTES: usize = 16 << 20;

/// A freed iterator's view buffer, or a new one.
fn spare_view() -> Vec<u8> {
    let mut spare = SPARE_VIEWS.lock();
    let (views, bytes) = &mut *spare;
    match views.pop() {
        Some(view) => {
            *bytes -= view.capacity();
            view
        }
        None => Vec::new(),
    }
}

impl Drop for IterState {
    fn drop(&mut self) {
        let mut view = std::mem::take(&mut self.view);
        if view.capacity() == 0 || view.capacity() > VIEW_RETAIN_BYTES {
            return;
        }
        view.clear();
        let mut spare = SPARE_VIEWS.lock();
        let (views, bytes) = &mut *spare;
        if views.len() < SPARE_VIEWS_MAX && *bytes + view.capacity() <= SPARE_VIEWS_BYTES {
            *bytes += view.capacity();
            views.push(view);
        }
    }
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
            state: Mutex::new(IterState {
                iter,
                // Taken from the pool by the first `mantis_iter_next_view`
                // (the Go iterator reads references, and never needs one).
                view: Vec::new(),
                refs: Vec::new(),
                held: Vec::new(),
            }),
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
        let mut state = try_handle!(it).state.lock();
        let mut buf = Vec::new();
        let n = fill_batch(&mut state.iter, max_items, max_bytes, &mut buf)?;
        out.set(MantisBuf::from_vec(buf));
        count.set(n);
        Ok(MantisStatus::MantisOk)
    })
}

/// Like `mantis_iter_next_batch`, but the pairs stay in the iterator's own
/// buffer: `*data` and `*len` describe them (`*data` is NULL when `*count`
/// is 0), in the same encoding, without a copy into a buffer of the
/// caller's. The bytes are borrowed: they stay valid and unchanged until the
/// next `mantis_iter_next_view`, `mantis_iter_next_batch`, `mantis_iter_seek`
/// or `mantis_iter_free` on this iterator, and must not be freed.
///
/// # Safety
/// `it` must be a live iterator handle, used by one caller at a time while
/// a view is read; `data`, `len` and `count` must be writable.
#[no_mangle]
pub unsafe extern "C" fn mantis_iter_next_view(
    it: *const MantisIter,
    max_items: usize,
    max_bytes: usize,
    data: *mut *const u8,
    len: *mut usize,
    count: *mut usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let data = try_out!(data);
        let len = try_out!(len);
        let count = try_out!(count);
        let mut state = try_handle!(it).state.lock();
        let IterState { iter, view, .. } = &mut *state;
        if view.capacity() > VIEW_RETAIN_BYTES {
            *view = Vec::new();
        }
        if view.capacity() == 0 {
            *view = spare_view();
        }
        view.clear();
        let n = fill_batch(iter, max_items, max_bytes, view)?;
        data.set(if view.is_empty() {
            std::ptr::null()
        } else {
            view.as_ptr()
        });
        len.set(view.len());
        count.set(n);
        Ok(MantisStatus::MantisOk)
    })
}

/// Like `mantis_iter_next_view`, but nothing is copied at all: `*pairs`
/// points to `*count` pair references (`MantisPairRef`), each telling where
/// a key's and its value's bytes lie in the library (`*pairs` is NULL when
/// `*count` is 0, the end). The values of closed segments are lent where
/// they lie in the segment's memory map, each checked (key and CRC32C)
/// just before; a damaged one is reported as the error of the batch that
/// reaches it, as by `mantis_iter_next_view`. A batch holds up to
/// `max_items` pairs (at least one unless at the end) and never more than
/// the library has walked in one step, so it may hold fewer than asked
/// before the end; it holds 0 only at the end. The references and the bytes
/// they point to are borrowed: they stay valid and unchanged until the next
/// `mantis_iter_next_refs`, `mantis_iter_next_view`,
/// `mantis_iter_next_batch`, `mantis_iter_seek` or `mantis_iter_free` on
/// this iterator, and must not be freed.
///
/// # Safety
/// `it` must be a live iterator handle, used by one caller at a time while
/// a batch is read; `pairs` and `count` must be writable.
#[no_mangle]
pub unsafe extern "C" fn mantis_iter_next_refs(
    it: *const MantisIter,
    max_items: usize,
    pairs: *mut *const MantisPairRef,
    count: *mut usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let pairs = try_out!(pairs);
        let count = try_out!(count);
        let mut state = try_handle!(it).state.lock();
        let IterState { iter, refs, held, .. } = &mut *state;
        // The previous batch is dead: its references go, and so do the
        // shared values they pointed into.
        refs.clear();
        held.clear();
        let max_items = max_items.max(1);
        // Only the batch's first pair may walk a new chunk (the pairs lent
        // before it would be overwritten by the walk), so the batch's size
        // is all a walk needs to know, told once. A hint left unused (no
        // walk was needed) is replaced by the next call before any walk.
        iter.want(max_items);
        while refs.len() < max_items {
            let pair = iter.next_in_chunk(refs.is_empty(), |k, v| {
                let value: &[u8] = match v {
                    Lent::Bytes(b) => b,
                    Lent::Shared(v) => {
                        held.push(v);
                        held.last().map_or(&[], |v| &v[..])
                    }
                };
                MantisPairRef {
                    key: k.as_ptr(),
                    key_len: k.len(),
                    value: value.as_ptr(),
                    value_len: value.len(),
                }
            });
            match pair {
                None => break,
                Some(Err(e)) => {
                    refs.clear();
                    held.clear();
                    return Err(e.into());
                }
                Some(Ok(r)) => refs.push(r),
            }
        }
        // The pointers stay valid past this call: the keys and lent values
        // lie in the iterator's chunk buffers or in the maps of segments it
        // holds, untouched until its next refill, seek or drop
        // (`Iter::next_in_chunk`), none of which happens before the caller's
        // next call on this handle; a shared value is kept in `held` (its
        // bytes do not move when the handle does) until then.
        pairs.set(if refs.is_empty() {
            std::ptr::null()
        } else {
            refs.as_ptr()
        });
        count.set(refs.len());
        Ok(MantisStatus::MantisOk)
    })
}

/// Appends up to `max_items` pairs of `iter` to `buf` (stopping early once
/// `buf` passes `max_bytes`, but always taking one pair if any is left) and
/// returns their number.
fn fill_batch(iter: &mut Iter, max_items: usize, max_bytes: usize, buf: &mut Vec<u8>) -> Result<usize, crate::Error> {
    let mut n = 0usize;
    while n < max_items.max(1) && (n == 0 || buf.len() < max_bytes) {
        // A chunk walks no further than this batch goes: a scan that stops
        // at a limit (Go asks 16, 32, 64... pairs) fetches no values past it.
        iter.want(max_items.max(1) - n);
        match iter.next_borrowed(|k, v| append_pair(buf, k, v)) {
            None => break,
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => n += 1,
        }
    }
    Ok(n)
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
        h.state.lock().iter.seek(k);
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
