//! The panic boundary of every exported call, and how a failure reaches C.
//!
//! An exported function's body runs in [`boundary`]: it returns `Ok(status)`
//! for the outcomes that are not errors (`MANTIS_OK`, `MANTIS_NOT_FOUND`,
//! `MANTIS_BUFFER_TOO_SMALL`) and `Err(Fail)` for the rest; a panic is
//! caught and answers `MANTIS_PANIC`. A failure's message goes to the
//! caller's `MantisError **err` when it is not NULL.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::types::{MantisError, MantisStatus};
use crate::error::Error;

/// A failure inside a call: the status and its message.
pub(super) struct Fail(pub(super) MantisStatus, pub(super) String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail(MantisStatus::from(&e), e.to_string())
    }
}

/// What a call's body returns: the status of an outcome that is not an
/// error, or the failure.
pub(super) type FfiResult = std::result::Result<MantisStatus, Fail>;

/// Builds a failure.
pub(super) fn fail(status: MantisStatus, msg: impl Into<String>) -> Fail {
    Fail(status, msg.into())
}

/// Runs `body` with panics caught; turns failures into a status and an error object.
pub(super) fn boundary(err: *mut *mut MantisError, body: impl FnOnce() -> FfiResult) -> MantisStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(Fail(status, msg))) => {
            report(err, status, msg);
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            report(
                err,
                MantisStatus::MantisPanic,
                format!("internal error (panic): {what}"),
            );
            MantisStatus::MantisPanic
        }
    }
}

/// Runs the body of a `_free` function, which has no status to return:
/// a panic is caught and dropped.
pub(super) fn free_boundary(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// Writes an error object to `err` when it is not NULL.
fn report(err: *mut *mut MantisError, status: MantisStatus, msg: String) {
    if err.is_null() {
        return;
    }
    let mut bytes = msg.into_bytes();
    bytes.retain(|&b| b != 0);
    let len = bytes.len();
    bytes.push(0);
    let message = Box::into_raw(bytes.into_boxed_slice()) as *mut c_char;
    let e = Box::new(MantisError {
        status,
        message,
        message_len: len,
    });
    // SAFETY: every function taking `err` documents it as NULL (checked
    // above) or a pointer to writable storage for one `MantisError*`.
    unsafe { *err = Box::into_raw(e) };
}
