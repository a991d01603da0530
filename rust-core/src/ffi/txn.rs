//! The transaction handle: optimistic, serializable transactions.

use parking_lot::Mutex;

use super::args::{into_handle, release_handle, try_bytes, try_handle, try_out, Live};
use super::boundary::{boundary, fail, Fail, FfiResult};
use super::db::{expiry_in, expiry_out, MantisDb};
use super::types::{MantisBuf, MantisError, MantisStatus};
use crate::Transaction;

/// An optimistic transaction.
///
/// Opaque in C (declared in cbindgen.toml); its fields are private.
///
/// cbindgen:ignore
#[repr(C)]
pub struct MantisTxn {
    // First field: see `Live`.
    live: u64,
    /// `None` once committed or rolled back.
    txn: Mutex<Option<Transaction>>,
}

impl Live for MantisTxn {
    const TAG: u64 = u64::from_le_bytes(*b"MANTISTX");
    const KIND: &'static str = "transaction";
    fn retire(&mut self) {
        self.live = 0;
    }
}

impl MantisTxn {
    /// Runs `f` on the open transaction.
    fn with_open(&self, f: impl FnOnce(&mut Transaction) -> FfiResult) -> FfiResult {
        match self.txn.lock().as_mut() {
            Some(t) => f(t),
            None => Err(finished()),
        }
    }
}

fn finished() -> Fail {
    fail(
        MantisStatus::MantisInvalidArgument,
        "transaction already committed or rolled back",
    )
}

/// Begins an optimistic, serializable transaction. Free with `mantis_txn_free`.
///
/// # Safety
/// `db` must be a live handle; `out` must point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_begin(
    db: *const MantisDb,
    out: *mut *mut MantisTxn,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let txn = try_handle!(db).db.begin()?;
        out.set(into_handle(MantisTxn {
            live: MantisTxn::TAG,
            txn: Mutex::new(Some(txn)),
        }));
        Ok(MantisStatus::MantisOk)
    })
}

/// Buffers a put in the transaction.
///
/// # Safety
/// `txn` must be a live transaction handle; `key`/`value` readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_put(
    txn: *const MantisTxn,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let k = try_bytes!(key, key_len, "key");
        let v = try_bytes!(value, value_len, "value");
        try_handle!(txn).with_open(|t| {
            t.put(k, v)?;
            Ok(MantisStatus::MantisOk)
        })
    })
}

/// Buffers a put in the transaction that expires at `expires_at_ms`
/// (milliseconds since the Unix epoch). A time at or before the commit's
/// clock (0 and negative times included) makes the commit remove the key: it
/// commits as a delete. For a put that never expires, use `mantis_txn_put`.
///
/// # Safety
/// `txn` must be a live transaction handle; `key`/`value` readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_put_expiry(
    txn: *const MantisTxn,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    expires_at_ms: i64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let k = try_bytes!(key, key_len, "key");
        let v = try_bytes!(value, value_len, "value");
        try_handle!(txn).with_open(|t| {
            t.put_with_expiry(k, v, expiry_in(expires_at_ms))?;
            Ok(MantisStatus::MantisOk)
        })
    })
}

/// Buffers a delete in the transaction.
///
/// # Safety
/// `txn` must be a live transaction handle; `key` readable for `key_len`.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_delete(
    txn: *const MantisTxn,
    key: *const u8,
    key_len: usize,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let k = try_bytes!(key, key_len, "key");
        try_handle!(txn).with_open(|t| {
            t.delete(k)?;
            Ok(MantisStatus::MantisOk)
        })
    })
}

/// Reads `key` in the transaction (its own writes first); see `mantis_get` for `out`.
///
/// # Safety
/// `txn` must be a live transaction handle; `key` readable; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_get(
    txn: *const MantisTxn,
    key: *const u8,
    key_len: usize,
    out: *mut MantisBuf,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let k = try_bytes!(key, key_len, "key");
        try_handle!(txn).with_open(|t| match t.get(k)? {
            None => Ok(MantisStatus::MantisNotFound),
            Some(v) => {
                out.set(MantisBuf::from_vec(v.to_vec()));
                Ok(MantisStatus::MantisOk)
            }
        })
    })
}

/// Reads `key` in the transaction with its version and expiry; the outputs
/// are those of `mantis_get_meta`. A read of the snapshot adds the key to the
/// read set, as `mantis_txn_get` does. The transaction's own write of the key
/// has `*seq` 0 (it has no commit yet) and the expiry it would get if it
/// committed now.
///
/// # Safety
/// `txn` must be a live transaction handle; `key` readable; `out`, `seq`
/// and `expires_at_ms` writable, as for `mantis_get_meta`.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_get_meta(
    txn: *const MantisTxn,
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
        let k = try_bytes!(key, key_len, "key");
        try_handle!(txn).with_open(|t| match t.get_with_meta(k)? {
            None => Ok(MantisStatus::MantisNotFound),
            Some((v, meta)) => {
                out.set(MantisBuf::from_vec(v.to_vec()));
                seq.set(meta.seq);
                expires_at_ms.set(expiry_out(meta.expires_at_ms));
                Ok(MantisStatus::MantisOk)
            }
        })
    })
}

/// Commits the transaction (`MANTIS_CONFLICT` if another writer won). The
/// handle is finished either way; free it with `mantis_txn_free`.
///
/// # Safety
/// `txn` must be a live transaction handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_commit(txn: *const MantisTxn, err: *mut *mut MantisError) -> MantisStatus {
    boundary(err, || {
        let t = try_handle!(txn).txn.lock().take().ok_or_else(finished)?;
        t.commit()?;
        Ok(MantisStatus::MantisOk)
    })
}

/// The first half of `mantis_txn_commit`, for a caller that waits for
/// durability itself (as `mantis_put_begin`): validates the transaction and
/// logs and applies its writes, neither durable nor visible yet. On
/// `MANTIS_OK`, `*ticket` receives 0 when there is nothing to wait for (no
/// writes, or a sync policy other than `always`: the commit is done), or a
/// ticket that must go to `mantis_commit_wait` before the commit is
/// acknowledged. On `MANTIS_CONFLICT` nothing was written, and `*ticket`
/// receives the ticket of the commit it lost to while that one is not yet
/// visible (0 otherwise): waiting for it with `mantis_commit_wait` before a
/// retry keeps the retry from reading the value it lost to. The handle is
/// finished either way; free it with `mantis_txn_free` once the wait is
/// over (an open handle keeps later transactions from waiting at begin).
///
/// # Safety
/// `txn` must be a live transaction handle; `ticket` must point to a
/// writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_commit_begin(
    txn: *const MantisTxn,
    ticket: *mut u64,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let ticket = try_out!(ticket);
        // The finished transaction stays in the handle until it is freed:
        // while it is open, the engine keeps tracking the keys of every
        // commit, so a transaction beginning during this one's wait for
        // durability need not wait for the commits in flight itself.
        let mut guard = try_handle!(txn).txn.lock();
        let Some(t) = guard.as_mut() else {
            ticket.set(0);
            return Err(finished());
        };
        let res = t.commit_begin();
        ticket.set(match &res {
            Ok(waits) => waits.unwrap_or(0),
            Err(_) => t.lost_to().unwrap_or(0),
        });
        res?;
        Ok(MantisStatus::MantisOk)
    })
}

/// Discards the transaction's writes. Rolling back a finished transaction succeeds.
///
/// # Safety
/// `txn` must be a live transaction handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_rollback(txn: *const MantisTxn, err: *mut *mut MantisError) -> MantisStatus {
    boundary(err, || {
        if let Some(t) = try_handle!(txn).txn.lock().take() {
            t.rollback();
        }
        Ok(MantisStatus::MantisOk)
    })
}

/// Frees a transaction (rolling it back if still open). Accepts NULL.
///
/// # Safety
/// `txn` must be NULL or a transaction handle, freed once, not in use elsewhere.
#[no_mangle]
pub unsafe extern "C" fn mantis_txn_free(txn: *mut MantisTxn) {
    release_handle!(txn)
}
