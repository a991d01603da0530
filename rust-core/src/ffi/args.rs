//! Checked arguments: the only code that turns a caller's raw pointers into
//! Rust references.
//!
//! Every exported function documents, in its `# Safety` section, what each
//! pointer argument must be. The caller's promises come in a few kinds, and
//! each kind has one macro here that checks what can be checked (NULL,
//! a length past `isize::MAX`, a handle's live-tag) and relies on the
//! promise for the rest:
//!
//! | argument                                | macro                              | gives                |
//! |-----------------------------------------|------------------------------------|----------------------|
//! | `(ptr, len)` bytes to read              | `try_bytes!(ptr, len, "what")`     | `&[u8]`              |
//! | `(ptr, len)` bytes to write             | `try_bytes_mut!(ptr, len, "what")` | `&mut [u8]`          |
//! | out-parameter `T *out`                  | `try_out!(out)`                    | [`Out<T>`]           |
//! | optional input `const T *p` (NULL: none)| `try_opt_ref!(p)`                  | `Option<&T>`         |
//! | handle `const MantisX *h`               | `try_handle!(h)`                   | `&MantisX`           |
//!
//! Each macro expands to one `unsafe` call of its function below (`bytes_arg`,
//! `out_arg`, ...), whose `# Safety` is exactly the promise every exported function
//! makes for that kind of argument, and ends in `?`: a failed check returns
//! the [`Fail`] from the body (inside [`boundary`](super::boundary::boundary)).
//! `_free` functions release handles through `release_handle!(h)`.
//!
//! A new exported function states its pointers' contracts in its `# Safety`
//! section in these terms and goes through these macros; it needs no
//! `unsafe` block of its own.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::boundary::{fail, Fail};
use super::types::MantisStatus;

/// A handle type: its live-tag and the name used in error messages.
///
/// Every handle is `repr(C)` with its `u64` live-tag as the first field, so
/// the tag of any handle, whatever its kind, is the first 8 bytes of its
/// allocation and can be read before the pointer is trusted to be of the
/// expected kind. Freeing a handle clears its tag.
pub(super) trait Live {
    /// The tag a live handle of this kind carries.
    const TAG: u64;
    /// What the handle is, for messages ("database", "iterator", ...).
    const KIND: &'static str;
    /// Clears the live-tag (and releases what must go before the memory does).
    fn retire(&mut self);
}

/// Borrows `len` bytes at `ptr` (any pointer when `len` is 0).
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` readable
/// bytes that stay valid and unmodified for the duration of the call.
pub(super) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(fail(
            MantisStatus::MantisNullParameter,
            format!("{what} is NULL with length {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(fail(
            MantisStatus::MantisInvalidArgument,
            format!("{what} length {len} is too large"),
        ));
    }
    // SAFETY: non-null, length in range, and the caller guarantees `len`
    // readable bytes for the duration of the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` writable bytes at `ptr` (any pointer when `len` is 0).
///
/// # Safety
/// When `len > 0` and `ptr` is not NULL, `ptr` must point to `len` writable
/// bytes that nothing else reads or writes for the duration of the call.
pub(super) unsafe fn bytes_mut_arg<'a>(ptr: *mut u8, len: usize, what: &str) -> Result<&'a mut [u8], Fail> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(fail(
            MantisStatus::MantisNullParameter,
            format!("{what} is NULL with length {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(fail(
            MantisStatus::MantisInvalidArgument,
            format!("{what} length {len} is too large"),
        ));
    }
    // SAFETY: non-null, length in range, and the caller guarantees `len`
    // writable bytes, not aliased, for the duration of the call.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// An out-parameter checked to be non-NULL; [`Out::set`] writes it.
pub(super) struct Out<'a, T> {
    ptr: NonNull<T>,
    _call: PhantomData<&'a mut T>,
}

impl<T> Out<'_, T> {
    /// Writes the output (without reading or dropping what was there).
    pub(super) fn set(self, value: T) {
        // SAFETY: `out_arg` made `ptr` from a non-NULL pointer its caller
        // promised to be valid for writes of a `T` during the call, and
        // `Out` does not outlive the call.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// Checks an out-parameter.
///
/// # Safety
/// `ptr` must be NULL or valid for writes of one `T`, suitably aligned, for
/// the duration of the call.
pub(super) unsafe fn out_arg<'a, T>(ptr: *mut T, what: &str) -> Result<Out<'a, T>, Fail> {
    match NonNull::new(ptr) {
        Some(ptr) => Ok(Out {
            ptr,
            _call: PhantomData,
        }),
        None => Err(fail(MantisStatus::MantisNullParameter, format!("{what} is NULL"))),
    }
}

/// Borrows an optional input (`None` for NULL).
///
/// # Safety
/// `ptr` must be NULL or point to a valid, aligned `T` that is not modified
/// for the duration of the call.
pub(super) unsafe fn opt_ref_arg<'a, T>(ptr: *const T) -> Option<&'a T> {
    // SAFETY: per the contract, a non-NULL `ptr` is a valid `T`.
    unsafe { ptr.as_ref() }
}

/// Resolves a handle pointer to a reference after checking its live-tag.
///
/// # Safety
/// `ptr` must be NULL or a handle returned by the library (of any kind) and
/// not yet freed (the live-tag check catches most uses of freed handles,
/// not all).
pub(super) unsafe fn handle_arg<'a, T: Live>(ptr: *const T) -> Result<&'a T, Fail> {
    if ptr.is_null() {
        return Err(fail(
            MantisStatus::MantisNullParameter,
            format!("{} handle is NULL", T::KIND),
        ));
    }
    // SAFETY: per the contract `ptr` is a handle allocated by this module;
    // every handle kind is repr(C) with its u64 tag first, so the first 8
    // bytes are readable and aligned whatever kind it really is.
    if unsafe { read_tag(ptr) } != T::TAG {
        return Err(fail(
            MantisStatus::MantisInvalidArgument,
            format!(
                "{} handle is not valid (freed, corrupted or another kind of handle)",
                T::KIND
            ),
        ));
    }
    // SAFETY: the tag says it is a live T, allocated by `Box::into_raw`.
    Ok(unsafe { &*ptr })
}

/// Boxes a new handle and hands its ownership to the caller.
pub(super) fn into_handle<T: Live>(handle: T) -> *mut T {
    Box::into_raw(Box::new(handle))
}

/// Frees a handle made by [`into_handle`] after clearing its live-tag
/// ([`Live::retire`]). A pointer whose tag is not this kind's (a handle
/// already freed, or one of another kind) is left alone.
///
/// # Safety
/// `ptr` must be NULL or a handle returned by the library, with no call on
/// it running in another thread.
pub(super) unsafe fn free_handle<T: Live>(ptr: *mut T) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: per the contract; see `read_tag`.
    if unsafe { read_tag(ptr) } != T::TAG {
        return;
    }
    // SAFETY: a live T allocated by Box::into_raw in `into_handle`, not in
    // use elsewhere; the tag is cleared before the memory is released, so a
    // second free of it is refused above.
    let mut b = unsafe { Box::from_raw(ptr) };
    b.retire();
    drop(b);
}

/// Reads the live-tag at the start of a handle.
///
/// # Safety
/// `ptr` must point to a handle of any kind allocated by this module.
unsafe fn read_tag<T>(ptr: *const T) -> u64 {
    // Volatile so the check is not folded away: it exists for handles that
    // were freed, where the value may have changed.
    // SAFETY: per the contract, 8 readable, aligned bytes (the tag field).
    unsafe { std::ptr::read_volatile(ptr.cast::<u64>()) }
}

/// `try_bytes!(ptr, len, "what")`: the `len` bytes at `ptr`, or a return of
/// `MANTIS_NULL_PARAMETER` / `MANTIS_INVALID_ARGUMENT` from the body.
macro_rules! try_bytes {
    ($ptr:expr, $len:expr, $what:expr) => {{
        let (ptr, len, what): (*const u8, usize, &str) = ($ptr, $len, $what);
        // SAFETY: every exported function documents a `(pointer, length)`
        // input as `len` readable bytes, unchanged during the call.
        unsafe { $crate::ffi::args::bytes_arg(ptr, len, what) }?
    }};
}

/// `try_bytes_mut!(ptr, len, "what")`: `len` writable bytes at `ptr`.
macro_rules! try_bytes_mut {
    ($ptr:expr, $len:expr, $what:expr) => {{
        let (ptr, len, what): (*mut u8, usize, &str) = ($ptr, $len, $what);
        // SAFETY: every exported function documents a destination buffer as
        // `len` writable bytes that the library alone uses during the call.
        unsafe { $crate::ffi::args::bytes_mut_arg(ptr, len, what) }?
    }};
}

/// `try_out!(out)`: the out-parameter `out` as an [`Out`], or a return of
/// `MANTIS_NULL_PARAMETER` naming it.
macro_rules! try_out {
    ($ptr:ident) => {{
        let ptr = $ptr;
        // SAFETY: every exported function documents its out-parameters as
        // writable storage for one value of their type.
        unsafe { $crate::ffi::args::out_arg(ptr, stringify!($ptr)) }?
    }};
}

/// `try_opt_ref!(p)`: `None` for NULL, else the `T` at `p`.
macro_rules! try_opt_ref {
    ($ptr:expr) => {{
        let ptr = $ptr;
        // SAFETY: every exported function documents an optional input as
        // NULL or a pointer to a valid value, unchanged during the call.
        unsafe { $crate::ffi::args::opt_ref_arg(ptr) }
    }};
}

/// `try_handle!(h)`: the live handle `h`, or a return of
/// `MANTIS_NULL_PARAMETER` (NULL) / `MANTIS_INVALID_ARGUMENT` (not a live
/// handle of the expected kind).
macro_rules! try_handle {
    ($ptr:expr) => {{
        let ptr = $ptr;
        // SAFETY: every exported function documents a handle argument as a
        // handle returned by the library and not yet freed.
        unsafe { $crate::ffi::args::handle_arg(ptr) }?
    }};
}

/// `release_handle!(h)`: the body of a `_free` function: frees the handle
/// `h` (NULL, a freed handle or one of another kind are left alone), with
/// panics caught.
macro_rules! release_handle {
    ($ptr:expr) => {{
        let ptr = $ptr;
        $crate::ffi::boundary::free_boundary(|| {
            // SAFETY: every `_free` function documents its argument as NULL
            // or a handle returned by the library, with no call on it
            // running in another thread.
            unsafe { $crate::ffi::args::free_handle(ptr) }
        })
    }};
}

pub(super) use {release_handle, try_bytes, try_bytes_mut, try_handle, try_opt_ref, try_out};
