//! The plain types of the C ABI: statuses, error objects, buffers and
//! counters, and the calls that free or describe them.

use std::ffi::c_char;

use super::boundary::free_boundary;
use crate::error::Error;

/// Result of every call. The numbers are stable across releases.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MantisStatus {
    /// Success.
    MantisOk = 0,
    /// The key is absent, deleted or expired.
    MantisNotFound = 1,
    /// A transaction lost a race with another writer.
    MantisConflict = 2,
    /// The database (or handle) was closed.
    MantisClosed = 3,
    /// An argument is out of range or a handle is not valid.
    MantisInvalidArgument = 4,
    /// A required pointer was NULL.
    MantisNullParameter = 5,
    /// A caller-supplied buffer is too small; the needed size was written.
    MantisBufferTooSmall = 6,
    /// Stored data failed validation.
    MantisCorruption = 7,
    /// An operating-system I/O call failed.
    MantisIo = 8,
    /// The library panicked (a bug); the call had no effect that can be relied on.
    MantisPanic = 9,
    /// Another open database holds the directory.
    MantisLocked = 10,
    /// The key is empty or longer than 65,535 bytes.
    MantisInvalidKey = 11,
    /// The value is longer than the configured limit.
    MantisValueTooLarge = 12,
    /// An earlier I/O failure stopped writes; reopen the database.
    MantisPoisoned = 13,
    /// An I/O call failed because the disk (or the user's quota) is full.
    /// Nothing of the call was acknowledged; like any failed write, it stops
    /// writes until the database is reopened.
    MantisNoSpace = 14,
    /// The engine broke one of its own invariants or ran out of an internal
    /// resource (a bug or a limit, not the caller's input); the message says
    /// which.
    MantisInternal = 15,
}

impl From<&Error> for MantisStatus {
    fn from(e: &Error) -> Self {
        match e {
            Error::Io { source, .. } if is_no_space(source) => MantisStatus::MantisNoSpace,
            Error::Io { .. } => MantisStatus::MantisIo,
            Error::Corruption { .. } => MantisStatus::MantisCorruption,
            Error::InvalidKey { .. } => MantisStatus::MantisInvalidKey,
            Error::ValueTooLarge { .. } => MantisStatus::MantisValueTooLarge,
            Error::InvalidArgument(_) => MantisStatus::MantisInvalidArgument,
            Error::Locked { .. } => MantisStatus::MantisLocked,
            Error::Closed => MantisStatus::MantisClosed,
            Error::Poisoned(_) => MantisStatus::MantisPoisoned,
            Error::Conflict(_) => MantisStatus::MantisConflict,
            Error::Internal(_) => MantisStatus::MantisInternal,
        }
    }
}

/// True for "no space left on device" and "disk quota exceeded".
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// An error returned by a call: its status and a message (UTF-8, NUL-terminated).
#[repr(C)]
pub struct MantisError {
    /// The status the call returned.
    pub status: MantisStatus,
    /// The message, NUL-terminated; owned by the error object.
    pub message: *mut c_char,
    /// Length of the message in bytes, without the NUL.
    pub message_len: usize,
}

/// Bytes returned by the library. Free with `mantis_buf_free`.
#[repr(C)]
pub struct MantisBuf {
    /// Start of the bytes (NULL when `len` is 0).
    pub data: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Allocation size, for the library's own use.
    pub cap: usize,
}

impl MantisBuf {
    /// Hands the bytes of `v` to the caller (freed by `mantis_buf_free`).
    pub(super) fn from_vec(mut v: Vec<u8>) -> MantisBuf {
        if v.is_empty() {
            return MantisBuf {
                data: std::ptr::null_mut(),
                len: 0,
                cap: 0,
            };
        }
        let b = MantisBuf {
            data: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        };
        std::mem::forget(v);
        b
    }
}

/// Engine counters (see `Stats` in the Rust API).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MantisStats {
    /// Keys looked up.
    pub reads: u64,
    /// Put operations committed.
    pub writes: u64,
    /// Delete operations committed.
    pub deletes: u64,
    /// Live keys.
    pub keys: u64,
    /// Log bytes of live versions.
    pub live_bytes: u64,
    /// Log bytes of dead versions.
    pub dead_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// fdatasync calls.
    pub syncs: u64,
    /// Commits made durable by those syncs.
    pub synced_commits: u64,
    /// Compaction passes that rewrote something.
    pub compactions: u64,
    /// Newest visible sequence number.
    pub last_seq: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// Cache misses.
    pub cache_misses: u64,
    /// Cache evictions.
    pub cache_evictions: u64,
    /// Bytes resident in the cache.
    pub cache_resident_bytes: u64,
    /// Cache budget in bytes.
    pub cache_capacity_bytes: u64,
}

/// The library version, a static NUL-terminated string (do not free).
#[no_mangle]
pub extern "C" fn mantis_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Frees an error object. Accepts NULL.
///
/// # Safety
/// `err` must be NULL or an error object returned by the library, freed once.
#[no_mangle]
pub unsafe extern "C" fn mantis_error_free(err: *mut MantisError) {
    if err.is_null() {
        return;
    }
    free_boundary(|| {
        // SAFETY: `err` came from Box::into_raw in `boundary::report`, and
        // its message from Box::into_raw of a boxed slice of message_len + 1
        // bytes; the caller frees it once.
        unsafe {
            let e = Box::from_raw(err);
            if !e.message.is_null() {
                let slice = std::ptr::slice_from_raw_parts_mut(e.message as *mut u8, e.message_len + 1);
                drop(Box::from_raw(slice));
            }
        }
    });
}

/// Frees a buffer returned by the library. Accepts a NULL buffer pointer and
/// an empty buffer; clears the struct.
///
/// # Safety
/// `buf` must be NULL or point to a `MantisBuf` the library filled, freed once.
#[no_mangle]
pub unsafe extern "C" fn mantis_buf_free(buf: *mut MantisBuf) {
    if buf.is_null() {
        return;
    }
    free_boundary(|| {
        // SAFETY: the library filled `*buf` from a Vec<u8> it forgot
        // (`MantisBuf::from_vec`); rebuilding the Vec with the same pointer,
        // length and capacity frees it.
        unsafe {
            let b = &mut *buf;
            if !b.data.is_null() && b.cap > 0 {
                drop(Vec::from_raw_parts(b.data, b.len, b.cap));
            }
            b.data = std::ptr::null_mut();
            b.len = 0;
            b.cap = 0;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_has_its_own_status() {
        let io = |e: std::io::Error| Error::io("appending to the log", e);
        let full = io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(MantisStatus::from(&full), MantisStatus::MantisNoSpace);
        let quota = io(std::io::Error::from_raw_os_error(libc::EDQUOT));
        assert_eq!(MantisStatus::from(&quota), MantisStatus::MantisNoSpace);
        let eio = io(std::io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(MantisStatus::from(&eio), MantisStatus::MantisIo);
    }

    #[test]
    fn an_internal_fault_is_not_the_callers_argument() {
        let e = Error::Internal("active segment 7 is not open".into());
        assert_eq!(MantisStatus::from(&e), MantisStatus::MantisInternal);
        assert_eq!(MantisStatus::MantisInternal as u32, 15, "status numbers are stable");
        assert_eq!(e.to_string(), "internal error: active segment 7 is not open");
    }
}
