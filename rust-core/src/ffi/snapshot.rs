//! The snapshot handle: reads at one point in time.

use super::args::{into_handle, release_handle, try_bytes, try_handle, try_out, Live};
use super::boundary::boundary;
use super::db::MantisDb;
use super::types::{MantisBuf, MantisError, MantisStatus};
use crate::Snapshot;

/// A read-only snapshot.
///
/// Opaque in C (declared in cbindgen.toml); its fields are private.
///
/// cbindgen:ignore
#[repr(C)]
pub struct MantisSnapshot {
    // First field: see `Live`.
    live: u64,
    snap: Snapshot,
}

impl Live for MantisSnapshot {
    const TAG: u64 = u64::from_le_bytes(*b"MANTISSN");
    const KIND: &'static str = "snapshot";
    fn retire(&mut self) {
        self.live = 0;
    }
}

/// Takes a snapshot. Free with `mantis_snapshot_free`.
///
/// # Safety
/// `db` must be a live handle; `out` must point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn mantis_snapshot_new(
    db: *const MantisDb,
    out: *mut *mut MantisSnapshot,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let snap = try_handle!(db).db.snapshot()?;
        out.set(into_handle(MantisSnapshot {
            live: MantisSnapshot::TAG,
            snap,
        }));
        Ok(MantisStatus::MantisOk)
    })
}

/// Reads `key` as of the snapshot; see `mantis_get` for `out`.
///
/// # Safety
/// As `mantis_get`, with a live snapshot handle.
#[no_mangle]
pub unsafe extern "C" fn mantis_snapshot_get(
    snap: *const MantisSnapshot,
    key: *const u8,
    key_len: usize,
    out: *mut MantisBuf,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let out = try_out!(out);
        let h = try_handle!(snap);
        let k = try_bytes!(key, key_len, "key");
        match h.snap.get(k)? {
            None => Ok(MantisStatus::MantisNotFound),
            Some(v) => {
                out.set(MantisBuf::from_vec(v.to_vec()));
                Ok(MantisStatus::MantisOk)
            }
        }
    })
}

/// Frees a snapshot. Accepts NULL.
///
/// # Safety
/// `snap` must be NULL or a snapshot handle, freed once, not in use elsewhere.
#[no_mangle]
pub unsafe extern "C" fn mantis_snapshot_free(snap: *mut MantisSnapshot) {
    release_handle!(snap)
}
