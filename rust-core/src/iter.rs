//! Snapshots and ordered iterators.
//!
//! A [`Snapshot`] pins one sequence number: every read through it sees the
//! database as of that commit, and time-to-live is judged at the moment the
//! snapshot was taken. An [`Iter`] owns a snapshot and walks the index in
//! byte order, fetching keys in small chunks so it never holds a skiplist
//! position across calls (writers and compaction are never blocked by it).

use std::ops::{Bound, ControlFlow, Range};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::checksum;
use crate::db::{Db, Value};
use crate::engine::{now_ms, Inner};
use crate::error::{Error, Result};
use crate::index::{RangeEnd, ValueRef, ValueView, Version};
use crate::log::record::kv_checksum;
use crate::log::segment::Segment;
use crate::prefetch;

/// A consistent, read-only view of the database at one commit.
pub struct Snapshot {
    /// Keeps the database (and its background thread) open.
    db: Db,
    seq: u64,
    now_ms: u64,
}

impl Snapshot {
    pub(crate) fn new(db: Db) -> Snapshot {
        let now_ms = now_ms();
        let seq = db.inner.snapshots.acquire(&db.inner.vis, now_ms);
        Snapshot { db, seq, now_ms }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.db.inner
    }

    /// The sequence number of the last commit this snapshot sees.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The wall-clock time (ms since the Unix epoch) this snapshot judges expiry at.
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The value of `key` as of this snapshot.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.inner().get_at(key, self.seq, self.now_ms)
    }

    /// The values of `keys` as of this snapshot.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Keys between `lower` and `upper`, in byte order, as of this snapshot.
    pub fn scan(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Iter {
        self.clone_registration().into_scan(lower, upper)
    }

    /// Keys in `[start, end)` (to the last key when `end` is `None`).
    pub fn scan_range(&self, start: &[u8], end: Option<&[u8]>) -> Iter {
        self.scan(Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded))
    }

    /// Keys starting with `prefix`, in byte order, as of this snapshot.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Iter {
        self.clone_registration().into_scan_prefix(prefix)
    }

    /// Like [`Snapshot::scan`], handing this snapshot's registration to the
    /// iterator (no second registration).
    pub fn into_scan(self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Iter {
        Iter::new(self, owned(lower), owned(upper))
    }

    /// Like [`Snapshot::scan_prefix`], handing this snapshot to the iterator.
    pub fn into_scan_prefix(self, prefix: &[u8]) -> Iter {
        let upper = match prefix_successor(prefix) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        let lower = if prefix.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(prefix.to_vec())
        };
        Iter::new(self, lower, upper)
    }

    /// A second registration of the same point in time, owned by an iterator.
    fn clone_registration(&self) -> Snapshot {
        // The sequence is pinned by `self`, so registering it again is safe
        // even if the watermark moved since: it cannot pass `self.seq`.
        self.inner().snapshots.acquire_at(self.seq, self.now_ms);
        Snapshot {
            db: self.db.clone(),
            seq: self.seq,
            now_ms: self.now_ms,
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.inner().snapshots.release(self.seq, self.now_ms, &self.inner().vis);
    }
}

pub(crate) fn owned(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// One pair of an iterator's current chunk: where its key is in the
/// chunk's key buffer, and its value.
struct Slot {
    key: Range<usize>,
    value: SlotValue,
}

enum SlotValue {
    /// The value, ready to hand out: inline in the index or found in the
    /// cache (an iterator read through [`Iter::next_with`]).
    Ready(Value),
    /// A value inline in the index or found in the cache, copied into the
    /// chunk's value buffer (an iterator read through [`Iter::next_borrowed`]).
    Copied(Range<usize>),
    /// A value read from a segment with the chunk's fetch, its checksum
    /// checked: these bytes of [`Iter::reads`].
    Read(Range<usize>),
    /// A value in the map of a closed segment, its checksum checked: these
    /// bytes of the map of [`Iter::segments`]`[segment]`, lent in place.
    Mapped { segment: usize, bytes: Range<usize> },
    /// A value on disk that the chunk's fetch did not load (it moved, or
    /// its read failed): loaded on its own when reached, which reports the
    /// error, if any, in key order.
    Disk(Version),
    /// Already handed out.
    Taken,
}

/// Keys walked by an iterator's first refill; each later refill doubles it,
/// up to [`CHUNK_MAX`]. A scan that stops early (a page) loads few values it
/// never returns; a long scan walks the index and fetches values in large
/// chunks.
const CHUNK_FIRST: usize = 32;
/// The largest chunk.
const CHUNK_MAX: usize = 256;
/// The most keys one refill walks for a caller that said how many pairs it
/// takes ([`Iter::want`]): it takes every pair the walk yields, so a larger
/// walk fetches nothing it does not read, and each refill saved is a search
/// of the skiplist from its top and a crossing of the C API. One walk of
/// 1,000 keys instead of four of 256 gave 1,000-key scans in `bench/peers`
/// 1.03x the rate with 100-byte values, 1.09x with 1 KiB and 1.06x with
/// 4 KiB (medians of four alternated runs each).
const WANT_MAX: usize = 1024;
/// A refill of a lending iterator stops walking once the values of the keys
/// it took add up to this many bytes (it always takes one key): values the
/// fetch reads through files (the segment being written, or every segment
/// with maps off) are read into the chunk's buffer, so a chunk of large
/// values is bounded by bytes as well as by keys.
const CHUNK_MAX_BYTES: u64 = 8 << 20;
/// Values on disk whose records are at most this far apart are fetched with
/// one read (the bytes between them are read and dropped): a read of up to
/// a few KiB more costs less than a system call of its own.
const FETCH_MAX_GAP: u64 = 4096;
/// The most bytes one read of a chunk's fetch covers.
const FETCH_MAX_SPAN: u64 = 1 << 20;
/// A read buffer that grew past this (a chunk of very large values) is
/// released before the next chunk rather than kept for the iterator's life.
const READS_RETAIN_BYTES: usize = 8 << 20;
/// Sets of buffers kept for later iterators, the bytes they may hold
/// together, and the largest value or read buffer kept: a scan through the
/// C API is one iterator, and buffers allocated anew for each came from
/// fresh pages (the allocator gives the pages of freed blocks back), which
/// the kernel zeroes on first touch. The pool holds a set per scan running
/// at once (64 in the heavy benchmark): a pool smaller than that leaves the
/// other scans allocating afresh, and under 64 scanners that zeroing was
/// most of a scan's CPU.
const SPARE_MAX: usize = 128;
const SPARE_BYTES: usize = 16 << 20;
const SPARE_RETAIN_BYTES: usize = 2 << 20;

/// The buffers an iterator fills chunk after chunk, kept together so that
/// a dropped iterator's go to the next one.
#[derive(Default)]
struct Buffers {
    keys: Vec<u8>,
    values: Vec<u8>,
    entries: Vec<Slot>,
    misses: Vec<usize>,
    reads: Vec<u8>,
    segments: Vec<Arc<Segment>>,
}

/// The buffers of dropped iterators and the bytes they hold.
struct Spare {
    sets: Vec<Buffers>,
    bytes: usize,
}

static SPARE: Mutex<Spare> = Mutex::new(Spare {
    sets: Vec::new(),
    bytes: 0,
});

impl Buffers {
    /// A dropped iterator's buffers, emptied, or new ones.
    fn take() -> Buffers {
        let mut spare = SPARE.lock();
        match spare.sets.pop() {
            Some(set) => {
                spare.bytes -= set.bytes();
                set
            }
            None => Buffers::default(),
        }
    }

    /// The heap bytes these buffers hold.
    fn bytes(&self) -> usize {
        self.keys.capacity()
            + self.values.capacity()
            + self.reads.capacity()
            + self.entries.capacity() * std::mem::size_of::<Slot>()
            + self.misses.capacity() * std::mem::size_of::<usize>()
            + self.segments.capacity() * std::mem::size_of::<Arc<Segment>>()
    }

    /// Keeps these buffers for a later iterator, unless the pool is full
    /// or they grew large.
    fn give(mut self) {
        if self.values.capacity() > SPARE_RETAIN_BYTES || self.reads.capacity() > SPARE_RETAIN_BYTES {
            return;
        }
        self.keys.clear();
        self.values.clear();
        // Drops the values the slots still hold.
        self.entries.clear();
        self.misses.clear();
        self.reads.clear();
        // Releases the segments (a removed one's file closes here).
        self.segments.clear();
        let bytes = self.bytes();
        let mut spare = SPARE.lock();
        if spare.sets.len() < SPARE_MAX && spare.bytes + bytes <= SPARE_BYTES {
            spare.bytes += bytes;
            spare.sets.push(self);
        }
    }
}

/// An ordered iterator over one snapshot. Yields `(key, value)` pairs;
/// an I/O or corruption error is yielded once, then iteration ends.
///
/// It walks the index a chunk of keys at a time and, before handing out the
/// chunk's first pair, fetches every value of the chunk that is not in the
/// index from the segments in segment and offset order. A value in a
/// closed segment is checked (key and CRC32C) where it lies in the
/// segment's read-only map ([`Segment::mapped`]) and lent from there: no
/// system call and no copy until the caller's own. A value in the segment
/// being written (or in any segment when maps are off) is read with one
/// read per run of nearby records (a record alone in its run from the
/// value cache, if there).
///
/// A scan reads each value once, so it stays out of the value cache: it
/// only probes it ([`ValueCache::peek_with`](crate::cache::ValueCache::peek_with),
/// which neither counts nor promotes the entry) and never inserts what it
/// read, which would evict a value other reads want for one nobody reads
/// again. A fetch reads into one buffer the iterator keeps and reuses from
/// chunk to chunk (no fresh memory per read, which the kernel would zero,
/// and no second copy per value), through the segments' own open files
/// (the iterator holds the segments it read from until it is dropped);
/// values are lent from that buffer once their checksum (CRC32C of key and
/// value, as on every read from disk) matched. A value whose checksum does
/// not match is read again alone when it is reached, and the damage is
/// reported in key order.
pub struct Iter {
    snap: Snapshot,
    /// Where the next refill starts.
    lower: Bound<Vec<u8>>,
    /// The range's end.
    upper: Bound<Vec<u8>>,
    /// The range's start, kept so `seek` cannot move before it.
    start: Bound<Vec<u8>>,
    /// The keys of the current chunk, back to back (one buffer per
    /// iterator rather than an allocation per key).
    keys: Vec<u8>,
    /// The inline values of the current chunk, back to back, when the
    /// iterator lends values ([`Iter::next_borrowed`]): a copy of 100 bytes
    /// costs less than counting a reference to the index's value and
    /// releasing it.
    values: Vec<u8>,
    /// Set by the first [`Iter::next_borrowed`]: inline values are copied
    /// into `values` rather than shared.
    lend: bool,
    /// The current chunk's pairs.
    entries: Vec<Slot>,
    /// Positions in `entries` of the values a fetch reads from disk
    /// (kept to reuse its allocation).
    misses: Vec<usize>,
    /// The bytes of the current chunk's reads, run after run
    /// ([`SlotValue::Read`] points into it); kept from chunk to chunk.
    reads: Vec<u8>,
    /// The segments this iterator has read from, held so that each is
    /// looked up once per iterator (and a segment compaction removes
    /// meanwhile stays readable: its file closes, and its map goes, when
    /// the last holder lets it go). [`SlotValue::Mapped`] values point
    /// into their maps.
    segments: Vec<Arc<Segment>>,
    /// Keys the next refill walks.
    chunk: usize,
    /// The most pairs the caller takes before it asks again (set by
    /// [`Iter::want`], for the next refill only): a refill walks that many
    /// keys (up to [`WANT_MAX`]), so a scan that stops at a limit fetches
    /// no values past it, and one that asks for a batch walks the index
    /// once for it.
    want: usize,
    /// The next entry of `entries` to yield.
    at: usize,
    exhausted: bool,
    failed: bool,
}

impl Iter {
    fn new(snap: Snapshot, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Iter {
        let Buffers {
            keys,
            values,
            entries,
            misses,
            reads,
            segments,
        } = Buffers::take();
        Iter {
            snap,
            start: lower.clone(),
            lower,
            upper,
            keys,
            values,
            lend: false,
            entries,
            misses,
            reads,
            segments,
            chunk: CHUNK_FIRST,
            want: usize::MAX,
            at: 0,
            exhausted: false,
            failed: false,
        }
    }

    /// The sequence number this iterator reads at.
    pub fn seq(&self) -> u64 {
        self.snap.seq
    }

    /// Tells the iterator that its caller takes at most `n` more pairs
    /// before it asks again (the C API's batches): if the next pair needs a
    /// refill, that refill walks `n` keys (at least one, at most
    /// [`WANT_MAX`]) whatever the chunk size has grown to, and so fetches
    /// no value from disk the caller will not take, and a batch larger than
    /// the current chunk costs one walk of the index, not several. Applies
    /// to the next refill only; later ones walk chunks of the usual size.
    pub fn want(&mut self, n: usize) {
        self.want = n.max(1);
    }

    /// Moves to the first key `>= key` (never before the range start).
    pub fn seek(&mut self, key: &[u8]) {
        let before_start = match &self.start {
            Bound::Included(s) => key < s.as_slice(),
            Bound::Excluded(s) => key <= s.as_slice(),
            Bound::Unbounded => false,
        };
        self.lower = if before_start {
            self.start.clone()
        } else {
            Bound::Included(key.to_vec())
        };
        self.entries.clear();
        self.at = 0;
        self.chunk = CHUNK_FIRST;
        self.exhausted = false;
    }

    fn refill(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.entries.clear();
        if self.reads.capacity() > READS_RETAIN_BYTES {
            self.reads = Vec::new();
        }
        self.reads.clear();
        self.at = 0;
        let lower = match &self.lower {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let upper = match &self.upper {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let now = self.snap.now_ms;
        let lend = self.lend;
        let walk = match std::mem::replace(&mut self.want, usize::MAX) {
            usize::MAX => self.chunk,
            want => want.min(WANT_MAX),
        };
        let (keys, values, entries) = (&mut self.keys, &mut self.values, &mut self.entries);
        // The last key walked, present or not: the next chunk starts after it.
        let mut last = None;
        // Records a key walked, with its value unless it has none to show.
        let mut add = |key: &[u8], value: Option<SlotValue>| {
            let start = keys.len();
            keys.extend_from_slice(key);
            last = Some(start..keys.len());
            if let Some(value) = value {
                entries.push(Slot {
                    key: start..keys.len(),
                    value,
                });
            }
        };
        let (inner, seq) = (self.snap.inner(), self.snap.seq);
        let end = if lend {
            // Borrowed reads copy inline values into the chunk: the walk
            // lends them as views taken ahead of the visits, which overlaps
            // the cache misses of values scattered in memory.
            let mut value_bytes = 0u64;
            inner.range_views_at(lower, upper, seq, walk, |key, version| {
                let value = match (version.held_bytes(), version.value) {
                    _ if version.is_absent(now) => None,
                    (Some(bytes), _) => {
                        let at = values.len();
                        values.extend_from_slice(bytes);
                        value_bytes += bytes.len() as u64;
                        Some(SlotValue::Copied(at..values.len()))
                    }
                    (None, ValueView::Disk { len, .. }) => {
                        value_bytes += u64::from(len);
                        version.to_version().map(SlotValue::Disk)
                    }
                    (None, _) => None,
                };
                add(key, value);
                if value_bytes >= CHUNK_MAX_BYTES {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        } else {
            inner.range_at(lower, upper, seq, walk, |key, version| {
                let value = match &version.value {
                    _ if version.is_absent(now) => None,
                    ValueRef::Small(small) => Some(SlotValue::Ready(Value::from(small.as_bytes()))),
                    ValueRef::Inline(bytes) => Some(SlotValue::Ready(Arc::clone(bytes))),
                    _ => Some(SlotValue::Disk(version.clone())),
                };
                add(key, value);
            })
        };
        if end == RangeEnd::Done {
            self.exhausted = true;
        }
        match last {
            Some(r) => self.lower = Bound::Excluded(self.keys[r].to_vec()),
            None => self.exhausted = true,
        }
        self.chunk = (self.chunk * 2).min(CHUNK_MAX);
        self.fetch();
    }

    /// Loads the values of the chunk that are on disk, in segment and
    /// offset order: records close together with one read, each value's
    /// checksum checked where the read left it; a record with no neighbour
    /// to share a read is taken from the value cache when it is there
    /// (probed, not counted). A value this cannot load (its segment was
    /// compacted away meanwhile, a read failed, a checksum did not match)
    /// stays [`SlotValue::Disk`]; `advance` loads it alone when it is
    /// reached, which finds the moved value or reports the error in key
    /// order.
    fn fetch(&mut self) {
        let inner = self.snap.inner();
        let cached = inner.opts.cache_bytes > 0;
        let lend = self.lend;
        let (entries, misses, values, reads, segments) = (
            &mut self.entries,
            &mut self.misses,
            &mut self.values,
            &mut self.reads,
            &mut self.segments,
        );
        misses.clear();
        misses.extend(
            entries
                .iter()
                .enumerate()
                .filter(|(_, slot)| matches!(slot.value, SlotValue::Disk(_)))
                .map(|(i, _)| i),
        );
        if misses.is_empty() {
            return;
        }
        let place = |slot: &Slot| match slot.value {
            SlotValue::Disk(Version {
                value:
                    ValueRef::Disk {
                        segment,
                        offset,
                        len,
                        crc,
                    },
                ..
            }) => (segment, offset, offset + slot.key.len() as u64 + len as u64, crc),
            // Only values on disk are listed as misses.
            _ => (u32::MAX, u64::MAX, u64::MAX, 0),
        };
        misses.sort_unstable_by_key(|&i| {
            let (segment, offset, ..) = place(&entries[i]);
            (segment, offset)
        });
        let mut run = 0;
        while run < misses.len() {
            let (segment, first, mut end, _) = place(&entries[misses[run]]);
            let mut next = run + 1;
            while let Some(&i) = misses.get(next) {
                let (s, o, e, _) = place(&entries[i]);
                if s != segment || o < end || o - end > FETCH_MAX_GAP || e - first > FETCH_MAX_SPAN {
                    break;
                }
                end = e;
                next += 1;
            }
            // A record with no neighbour to share its read is taken from the
            // value cache if it is there (a probe instead of a system call);
            // a run of several is read whole, which costs one call whatever
            // the cache holds. A value in a map is lent from the map to a
            // lending iterator (the cache's copy would cost a copy more),
            // but taken from the cache by one that hands out shared values
            // (a reference counted rather than a new buffer).
            let seg_at = find_segment(inner, segments, segment);
            let mapped = seg_at.is_some_and(|at| segments[at].mapped().is_some());
            if lend && mapped {
                // Through a map nothing is gained by runs (no read to
                // share): every value of this segment in the chunk is
                // checked in one pass, which prefetches ahead across them.
                while misses.get(next).is_some_and(|&i| place(&entries[i]).0 == segment) {
                    next += 1;
                }
            }
            if next == run + 1 && cached && !(lend && mapped) {
                let slot = &mut entries[misses[run]];
                let hit = inner.cache.peek_with(&(segment, first), |v| {
                    if lend {
                        let at = values.len();
                        values.extend_from_slice(v);
                        SlotValue::Copied(at..values.len())
                    } else {
                        SlotValue::Ready(Arc::clone(v))
                    }
                });
                if let Some(value) = hit {
                    slot.value = value;
                    run = next;
                    continue;
                }
            }
            // A closed segment's values are lent from its map, each checked
            // where it lies: no system call and no copy.
            if let Some(at) = seg_at {
                if let Some(map) = segments[at].mapped() {
                    let record_of = |slot: &Slot| {
                        let (_, offset, record_end, _) = place(slot);
                        usize::try_from(offset)
                            .ok()
                            .zip(usize::try_from(record_end).ok())
                            .and_then(|(start, stop)| map.get(start..stop))
                    };
                    // The records lie scattered over the map (a page each,
                    // after random overwrites): touched one after the other,
                    // each costs a TLB and a cache miss that nothing
                    // overlaps. Asking for the next few ahead of the check
                    // overlaps those misses with the checks before them.
                    let group = &misses[run..next];
                    for (n, &i) in group.iter().enumerate() {
                        prefetch::ahead(group, n, PREFETCH_AHEAD, |&j| {
                            if let Some(record) = record_of(&entries[j]) {
                                prefetch::lines(record, PREFETCH_MAX_LINES);
                            }
                        });
                        let slot = &mut entries[i];
                        let (_, offset, record_end, crc) = place(slot);
                        let key = &self.keys[slot.key.clone()];
                        let Some(record) = record_of(slot) else {
                            // Not in the file: the single read reports it.
                            continue;
                        };
                        let k = &record[..key.len()];
                        // The record is key then value, so one checksum
                        // over it is the key's continued over the value.
                        if k != key || checksum::crc32c(record) != crc {
                            // Damage: the single read reports it in key order.
                            continue;
                        }
                        let start = offset as usize + key.len();
                        slot.value = SlotValue::Mapped {
                            segment: at,
                            bytes: start..record_end as usize,
                        };
                    }
                    run = next;
                    continue;
                }
            }
            // A failed read leaves the run's values to be loaded one by one.
            let from = reads.len();
            if read_run(inner, segments, reads, segment, first, (end - first) as usize) {
                for &i in &misses[run..next] {
                    let slot = &mut entries[i];
                    let (_, offset, record_end, crc) = place(slot);
                    let (start, stop) = (from + (offset - first) as usize, from + (record_end - first) as usize);
                    let key = &self.keys[slot.key.clone()];
                    let (k, v) = reads[start..stop].split_at(key.len());
                    if k != key || kv_checksum(k, v) != crc {
                        // Bytes not yet written out (a run reaching past the
                        // log's flushed end), or damage: the single read decides.
                        continue;
                    }
                    slot.value = SlotValue::Read(start + key.len()..stop);
                }
            }
            run = next;
        }
    }

    /// Advances and hands the next pair to `f`: the key lent from the
    /// iterator's chunk (no allocation, unlike [`Iterator::next`]), the value
    /// as the shared handle the index or the value cache holds. `None` at the
    /// end; an error is yielded once, then iteration ends.
    pub fn next_with<R>(&mut self, f: impl FnOnce(&[u8], Value) -> R) -> Option<Result<R>> {
        self.advance(|key, value| match value {
            Lent::Shared(v) => f(key, v),
            Lent::Bytes(b) => f(key, Arc::from(b)),
        })
    }

    /// Advances and lends the next pair to `f`: key and value bytes both
    /// borrowed from the iterator, valid only during the call. From the
    /// first call on, the iterator copies the values kept inline in the
    /// index into its own chunk buffer as it walks (no reference counted
    /// per value): the cheapest way to copy pairs out, as the C API's
    /// batches do. `None` at the end; an error is yielded once, then
    /// iteration ends.
    pub fn next_borrowed<R>(&mut self, f: impl FnOnce(&[u8], &[u8]) -> R) -> Option<Result<R>> {
        self.lend = true;
        self.advance(|key, value| match value {
            Lent::Shared(v) => f(key, &v),
            Lent::Bytes(b) => f(key, b),
        })
    }

    /// Advances like [`Iter::next_borrowed`] (inline values are copied
    /// into the chunk's buffer) and lends the next pair to `f`, with this
    /// promise beyond the call: the key's bytes, and a value lent as
    /// [`Lent::Bytes`], stay where they are and unchanged until this
    /// iterator's next refill, [`Iter::seek`] or drop (they lie in the
    /// chunk's buffers, or in the map of a segment the iterator holds). A
    /// [`Lent::Shared`] value is the caller's to keep alive. With `refill`
    /// false the iterator does not walk a next chunk: `None` then means the
    /// current chunk is used up (or the end), so every pair lent since the
    /// last refill stays valid. This is how the C API lends a whole batch
    /// without copying it (`mantis_iter_next_refs`).
    pub(crate) fn next_in_chunk<R>(&mut self, refill: bool, f: impl FnOnce(&[u8], Lent<'_>) -> R) -> Option<Result<R>> {
        self.lend = true;
        self.advance_or_stop(refill, f)
    }

    fn advance<R>(&mut self, f: impl FnOnce(&[u8], Lent<'_>) -> R) -> Option<Result<R>> {
        self.advance_or_stop(true, f)
    }

    fn advance_or_stop<R>(&mut self, refill: bool, f: impl FnOnce(&[u8], Lent<'_>) -> R) -> Option<Result<R>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(slot) = self.entries.get_mut(self.at) {
                self.at += 1;
                let key = &self.keys[slot.key.clone()];
                let loaded = match std::mem::replace(&mut slot.value, SlotValue::Taken) {
                    SlotValue::Ready(value) => Ok(Some(Lent::Shared(value))),
                    SlotValue::Copied(r) => Ok(Some(Lent::Bytes(&self.values[r]))),
                    SlotValue::Read(r) => Ok(Some(Lent::Bytes(&self.reads[r]))),
                    SlotValue::Mapped { segment, bytes } => match self.segments.get(segment).and_then(|s| s.mapped()) {
                        Some(map) => Ok(Some(Lent::Bytes(&map[bytes]))),
                        None => Err(Error::Internal("an iterator lost a segment's map".into())),
                    },
                    SlotValue::Disk(version) => {
                        let inner = self.snap.inner();
                        match inner.load(key, &version) {
                            Ok(Some(v)) => Ok(Some(v)),
                            // Compaction moved the value: read it again at the snapshot.
                            Ok(None) => inner.read_at(key, self.snap.seq, self.snap.now_ms),
                            Err(e) => Err(e),
                        }
                        .map(|v| v.map(Lent::Shared))
                    }
                    SlotValue::Taken => Err(Error::Internal("iterator slot read twice".into())),
                };
                match loaded {
                    Ok(Some(value)) => return Some(Ok(f(key, value))),
                    Ok(None) => continue,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            }
            if self.exhausted || !refill {
                return None;
            }
            if let Err(e) = self.snap.inner().check_open() {
                self.failed = true;
                return Some(Err(e));
            }
            self.refill();
        }
    }
}

/// Records of a mapped segment that a chunk's check asks the CPU to load
/// ahead of the one it checks.
const PREFETCH_AHEAD: usize = 4;
/// The most cache lines of one record asked for ahead (the rest of a large
/// value is streamed by the hardware once the check reads it in order).
const PREFETCH_MAX_LINES: usize = 32;

/// Appends the `len` bytes at `offset` of `segment` to `reads`; false (and
/// `reads` as it was) when the segment is gone or the read failed.
///
/// A segment is read through its own open file (the handle every read of
/// the log uses; no file is opened per iterator), straight into the spare
/// capacity of `reads`: no buffer is allocated and nothing is zeroed
/// first. The iterator keeps the segments it looked up in `segments`. No
/// record is rewritten in place while this iterator lives: compaction
/// writes new segments, and keeps a retired file for reuse only while no
/// snapshot is open (this iterator holds one), else unlinks it, and a
/// segment held here keeps its file open and its bytes. So what such a read
/// finds is the record the index points to, except past the end of what
/// the writer has handed to the OS (the newest records of the active
/// segment, at most one write buffer): those bytes are zeros, older bytes
/// or missing, their checksum does not match, and each such value is then
/// loaded alone, through the log, which finds it in the write buffer.
fn read_run(
    inner: &Inner,
    segments: &mut Vec<Arc<Segment>>,
    reads: &mut Vec<u8>,
    segment: u32,
    offset: u64,
    len: usize,
) -> bool {
    // Compacted away: each value is looked up again when reached.
    let Some(seg) = find_segment(inner, segments, segment) else {
        return false;
    };
    let seg = &segments[seg];
    let at = reads.len();
    reads.reserve(len);
    let spare = &mut reads.spare_capacity_mut()[..len];
    if seg.read_uninit_at(offset, spare).is_err() {
        return false;
    }
    // SAFETY: `read_uninit_at` returned Ok, which means it initialized all
    // of the `len` bytes of spare capacity right after `at`.
    unsafe { reads.set_len(at + len) };
    true
}

/// Where segment `id` is in `segments`, the segments an iterator holds,
/// looking it up in the log (and holding it from then on) the first time;
/// `None` when it was compacted away.
fn find_segment(inner: &Inner, segments: &mut Vec<Arc<Segment>>, id: u32) -> Option<usize> {
    if let Some(at) = segments.iter().position(|s| s.id == id) {
        return Some(at);
    }
    segments.push(inner.log.segments().get(id)?);
    Some(segments.len() - 1)
}

impl Drop for Iter {
    fn drop(&mut self) {
        Buffers {
            keys: std::mem::take(&mut self.keys),
            values: std::mem::take(&mut self.values),
            entries: std::mem::take(&mut self.entries),
            misses: std::mem::take(&mut self.misses),
            reads: std::mem::take(&mut self.reads),
            segments: std::mem::take(&mut self.segments),
        }
        .give();
    }
}

/// A value as [`Iter::advance`] hands it out.
pub(crate) enum Lent<'a> {
    /// The handle the index or the value cache holds.
    Shared(Value),
    /// Bytes in the iterator's chunk buffer.
    Bytes(&'a [u8]),
}

impl Iterator for Iter {
    type Item = Result<(Vec<u8>, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(|key, value| (key.to_vec(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_cases() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
