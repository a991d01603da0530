//! Online backup: a consistent copy of a live database in another directory.
//!
//! The copy holds exactly the records up to one point of the log: the
//! writer's buffer is handed to the OS and the active segment's length and
//! last sequence number are taken under the append lock. Closed segments
//! (and their hint files) are immutable, so they are hard-linked when the
//! filesystem allows and copied otherwise; the active segment is copied up
//! to that length. Compaction is held off meanwhile, so no segment the copy
//! needs is retired. Reads and writes go on throughout.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::db::Inner;
use crate::error::{Error, Result};
use crate::log::hint;
use crate::log::segment;

/// What a checkpoint copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Sequence number of the last commit in the copy.
    pub seq: u64,
    /// Files hard-linked.
    pub linked_files: u64,
    /// Files copied.
    pub copied_files: u64,
    /// Bytes copied (hard links copy none).
    pub copied_bytes: u64,
}

pub(crate) fn checkpoint(inner: &Inner, dest: &Path) -> Result<CheckpointReport> {
    prepare_dest(dest)?;
    let _no_compaction = inner.compaction_guard();
    let (active, end, seq) = inner.log.position()?;
    let mut report = CheckpointReport {
        seq,
        ..CheckpointReport::default()
    };
    for seg in inner.log.segments().all() {
        let name = segment::segment_file_name(seg.id);
        if seg.id == active {
            copy_prefix(&seg.path, &dest.join(&name), end)?;
            report.copied_files += 1;
            report.copied_bytes += end;
        } else if seg.id < active || seg.sealed {
            // Segments the writer opened after `position` hold only later commits.
            link_or_copy(&seg.path, &dest.join(&name), &mut report)?;
            let hint = hint::hint_path(inner.dir(), seg.id);
            if hint.exists() {
                link_or_copy(&hint, &dest.join(hint::hint_file_name(seg.id)), &mut report)?;
            }
        }
    }
    segment::sync_dir(dest)?;
    Ok(report)
}

fn prepare_dest(dest: &Path) -> Result<()> {
    if dest.exists() {
        let mut entries = fs::read_dir(dest).map_err(|e| Error::io(format!("reading {}", dest.display()), e))?;
        if entries.next().is_some() {
            return Err(Error::InvalidArgument(format!(
                "checkpoint directory {} is not empty",
                dest.display()
            )));
        }
    } else {
        fs::create_dir_all(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    }
    fs::set_permissions(dest, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("setting permissions of {}", dest.display()), e))
}

fn link_or_copy(src: &Path, dst: &Path, report: &mut CheckpointReport) -> Result<()> {
    if fs::hard_link(src, dst).is_ok() {
        report.linked_files += 1;
        return Ok(());
    }
    let len = fs::metadata(src)
        .map_err(|e| Error::io(format!("reading {}", src.display()), e))?
        .len();
    copy_prefix(src, dst, len)?;
    report.copied_files += 1;
    report.copied_bytes += len;
    Ok(())
}

/// Copies the first `len` bytes of `src` to a new file `dst`, synced.
fn copy_prefix(src: &Path, dst: &Path, len: u64) -> Result<()> {
    let io = |e| Error::io(format!("copying {} to {}", src.display(), dst.display()), e);
    let mut from = File::open(src).map_err(io)?.take(len);
    let mut to = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(dst)
        .map_err(io)?;
    let copied = std::io::copy(&mut from, &mut to).map_err(io)?;
    if copied != len {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("copied {copied} of {len} bytes"),
        )));
    }
    to.flush().and_then(|_| to.sync_all()).map_err(io)
}
