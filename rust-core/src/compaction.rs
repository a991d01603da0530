//! Compaction: rewrites segments with their live records only, and keeps
//! hint files beside closed segments.
//!
//! A group of closed segments is read, every op still referenced by the
//! index is copied (grouped by sequence number, in sequence order) into a
//! new *sealed* segment, written under a temporary name, synced, renamed
//! into place and given a hint file. Then each copied version is moved in
//! the index (a per-key compare-and-set on sequence and segment, so a write
//! racing the compaction always wins), and the old files are unlinked.
//! Readers never block: one that still holds an old segment reads on from
//! the open file; one that finds its segment gone looks the key up again.
//!
//! What is dropped: versions no snapshot can read (superseded or deleted),
//! deletes whose key has no older record left in any other segment, and
//! expired values (turned into deletes, so older records stay shadowed)
//! that no open snapshot could still see.
//!
//! A crash at any point is safe: until the old files are unlinked, both
//! copies exist, and recovery keeps the version with the highest sequence
//! number, which is the same record in both.
//!
//! A retired input's file is renamed to `{id}.free` instead of removed when
//! the log keeps files for reuse (see [`crate::log::segment::recycle`]):
//! the name leaves the set of segments just as an unlink would, and the
//! writer later starts a segment in it. Only a file nothing else can read
//! is kept: no reader holds the segment any more, no snapshot (so no
//! iterator, which reads through files it opened) is open, it has no other name (a
//! checkpoint's hard link), and it is from half a segment to two segments long.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engine::{now_ms, Inner};
use crate::error::{Error, Result};
use crate::log::hint::{self, HINT_VALUE_MAX};
use crate::log::record::{self, OpKind, OpRef};
use crate::log::segment::{self, Segment, FLAG_SEALED, SEGMENT_HEADER_LEN};
use crate::vfs::{FileSystem, OpenMode};

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segments rewritten.
    pub segments_in: u64,
    /// Segments written.
    pub segments_out: u64,
    /// Bytes of the segments rewritten.
    pub bytes_in: u64,
    /// Bytes of the segments written.
    pub bytes_out: u64,
}

impl CompactionReport {
    fn add(&mut self, o: CompactionReport) {
        self.segments_in += o.segments_in;
        self.segments_out += o.segments_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// An op kept by compaction, borrowing from its input segment's bytes.
struct Kept<'a> {
    seq: u64,
    from: u32,
    kind: OpKind,
    key: &'a [u8],
    value: &'a [u8],
    expires_at: u64,
    /// An expired put rewritten as a delete.
    expired: bool,
}

/// Writes hint files for closed segments that lack one. On failure the
/// segments still without a hint stay queued for the next pass (a missing
/// hint only makes the next open read the segment itself).
pub(crate) fn write_pending_hints(inner: &Inner) -> Result<()> {
    let segments = inner.log.segments();
    let pending = segments.take_unhinted();
    for (i, &id) in pending.iter().enumerate() {
        let Some(seg) = segments.get(id) else { continue };
        let written = seg
            .read_all()
            .and_then(|data| hint::write_from_frames(inner.fs(), inner.dir(), id, &data, inner.hint_inline()));
        if let Err(e) = written {
            segments.hint_later(&pending[i..]);
            return Err(e);
        }
    }
    Ok(())
}

/// True when a closed segment is held back from compaction only because
/// its last commits are not visible yet (they are finishing their sync).
pub(crate) fn closed_segment_pending(inner: &Inner) -> bool {
    let visible = inner.vis.visible();
    inner
        .log
        .segments()
        .all()
        .iter()
        .any(|s| s.closed.load(Ordering::Acquire) && s.usage.max_seq.load(Ordering::Relaxed) > visible)
}

/// Compacts every closed segment whose dead fraction reaches `threshold`
/// (or, with `everything`, every closed segment holding any dead or expiring bytes).
pub(crate) fn compact(inner: &Inner, threshold: f64, everything: bool) -> Result<CompactionReport> {
    // Only closed segments (the writer's current and next ones are never
    // touched), and only those whose every commit is visible: a commit is in its
    // segment before it is in the index (under `Always` it waits for its
    // group's sync, during which the segment may close), and an op the index
    // does not hold yet would look dead.
    let visible = inner.vis.visible();
    let candidates: Vec<Arc<Segment>> = inner
        .log
        .segments()
        .all()
        .into_iter()
        .filter(|s| s.closed.load(Ordering::Acquire) && s.usage.max_seq.load(Ordering::Relaxed) <= visible)
        .filter(|s| {
            // A segment with nothing live (all dead, or empty) always goes.
            let f = if s.usage.live.load(Ordering::Relaxed) == 0 {
                1.0
            } else {
                s.usage.dead_fraction()
            };
            if everything {
                f > 0.0 || s.usage.has_expiry.load(Ordering::Relaxed)
            } else {
                f >= threshold
            }
        })
        .collect();
    let budget = inner.segment_size();
    let sizes: Vec<(u64, u64)> = candidates
        .iter()
        .map(|s| {
            let live = s.usage.live.load(Ordering::Relaxed);
            (live, live + s.usage.dead.load(Ordering::Relaxed))
        })
        .collect();
    let mut report = CompactionReport::default();
    for group in plan_groups(&sizes, budget) {
        report.add(compact_group(inner, &candidates[group])?);
    }
    Ok(report)
}

/// Splits segments, given as (live bytes, live + dead bytes), into runs
/// compacted together: each run's live bytes fit one output segment of
/// `budget` bytes, and its input (read whole into memory) stays within
/// twice that, so a pass over many mostly-dead segments does not hold them
/// all in memory at once. A segment too big for either bound goes alone.
fn plan_groups(sizes: &[(u64, u64)], budget: u64) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut live, mut bytes) = (0, 0u64, 0u64);
    for (i, &(seg_live, seg_bytes)) in sizes.iter().enumerate() {
        if i > start && (live + seg_live > budget || bytes + seg_bytes > 2 * budget) {
            groups.push(start..i);
            (start, live, bytes) = (i, 0, 0);
        }
        live += seg_live;
        bytes += seg_bytes;
    }
    if start < sizes.len() {
        groups.push(start..sizes.len());
    }
    groups
}

/// Rewrites `inputs` into one sealed segment (or none, if nothing is live).
fn compact_group(inner: &Inner, inputs: &[Arc<Segment>]) -> Result<CompactionReport> {
    let segments = inner.log.segments();
    // Oldest sequence in every segment: a delete must stay while an older
    // record of its key may exist in another segment, the other inputs
    // included: the inputs are unlinked one by one, and a crash between two
    // unlinks must not leave an older record without the delete shadowing it.
    let mins: Vec<(u32, u64)> = segments
        .all()
        .iter()
        .map(|s| (s.id, s.usage.min_seq.load(Ordering::Relaxed)))
        .collect();
    let older_elsewhere = |seq: u64, own: u32| mins.iter().any(|&(id, m)| id != own && m < seq);
    // An expired value may go once no open snapshot can still see it.
    let safe_time = now_ms().min(inner.snapshots.oldest_time());
    inner.snapshots.advance(&inner.vis);
    let watermark = inner.snapshots.watermark();

    let mut datas = Vec::with_capacity(inputs.len());
    for seg in inputs {
        datas.push(seg.read_all()?);
    }
    // Room for every op of the inputs at once (counted from the frame
    // headers; a damaged header only misjudges the capacity, decoding
    // below still refuses it): grown by doubling, the list (64 bytes per
    // op) was copied into fresh pages the kernel zeroes, each time.
    // Capacity past the end is never touched, so never faulted in.
    let announced: usize = datas
        .iter()
        .map(|d| record::announced_ops(d.get(SEGMENT_HEADER_LEN as usize..).unwrap_or_default()))
        .sum();
    let mut kept: Vec<Kept<'_>> = Vec::with_capacity(announced);
    for (seg, data) in inputs.iter().zip(&datas) {
        let salt = segment::frame_salt(data);
        let mut at = SEGMENT_HEADER_LEN as usize;
        while at < data.len() {
            let rec = record::decode_salted(&data[at..], salt).map_err(|e| {
                Error::corruption(&seg.path, at as u64, format!("compaction found a bad record: {e:?}"))
            })?;
            // A batch may write a key twice; only its last op on a key counts.
            let mut seen = HashSet::with_capacity(rec.ops.len());
            let last_of_key: Vec<bool> = rec.ops.iter().rev().map(|op| seen.insert(op.key)).collect();
            for (op, last) in rec.ops.iter().zip(last_of_key.into_iter().rev()) {
                if !last {
                    continue;
                }
                let state = inner.index().holds(op.key, rec.seq, seg.id, watermark);
                let keep = match (op.kind, state) {
                    (OpKind::Put, None) => None,
                    (OpKind::Put, Some(newest)) => {
                        let expired = newest && op.expires_at != 0 && op.expires_at <= safe_time;
                        Some(expired)
                    }
                    (OpKind::Delete, Some(_)) => Some(false),
                    (OpKind::Delete, None) => {
                        let superseded = inner.index().newest_seq(op.key).is_some_and(|s| s > rec.seq);
                        (!superseded && older_elsewhere(rec.seq, seg.id)).then_some(false)
                    }
                };
                if let Some(expired) = keep {
                    kept.push(Kept {
                        seq: rec.seq,
                        from: seg.id,
                        kind: if expired { OpKind::Delete } else { op.kind },
                        key: op.key,
                        value: if expired { &[] } else { op.value },
                        expires_at: if expired { 0 } else { op.expires_at },
                        expired,
                    });
                }
            }
            at += rec.frame_len;
        }
    }
    let bytes_in: u64 = datas.iter().map(|d| d.len() as u64).sum();
    // Sequence order, ops of one commit together: recovery requires strictly
    // increasing sequence numbers within a segment.
    kept.sort_by_key(|k| k.seq);

    let mut report = CompactionReport {
        segments_in: inputs.len() as u64,
        bytes_in,
        ..CompactionReport::default()
    };
    if !kept.is_empty() {
        let out_id = segments.allocate_id()?;
        let out_salt = record::Salt::of_segment(out_id);
        // Room for the whole output at once (as if every op were a record of
        // its own, an upper bound): growing it by doubling would copy it
        // into fresh pages the kernel zeroes, each time; capacity past the
        // end is never touched, so never faulted in.
        let bound: usize = kept
            .iter()
            .map(|k| {
                record::FRAME_HEADER_LEN
                    + record::PAYLOAD_HEADER_LEN
                    + record::op_encoded_len(&OpRef {
                        kind: k.kind,
                        key: k.key,
                        value: k.value,
                        expires_at: k.expires_at,
                    })
            })
            .sum();
        let mut buf = Vec::with_capacity(SEGMENT_HEADER_LEN as usize + bound);
        buf.extend_from_slice(&segment::encode_header(out_id, FLAG_SEALED, 0));
        let mut offsets = Vec::with_capacity(kept.len());
        let mut kv = Vec::new();
        let mut i = 0;
        while i < kept.len() {
            let j = i + kept[i..].iter().take_while(|k| k.seq == kept[i].seq).count();
            let ops: Vec<OpRef<'_>> = kept[i..j]
                .iter()
                .map(|k| OpRef {
                    kind: k.kind,
                    key: k.key,
                    value: k.value,
                    expires_at: k.expires_at,
                })
                .collect();
            let frame_at = buf.len() as u64;
            record::encode_salted(&mut buf, kept[i].seq, &ops, &mut kv, out_salt);
            offsets.extend(kv.iter().map(|&(off, _)| frame_at + off as u64));
            i = j;
        }
        debug_assert!(buf.len() <= SEGMENT_HEADER_LEN as usize + bound);
        let out = Arc::new(write_sealed(inner.fs(), inner.dir(), out_id, &buf)?);
        for k in &kept {
            out.usage.note_seq(k.seq);
        }
        // From the rename on, the file is a segment of the database: it is
        // tracked at once, so if a later step fails it is still accounted
        // for (compacted away as dead, never left behind untracked holding
        // records whose deletes a later compaction could drop).
        segments.insert(Arc::clone(&out));
        segment::sync_dir(inner.fs(), inner.dir())?;
        if let Err(e) = hint::write_from_frames(inner.fs(), inner.dir(), out_id, &buf, inner.hint_inline()) {
            segments.hint_later(&[out_id]);
            return Err(e);
        }
        // Switch the index over, one version at a time.
        for (k, &offset) in kept.iter().zip(&offsets) {
            let bytes = crate::accounting::op_log_bytes(k.key.len(), k.value.len(), k.expires_at) as u64;
            let live = if k.expired {
                if inner
                    .index()
                    .expire_to_tombstone(k.key, k.seq, k.from, out_id, bytes as u32)
                {
                    inner.expired_by_compaction(k.seq, k.key);
                }
                false
            } else {
                inner.index().relocate(k.key, k.seq, k.from, out_id, offset) == Some(true)
            };
            if live {
                out.usage.live.fetch_add(bytes, Ordering::Relaxed);
            } else {
                out.usage.dead.fetch_add(bytes, Ordering::Relaxed);
            }
        }
        report.segments_out = 1;
        report.bytes_out = buf.len() as u64;
    }
    // Retire the inputs: readers holding them read on; new lookups find the
    // relocated versions. A segment leaves the set only once its file is
    // gone, so one whose removal failed stays tracked (and is retried).
    // Files renamed for reuse join the pool only once the directory is
    // synced: the writer overwrites a pooled file's header, which must
    // never happen under its old, durable segment name.
    let mut for_reuse = Vec::new();
    let res = (|| {
        for seg in inputs {
            // The hint first: a hint without its segment is ignored at open.
            remove_if_present(inner.fs(), &hint::hint_path(inner.dir(), seg.id))?;
            if segments.wants_free(for_reuse.len()) && keep_for_reuse(inner, segments, seg)? {
                for_reuse.push(seg.id);
                continue;
            }
            remove_if_present(inner.fs(), &seg.path)?;
            segments.remove(seg.id);
        }
        segment::sync_dir(inner.fs(), inner.dir())
    })();
    if res.is_ok() {
        for id in for_reuse {
            segments.add_free(id);
        }
    }
    res.map(|()| report)
}

/// Retires `seg` by renaming its file to `{id}.free`, if nothing else can
/// read it; returns false (the segment untouched and still in the set) when
/// it cannot be kept. The caller syncs the directory, then adds the file to
/// the log's pool.
fn keep_for_reuse(inner: &Inner, segments: &crate::log::SegmentSet, seg: &Arc<Segment>) -> Result<bool> {
    let len = seg.file_len()?;
    // Small files save little; one far past the segment size (a single
    // large commit) would hold much disk. Another name (a checkpoint's hard
    // link) would see the new records.
    let size = inner.segment_size();
    if len < size / 2 || len > 2 * size || seg.links().ok() != Some(1) {
        return Ok(false);
    }
    // Out of the set first, so no new reader can find it; then no reader
    // holds it if this pass's handle (`seg`) and the set's were the only
    // ones. An iterator reads through files it opened itself, by path, while
    // it holds a snapshot: with no snapshot open now, none has this file
    // open, and one that opens later no longer finds the segment (it
    // registers its snapshot before it looks segments up).
    let Some(held) = segments.remove(seg.id) else {
        return Ok(false);
    };
    if Arc::strong_count(seg) > 2 || inner.snapshots.open_count() > 0 {
        segments.insert(held);
        return Ok(false);
    }
    drop(held);
    let free = inner.dir().join(segment::free_file_name(seg.id));
    if let Err(e) = inner.fs().rename(&seg.path, &free) {
        segments.insert(Arc::clone(seg));
        return Err(Error::io(
            format!("renaming {} to {}", seg.path.display(), free.display()),
            e,
        ));
    }
    Ok(true)
}

/// Writes a sealed segment under a temporary name, syncs it, and renames it
/// into place; returns it open for reading. The caller syncs the directory.
/// On failure before the rename, the temporary file is removed (or, failing
/// that, by the next open).
fn write_sealed(fs: &dyn FileSystem, dir: &Path, id: u32, bytes: &[u8]) -> Result<Segment> {
    let path = dir.join(segment::segment_file_name(id));
    let tmp = dir.join(format!("{}.tmp", segment::segment_file_name(id)));
    let written = fs.open(&tmp, OpenMode::Replace).and_then(|f| {
        f.append(bytes)?;
        f.sync_all()?;
        Ok(f)
    });
    let file = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = fs.remove_file(&tmp);
            return Err(Error::io(format!("writing {}", tmp.display()), e));
        }
    };
    if let Err(e) = fs.rename(&tmp, &path) {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io(format!("renaming {} into place", tmp.display()), e));
    }
    Ok(Segment::with_handle(id, path, true, file))
}

fn remove_if_present(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Values kept in hint files: never more than the hint format's cap.
pub(crate) fn hint_inline(inline_threshold: usize) -> usize {
    inline_threshold.clamp(64, HINT_VALUE_MAX)
}

#[cfg(test)]
mod tests {
    use super::plan_groups;

    #[test]
    fn groups_bound_both_output_and_input() {
        // Live bytes decide: three segments of 40 live in a budget of 100.
        assert_eq!(plan_groups(&[(40, 50), (40, 50), (40, 50)], 100), vec![0..2, 2..3]);
        // Mostly-dead segments: little live, but the input read at once stays
        // within twice the budget.
        let dead = [(5, 90); 7];
        assert_eq!(plan_groups(&dead, 100), vec![0..2, 2..4, 4..6, 6..7]);
        // A segment bigger than either bound still goes, alone.
        assert_eq!(
            plan_groups(&[(10, 20), (150, 400), (10, 20)], 100),
            vec![0..1, 1..2, 2..3]
        );
        assert!(plan_groups(&[], 100).is_empty());
    }
}
