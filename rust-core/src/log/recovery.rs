//! Recovery: rebuilds the index from segments (or their hint files) on open.
//!
//! [`replay`] reads the log and hands each op to a callback;
//! [`rebuild_index`] is that callback for an opening database: versions into
//! the index, live and dead bytes per segment, the segments to reopen.
//!
//! Rules:
//! - Each segment is read from its hint file when a valid one matches the
//!   segment's exact length; otherwise every frame of the segment is decoded
//!   and checked (frame CRC, op checksums, sequence numbers strictly
//!   increasing within the segment), and a hint is written for it if it is
//!   closed.
//! - Segments may hold records of any age (compaction copies old records into
//!   new, sealed segments), so the index keeps, per key, the version with
//!   the highest sequence number, whatever order files are read in.
//! - The active segment (the newest unsealed one) is preallocated by the
//!   writer: zeros from a frame boundary to the end of the file are space
//!   it had not written yet, the end of the log. The file is cut there
//!   (this is not damage, so it is not reported). Zeros never decode as a
//!   frame (the checksum of a zero length is not zero), and a frame
//!   partly written into that space is a torn tail like any other.
//! - The active segment may have been started in a retired segment's file
//!   (see `segment::recycle`): past its records lie records of the file's
//!   earlier life. Their checksums carry another segment's salt, so none
//!   decodes as a record of this segment: the first of them ends the log
//!   like a torn tail, and the file is cut there (reported in `truncated`,
//!   as recovery cannot tell old records from a torn write).
//! - In the active segment, a frame that is cut
//!   short or fails its checksum is a torn tail if no valid frame with a
//!   newer sequence follows it: the file is truncated to the last whole
//!   record. A file too short for its header is the newest writer segment
//!   cut during creation and is removed, unless a writer segment with a
//!   higher id exists: then it was whole once, and that is corruption.
//! - A closed writer segment must end at the sequence number the next writer
//!   segment starts from (its header names the segment it follows): a
//!   closed segment that ends early lost records, which is corruption even
//!   when the cut falls on a record boundary.
//! - Any other bad frame is corruption: open fails naming the file and offset.
//!   With `repair`, the segment is cut at the bad frame instead, everything
//!   readable is kept, and the loss is reported.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::hint::{self, HintEntry, ValidHint};
use super::record::{self, FrameError, OpKind};
use super::segment::{self, Header, Segment, Usage, SEGMENT_HEADER_LEN};
use super::SegmentSet;
use crate::accounting::{charge, op_log_bytes};
use crate::checksum;
use crate::compaction;
use crate::error::{Error, Result};
use crate::index::{Index, InsertEffect, PendingSlots, ValueRef, Version};
use crate::options::Options;
use crate::prefetch;
use crate::stats::Counters;
use crate::vfs::{self, FileSystem, OpenMode};

/// One op as recovery hands it to the index.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOp<'a> {
    /// Segment holding the op.
    pub segment: u32,
    /// Commit sequence number.
    pub seq: u64,
    /// Put or delete.
    pub kind: OpKind,
    /// The key.
    pub key: &'a [u8],
    /// The value, when recovery has it at hand (always from a segment;
    /// from a hint only for small values).
    pub value: Option<&'a [u8]>,
    /// Length of the value.
    pub val_len: u32,
    /// Absolute expiry, 0 for none.
    pub expires_at: u64,
    /// Offset of the key in the segment.
    pub kv_offset: u64,
    /// CRC32C of key || value.
    pub kv_crc: u32,
}

/// A segment recovery kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredSegment {
    /// Segment id.
    pub id: u32,
    /// Written whole by compaction.
    pub sealed: bool,
    /// Length after any truncation.
    pub len: u64,
}

/// A region recovery removed from the end of a segment file (or, with 0
/// bytes, a loss it accepted at that point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The segment file.
    pub file: String,
    /// Where the removed region starts (the file's new length).
    pub offset: u64,
    /// How many bytes were removed.
    pub bytes: u64,
}

/// What recovery did when the database was opened
/// (`Db::recovery_report`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed from segment data.
    pub records: u64,
    /// Segments whose index entries came from their hint file.
    pub hinted_segments: u64,
    /// Hint files that could not be used (the segment was read instead), with the reason.
    pub bad_hints: Vec<String>,
    /// Torn tails cut from the newest segment (in a reused segment file,
    /// the frames of its previous life after the last record, too), and
    /// writer segments cut short while being created (removed whole).
    pub truncated: Vec<Cut>,
    /// Corrupt regions dropped under `repair`.
    pub repaired: Vec<Cut>,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Segments kept, ascending by id.
    pub segments: Vec<RecoveredSegment>,
    /// Highest sequence number seen (0 when the log is empty).
    pub last_seq: u64,
    /// Id of the active segment (newest unsealed), if any.
    pub active: Option<u32>,
    /// What recovery did, for the operator.
    pub report: RecoveryReport,
}

/// How recovery reads the log.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// Salvage readable records past corruption instead of failing.
    pub repair: bool,
    /// Check each hinted segment's whole-file checksum before trusting its hint.
    pub verify: bool,
    /// Values up to this size are copied into rewritten hint files.
    pub hint_inline: usize,
    /// Threads that read, check and apply hint files (1: the calling thread alone).
    pub threads: usize,
    /// Read hint files, and hinted segments for their checksum, through
    /// memory maps when the file system maps ([`crate::Options::map_reads`]).
    pub map: bool,
    /// Hint bytes read before the entries read so far are applied (and
    /// dropped): bounds the memory held; [`HINT_BATCH_BYTES`] at open.
    pub batch_bytes: usize,
}

/// Hint bytes held at once while the index is built from them: hints are
/// mapped (or read) until their archives reach this size, then applied
/// together (in key order), then dropped. 1M keys with 100-byte values take
/// about 190 MB of hints, so such a database is applied in one batch; the
/// sort takes 16 bytes per entry besides (twice that while a range is
/// radix sorted).
pub const HINT_BATCH_BYTES: usize = 256 << 20;

/// Keys applied between two re-pins of a recovery thread's epoch guard.
const REPIN_EVERY: usize = 16 * 1024;

/// Chunk in which a hinted segment is read for its checksum.
const VERIFY_CHUNK: usize = 1 << 20;

/// Replays every segment in `dir`, calling `apply` with ops of one key
/// and the per-thread state `L` of the thread that applies them; returns
/// what was recovered and every thread's state.
///
/// Closed segments with a usable hint file are read and checked first,
/// `ro.threads` at a time, and applied in batches: a batch's entries are
/// sorted by key on `ro.threads` threads, the key space is cut into as many
/// ranges, and each thread applies one range in key order, handing `apply`
/// all the batch's ops of a key at once, oldest first (by sequence number,
/// then segment id, then place in the segment: the order a full replay
/// applies them in). Inserting in key order keeps each insert's search path
/// in cache, and threads never touch the same key. Keys of different
/// batches and segments are not ordered against each other, so `apply`
/// must give the same result in any order (the index keeps each key's
/// highest sequence number). Then the other segments are decoded in id
/// order on the calling thread, one op per call. `after_apply` is called
/// with every thread's state after each batch of hints and after each
/// decoded segment.
pub fn replay<L: Default + Send>(
    fs: &dyn FileSystem,
    dir: &Path,
    ro: ReplayOptions,
    after_apply: impl Fn(&mut [L]),
    apply: impl Fn(&[ReplayOp<'_>], &mut L) + Sync,
) -> Result<(Recovered, Vec<L>)> {
    let mut out = Recovered::default();
    remove_temp_files(fs, dir)?;
    let mut ids = segment::list_in(fs, dir)?;
    let headers = read_flags(fs, dir, &ids, ro.repair, &mut out.report)?;
    ids.retain(|id| headers.contains_key(id));
    // The active segment: the newest one not written by compaction.
    let active = ids
        .iter()
        .rev()
        .find(|id| headers.get(id).is_some_and(|h| !h.sealed()))
        .copied();
    out.active = active;
    // Writer segment -> (the writer segment created after it, that one's base).
    let successors: HashMap<u32, (u32, u64)> = headers
        .iter()
        .filter(|(_, h)| !h.sealed() && h.prev_writer != 0)
        .map(|(&id, h)| (h.prev_writer, (id, h.base_seq)))
        .collect();
    let threads = ro.threads.max(1);
    let mut locals: Vec<L> = (0..threads).map(|_| L::default()).collect();
    // Closed segments: length and hint outcome (the hint was applied, or why not).
    let closed: Vec<u32> = ids.iter().copied().filter(|&id| Some(id) != active).collect();
    let mut hinted: HashMap<u32, u64> = HashMap::new();
    let mut unhinted_why: HashMap<u32, String> = HashMap::new();
    // Hints are gathered into batches of up to HINT_BATCH_BYTES, and each
    // batch is applied in key order (see `apply_sorted`).
    let mut batch: Vec<(u32, ValidHint)> = Vec::new();
    let mut batch_bytes = 0;
    let waves: Vec<&[u32]> = closed.chunks(threads).collect();
    for (w, wave) in waves.iter().enumerate() {
        let loaded = run_tasks(threads, wave.len(), &mut locals, |i, _| {
            load_hint(fs, dir, wave[i], ro.verify, ro.map)
        });
        for (&id, l) in wave.iter().zip(loaded) {
            match l? {
                (len, Ok(h)) => {
                    hinted.insert(id, len);
                    batch_bytes += h.size();
                    batch.push((id, h));
                }
                (_, Err(why)) => {
                    if let Some(why) = why {
                        unhinted_why.insert(id, why);
                    }
                }
            }
        }
        if !batch.is_empty() && (batch_bytes >= ro.batch_bytes || w + 1 == waves.len()) {
            let max_seq = apply_sorted(&batch, threads, &mut locals, &apply);
            after_apply(&mut locals);
            out.last_seq = out.last_seq.max(max_seq);
            batch.clear();
            batch_bytes = 0;
        }
    }
    for id in ids {
        let header = headers[&id];
        let sealed = header.sealed();
        // Sequence numbers are never reused: a writer's segment was created
        // after every commit up to its base, even if compaction has since
        // dropped those records as dead.
        out.last_seq = out.last_seq.max(header.base_seq);
        if let Some(&len) = hinted.get(&id) {
            out.report.hinted_segments += 1;
            out.segments.push(RecoveredSegment { id, sealed, len });
            continue;
        }
        if let Some(why) = unhinted_why.remove(&id) {
            out.report.bad_hints.push(why);
        }
        let path = dir.join(segment::segment_file_name(id));
        let is_active = Some(id) == active;
        let data = read_file(fs, &path)?;
        let local = &mut locals[0];
        let (end, last) = replay_segment(
            fs,
            &path,
            id,
            header,
            &data,
            is_active,
            ro.repair,
            &mut out,
            &mut |op: &ReplayOp<'_>| apply(std::slice::from_ref(op), local),
        )?;
        after_apply(&mut locals);
        if let Some(&(next, next_base)) = successors.get(&id).filter(|_| !sealed) {
            if last != next_base {
                let why = format!(
                    "the segment ends at sequence {last} but segment {next}, created after it, continues from \
                     sequence {next_base}: records are missing (the file was cut or damaged)"
                );
                if !ro.repair {
                    return Err(Error::corruption(&path, end, why));
                }
                // Repair accepts the loss, once: the next segment stops
                // naming this one, so later opens do not report it again.
                let name = path.display().to_string();
                if !out.report.repaired.iter().any(|c| c.file == name) {
                    out.report.repaired.push(Cut {
                        file: name,
                        offset: end,
                        bytes: 0,
                    });
                }
                forget_predecessor(fs, dir, next)?;
                if hinted.contains_key(&next) {
                    // Its hint, already applied, records the old header's
                    // checksum: write it again for the rewritten file.
                    let next_data = read_file(fs, &dir.join(segment::segment_file_name(next)))?;
                    write_hint(fs, dir, next, &next_data, ro.hint_inline, &mut out.report);
                }
            }
        }
        if !is_active {
            // Closed segment without a usable hint: write one for next time.
            write_hint(fs, dir, id, &data[..end as usize], ro.hint_inline, &mut out.report);
        }
        out.segments.push(RecoveredSegment { id, sealed, len: end });
    }
    Ok((out, locals))
}

/// Writes the hint of segment `id` (whose valid bytes are `data`). A hint
/// only speeds up the next open, so failing to write one (say, the disk is
/// full) is reported, not fatal: the segment is read again next time.
fn write_hint(fs: &dyn FileSystem, dir: &Path, id: u32, data: &[u8], inline: usize, report: &mut RecoveryReport) {
    let entries: Vec<HintEntry> = hint::entries_from_frames(data, inline);
    if let Err(e) = hint::write(fs, dir, id, data, entries) {
        report
            .bad_hints
            .push(format!("{}: not written: {e}", hint::hint_path(dir, id).display()));
    }
}

/// The length of closed segment `id` and its validated hint, or why it has
/// none (`None`: no hint file). With `verify`, the segment's checksum is
/// compared with the one the hint records (the file is streamed through a
/// small buffer, not held).
fn load_hint(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    verify: bool,
    map: bool,
) -> Result<(u64, std::result::Result<ValidHint, Option<String>>)> {
    let path = dir.join(segment::segment_file_name(id));
    let len = file_len(fs, &path)?;
    let (valid, why) = hint::read_with(fs, dir, id, len, map);
    let Some(h) = valid else {
        return Ok((len, Err(why)));
    };
    if verify && file_crc(fs, &path, map)? != h.body().segment_crc.to_native() {
        let why = format!("{}: segment checksum differs from its hint", path.display());
        return Ok((len, Err(Some(why))));
    }
    Ok((len, Ok(h)))
}

/// CRC32C of the whole file at `path`: read in place through a map of
/// the file when `map` is set and the file system maps (see
/// [`hint::FileMap`]), else read in chunks.
fn file_crc(fs: &dyn FileSystem, path: &Path, map: bool) -> Result<u32> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let f = fs.open(path, OpenMode::Read).map_err(io)?;
    let len = f.size().map_err(io)?;
    let mapped = usize::try_from(len)
        .ok()
        .filter(|_| map)
        .and_then(|n| hint::FileMap::new(&*f, n));
    if let Some(map) = mapped {
        return Ok(checksum::crc32c(map.bytes()));
    }
    let mut buf = vec![0u8; VERIFY_CHUNK.min(len as usize)];
    let (mut at, mut crc) = (0u64, 0u32);
    while at < len {
        let n = VERIFY_CHUNK.min((len - at) as usize);
        f.read_exact_at(&mut buf[..n], at).map_err(io)?;
        crc = checksum::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(crc)
}

/// Runs `work(task, state)` for every task in `0..n` on up to `threads`
/// threads (the calling one included), each thread with its own entry of
/// `locals`; returns the results in task order.
fn run_tasks<L: Send, T: Send>(
    threads: usize,
    n: usize,
    locals: &mut [L],
    work: impl Fn(usize, &mut L) -> T + Sync,
) -> Vec<T> {
    let threads = threads.min(n).min(locals.len());
    if threads <= 1 {
        let local = &mut locals[0];
        return (0..n).map(|t| work(t, local)).collect();
    }
    let next = AtomicUsize::new(0);
    let drain = |local: &mut L| {
        let mut done = Vec::new();
        loop {
            let t = next.fetch_add(1, Ordering::Relaxed);
            if t >= n {
                return done;
            }
            done.push((t, work(t, local)));
        }
    };
    let (first, rest) = locals.split_at_mut(1);
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let helpers: Vec<_> = rest[..threads - 1]
            .iter_mut()
            .map(|local| s.spawn(|| drain(local)))
            .collect();
        let mut all = drain(&mut first[0]);
        for h in helpers {
            match h.join() {
                Ok(d) => all.extend(d),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    done.sort_unstable_by_key(|(t, _)| *t);
    done.into_iter().map(|(_, r)| r).collect()
}

/// One hint entry of a batch being sorted: `prefix` holds the 8 key bytes
/// that follow the prefix every key of the batch shares (big-endian, zero
/// padded), so most comparisons never read the key itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SortItem {
    prefix: u64,
    hint: u32,
    entry: u32,
}

/// The hints of a batch, ascending by segment id, and the key bytes all
/// their keys share.
struct Batch<'a> {
    hints: &'a [(u32, ValidHint)],
    shared: usize,
}

impl Batch<'_> {
    fn entry(&self, it: &SortItem) -> &hint::ArchivedHintEntry {
        &self.hints[it.hint as usize].1.body().entries[it.entry as usize]
    }

    fn key(&self, it: &SortItem) -> &[u8] {
        self.entry(it).key.as_slice()
    }

    /// The 8 bytes of `key` after the shared ones, as a big-endian number.
    fn prefix(&self, key: &[u8]) -> u64 {
        let mut p = [0u8; 8];
        let rest = key.get(self.shared..).unwrap_or_default();
        let n = rest.len().min(8);
        p[..n].copy_from_slice(&rest[..n]);
        u64::from_be_bytes(p)
    }

    /// Byte order of the two items' keys.
    fn cmp_key(&self, a: &SortItem, b: &SortItem) -> std::cmp::Ordering {
        a.prefix.cmp(&b.prefix).then_with(|| self.key(a).cmp(self.key(b)))
    }

    /// Key order, then the order a full replay applies a key's ops in:
    /// sequence number, segment id, place in the segment.
    fn cmp(&self, a: &SortItem, b: &SortItem) -> std::cmp::Ordering {
        self.cmp_key(a, b).then_with(|| {
            let (ea, eb) = (self.entry(a), self.entry(b));
            ea.seq
                .to_native()
                .cmp(&eb.seq.to_native())
                .then(a.hint.cmp(&b.hint))
                .then(a.entry.cmp(&b.entry))
        })
    }

    fn op(&self, it: &SortItem) -> ReplayOp<'_> {
        let e = self.entry(it);
        ReplayOp {
            segment: self.hints[it.hint as usize].0,
            seq: e.seq.to_native(),
            kind: if e.delete { OpKind::Delete } else { OpKind::Put },
            key: e.key.as_slice(),
            value: e.value.as_ref().map(|v| v.as_slice()),
            val_len: e.val_len.to_native(),
            expires_at: e.expires_at.to_native(),
            kv_offset: e.kv_offset.to_native(),
            kv_crc: e.kv_crc.to_native(),
        }
    }
}

/// How far ahead of the entry being applied its successors' hint entries,
/// and then their keys and values, are prefetched.
const PREFETCH_ENTRY: usize = 16;
const PREFETCH_DATA: usize = 8;

/// Keys sampled per thread to find the shared key prefix and the key
/// ranges of the threads.
const SAMPLE_PER_THREAD: usize = 256;

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The entries of one key range, as one thread sorts and applies them:
/// the parts every builder thread gathered, and the prefix bits that vary
/// among them.
#[derive(Default)]
struct RangeParts {
    parts: Vec<Vec<SortItem>>,
    /// AND and OR of every prefix.
    and: u64,
    or: u64,
}

/// Applies the entries of `hints` (ascending by segment id) in key order on
/// up to `threads` threads, as [`replay`] describes; returns the highest
/// sequence number among them.
///
/// 1. A sample of keys, evenly spaced over the entries, gives the key bytes
///    all keys share (checked on every key in step 2; if one does not, the
///    entries are gathered again with the shorter shared part) and
///    splitters that cut the key space into one range per thread (by the 8
///    key bytes after the shared ones, so a key is never split).
/// 2. Each thread takes an equal share of the entries (in file order) and
///    files each entry, 16 bytes (those 8 key bytes and the entry's
///    place), under its range.
/// 3. Each thread takes one range: sorts its entries by the 8 key bytes
///    (a radix sort over the bits that vary among them, skipped when they
///    are in order already), orders entries with equal bytes by their
///    whole key, sequence number, segment and place, and applies the range
///    one key at a time.
fn apply_sorted<L: Send, F>(hints: &[(u32, ValidHint)], threads: usize, locals: &mut [L], apply: &F) -> u64
where
    F: Fn(&[ReplayOp<'_>], &mut L) + Sync,
{
    let counts: Vec<usize> = hints.iter().map(|(_, h)| h.body().entries.len()).collect();
    let total: usize = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let threads = threads.clamp(1, locals.len());
    // Entries are numbered across the batch: hint h holds positions
    // starts[h]..ends[h].
    let mut starts = Vec::with_capacity(counts.len());
    let mut ends = Vec::with_capacity(counts.len());
    let mut at = 0;
    for &c in &counts {
        starts.push(at);
        at += c;
        ends.push(at);
    }
    let key_at = |pos: usize| -> &[u8] {
        let h = ends.partition_point(|&e| e <= pos);
        hints[h].1.body().entries[pos - starts[h]].key.as_slice()
    };
    let samples = (threads * SAMPLE_PER_THREAD).min(total);
    let sample: Vec<&[u8]> = (0..samples).map(|i| key_at(i * total / samples)).collect();
    let reference = sample[0];
    let mut shared = sample.iter().map(|k| common_prefix(reference, k)).min().unwrap_or(0);
    let (batch, ranges) = loop {
        let batch = Batch { hints, shared };
        let splitters: Vec<u64> = if threads > 1 {
            let mut prefixes: Vec<u64> = sample.iter().map(|k| batch.prefix(k)).collect();
            prefixes.sort_unstable();
            (1..threads).map(|t| prefixes[prefixes.len() * t / threads]).collect()
        } else {
            Vec::new()
        };
        let (gathered, unshared) = gather(&batch, &starts, &ends, reference, &splitters, threads, locals);
        match unshared {
            // Some key does not share the sampled prefix: all keys share
            // its first `lcp` bytes.
            Some(lcp) => shared = lcp,
            None => break (batch, gathered),
        }
    };
    let ranges: Vec<std::sync::Mutex<RangeParts>> = ranges.into_iter().map(std::sync::Mutex::new).collect();
    let apply_range = |t: usize, local: &mut L| -> u64 {
        let range = std::mem::take(&mut *ranges[t].lock().unwrap_or_else(|p| p.into_inner()));
        let mut parts = range.parts;
        let mut items = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let mut items: Vec<SortItem> = Vec::with_capacity(parts.iter().map(Vec::len).sum());
            for part in parts {
                items.extend_from_slice(&part);
            }
            items
        };
        sort_items(&mut items, range.and ^ range.or, &batch);
        let mut guard = crossbeam_epoch::pin();
        let mut max_seq = 0;
        let mut ops: Vec<ReplayOp<'_>> = Vec::new();
        let mut i = 0;
        let mut applied = 0;
        while i < items.len() {
            // The sorted order visits the hints' entries at random places:
            // ask for the ones a few steps ahead before they are needed.
            if let Some(ahead) = items.get(i + PREFETCH_ENTRY) {
                prefetch::line(batch.entry(ahead) as *const hint::ArchivedHintEntry as *const u8);
            }
            if let Some(ahead) = items.get(i + PREFETCH_DATA) {
                let e = batch.entry(ahead);
                prefetch::line(e.key.as_ptr());
                if let Some(v) = e.value.as_ref() {
                    prefetch::line(v.as_ptr());
                    prefetch::line(v.as_ptr().wrapping_add(64));
                }
            }
            let first = items[i];
            ops.clear();
            ops.push(batch.op(&first));
            i += 1;
            while let Some(it) = items
                .get(i)
                .filter(|it| it.prefix == first.prefix && batch.key(it) == ops[0].key)
            {
                ops.push(batch.op(it));
                i += 1;
            }
            max_seq = max_seq.max(ops[ops.len() - 1].seq);
            apply(&ops, local);
            applied += 1;
            if applied % REPIN_EVERY == 0 {
                guard.repin();
            }
        }
        max_seq
    };
    let maxima = run_tasks(threads, threads, locals, |t, local| apply_range(t, local));
    maxima.into_iter().max().unwrap_or(0)
}

/// Step 2 of [`apply_sorted`]: every entry of the batch, filed under its
/// key range (`splitters`, ascending: range `r` holds the prefixes from
/// `splitters[r - 1]` up to below `splitters[r]`) by `threads` threads,
/// each over an equal share of the entries. Returns the ranges, and, when
/// a key does not start with the batch's shared bytes (those of
/// `reference`), the number of bytes all keys do share instead.
fn gather<L: Send>(
    batch: &Batch<'_>,
    starts: &[usize],
    ends: &[usize],
    reference: &[u8],
    splitters: &[u64],
    threads: usize,
    locals: &mut [L],
) -> (Vec<RangeParts>, Option<usize>) {
    let total = ends.last().copied().unwrap_or(0);
    let shared = &reference[..batch.shared];
    let ranges = splitters.len() + 1;
    let gathered = run_tasks(threads, threads, locals, |c, _| {
        let (lo, hi) = (total * c / threads, total * (c + 1) / threads);
        let mut parts: Vec<Vec<SortItem>> = (0..ranges)
            .map(|_| Vec::with_capacity((hi - lo) / ranges + (hi - lo) / 8 + 16))
            .collect();
        let mut bits = vec![(u64::MAX, 0u64); ranges];
        let mut lcp = usize::MAX;
        let mut h = ends.partition_point(|&e| e <= lo);
        for pos in lo..hi {
            while pos >= ends[h] {
                h += 1;
            }
            let entry = pos - starts[h];
            let key = batch.hints[h].1.body().entries[entry].key.as_slice();
            if key.get(..shared.len()) != Some(shared) {
                lcp = lcp.min(common_prefix(shared, key));
            }
            let prefix = batch.prefix(key);
            let r = if ranges == 1 {
                0
            } else {
                splitters.partition_point(|&s| s <= prefix)
            };
            parts[r].push(SortItem {
                prefix,
                hint: h as u32,
                entry: entry as u32,
            });
            bits[r].0 &= prefix;
            bits[r].1 |= prefix;
        }
        (parts, bits, lcp)
    });
    let mut out: Vec<RangeParts> = (0..ranges)
        .map(|_| RangeParts {
            parts: Vec::with_capacity(threads),
            and: u64::MAX,
            or: 0,
        })
        .collect();
    let mut unshared = usize::MAX;
    for (parts, bits, lcp) in gathered {
        unshared = unshared.min(lcp);
        for ((range, part), (and, or)) in out.iter_mut().zip(parts).zip(bits) {
            range.parts.push(part);
            range.and &= and;
            range.or |= or;
        }
    }
    (out, (unshared != usize::MAX).then_some(unshared))
}

/// Digit width of the radix sort.
const RADIX_BITS: u32 = 11;

/// Sorts `items` in [`Batch::cmp`] order. `varying` has a bit set where
/// the items' prefixes differ (a bit clear in it is the same in every
/// prefix): the radix sort skips the digits with none.
fn sort_items(items: &mut Vec<SortItem>, varying: u64, batch: &Batch<'_>) {
    if !items.windows(2).all(|w| w[0].prefix <= w[1].prefix) {
        radix_sort(items, varying);
    }
    // Runs of equal prefixes: ordered by the whole key, then as a replay
    // applies a key's ops.
    let mut i = 0;
    while i < items.len() {
        let p = items[i].prefix;
        let end = i + items[i..].iter().take_while(|it| it.prefix == p).count();
        if end - i > 1 {
            items[i..end].sort_unstable_by(|a, b| batch.cmp(a, b));
        }
        i = end;
    }
}

/// Sorts `items` by prefix, stably (least significant digit first), over
/// the digits where `varying` has bits set.
fn radix_sort(items: &mut Vec<SortItem>, varying: u64) {
    let mut other: Vec<SortItem> = vec![SortItem::default(); items.len()];
    let mut shift = 0;
    while shift < 64 {
        let mask = (1u64 << RADIX_BITS) - 1;
        if (varying >> shift) & mask != 0 {
            let digit = |it: &SortItem| ((it.prefix >> shift) & mask) as usize;
            let mut offsets = vec![0usize; 1 << RADIX_BITS];
            for it in items.iter() {
                offsets[digit(it)] += 1;
            }
            let mut sum = 0;
            for o in offsets.iter_mut() {
                let n = *o;
                *o = sum;
                sum += n;
            }
            for it in items.iter() {
                let d = digit(it);
                other[offsets[d]] = *it;
                offsets[d] += 1;
            }
            std::mem::swap(items, &mut other);
        }
        shift += RADIX_BITS;
    }
}

/// Rewrites writer segment `id` with a header that names no predecessor
/// (under a temporary name, synced, then renamed over it).
fn forget_predecessor(fs: &dyn FileSystem, dir: &Path, id: u32) -> Result<()> {
    let path = dir.join(segment::segment_file_name(id));
    let tmp = dir.join(format!("{}.tmp", segment::segment_file_name(id)));
    let mut data = read_file(fs, &path)?;
    let header = segment::check_header(&data, id).map_err(|why| Error::corruption(&path, 0, why))?;
    let fresh = segment::encode_writer_header(id, header.flags, header.base_seq, 0);
    data[..SEGMENT_HEADER_LEN as usize].copy_from_slice(&fresh);
    let io = |e| Error::io(format!("writing {}", tmp.display()), e);
    let file = fs.open(&tmp, OpenMode::Replace).map_err(io)?;
    file.append(&data).and_then(|_| file.sync_data()).map_err(io)?;
    drop(file);
    fs.rename(&tmp, &path)
        .map_err(|e| Error::io(format!("renaming {} into place", tmp.display()), e))?;
    segment::sync_dir(fs, dir)
}

/// Removes `*.tmp` files: a segment or hint that compaction was writing
/// when the process stopped (the whole file is renamed into place only once
/// synced, so a temporary file is never needed).
fn remove_temp_files(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let names = fs
        .read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for name in names {
        let path = dir.join(name);
        if path.extension().is_some_and(|x| x == "tmp") {
            fs.remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        }
    }
    Ok(())
}

fn file_len(fs: &dyn FileSystem, path: &Path) -> Result<u64> {
    fs.stat(path)
        .map(|m| m.len)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

fn read_file(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u8>> {
    vfs::read_file(fs, path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

/// Header flags of every segment; a bad header is corruption, except a
/// too-short newest file, which the caller handles.
fn read_flags(
    fs: &dyn FileSystem,
    dir: &Path,
    ids: &[u32],
    repair: bool,
    report: &mut RecoveryReport,
) -> Result<std::collections::HashMap<u32, Header>> {
    let mut flags = std::collections::HashMap::new();
    let mut short = Vec::new();
    for &id in ids {
        let path = dir.join(segment::segment_file_name(id));
        let h = fs
            .open(&path, OpenMode::Read)
            .and_then(|f| {
                let len = f.size()?.min(SEGMENT_HEADER_LEN) as usize;
                let mut h = vec![0u8; len];
                f.read_exact_at(&mut h, 0)?;
                Ok(h)
            })
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if h.len() < SEGMENT_HEADER_LEN as usize {
            short.push((id, path, h.len() as u64));
            continue;
        }
        match segment::check_header(&h, id) {
            Ok(f) => {
                flags.insert(id, f);
            }
            Err(reason) => return Err(Error::corruption(&path, 0, reason)),
        }
    }
    // Compaction renames whole, synced files into place, so only the writer
    // leaves a file shorter than its header: cut while it created the file.
    // That is a crash's loss only for the newest writer segment; an older
    // one was complete once (a newer writer segment was created after it),
    // so its records are missing, which is corruption.
    let newest_writer = flags.iter().filter(|(_, h)| !h.sealed()).map(|(&id, _)| id).max();
    for (id, path, len) in short {
        let cut = Cut {
            file: path.display().to_string(),
            offset: 0,
            bytes: len,
        };
        match newest_writer.filter(|&w| w > id) {
            None => report.truncated.push(cut),
            Some(_) if repair => report.repaired.push(cut),
            Some(later) => {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!(
                        "the file holds {len} bytes, less than its {SEGMENT_HEADER_LEN}-byte header, but writer \
                         segment {later} was created after it: its records are missing"
                    ),
                ))
            }
        }
        fs.remove_file(&path)
            .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        segment::sync_dir(fs, dir)?;
    }
    Ok(flags)
}

/// Replays the frames of one segment; returns where its valid data ends and
/// the sequence number of its last record (its base when it has none).
#[allow(clippy::too_many_arguments)]
fn replay_segment(
    fs: &dyn FileSystem,
    path: &Path,
    id: u32,
    header: Header,
    data: &[u8],
    is_active: bool,
    repair: bool,
    out: &mut Recovered,
    apply: &mut impl FnMut(&ReplayOp<'_>),
) -> Result<(u64, u64)> {
    let mut at = SEGMENT_HEADER_LEN as usize;
    // A writer's segment numbers its records base_seq + 1, + 2, ... without
    // gaps; a sealed one holds copies in increasing order, with gaps.
    let contiguous = !header.sealed();
    let mut prev_seq = header.base_seq;
    while at < data.len() {
        let err = match record::decode_salted(&data[at..], header.salt) {
            Ok(rec) if (contiguous && rec.seq == prev_seq + 1) || (!contiguous && rec.seq > prev_seq) => {
                prev_seq = rec.seq;
                out.last_seq = out.last_seq.max(rec.seq);
                out.report.records += 1;
                for op in &rec.ops {
                    apply(&ReplayOp {
                        segment: id,
                        seq: rec.seq,
                        kind: op.kind,
                        key: op.key,
                        value: Some(op.value),
                        val_len: op.value.len() as u32,
                        expires_at: op.expires_at,
                        kv_offset: (at + op.kv_offset) as u64,
                        kv_crc: op.kv_crc,
                    });
                }
                at += rec.frame_len;
                continue;
            }
            Ok(rec) if contiguous => format!(
                "sequence {} where {} was expected (a record is missing or out of order)",
                rec.seq,
                prev_seq + 1
            ),
            Ok(rec) => format!("sequence {} does not follow {prev_seq} (records out of order)", rec.seq),
            Err(FrameError::Incomplete) => "record cut short before later records".to_string(),
            Err(FrameError::Checksum) => "record checksum mismatch".to_string(),
            Err(FrameError::Malformed(m)) => format!("malformed record: {m}"),
        };
        if is_active && zeroed_tail(&data[at..]) {
            // Preallocated space the writer had not reached.
            let mut unreported = Vec::new();
            cut(fs, path, at as u64, data.len() as u64, &mut unreported)?;
            return Ok((at as u64, prev_seq));
        }
        let torn = is_active && !valid_frame_after(data, at, prev_seq, header.salt);
        if torn {
            cut(fs, path, at as u64, data.len() as u64, &mut out.report.truncated)?;
        } else if repair {
            cut(fs, path, at as u64, data.len() as u64, &mut out.report.repaired)?;
        } else {
            return Err(Error::corruption(path, at as u64, err));
        }
        return Ok((at as u64, prev_seq));
    }
    Ok((data.len() as u64, prev_seq))
}

/// True when `tail` (the bytes from a frame boundary to the end of the
/// active segment) is all zeros: preallocated space no record reached.
pub fn zeroed_tail(tail: &[u8]) -> bool {
    tail.iter().all(|&b| b == 0)
}

/// Smallest possible frame: headers, one op's fixed fields and a 1-byte key.
const MIN_FRAME: usize = 32;

/// True when a whole, checksummed frame that could be a later record of this
/// segment starts after `at`: then the bad bytes at `at` are damage, not a
/// torn tail. Records continue `last_seq` without gaps, so a record found
/// `d` bytes on is at most `last_seq + 1 + d / MIN_FRAME`; a frame-shaped
/// value inside the torn record (say, a stored copy of a log) has no reason
/// to carry such a number, and is not taken for one.
///
/// The sequence number is looked at before the checksum is computed, so
/// a long tail of other bytes (the old records of a recycled file) costs a
/// few loads per offset, not a checksum of an announced length each.
pub(crate) fn valid_frame_after(data: &[u8], at: usize, last_seq: u64, salt: record::Salt) -> bool {
    (at + 1..data.len()).any(|pos| {
        let max = last_seq + 1 + ((pos - at) / MIN_FRAME) as u64;
        let plausible = |seq: u64| seq > last_seq + 1 && seq <= max;
        record::peek_seq(&data[pos..]).is_some_and(plausible)
            && matches!(record::decode_salted(&data[pos..], salt), Ok(rec) if plausible(rec.seq))
    })
}

fn cut(fs: &dyn FileSystem, path: &Path, at: u64, len: u64, log: &mut Vec<Cut>) -> Result<()> {
    let file = fs
        .open(path, OpenMode::Resize)
        .map_err(|e| Error::io(format!("opening {} to truncate", path.display()), e))?;
    file.set_len(at)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("truncating {} at {at}", path.display()), e))?;
    log.push(Cut {
        file: path.display().to_string(),
        offset: at,
        bytes: len - at,
    });
    Ok(())
}

/// What [`rebuild_index`] recovered besides the index.
pub(crate) struct Rebuilt {
    /// The surviving segments, open for reading, with their live and dead bytes.
    pub(crate) segments: Arc<SegmentSet>,
    /// The segment to resume writing, with its length.
    pub(crate) active: Option<(u32, u64)>,
    /// The highest sequence number replayed.
    pub(crate) last_seq: u64,
    /// What recovery did, for the operator.
    pub(crate) report: RecoveryReport,
}

/// Space figures of one segment, tallied by one recovery thread: sums, so
/// the threads' tallies add up to the same figures in any order.
#[derive(Debug, Clone, Copy)]
struct SegmentTally {
    live: i64,
    dead: u64,
    min_seq: u64,
    max_seq: u64,
    has_expiry: bool,
}

impl Default for SegmentTally {
    fn default() -> Self {
        SegmentTally {
            live: 0,
            dead: 0,
            min_seq: u64::MAX,
            max_seq: 0,
            has_expiry: false,
        }
    }
}

impl SegmentTally {
    fn merge(&mut self, o: &SegmentTally) {
        self.live += o.live;
        self.dead += o.dead;
        self.min_seq = self.min_seq.min(o.min_seq);
        self.max_seq = self.max_seq.max(o.max_seq);
        self.has_expiry |= o.has_expiry;
    }

    fn into_usage(self) -> Usage {
        let u = Usage::empty();
        u.live.store(self.live.max(0) as u64, Ordering::Relaxed);
        u.dead.store(self.dead, Ordering::Relaxed);
        u.min_seq.store(self.min_seq, Ordering::Relaxed);
        u.max_seq.store(self.max_seq, Ordering::Relaxed);
        u.has_expiry.store(self.has_expiry, Ordering::Relaxed);
        u
    }
}

/// What one recovery thread gathered besides the index.
#[derive(Default)]
struct Tally<'i> {
    /// Slots of new keys, for the index's hash map (see `Index::publish`).
    pending: PendingSlots<'i>,
    /// Keys whose newest version, when this thread applied it, was a delete.
    tombstoned: Vec<Box<[u8]>>,
    /// Change in the number of live keys.
    live_keys: i64,
    /// Per segment: its tally, found through `slots`.
    segments: Vec<(u32, SegmentTally)>,
    slots: HashMap<u32, usize, ahash::RandomState>,
    /// Index in `segments` of the last segment looked up (ops come in runs of one segment).
    last: usize,
}

impl Tally<'_> {
    fn segment(&mut self, id: u32) -> &mut SegmentTally {
        if self.segments.get(self.last).is_none_or(|(s, _)| *s != id) {
            let segments = &mut self.segments;
            self.last = *self.slots.entry(id).or_insert_with(|| {
                segments.push((id, SegmentTally::default()));
                segments.len() - 1
            });
        }
        &mut self.segments[self.last].1
    }
}

/// Replays the log in `dir` into `index` at open: every op becomes a
/// version of its key (values up to `opts.inline_threshold` kept inline,
/// larger ones as their place on disk), each segment's live and dead bytes
/// are accounted as a running database would have, the live-key count goes
/// to `counters`, and deletes that are the newest version of their key are
/// unlinked once everything is read. Hint files are applied by
/// `opts.recovery_threads` threads at once; whatever the order, each key
/// ends with its highest sequence number and the figures are the same sums.
pub(crate) fn rebuild_index(
    fs: &dyn FileSystem,
    dir: &Path,
    opts: &Options,
    index: &Index,
    counters: &Counters,
) -> Result<Rebuilt> {
    rebuild_index_batched(fs, dir, opts, index, counters, HINT_BATCH_BYTES)
}

/// [`rebuild_index`] applying hints in batches of `batch_bytes`.
fn rebuild_index_batched(
    fs: &dyn FileSystem,
    dir: &Path,
    opts: &Options,
    index: &Index,
    counters: &Counters,
    batch_bytes: usize,
) -> Result<Rebuilt> {
    let inline = opts.inline_threshold;
    let replay_opts = ReplayOptions {
        repair: opts.repair,
        verify: opts.verify_segments_on_open,
        hint_inline: compaction::hint_inline(inline),
        threads: opts.open_threads(),
        batch_bytes,
        map: opts.map_reads,
    };
    // New keys' slots are added to the index's hash map after each batch
    // of hints and each decoded segment, all of them at once, shard by
    // shard on the open's threads (`Index::publish`), rather than one map
    // insert per key as the replay threads create them: each table is
    // grown once and filled while it is in cache. The map is trimmed once
    // the open is over, after the tombstones left it.
    let threads = replay_opts.threads;
    let publish = |tallies: &mut [Tally<'_>]| {
        let mut pending: Vec<PendingSlots<'_>> = tallies.iter_mut().map(|t| std::mem::take(&mut t.pending)).collect();
        index.publish(&mut pending, threads);
        for (t, p) in tallies.iter_mut().zip(pending) {
            t.pending = p;
        }
    };
    let (rec, tallies) = replay(fs, dir, replay_opts, publish, |ops, t: &mut Tally| {
        let Some((op, older)) = ops.split_last() else {
            return;
        };
        // The key's older ops of this call: each was superseded by the next
        // (dead at birth for a replay in sequence order), and nothing reads
        // them, so only their bytes are counted, as dead.
        for o in older {
            let log_bytes = op_log_bytes(o.key.len(), o.val_len as usize, o.expires_at);
            let c = charge(o.kind, log_bytes, o.expires_at, &InsertEffect::default());
            let s = t.segment(o.segment);
            s.min_seq = s.min_seq.min(o.seq);
            s.max_seq = s.max_seq.max(o.seq);
            s.dead += c.dead;
            s.has_expiry |= c.expiry;
        }
        let log_bytes = op_log_bytes(op.key.len(), op.val_len as usize, op.expires_at);
        let value = match (op.kind, op.value) {
            (OpKind::Delete, _) => ValueRef::Tombstone,
            (OpKind::Put, Some(v)) if v.len() <= inline => ValueRef::in_memory(v),
            (OpKind::Put, _) => ValueRef::Disk {
                segment: op.segment,
                offset: op.kv_offset,
                len: op.val_len,
                crc: op.kv_crc,
            },
        };
        let effect = index.apply_recovered_deferred(
            op.key,
            Version {
                seq: op.seq,
                expires_at: op.expires_at,
                value,
                log_bytes,
                segment: op.segment,
            },
            &mut t.pending,
        );
        if op.kind == OpKind::Delete && effect.is_newest {
            t.tombstoned.push(Box::from(op.key));
        }
        let c = charge(op.kind, log_bytes, op.expires_at, &effect);
        let s = t.segment(op.segment);
        s.min_seq = s.min_seq.min(op.seq);
        s.max_seq = s.max_seq.max(op.seq);
        s.live += c.live as i64;
        s.dead += c.dead;
        s.has_expiry |= c.expiry;
        if let Some((seg, bytes)) = c.killed {
            let k = t.segment(seg);
            k.live -= bytes as i64;
            k.dead += bytes;
        }
        t.live_keys += effect.live_keys;
    })?;
    debug_assert!(
        tallies.iter().all(|t| t.pending.is_empty()),
        "every new key is published before the tombstones are unlinked"
    );
    let mut usage: HashMap<u32, SegmentTally> = HashMap::new();
    let mut live_keys = 0;
    for t in &tallies {
        index.remove_tombstones(&t.tombstoned);
        live_keys += t.live_keys;
        for (id, s) in &t.segments {
            usage.entry(*id).or_default().merge(s);
        }
    }
    index.shrink_hash();
    counters.account(live_keys);
    let set = Arc::new(SegmentSet::default());
    for s in &rec.segments {
        let mut seg = Segment::open(fs, dir, s.id, s.sealed)?;
        if let Some(u) = usage.remove(&s.id) {
            seg.usage = u.into_usage();
        }
        set.insert(Arc::new(seg));
    }
    let active = rec
        .active
        .and_then(|id| rec.segments.iter().find(|s| s.id == id))
        .map(|s| (s.id, s.len));
    Ok(Rebuilt {
        segments: set,
        active,
        last_seq: rec.last_seq,
        report: rec.report,
    })
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;
    use std::time::Duration;

    use super::*;
    use crate::index::Seen;
    use crate::{Db, SyncPolicy, WriteBatch};

    fn opts(threads: usize) -> Options {
        Options {
            sync: SyncPolicy::Never,
            segment_size: 4 << 10,
            compaction_threshold: 0.9,
            inline_threshold: 16,
            background_compaction: false,
            recovery_threads: threads,
            ..Options::default()
        }
    }

    /// A history with overwrites, deletes, re-puts, expiring keys and
    /// batches writing one key twice, spread over many small segments,
    /// compacted now and then (old records copied into newer segments).
    fn build(dir: &Path) {
        let db = Db::open(dir, opts(1)).unwrap();
        let mut x: u64 = 7;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for step in 0..2500u64 {
            let k = format!("key-{:03}", next(200)).into_bytes();
            let v = vec![step as u8; next(300) as usize];
            match next(40) {
                0..=19 => db.put(&k, &v).unwrap(),
                20..=26 => db.put_with_ttl(&k, &v, Duration::from_secs(3600)).unwrap(),
                27..=32 => db.delete(&k).unwrap(),
                33..=38 => {
                    let mut b = WriteBatch::new();
                    b.put(k.clone(), v.clone());
                    b.put(format!("key-{:03}", next(200)).into_bytes(), v.clone());
                    if next(2) == 0 {
                        b.delete(k.clone());
                    } else {
                        b.put(k.clone(), vec![1; 3]);
                    }
                    db.write(&b).unwrap();
                }
                _ => {
                    db.compact().unwrap();
                }
            }
        }
        // Batches writing a key twice (the later op wins).
        for i in 0..40u8 {
            let mut b = WriteBatch::new();
            let k = format!("key-{:03}", i as u64 * 5).into_bytes();
            b.put(k.clone(), vec![i; 60]);
            b.put(format!("key-{:03}", 1 + i as u64 * 5).into_bytes(), vec![i; 100]);
            b.put(k, vec![i ^ 0xff; 60]);
            db.write(&b).unwrap();
        }
        db.compact().unwrap();
        for i in 0..10 {
            db.put(format!("key-{:03}", i * 7).as_bytes(), b"active").unwrap();
        }
        db.close().unwrap();
    }

    /// Every key's version, the per-segment figures and the totals.
    type Image = (Vec<(Vec<u8>, Version)>, Vec<(u32, u64, u64, u64, u64, bool)>, i64, u64);

    fn rebuild(src: &Path, hints: bool, threads: usize, batch_bytes: usize) -> (Image, RecoveryReport) {
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let p = e.unwrap().path();
            if hints || p.extension().is_none_or(|x| x != "hint") {
                std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
            }
        }
        let index = Index::new();
        let counters = Counters::default();
        let fs = crate::vfs::OsFileSystem;
        let r = rebuild_index_batched(&fs, dir.path(), &opts(threads), &index, &counters, batch_bytes).unwrap();
        let mut keys = Vec::new();
        index.range_from(Bound::Unbounded, Bound::Unbounded, u64::MAX, usize::MAX, |k, v| {
            keys.push((k.to_vec(), v.clone()))
        });
        // The hash map holds the keys the skiplist holds (tombstones
        // unlinked from both), and a point read finds each key's version.
        assert_eq!(index.hashed_len(), index.len(), "hash map and skiplist disagree");
        assert_eq!(index.len(), keys.len());
        for (k, v) in &keys {
            let by_hash = index.get_with(k, u64::MAX, |x| x.clone());
            assert!(matches!(&by_hash, Seen::Found(x) if x == v), "{k:?}: {by_hash:?}");
        }
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut segs: Vec<_> = r
            .segments
            .all()
            .iter()
            .map(|s| {
                let u = &s.usage;
                let e = u.has_expiry.load(Ordering::Relaxed);
                (
                    s.id,
                    load(&u.live),
                    load(&u.dead),
                    load(&u.min_seq),
                    load(&u.max_seq),
                    e,
                )
            })
            .collect();
        segs.sort();
        let live_keys = counters.live_keys.load(Ordering::Relaxed);
        ((keys, segs, live_keys, r.last_seq), r.report)
    }

    #[test]
    fn hint_batches_and_threads_rebuild_what_a_full_replay_does() {
        let src = tempfile::tempdir().unwrap();
        build(src.path());
        let (replayed, report) = rebuild(src.path(), false, 1, HINT_BATCH_BYTES);
        assert_eq!(report.hinted_segments, 0);
        assert!(replayed.0.len() > 100 && replayed.1.len() >= 6, "{:?}", replayed.1);
        assert!(replayed.0.iter().any(|(_, v)| v.expires_at != 0));
        let hinted_segments = replayed.1.len() as u64 - 1;
        // One batch, a batch per wave of segments, on 1 to 4 threads.
        for batch_bytes in [HINT_BATCH_BYTES, 1] {
            for threads in [1, 2, 4] {
                let (got, report) = rebuild(src.path(), true, threads, batch_bytes);
                assert_eq!(report.hinted_segments, hinted_segments);
                assert!(report.bad_hints.is_empty(), "{:?}", report.bad_hints);
                let ctx = format!("{threads} threads, batches of {batch_bytes} bytes");
                assert_eq!(got.0.len(), replayed.0.len(), "{ctx}: keys");
                for (g, w) in got.0.iter().zip(&replayed.0) {
                    assert_eq!(g, w, "{ctx}");
                }
                assert_eq!(
                    got.1, replayed.1,
                    "{ctx}: (segment, live, dead, min seq, max seq, expiry)"
                );
                assert_eq!((got.2, got.3), (replayed.2, replayed.3), "{ctx}: live keys, last seq");
            }
        }
    }

    /// Hints holding `entries` (key, seq, delete) each, read back as a
    /// recovery would (mapped from files).
    fn hints_of(dir: &Path, segments: &[Vec<(Vec<u8>, u64, bool)>]) -> Vec<(u32, ValidHint)> {
        let fs = crate::vfs::OsFileSystem;
        let seg = [0u8; 64];
        segments
            .iter()
            .enumerate()
            .map(|(i, entries)| {
                let id = i as u32 + 1;
                let entries = entries
                    .iter()
                    .enumerate()
                    .map(|(n, (key, seq, delete))| HintEntry {
                        key: key.clone(),
                        seq: *seq,
                        delete: *delete,
                        expires_at: 0,
                        kv_offset: n as u64,
                        val_len: 1,
                        kv_crc: 0,
                        value: (!delete).then(|| vec![n as u8]),
                    })
                    .collect();
                hint::write(&fs, dir, id, &seg, entries).unwrap();
                let (h, why) = hint::read(&fs, dir, id, seg.len() as u64);
                assert!(why.is_none(), "{why:?}");
                let h = h.unwrap();
                assert!(h.is_mapped());
                (id, h)
            })
            .collect()
    }

    /// What `apply_sorted` handed each thread: per call, the key and its
    /// ops as (segment, seq, place in the segment).
    type Calls = Vec<(Vec<u8>, Vec<(u32, u64, u64)>)>;

    /// Checks that `apply_sorted` over `segments` hands every key to one
    /// call, with all its ops in replay order, each thread's calls in key
    /// order, and returns the highest sequence number.
    fn check_sorted_apply(segments: &[Vec<(Vec<u8>, u64, bool)>], ctx: &str) {
        let dir = tempfile::tempdir().unwrap();
        let hints = hints_of(dir.path(), segments);
        let mut want: std::collections::BTreeMap<Vec<u8>, Vec<(u32, u64, u64)>> = Default::default();
        let mut max_seq = 0;
        for (i, entries) in segments.iter().enumerate() {
            for (n, (key, seq, _)) in entries.iter().enumerate() {
                want.entry(key.clone())
                    .or_default()
                    .push((i as u32 + 1, *seq, n as u64));
                max_seq = max_seq.max(*seq);
            }
        }
        // Replay order: sequence number, then segment, then place.
        for ops in want.values_mut() {
            ops.sort_by_key(|&(segment, seq, at)| (seq, segment, at));
        }
        for threads in [1, 2, 3, 5] {
            let mut locals: Vec<Calls> = (0..threads).map(|_| Calls::new()).collect();
            let got_max = apply_sorted(
                &hints,
                threads,
                &mut locals,
                &|ops: &[ReplayOp<'_>], calls: &mut Calls| {
                    assert!(ops.iter().all(|o| o.key == ops[0].key));
                    calls.push((
                        ops[0].key.to_vec(),
                        ops.iter().map(|o| (o.segment, o.seq, o.kv_offset)).collect(),
                    ));
                },
            );
            assert_eq!(got_max, max_seq, "{ctx}, {threads} threads: highest sequence");
            let mut got = std::collections::BTreeMap::new();
            for calls in &locals {
                assert!(
                    calls.windows(2).all(|w| w[0].0 < w[1].0),
                    "{ctx}, {threads} threads: a thread's keys out of order or repeated"
                );
                for (key, ops) in calls {
                    assert!(
                        got.insert(key.clone(), ops.clone()).is_none(),
                        "{ctx}: key applied twice"
                    );
                }
            }
            assert_eq!(got.len(), want.len(), "{ctx}, {threads} threads: keys");
            for ((gk, gops), (wk, wops)) in got.iter().zip(&want) {
                assert_eq!((gk, gops), (wk, wops), "{ctx}, {threads} threads");
            }
        }
    }

    #[test]
    fn sorted_apply_hands_each_key_its_ops_in_replay_order() {
        let mut x: u64 = 11;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        // Random keys, overwritten in and across segments, with deletes,
        // and one batch writing a key twice under one sequence number.
        let mut seq = 0;
        let segments: Vec<Vec<(Vec<u8>, u64, bool)>> = (0..4)
            .map(|_| {
                (0..1500)
                    .map(|_| {
                        seq += 1 + next(3);
                        (format!("user:{:06}", next(2000)).into_bytes(), seq, next(5) == 0)
                    })
                    .collect()
            })
            .collect();
        let mut dup = segments.clone();
        dup[1].push((b"user:000007".to_vec(), seq, false));
        dup[1].push((b"user:000007".to_vec(), seq, true));
        check_sorted_apply(&dup, "random keys");
        // Keys equal in the 8 bytes after the shared ones and told apart
        // later; keys that are prefixes of others; the empty key.
        let mut seq = 0;
        let mut tricky = Vec::new();
        for round in 0..3 {
            let mut seg = Vec::new();
            for i in 0..700u64 {
                seq += 1;
                let k = match next(4) {
                    0 => format!("tenant-{}/users/{:04}", next(3), next(50)),
                    1 => format!("tenant-{}/users", next(3)),
                    2 => format!("tenant-{}/u", next(3)),
                    _ => format!("tenant-{}", next(3)),
                };
                seg.push((k.into_bytes(), seq, i % 9 == round));
            }
            seg.push((Vec::new(), seq, false));
            tricky.push(seg);
        }
        check_sorted_apply(&tricky, "long shared middles");
        // One key that does not share the prefix every sampled key has (it
        // sits between two sampled places, and its bytes after that prefix
        // would sort it last), and an empty segment.
        let mut shared: Vec<(Vec<u8>, u64, bool)> = (0..5000u64)
            .map(|i| (format!("shared/{:05}", i).into_bytes(), i + 1, false))
            .collect();
        shared[2501].0 = b"aaaaaaaa9".to_vec();
        check_sorted_apply(&[shared.clone(), Vec::new()], "an unshared key");
        // Every entry one key; keys all in order; a single entry.
        let one: Vec<_> = (0..3000u64).map(|i| (b"k".to_vec(), i + 1, i % 4 == 0)).collect();
        check_sorted_apply(&[one], "one key");
        let ordered: Vec<_> = (0..3000u64)
            .map(|i| (format!("{i:08}").into_bytes(), i + 1, false))
            .collect();
        check_sorted_apply(&[ordered[..1000].to_vec(), ordered[1000..].to_vec()], "keys in order");
        check_sorted_apply(&[vec![(b"a".to_vec(), 1, false)]], "one entry");
    }
}
