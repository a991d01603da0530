//! Online backup: a consistent copy of a live database in another directory.
//!
//! The copy holds exactly the records up to one point of the log: the
//! writer's buffer is handed to the OS and the active segment's length and
//! last sequence number are taken under the append lock. Closed segments
//! (and their hint files) are immutable, so they are hard-linked when the
//! filesystem allows and copied otherwise; the active segment is copied up
//! to that length. Compaction is held off meanwhile, so no segment the copy
//! needs is retired. Reads and writes go on throughout.

use std::path::{Path, PathBuf};

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::log::hint;
use crate::log::segment;
use crate::vfs::{self, FileSystem, OpenMode};

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
    let fs = inner.fs();
    prepare_dest(fs, dest)?;
    let mut created = Vec::new();
    let res = fill(inner, dest, &mut created);
    if let Err(e) = res {
        // Leave `dest` empty, so the same directory can be used again.
        let mut left = Vec::new();
        for path in &created {
            if let Err(re) = fs.remove_file(path) {
                left.push(format!("{} ({re})", path.display()));
            }
        }
        if left.is_empty() {
            return Err(e);
        }
        let left = format!("; partial files left in {}: {}", dest.display(), left.join(", "));
        return Err(match e {
            Error::Io { context, source } => Error::Io {
                context: context + &left,
                source,
            },
            Error::Corruption { file, offset, reason } => Error::Corruption {
                file,
                offset,
                reason: reason + &left,
            },
            Error::Internal(m) => Error::Internal(m + &left),
            other => Error::InvalidArgument(format!("{other}{left}")),
        });
    }
    res
}

/// Links or copies every file of the checkpoint into `dest`, listing in
/// `created` each file made, then makes the names durable.
fn fill(inner: &Inner, dest: &Path, created: &mut Vec<PathBuf>) -> Result<CheckpointReport> {
    let fs = inner.fs();
    let _no_compaction = inner.compaction_guard();
    let (active, end, seq) = inner.log.position()?;
    let mut report = CheckpointReport {
        seq,
        ..CheckpointReport::default()
    };
    for seg in inner.log.segments().all() {
        let name = segment::segment_file_name(seg.id);
        if seg.id == active {
            let dst = dest.join(&name);
            copy_prefix(fs, &seg.path, &dst, end, created)?;
            report.copied_files += 1;
            report.copied_bytes += end;
        } else if seg.id < active || seg.sealed {
            // Segments the writer opened after `position` hold only later commits.
            link_or_copy(fs, &seg.path, &dest.join(&name), &mut report, created)?;
            let hint = hint::hint_path(inner.dir(), seg.id);
            if fs.stat(&hint).is_ok() {
                link_or_copy(
                    fs,
                    &hint,
                    &dest.join(hint::hint_file_name(seg.id)),
                    &mut report,
                    created,
                )?;
            }
        }
    }
    segment::sync_dir(fs, dest)?;
    Ok(report)
}

/// Makes `dest` an empty directory of mode 0700 whose name is durable.
fn prepare_dest(fs: &dyn FileSystem, dest: &Path) -> Result<()> {
    match fs.stat(dest) {
        Ok(st) if !st.is_dir => Err(Error::InvalidArgument(format!(
            "checkpoint path {} is not a directory",
            dest.display()
        ))),
        Ok(_) => {
            let names = fs
                .read_dir(dest)
                .map_err(|e| Error::io(format!("reading {}", dest.display()), e))?;
            if !names.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint directory {} is not empty",
                    dest.display()
                )));
            }
            fs.create_dir_all(dest)
                .map_err(|e| Error::io(format!("setting permissions of {}", dest.display()), e))
        }
        Err(_) => vfs::create_dir_durable(fs, dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e)),
    }
}

fn link_or_copy(
    fs: &dyn FileSystem,
    src: &Path,
    dst: &Path,
    report: &mut CheckpointReport,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    if fs.hard_link(src, dst).is_ok() {
        created.push(dst.to_path_buf());
        report.linked_files += 1;
        return Ok(());
    }
    let len = fs
        .stat(src)
        .map_err(|e| Error::io(format!("reading {}", src.display()), e))?
        .len;
    copy_prefix(fs, src, dst, len, created)?;
    report.copied_files += 1;
    report.copied_bytes += len;
    Ok(())
}

/// Copies the first `len` bytes of `src` to a new file `dst`, synced.
fn copy_prefix(fs: &dyn FileSystem, src: &Path, dst: &Path, len: u64, created: &mut Vec<PathBuf>) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let io = |e| Error::io(format!("copying {} to {}", src.display(), dst.display()), e);
    let from = fs.open(src, OpenMode::Read).map_err(io)?;
    let to = fs.open(dst, OpenMode::CreateNew).map_err(io)?;
    created.push(dst.to_path_buf());
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let mut at = 0;
    while at < len {
        let n = CHUNK.min(len - at) as usize;
        from.read_exact_at(&mut buf[..n], at).map_err(io)?;
        to.append(&buf[..n]).map_err(io)?;
        at += n as u64;
    }
    to.sync_all().map_err(io)
}
