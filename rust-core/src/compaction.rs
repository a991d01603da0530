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
use crate::log::frames::{self, FrameReader};
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

/// An op kept by compaction: where its copy is in the output, and what
/// moving the index to it needs.
struct Kept {
    seq: u64,
    /// Offset of the key (the value follows it) in the output.
    key_at: u64,
    /// Expiry of the copy (0: none).
    expires_at: u64,
    /// The input segment it was read from.
    from: u32,
    /// Length of the copy's value.
    val_len: u32,
    key_len: u16,
    /// An expired put rewritten as a delete.
    expired: bool,
}

/// Memory the background work keeps between passes, so a pass over
/// 64 MiB segments does not ask the allocator (and the kernel, which zeroes
/// every fresh page) for segment-sized buffers each time: the windows
/// closed segments are read through ([`frames::FrameReader`]), compaction's
/// output and its list of kept ops, the hint builder's list of entries.
/// Held under the engine's compaction
/// lock. After each pass it is trimmed ([`Buffers::trim`]): a pass that
/// needed far more than usual (a single huge commit, many small inputs)
/// does not leave the process holding it.
#[derive(Default)]
pub(crate) struct Buffers {
    windows: Vec<Vec<u8>>,
    out: Vec<u8>,
    kept: Vec<Kept>,
    hint: hint::Scratch,
}

/// Windows kept between passes: compaction reads the inputs of a group at
/// once, one window each; groups have a few inputs (see [`plan_groups`]).
const KEPT_WINDOWS: usize = 4;

impl Buffers {
    /// Gives back what exceeds the usual need for segments of
    /// `segment_size` bytes: windows beyond [`KEPT_WINDOWS`] or grown past
    /// [`frames::WINDOW`], an output buffer above 1.5 segments, a list of
    /// kept ops above half a segment's size, the hint builder's list above
    /// its cap ([`hint::SCRATCH_ENTRIES`]).
    fn trim(&mut self, segment_size: u64) {
        self.hint.trim();
        frames::trim_buffers(&mut self.windows, KEPT_WINDOWS, frames::WINDOW);
        let segment = usize::try_from(segment_size).unwrap_or(usize::MAX);
        self.out.clear();
        if self.out.capacity() > segment.saturating_add(segment / 2) {
            self.out = Vec::new();
        }
        self.kept.clear();
        if self.kept.capacity() * std::mem::size_of::<Kept>() > segment / 2 {
            self.kept = Vec::new();
        }
    }
}

/// Writes hint files for closed segments that lack one. On failure the
/// segments still without a hint stay queued for the next pass (a missing
/// hint only makes the next open read the segment itself).
pub(crate) fn write_pending_hints(inner: &Inner, bufs: &mut Buffers) -> Result<()> {
    let segments = inner.log.segments();
    let pending = segments.take_unhinted();
    let window = &mut frames::buffers(&mut bufs.windows, 1)[0];
    let scratch = &mut bufs.hint;
    let mut res = Ok(());
    for (i, &id) in pending.iter().enumerate() {
        let Some(seg) = segments.get(id) else { continue };
        if let Err(e) = hint::write_from_segment(inner.fs(), inner.dir(), &seg, inner.hint_inline(), window, scratch) {
            segments.hint_later(&pending[i..]);
            res = Err(e);
            break;
        }
    }
    bufs.trim(inner.segment_size());
    res
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
pub(crate) fn compact(inner: &Inner, threshold: f64, everything: bool, bufs: &mut Buffers) -> Result<CompactionReport> {
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
    let mut res = Ok(());
    for group in plan_groups(&sizes, budget) {
        match compact_group(inner, &candidates[group], bufs) {
            Ok(r) => report.add(r),
            Err(e) => {
                res = Err(e);
                break;
            }
        }
    }
    bufs.trim(budget);
    res.map(|()| report)
}

/// Splits segments, given as (live bytes, live + dead bytes), into runs
/// compacted together: each run's live bytes fit one output segment of
/// `budget` bytes (the output is built in memory), and its input stays
/// within twice that, so a pass over many mostly-dead segments is split
/// into groups of a few inputs each (each read through a window of its
/// own). A segment too big for either bound goes alone.
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
///
/// The inputs are read at once, each through a window of `bufs`
/// ([`frames::FrameReader`]), and merged by sequence number: within a
/// segment sequence numbers strictly increase, so taking the next record
/// with the smallest one among the inputs yields the kept ops in sequence
/// order, the ops of one commit together, as a segment must hold them
/// (recovery requires strictly increasing sequence numbers), and no input
/// is ever held whole. A record found in two inputs (both copies of it
/// exist after a crash between a compaction's rename and its unlinks)
/// gives one output record, the ops in input order. The kept ops are
/// encoded into `bufs`' output buffer as they are reached.
fn compact_group(inner: &Inner, inputs: &[Arc<Segment>], bufs: &mut Buffers) -> Result<CompactionReport> {
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

    let Buffers { windows, out, kept, .. } = bufs;
    out.clear();
    kept.clear();
    let mut readers = Vec::with_capacity(inputs.len());
    for (seg, window) in inputs.iter().zip(frames::buffers(windows, inputs.len())) {
        readers.push(FrameReader::open(seg, window, frames::WINDOW, false)?);
    }
    let bytes_in: u64 = readers.iter().map(|r| r.len()).sum();
    // The sequence number the next frame of each input announces (`None`
    // once it is read to its end). A frame whose header is cut short, or
    // announces more than the file holds, does not decode: it goes first,
    // and its error ends the pass.
    let mut heads = Vec::with_capacity(inputs.len());
    for r in &mut readers {
        heads.push(r.peek()?.map(|(_, seq)| seq.unwrap_or(0)));
    }
    let mut last: Vec<Option<u64>> = vec![None; inputs.len()];
    // Room for the output at once, from the inputs' live bytes and a
    // frame header for every few ops: growing it by doubling would copy it
    // into fresh pages the kernel zeroes. A reused buffer has it already;
    // capacity past the end is never touched, so never faulted in.
    let live: u64 = inputs.iter().map(|s| s.usage.live.load(Ordering::Relaxed)).sum();
    out.reserve(SEGMENT_HEADER_LEN as usize + usize::try_from(live + live / 4).unwrap_or(0));
    let mut output: Option<(u32, record::Salt)> = None;
    let mut kv = Vec::new();
    let mut taken: Vec<(usize, usize)> = Vec::new();
    while let Some(seq) = heads.iter().flatten().min().copied() {
        taken.clear();
        let mut ops: Vec<OpRef<'_>> = Vec::new();
        let first_kept = kept.len();
        for (i, r) in readers.iter().enumerate() {
            if heads[i] != Some(seq) {
                continue;
            }
            let seg = &inputs[i];
            let (at, rec) = r.current();
            let rec =
                rec.map_err(|e| Error::corruption(&seg.path, at, format!("compaction found a bad record: {e:?}")))?;
            if let Some(prev) = last[i].filter(|&p| p >= rec.seq) {
                return Err(Error::corruption(
                    &seg.path,
                    at,
                    format!(
                        "compaction found records out of order: sequence {} after {prev}",
                        rec.seq
                    ),
                ));
            }
            last[i] = Some(rec.seq);
            taken.push((i, rec.frame_len));
            // A batch may write a key twice; only its last op on a key counts.
            let last_of_key: Vec<bool> = if rec.ops.len() == 1 {
                vec![true]
            } else {
                let mut seen = HashSet::with_capacity(rec.ops.len());
                let mut v: Vec<bool> = rec.ops.iter().rev().map(|op| seen.insert(op.key)).collect();
                v.reverse();
                v
            };
            for (op, is_last) in rec.ops.iter().zip(last_of_key) {
                if !is_last {
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
                let Some(expired) = keep else { continue };
                let copy = OpRef {
                    kind: if expired { OpKind::Delete } else { op.kind },
                    key: op.key,
                    value: if expired { &[] } else { op.value },
                    expires_at: if expired { 0 } else { op.expires_at },
                };
                kept.push(Kept {
                    seq: rec.seq,
                    key_at: 0,
                    expires_at: copy.expires_at,
                    from: seg.id,
                    val_len: copy.value.len() as u32,
                    key_len: op.key.len() as u16,
                    expired,
                });
                ops.push(copy);
            }
        }
        if !ops.is_empty() {
            let (_, salt) = match output {
                Some(o) => o,
                None => {
                    let id = segments.allocate_id()?;
                    out.extend_from_slice(&segment::encode_header(id, FLAG_SEALED, 0));
                    *output.insert((id, record::Salt::of_segment(id)))
                }
            };
            let frame_at = out.len() as u64;
            record::encode_salted(out, seq, &ops, &mut kv, salt);
            for (k, &(off, _)) in kept[first_kept..].iter_mut().zip(&kv) {
                k.key_at = frame_at + off as u64;
            }
        }
        drop(ops);
        for &(i, frame_len) in &taken {
            readers[i].skip(frame_len);
            heads[i] = readers[i].peek()?.map(|(_, seq)| seq.unwrap_or(0));
        }
    }
    drop(readers);

    let mut report = CompactionReport {
        segments_in: inputs.len() as u64,
        bytes_in,
        ..CompactionReport::default()
    };
    if let Some((out_id, _)) = output {
        let out_seg = Arc::new(write_sealed(inner.fs(), inner.dir(), out_id, out)?);
        for k in kept.iter() {
            out_seg.usage.note_seq(k.seq);
        }
        // From the rename on, the file is a segment of the database: it is
        // tracked at once, so if a later step fails it is still accounted
        // for (compacted away as dead, never left behind untracked holding
        // records whose deletes a later compaction could drop).
        segments.insert(Arc::clone(&out_seg));
        segment::sync_dir(inner.fs(), inner.dir())?;
        if let Err(e) = hint::write_from_frames(inner.fs(), inner.dir(), out_id, out, inner.hint_inline()) {
            segments.hint_later(&[out_id]);
            return Err(e);
        }
        // Switch the index over, one version at a time.
        for k in kept.iter() {
            let key_at = k.key_at as usize;
            let key = &out[key_at..key_at + usize::from(k.key_len)];
            let bytes = crate::accounting::op_log_bytes(key.len(), k.val_len as usize, k.expires_at) as u64;
            let live = if k.expired {
                if inner
                    .index()
                    .expire_to_tombstone(key, k.seq, k.from, out_id, bytes as u32)
                {
                    inner.expired_by_compaction(k.seq, key);
                }
                false
            } else {
                inner.index().relocate(key, k.seq, k.from, out_id, k.key_at) == Some(true)
            };
            if live {
                out_seg.usage.live.fetch_add(bytes, Ordering::Relaxed);
            } else {
                out_seg.usage.dead.fetch_add(bytes, Ordering::Relaxed);
            }
        }
        report.segments_out = 1;
        report.bytes_out = out.len() as u64;
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
