//! The offline check of a data directory (see [`crate::check`]). It takes
//! no handle: it opens nothing, and runs while a server has the directory.

use std::path::Path;

use super::args::{try_bytes, try_out};
use super::boundary::boundary;
use super::db::path_arg;
use super::types::{MantisBuf, MantisError, MantisStatus};

/// Verifies the data directory at `path` (not NUL-terminated) without
/// writing to it, and writes the report, one JSON object (the fields of
/// `check::DirReport`), into `*out`; free it with `mantis_buf_free`.
/// Damage is in the report: the call answers `MANTIS_OK` whenever the check
/// could run, and fails (`MANTIS_IO`, `MANTIS_INVALID_ARGUMENT`) only when
/// it could not, as for a missing or unreadable directory.
///
/// # Safety
/// `path` readable for `path_len` bytes; `out` must point to a writable `MantisBuf`.
#[no_mangle]
pub unsafe extern "C" fn mantis_check_dir(
    path: *const u8,
    path_len: usize,
    out: *mut MantisBuf,
    err: *mut *mut MantisError,
) -> MantisStatus {
    boundary(err, || {
        let p = try_bytes!(path, path_len, "path");
        let out = try_out!(out);
        let report = crate::check::check_dir(Path::new(path_arg(p)?))?;
        out.set(MantisBuf::from_vec(report.to_json().into_bytes()));
        Ok(MantisStatus::MantisOk)
    })
}
