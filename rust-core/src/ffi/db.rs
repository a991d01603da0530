//! The database handle: open, close, reads, writes, batches, maintenance.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use super::args::{into_handle, release_handle, try_bytes, try_bytes_mut, try_handle, try_opt_ref, try_out, Live, Out};
use super::boundary::{boundary, fail, Fail};
use super::options::MantisOptions;
use super::types::{MantisBuf, MantisError, MantisStats, MantisStatus};
use super::wire::{encode_values, parse_batch, parse_keys, MANTIS_VALUE_ABSENT};
use crate::{Db, Options, Update, Updated};

/// An open database.
///
/// Opaque in C (declared in cbindgen.toml); its fields are private.
///
/// cbindgen:ignore
#[repr(C)]
pub struct MantisDb {
    // First field: see `Live`.
    live: u64,
    pub(super) db: Db,
}

impl Live for MantisDb {
    const TAG: u64 = u64::from_le_bytes(*b"MANTISDB");
    const KIND: &'static str = "database";
    fn retire(&mut self) {
        let _ = self.db.close();
        self.live = 0;
    }
}

/// A path given as bytes: not empty, no NUL byte.
pub(super) fn path_arg(p: &[u8]) -> Result<&OsStr, Fail> {
    if p.is_empty() {
        return Err(fail(MantisStatus::MantisInvalidArgument, "path is empty"));
    }
    if p.contains(&0) {
        return Err(fail(MantisStatus::MantisInvalidArgument, "path contains a NUL byte"));
    }
    Ok(std::os::unix::ffi::OsStrExt::from_bytes(p))
}

/// Opens (creating if needed) the database in the directory `path` (UTF-8 or
/// raw bytes, not NUL-terminated). On success `*out` receives a handle to
/// free with `mantis_db_free`. `opts` may be NULL for the defaults.
///
/// # Safety
/// `path` must point to `path_len` readable bytes; `opts` must be NULL or
/// point to a `MantisOptions`; `out` must point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn mantis_open(
    path: *const u8,
    path_len: usize,
    opts: *const MantisOptions,
    out: *mut *mut MantisDb,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let dir = PathBuf::from(path_arg(try_bytes!(path, path_len, "path"))?);
        let o = match try_opt_ref!(opts) {
            None => Options::default(),
            Some(o) => o.to_options()?,
        };
        let db = Db::open(dir, o)?;
        out.set(into_handle(MantisDb {
            live: MantisDb::TAG,
            db,
        }));
        Ok(MantisStatus::MantisOk)
    })
}

/// Syncs and closes the database. The handle stays allocated (later calls
/// answer `MANTIS_CLOSED`) until `mantis_db_free`.
///
/// # Safety
/// `db` must be a handle from `mantis_open`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mantis_close(db: *const MantisDb, err: *mut *mut MantisError) -> MantisStatus {
    boundary(err, || {
        try_handle!(db).db.close()?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Frees a database handle (closing it first if needed). Accepts NULL.
///
/// # Safety
/// `db` must be NULL or a handle from `mantis_open`, freed once, with no call
/// on it running in another thread.
#[no_mangle]
pub unsafe extern "C" fn mantis_db_free(db: *mut MantisDb) {
    release_handle!(db)
}

/// Sets `key` to `value`.
///
/// # Safety
/// `db` must be a live handle; `key`/`value` must point to `key_len`/`value_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mantis_put(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        let v = try_bytes!(value, value_len, "value");
        h.db.put(k, v)?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Sets `key` to `value`, expiring after `ttl_ms` milliseconds (at least 1).
///
/// # Safety
/// As `mantis_put`.
#[no_mangle]
pub unsafe extern "C" fn mantis_put_ttl(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        let v = try_bytes!(value, value_len, "value");
        h.db.put_with_ttl(k, v, Duration::from_millis(ttl_ms))?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Removes `key` (succeeds when it is absent).
///
/// # Safety
/// `db` must be a live handle; `key` must point to `key_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mantis_delete(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        h.db.delete(k)?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Reads `key`. On `MANTIS_OK`, `*out` receives a buffer owned by the caller
/// (free with `mantis_buf_free`); `MANTIS_NOT_FOUND` leaves it untouched.
///
/// # Safety
/// `db` must be a live handle; `key` must point to `key_len` readable bytes;
/// `out` must point to a writable `MantisBuf`.
#[no_mangle]
pub unsafe extern "C" fn mantis_get(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    out: *mut MantisBuf,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        match h.db.get(k)? {
            None => Ok(MantisStatus::MantisNotFound),
            Some(v) => {
                out.set(MantisBuf::from_vec(v.to_vec()));
                Ok(MantisStatus::MantisOk)
            }
        }
    })
}

/// Reads `key` with its version and expiry. On `MANTIS_OK`, `*out` receives
/// the value as `mantis_get` gives it (free with `mantis_buf_free`), `*seq`
/// the sequence number of the commit that wrote this version (it changes on
/// every write of the key, the same value included, and survives reopening
/// and compaction), and `*expires_at_ms` the absolute expiry in milliseconds
/// since the Unix epoch, 0 when the key does not expire. `MANTIS_NOT_FOUND`
/// (absent, deleted or expired) leaves all three untouched.
///
/// # Safety
/// `db` must be a live handle; `key` must point to `key_len` readable bytes;
/// `out`, `seq` and `expires_at_ms` must point to a writable `MantisBuf`,
/// `uint64_t` and `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_get_meta(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    out: *mut MantisBuf,
    seq: *mut u64,
    expires_at_ms: *mut i64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let seq = try_out!(seq);
        let expires_at_ms = try_out!(expires_at_ms);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        match h.db.get_with_meta(k)? {
            None => Ok(MantisStatus::MantisNotFound),
            Some((v, meta)) => {
                out.set(MantisBuf::from_vec(v.to_vec()));
                seq.set(meta.seq);
                expires_at_ms.set(expiry_out(meta.expires_at_ms));
                Ok(MantisStatus::MantisOk)
            }
        }
    })
}

/// An expiry for an `int64_t` out-parameter (the engine keeps `u64`; no
/// real expiry reaches `i64::MAX` ms, about 292 million years).
pub(super) fn expiry_out(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// An `int64_t` absolute expiry from a caller: a time before 1970 is as
/// past as the epoch itself.
pub(super) fn expiry_in(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// Reads `key` into the caller's buffer `dst` of `dst_cap` bytes. `*value_len`
/// receives the value's length on `MANTIS_OK` and on `MANTIS_BUFFER_TOO_SMALL`
/// (then nothing is copied: call again with a larger buffer).
///
/// # Safety
/// `db` must be a live handle; `key` must point to `key_len` readable bytes;
/// `dst` must point to `dst_cap` writable bytes (any pointer when 0);
/// `value_len` must point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_get_into(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    dst: *mut u8,
    dst_cap: usize,
    value_len: *mut usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let value_len = try_out!(value_len);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        // The value is copied where it lies (in the index for a small one),
        // without taking a reference to it.
        let copied = h.db.get_with(k, |v| {
            value_len.set(v.len());
            if v.len() > dst_cap {
                return Ok(MantisStatus::MantisBufferTooSmall);
            }
            // The first `v.len()` of the `dst_cap` bytes.
            try_bytes_mut!(dst, v.len(), "dst").copy_from_slice(v);
            Ok(MantisStatus::MantisOk)
        })?;
        copied.unwrap_or(Ok(MantisStatus::MantisNotFound))
    })
}

/// Applies the `count` ops encoded in `buf` atomically: all or none, also
/// after a crash.
///
/// `buf` holds the ops back to back; each is a header of
/// `MANTIS_BATCH_OP_HEADER_LEN` bytes, then the key, then the value. The
/// header (integers little-endian): the kind, one byte (`MANTIS_BATCH_PUT`,
/// `MANTIS_BATCH_DELETE` or `MANTIS_BATCH_PUT_AT`); `key_len: u32` at
/// `MANTIS_BATCH_KEY_LEN_OFFSET`; `value_len: u32` at
/// `MANTIS_BATCH_VALUE_LEN_OFFSET` (0 for a delete); a `u64` at
/// `MANTIS_BATCH_TTL_OFFSET`: for a put the TTL in ms (0 for no expiry), for
/// a put-at the absolute expiry in Unix ms (at or before the commit's clock,
/// the op removes the key). A buffer that does not hold
/// exactly `count` ops answers `MANTIS_INVALID_ARGUMENT`. The library reads
/// the keys and values in place.
///
/// # Safety
/// `db` must be a live handle; `buf` must point to `buf_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mantis_write_batch(
    db: *const MantisDb,
    buf: *const u8,
    buf_len: usize,
    count: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(db);
        let ops = parse_batch(try_bytes!(buf, buf_len, "batch"), count)?;
        h.db.write_borrowed(ops.iter().map(|o| (o.delete, o.key, o.value, o.expiry)))?;
        Ok(MantisStatus::MantisOk)
    })
}

/// The first half of `mantis_put`, for a caller that waits for durability
/// itself: the write is logged and applied but neither durable nor visible
/// yet. On `MANTIS_OK`, `*ticket` receives 0 when there is nothing to wait
/// for (sync policies other than `always`: the write is done), or a ticket
/// that must go to `mantis_commit_wait` before the write is acknowledged.
/// Waiting for the newest ticket of many writers leads one group commit for
/// all of them, so a caller can wait for many writes with one thread (the Go
/// engine wakes its goroutines itself).
///
/// # Safety
/// As `mantis_put`; `ticket` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_put_begin(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let ticket = try_out!(ticket);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        let v = try_bytes!(value, value_len, "value");
        ticket.set(h.db.put_begin(k, v)?.unwrap_or(0));
        Ok(MantisStatus::MantisOk)
    })
}

/// The first half of `mantis_put_ttl`; see `mantis_put_begin`.
///
/// # Safety
/// As `mantis_put_ttl`; `ticket` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_put_ttl_begin(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_ms: u64,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let ticket = try_out!(ticket);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        let v = try_bytes!(value, value_len, "value");
        ticket.set(
            h.db.put_with_ttl_begin(k, v, Duration::from_millis(ttl_ms))?
                .unwrap_or(0),
        );
        Ok(MantisStatus::MantisOk)
    })
}

/// The first half of `mantis_delete`; see `mantis_put_begin`.
///
/// # Safety
/// As `mantis_delete`; `ticket` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_delete_begin(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let ticket = try_out!(ticket);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        ticket.set(h.db.delete_begin(k)?.unwrap_or(0));
        Ok(MantisStatus::MantisOk)
    })
}

/// The first half of `mantis_write_batch`; see `mantis_put_begin`.
///
/// # Safety
/// As `mantis_write_batch`; `ticket` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_write_batch_begin(
    db: *const MantisDb,
    buf: *const u8,
    buf_len: usize,
    count: usize,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let ticket = try_out!(ticket);
        let h = try_handle!(db);
        let ops = parse_batch(try_bytes!(buf, buf_len, "batch"), count)?;
        let t =
            h.db.write_borrowed_begin(ops.iter().map(|o| (o.delete, o.key, o.value, o.expiry)))?;
        ticket.set(t.unwrap_or(0));
        Ok(MantisStatus::MantisOk)
    })
}

/// `*outcome` of `mantis_incr_by_begin` and `mantis_append_begin`: the
/// update committed (its result is in the other out-parameter).
pub const MANTIS_UPDATE_DONE: u8 = 0;
/// `*outcome`: refused, nothing written: the key's value is not a decimal
/// 64-bit integer as Redis reads one (Redis: "value is not an integer or
/// out of range").
pub const MANTIS_UPDATE_NOT_INTEGER: u8 = 1;
/// `*outcome`: refused, nothing written: the sum is outside the 64-bit
/// range (Redis: "increment or decrement would overflow").
pub const MANTIS_UPDATE_OVERFLOW: u8 = 2;
/// `*outcome`: refused, nothing written: the value would exceed `max_len`
/// (Redis: "string exceeds maximum allowed size").
pub const MANTIS_UPDATE_TOO_LONG: u8 = 3;

/// The outcome code and result of an update.
fn update_out(u: Updated) -> (u8, i64) {
    match u {
        Updated::Int(n) => (MANTIS_UPDATE_DONE, n),
        Updated::Len(n) => (MANTIS_UPDATE_DONE, i64::try_from(n).unwrap_or(i64::MAX)),
        Updated::NotInteger => (MANTIS_UPDATE_NOT_INTEGER, 0),
        Updated::Overflow => (MANTIS_UPDATE_OVERFLOW, 0),
        Updated::TooLong => (MANTIS_UPDATE_TOO_LONG, 0),
    }
}

/// Writes a begun update's answer to the caller's out-parameters: its
/// value (new integer or new length), its outcome code, and its ticket (0
/// when nothing was written).
fn set_update_outs(
    (u, t): (Updated, Option<u64>),
    value: Out<'_, i64>,
    outcome: Out<'_, u8>,
    ticket: Out<'_, u64>,
) -> MantisStatus {
    let (code, n) = update_out(u);
    value.set(n);
    outcome.set(code);
    ticket.set(t.unwrap_or(0));
    MantisStatus::MantisOk
}

/// Adds `delta` to the decimal integer in `key` (a missing or expired key
/// counts as 0; the key keeps its expiry) as one commit, evaluated under
/// the log's append lock against the value every earlier commit left: no
/// transaction, no conflict, and concurrent callers share group commits.
/// On `MANTIS_OK`, `*outcome` receives `MANTIS_UPDATE_DONE` with the new
/// value in `*result`, or a refusal code (`MANTIS_UPDATE_NOT_INTEGER`,
/// `MANTIS_UPDATE_OVERFLOW`; nothing written, `*ticket` is 0). `*ticket`
/// is as for `mantis_put_begin`: under `always`, the increment is
/// acknowledged (and `*result` may be shown to anyone) only after
/// `mantis_commit_wait(ticket)` returns `MANTIS_OK`.
///
/// # Safety
/// `db` must be a live handle; `key` must point to `key_len` readable
/// bytes; `result`, `outcome` and `ticket` must point to a writable
/// `int64_t`, `uint8_t` and `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_incr_by_begin(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    delta: i64,
    result: *mut i64,
    outcome: *mut u8,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let result = try_out!(result);
        let outcome = try_out!(outcome);
        let ticket = try_out!(ticket);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        let begun = h.db.update_begin(k, &Update::IncrBy(delta))?;
        Ok(set_update_outs(begun, result, outcome, ticket))
    })
}

/// Appends `suffix` to the value of `key` (creating it; the key keeps its
/// expiry) as one commit, evaluated as `mantis_incr_by_begin` is. On
/// `MANTIS_OK`, `*outcome` receives `MANTIS_UPDATE_DONE` with the new
/// length in `*new_len`, or `MANTIS_UPDATE_TOO_LONG` when the result would
/// exceed `max_len` bytes (nothing written). `*ticket` as for
/// `mantis_incr_by_begin`. A result above the database's value limit
/// answers `MANTIS_VALUE_TOO_LARGE`.
///
/// # Safety
/// `db` must be a live handle; `key`/`suffix` must point to
/// `key_len`/`suffix_len` readable bytes; `new_len`, `outcome` and
/// `ticket` must point to a writable `int64_t`, `uint8_t` and `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_append_begin(
    db: *const MantisDb,
    key: *const u8,
    key_len: usize,
    suffix: *const u8,
    suffix_len: usize,
    max_len: u64,
    new_len: *mut i64,
    outcome: *mut u8,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let new_len = try_out!(new_len);
        let outcome = try_out!(outcome);
        let ticket = try_out!(ticket);
        let h = try_handle!(db);
        let k = try_bytes!(key, key_len, "key");
        let suffix = try_bytes!(suffix, suffix_len, "suffix");
        let upd = Update::Append {
            suffix,
            max_len: usize::try_from(max_len).unwrap_or(usize::MAX),
        };
        let begun = h.db.update_begin(k, &upd)?;
        Ok(set_update_outs(begun, new_len, outcome, ticket))
    })
}

/// Returns once the write of `ticket` (from a `*_begin` call on this
/// database; 0 returns at once) is durable and visible. A failed write or
/// sync of its group answers `MANTIS_IO` (the database then refuses writes:
/// later tickets answer `MANTIS_POISONED`). Blocks the calling thread for
/// the length of one group commit.
///
/// # Safety
/// `db` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_commit_wait(
    db: *const MantisDb,
    ticket: u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(db);
        if ticket != 0 {
            h.db.commit_wait(ticket)?;
        }
        Ok(MantisStatus::MantisOk)
    })
}

/// A new descriptor of an eventfd signalled whenever the durable point
/// moves or the database stops taking writes (Linux only; elsewhere
/// `MANTIS_IO`). The caller owns it and closes it; it stays valid after the
/// database is freed, but is no longer signalled. For a caller that waits
/// for group commit without a thread of its own: hand each ticket to
/// `mantis_commit_request`, wait for the descriptor to be readable (and
/// drain it), then call `mantis_commit_wait` for the tickets the durable
/// point covers, which returns without waiting for a sync.
///
/// # Safety
/// `db` must be a live handle; `fd` must point to a writable `int`.
#[no_mangle]
pub unsafe extern "C" fn mantis_commit_notifier(
    db: *const MantisDb,
    fd: *mut i32,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let fd = try_out!(fd);
        fd.set(try_handle!(db).db.commit_notifier()?);
        Ok(MantisStatus::MantisOk)
    })
}

/// Makes sure a sync will cover the commit of `ticket` (0: none), without
/// waiting for it, and stores the durable point in `*durable`: every
/// ticket up to it is durable. Fails (`MANTIS_POISONED`) once the database
/// stopped taking writes after a failed write or sync; `mantis_commit_wait`
/// then gives each ticket its own outcome.
///
/// # Safety
/// `db` must be a live handle; `durable` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_commit_request(
    db: *const MantisDb,
    ticket: u64,
    durable: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let durable = try_out!(durable);
        durable.set(try_handle!(db).db.commit_request(ticket)?);
        Ok(MantisStatus::MantisOk)
    })
}

/// Prepares log space for later writes: under `always`, zeroes the segment
/// being written ahead of its records when they come close to the zeros'
/// end, and syncs the zeros. For a caller of `mantis_commit_wait`, after it
/// has acknowledged the writes that wait covered, so the work stays off
/// their path; cheap when there is nothing to do. Errors are left to the
/// writes that would need the space.
///
/// # Safety
/// `db` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_prepare_log(db: *const MantisDb, err: *mut *mut MantisError) -> MantisStatus {
    boundary(err, || {
        try_handle!(db).db.prepare_log();
        Ok(MantisStatus::MantisOk)
    })
}

/// Reads `count` keys at one snapshot into `*out` (free with `mantis_buf_free`).
///
/// `keys` holds, per key, its length as a little-endian `u32`
/// (`MANTIS_MULTI_GET_KEY_HEADER_LEN` bytes) then its bytes. `*out` holds,
/// per key in the same order, a header of `MANTIS_MULTI_GET_VALUE_HEADER_LEN`
/// bytes (`found: u8`, 1 or 0; `value_len: u32`, 0 when absent) then the
/// value.
///
/// # Safety
/// `db` must be a live handle; `keys` must point to `keys_len` readable bytes;
/// `out` must point to a writable `MantisBuf`.
#[no_mangle]
pub unsafe extern "C" fn mantis_multi_get(
    db: *const MantisDb,
    keys: *const u8,
    keys_len: usize,
    count: usize,
    out: *mut MantisBuf,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let h = try_handle!(db);
        let ks = parse_keys(try_bytes!(keys, keys_len, "keys"), count)?;
        let values = h.db.get_many(&ks)?;
        out.set(MantisBuf::from_vec(encode_values(&values)));
        Ok(MantisStatus::MantisOk)
    })
}

/// How many keys ahead of the one it reads `mantis_get_many_into` loads
/// the next keys' index entries into the CPU's caches.
const GET_MANY_AHEAD: usize = 4;

/// Reads `count` keys, encoded as for `mantis_multi_get`, one after the
/// other as `mantis_get_into` reads one key, into the caller's buffer
/// `dst` of `dst_cap` bytes: their values back to back, in key order, with
/// no allocation. `lens` is `count` little-endian `u64`s (`8 * count`
/// bytes): for each key answered, its value's length, or
/// `MANTIS_VALUE_ABSENT` when it has none (absent, deleted or expired).
/// `*done` receives how many keys were answered: all `count` on
/// `MANTIS_OK`; on `MANTIS_BUFFER_TOO_SMALL` the value of key `*done` did
/// not fit in the room left (its length is in `lens`, nothing of it was
/// copied): call again for the keys from there, with more room. On any
/// other error `*done` keys were answered before it. For a pipeline of
/// GETs: one crossing instead of one per key.
///
/// # Safety
/// `db` must be a live handle; `keys` must point to `keys_len` readable
/// bytes; `dst` must point to `dst_cap` writable bytes (any pointer when
/// 0); `lens` must point to `8 * count` writable bytes; `done` must point
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_get_many_into(
    db: *const MantisDb,
    keys: *const u8,
    keys_len: usize,
    count: usize,
    dst: *mut u8,
    dst_cap: usize,
    lens: *mut u8,
    done: *mut usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let done = try_out!(done);
        let h = try_handle!(db);
        // Refused when closed, as every read is, with no key to read too.
        h.db.check_open()?;
        let ks = parse_keys(try_bytes!(keys, keys_len, "keys"), count)?;
        let lens_len = count.checked_mul(8).ok_or_else(|| {
            fail(
                MantisStatus::MantisInvalidArgument,
                format!("{count} keys are too many"),
            )
        })?;
        let lens = try_bytes_mut!(lens, lens_len, "lens");
        let dst = try_bytes_mut!(dst, dst_cap, "dst");
        let mut at = 0usize;
        for (i, k) in ks.iter().enumerate() {
            if ks.len() > 1 {
                crate::prefetch::ahead(&ks, i, GET_MANY_AHEAD, |k| h.db.prefetch_key(k));
            }
            let len_out = &mut lens[i * 8..i * 8 + 8];
            let room = &mut dst[at..];
            let copied = h.db.get_with(k, |v| {
                len_out.copy_from_slice(&(v.len() as u64).to_le_bytes());
                let fits = v.len() <= room.len();
                if fits {
                    room[..v.len()].copy_from_slice(v);
                }
                fits.then_some(v.len())
            });
            let copied = match copied {
                Ok(c) => c,
                Err(e) => {
                    done.set(i);
                    return Err(e.into());
                }
            };
            match copied {
                Some(Some(n)) => at += n,
                Some(None) => {
                    done.set(i);
                    return Ok(MantisStatus::MantisBufferTooSmall);
                }
                None => len_out.copy_from_slice(&MANTIS_VALUE_ABSENT.to_le_bytes()),
            }
        }
        done.set(ks.len());
        Ok(MantisStatus::MantisOk)
    })
}

/// Writes buffered records to disk and syncs them.
///
/// # Safety
/// `db` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_sync(db: *const MantisDb, err: *mut *mut MantisError) -> MantisStatus {
    boundary(err, || {
        try_handle!(db).db.sync()?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Compacts now (see `Db::compact`).
///
/// # Safety
/// `db` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_compact(db: *const MantisDb, err: *mut *mut MantisError) -> MantisStatus {
    boundary(err, || {
        try_handle!(db).db.compact()?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Writes a consistent copy of the database into the directory `path`
/// (created if missing; must be empty).
///
/// # Safety
/// `db` must be a live handle; `path` readable for `path_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mantis_checkpoint(
    db: *const MantisDb,
    path: *const u8,
    path_len: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let h = try_handle!(db);
        let p = try_bytes!(path, path_len, "path");
        h.db.checkpoint(path_arg(p)?)?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Fills `*out` with the engine's counters.
///
/// # Safety
/// `db` must be a live handle; `out` must point to a writable `MantisStats`.
#[no_mangle]
pub unsafe extern "C" fn mantis_stats(
    db: *const MantisDb,
    out: *mut MantisStats,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let h = try_handle!(db);
        h.db.check_open()?;
        let s = h.db.stats();
        out.set(MantisStats {
            reads: s.reads,
            writes: s.writes,
            deletes: s.deletes,
            keys: s.keys,
            live_bytes: s.live_bytes,
            dead_bytes: s.dead_bytes,
            segments: s.segments,
            syncs: s.syncs,
            synced_commits: s.synced_commits,
            compactions: s.compactions,
            last_seq: s.last_seq,
            cache_hits: s.cache.hits,
            cache_misses: s.cache.misses,
            cache_evictions: s.cache.evictions,
            cache_resident_bytes: s.cache.resident_bytes,
            cache_capacity_bytes: s.cache.capacity_bytes,
        });
        Ok(MantisStatus::MantisOk)
    })
}

/// Diagnostics: looks up each of `count` keys (format of `mantis_multi_get`)
/// `rounds` times inside the library and writes the number of hits to
/// `*found`. It exists to measure the cost of crossing the boundary: a
/// caller times this against the same lookups made one call each.
///
/// # Safety
/// `db` must be a live handle; `keys` must point to `keys_len` readable
/// bytes; `found` must point to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_diag_get_loop(
    db: *const MantisDb,
    keys: *const u8,
    keys_len: usize,
    count: usize,
    rounds: u64,
    found: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let found = try_out!(found);
        let h = try_handle!(db);
        let ks = parse_keys(try_bytes!(keys, keys_len, "keys"), count)?;
        let mut hits = 0u64;
        for _ in 0..rounds {
            for k in &ks {
                hits += h.db.get(k)?.is_some() as u64;
            }
        }
        found.set(hits);
        Ok(MantisStatus::MantisOk)
    })
}
