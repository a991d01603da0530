//! The append-only log: segment files of CRC-framed records.
//!
//! [`Log`] ties together the writer (appends, group commit, rolling), the set
//! of segments open for reading, and the background thread of the sync
//! policy: the flusher of `Interval` and `Never`, the syncer of `Always`
//! (which leads the group syncs no waiting writer is there to lead).
//!
//! Most of its methods hand a call to [`LogWriter`]; it is kept as a layer
//! for what belongs to neither the writer nor the engine:
//! - opening after recovery: whether the active segment is resumed or, when
//!   full, closed and followed by a new one, and marking every other
//!   segment closed;
//! - the flusher's or syncer's life: started with the policy, and
//!   stopped before the writer's last flush and sync on close (or drop);
//! - reads of a value that may still be in the write buffer or already in
//!   a segment file (or gone with a compacted segment);
//! - the files of retired segments kept for reuse (see
//!   [`segment::recycle`]): those found at open are taken into the
//!   [`SegmentSet`]'s pool, or removed when the writer will not reuse them.
//!
//! The engine holds a `Log` and never a `LogWriter`, so the writer's lock
//! and buffer stay behind this one surface.

pub mod frames;
pub mod hint;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::options::{Options, SyncPolicy};
use crate::vfs::FileSystem;
pub use record::{OpKind, OpRef};
use segment::Segment;
pub use writer::{Appended, Computed, Pending, PendingRead};
use writer::{LogWriter, WriterStart};

/// Segments open for reading, by id, and the allocator of new ids.
#[derive(Debug, Default)]
pub struct SegmentSet {
    map: RwLock<HashMap<u32, Arc<Segment>, ahash::RandomState>>,
    next_id: AtomicU32,
    /// Closed segments still without a hint file.
    unhinted: Mutex<Vec<u32>>,
    /// Woken when a segment is closed (the compaction thread).
    on_close: Mutex<Option<Thread>>,
    /// Old ids of retired segment files kept for reuse (`{id}.free`).
    free: Mutex<Vec<u32>>,
    /// How many such files may be kept (0: none are).
    free_limit: AtomicUsize,
    /// Segments removed from the set that something may still hold (a
    /// reader, or the compaction pass that retired them). A retired file is
    /// handed out for reuse only once its old `Segment` is gone, so no open
    /// handle or map of the old life can see the new one's bytes.
    retired: Mutex<HashMap<u32, Weak<Segment>, ahash::RandomState>>,
    /// Reads of closed segments go through the file, never a map
    /// ([`Options::map_reads`] off).
    no_maps: AtomicBool,
}

impl SegmentSet {
    /// Adds (or replaces) a segment.
    pub fn insert(&self, seg: Arc<Segment>) {
        self.next_id.fetch_max(seg.id.saturating_add(1), Ordering::AcqRel);
        if self.no_maps.load(Ordering::Acquire) {
            seg.never_map();
        }
        self.retired.lock().remove(&seg.id);
        self.map.write().insert(seg.id, seg);
    }

    /// Turns reads through maps off (for the segments in the set now and
    /// every one added later) or back on for segments added later.
    pub fn set_map_reads(&self, on: bool) {
        self.no_maps.store(!on, Ordering::Release);
        if !on {
            for seg in self.all() {
                seg.never_map();
            }
        }
    }

    /// Reserves a fresh segment id.
    pub fn allocate_id(&self) -> Result<u32> {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        if id == u32::MAX {
            return Err(Error::Internal("segment id space exhausted".into()));
        }
        Ok(id)
    }

    /// Removes a segment from the set (readers holding it keep it open).
    pub fn remove(&self, id: u32) -> Option<Arc<Segment>> {
        let seg = self.map.write().remove(&id)?;
        let mut retired = self.retired.lock();
        retired.retain(|_, held| held.strong_count() > 0);
        retired.insert(id, Arc::downgrade(&seg));
        Some(seg)
    }

    /// Every open segment, ascending by id.
    pub fn all(&self) -> Vec<Arc<Segment>> {
        let mut v: Vec<_> = self.map.read().values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Records that segment `id` was closed and wakes the compaction thread.
    pub fn closed(&self, id: u32) {
        if let Some(seg) = self.get(id) {
            seg.closed.store(true, Ordering::Release);
        }
        self.unhinted.lock().push(id);
        if let Some(t) = self.on_close.lock().as_ref() {
            t.unpark();
        }
    }

    /// Takes the list of closed segments still without a hint.
    pub fn take_unhinted(&self) -> Vec<u32> {
        std::mem::take(&mut *self.unhinted.lock())
    }

    /// Queues segments for a hint file again (an earlier attempt failed).
    pub fn hint_later(&self, ids: &[u32]) {
        self.unhinted.lock().extend_from_slice(ids);
    }

    /// Sets the thread to wake when a segment closes.
    pub fn notify_on_close(&self, t: Option<Thread>) {
        *self.on_close.lock() = t;
    }

    /// True when a retired segment's file should be kept for reuse rather
    /// than removed: the pool has room for one more besides `pending`
    /// files about to join it.
    pub fn wants_free(&self, pending: usize) -> bool {
        self.free.lock().len() + pending < self.free_limit.load(Ordering::Acquire)
    }

    /// Adds the file `{old}.free` to the pool of files kept for reuse.
    pub fn add_free(&self, old: u32) {
        self.free.lock().push(old);
    }

    /// Takes a file from the pool (its old id), the newest whose old
    /// segment nothing holds any more; `None` when there is none.
    ///
    /// Compaction renames a segment's file for reuse only when no reader
    /// holds the segment, but its own pass still holds it until the pass
    /// ends; a file is handed out only once the last `Arc` of its old
    /// `Segment` (with the segment's file handle and map) was dropped, so
    /// whatever reads through them can never see the records the writer
    /// then writes into the file. Files skipped now stay in the pool.
    pub fn take_free(&self) -> Option<u32> {
        let mut free = self.free.lock();
        let retired = self.retired.lock();
        let at = free
            .iter()
            .rposition(|id| retired.get(id).is_none_or(|held| held.strong_count() == 0))?;
        // Pairs with the Release decrement of each holder's `Arc` drop:
        // every read a holder made through the old segment happens before
        // the writer's first write into the file.
        std::sync::atomic::fence(Ordering::Acquire);
        Some(free.remove(at))
    }

    /// Files in the pool now.
    pub fn free_count(&self) -> usize {
        self.free.lock().len()
    }

    /// The segment with `id`, if open.
    pub fn get(&self, id: u32) -> Option<Arc<Segment>> {
        self.map.read().get(&id).cloned()
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True when no segment is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The log of an open database.
pub struct Log {
    writer: Arc<LogWriter>,
    segments: Arc<SegmentSet>,
    flusher: Mutex<Option<(JoinHandle<()>, Arc<AtomicBool>)>>,
}

impl Log {
    /// Opens the log after recovery: `set` holds the surviving segments,
    /// `active` the segment to resume (with its length), `last_seq` the
    /// highest sequence replayed.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: &Options,
        set: Arc<SegmentSet>,
        active: Option<(u32, u64)>,
        last_seq: u64,
    ) -> Result<Log> {
        set.next_id.fetch_max(1, Ordering::AcqRel);
        let recycle = if opts.preallocate && opts.sync == SyncPolicy::Always {
            opts.recycle_segments
        } else {
            0
        };
        adopt_free_files(&*fs, dir, &set, recycle)?;
        set.set_map_reads(opts.map_reads);
        for seg in set.all() {
            if Some(seg.id) != active.map(|(id, _)| id) {
                seg.closed.store(true, Ordering::Release);
            }
        }
        let (active, start) = match active {
            Some((id, end)) if end < opts.segment_size => (id, WriterStart::Resume { end }),
            Some((id, _)) => {
                set.closed(id);
                (set.allocate_id()?, WriterStart::Create { prev_writer: id })
            }
            None => (set.allocate_id()?, WriterStart::Create { prev_writer: 0 }),
        };
        let writer = Arc::new(LogWriter::open(
            fs,
            dir,
            opts,
            Arc::clone(&set),
            active,
            start,
            last_seq + 1,
        )?);
        let flusher = match opts.sync {
            SyncPolicy::Always => Some(spawn_relay(Arc::clone(&writer))?),
            SyncPolicy::Interval(every) => Some(spawn_flusher(Arc::clone(&writer), every, true)?),
            SyncPolicy::Never => Some(spawn_flusher(Arc::clone(&writer), opts.flush_interval, false)?),
        };
        Ok(Log {
            writer,
            segments: set,
            flusher: Mutex::new(flusher),
        })
    }

    /// Appends one commit; see [`LogWriter::append`].
    pub fn append(&self, ops: &[OpRef<'_>], on_assigned: impl FnOnce(u64) -> Result<()>) -> Result<Appended> {
        self.writer.append(ops, on_assigned)
    }

    /// Appends one put computed under the append lock; see
    /// [`LogWriter::append_computed`].
    pub fn append_computed<T>(
        &self,
        key: &[u8],
        compute: impl FnMut(&Pending<'_>) -> Result<Computed<T>>,
        on_assigned: impl FnOnce(u64, &[OpRef<'_>]) -> Result<()>,
        applied: impl FnOnce(&Appended, &[OpRef<'_>]),
    ) -> Result<(Option<u64>, T)> {
        self.writer.append_computed(key, compute, on_assigned, applied)
    }

    /// Zeroes the active segment ahead of its records if they come close
    /// to the zeros' end; see [`LogWriter::zero_ahead`]. For a writer whose
    /// commit is acknowledged already.
    pub fn zero_ahead(&self) {
        self.writer.zero_ahead()
    }

    /// See [`LogWriter::on_durable`].
    pub fn on_durable(&self, hook: Box<dyn Fn(u64) + Send + Sync>) {
        self.writer.on_durable(hook)
    }

    /// See [`LogWriter::notifier`].
    pub fn notifier(&self) -> std::io::Result<i32> {
        self.writer.notifier()
    }

    /// See [`LogWriter::request_sync`].
    pub fn request_sync(&self, seq: u64) -> Result<u64> {
        self.writer.request_sync(seq)
    }

    /// The sequence number the next commit will get.
    pub fn next_seq(&self) -> u64 {
        self.writer.next_seq()
    }

    /// Waits until commit `seq` is durable; see [`LogWriter::wait_durable`].
    pub fn wait_durable(&self, seq: u64) -> Result<Option<u64>> {
        self.writer.wait_durable(seq)
    }

    /// Reads `len` bytes at `offset` of `segment`, from the write buffer or
    /// the file; `None` when the segment was compacted away.
    pub fn read(&self, segment: u32, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.writer.read_buffered(segment, offset, len) {
            return Ok(Some(bytes));
        }
        match self.segments.get(segment) {
            Some(seg) => seg.read_at(offset, len).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the key (`key_len` bytes at `offset` of `segment`) and the
    /// `val_len`-byte value after it, from the write buffer or the file;
    /// `None` when the segment was compacted away.
    pub fn read_kv(
        &self,
        segment: u32,
        offset: u64,
        key_len: usize,
        val_len: usize,
    ) -> Result<Option<(segment::KeyBuf, Arc<[u8]>)>> {
        if let Some(bytes) = self.writer.read_buffered(segment, offset, key_len + val_len) {
            let (k, v) = bytes.split_at(key_len);
            return Ok(Some((segment::KeyBuf::from_slice(k), Arc::from(v))));
        }
        match self.segments.get(segment) {
            Some(seg) => seg.read_kv(offset, key_len, val_len).map(Some),
            None => Ok(None),
        }
    }

    /// Path of a segment, for error messages.
    pub fn segment_path(&self, segment: u32) -> String {
        self.segments
            .get(segment)
            .map(|s| s.path.display().to_string())
            .unwrap_or_else(|| segment::segment_file_name(segment))
    }

    /// See [`LogWriter::position`].
    pub fn position(&self) -> Result<(u32, u64, u64)> {
        self.writer.position()
    }

    /// Closes the active segment (if it holds any record) and starts a new one.
    pub fn roll(&self) -> Result<()> {
        self.writer.roll_now()
    }

    /// Writes buffered records and syncs the log.
    pub fn sync(&self) -> Result<()> {
        self.writer.flush(true)
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments of this log.
    pub fn segments(&self) -> &Arc<SegmentSet> {
        &self.segments
    }

    /// The writer's counters.
    pub fn counters(&self) -> &writer::WriterCounters {
        &self.writer.counters
    }

    /// Runs `f` with the next sequence number under the append lock.
    pub fn with_append_lock<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        self.writer.with_append_lock(f)
    }

    /// The error that stopped the writer, if any.
    pub fn poisoned(&self) -> Option<String> {
        self.writer.poisoned()
    }

    /// Stops the flusher, then flushes, syncs and closes the writer.
    pub fn close(&self) -> Result<()> {
        if let Some((handle, stop)) = self.flusher.lock().take() {
            stop.store(true, Ordering::Release);
            handle.thread().unpark();
            let _ = handle.join();
        }
        self.writer.close()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Takes the files kept for reuse found in `dir` into the pool of `set`,
/// up to `limit` of them (the newest), and removes the others.
fn adopt_free_files(fs: &dyn FileSystem, dir: &Path, set: &SegmentSet, limit: usize) -> Result<()> {
    let ids = segment::list_free_in(fs, dir)?;
    let keep = ids.len().min(limit);
    let (remove, adopt) = ids.split_at(ids.len() - keep);
    for &old in remove {
        let path = dir.join(segment::free_file_name(old));
        fs.remove_file(&path)
            .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    if !remove.is_empty() {
        segment::sync_dir(fs, dir)?;
    }
    // A new segment's id must differ from every id a kept file had: its
    // salt is what tells the file's new records from the old.
    if let Some(&newest) = ids.last() {
        set.next_id.fetch_max(newest.saturating_add(1), Ordering::AcqRel);
    }
    *set.free.lock() = adopt.to_vec();
    set.free_limit.store(limit, Ordering::Release);
    Ok(())
}

/// Starts the thread that leads group syncs nobody is parked to lead under
/// `Always` (see [`LogWriter::relay`]); it sleeps until the writer wakes it.
fn spawn_relay(writer: Arc<LogWriter>) -> Result<(JoinHandle<()>, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    // The zeroing thread (see `LogWriter::zero_ahead`) lives as long as the
    // syncer, which wakes it after a sync when the records near the end of
    // the zeroed space, and stops and joins it on its way out.
    let zero_stop = Arc::new(AtomicBool::new(false));
    let (zw, zs) = (Arc::clone(&writer), Arc::clone(&zero_stop));
    let zeroer = std::thread::Builder::new()
        .name("mantisdb-zeroer".into())
        .spawn(move || {
            while !zs.load(Ordering::Acquire) {
                std::thread::park();
                zw.zero_ahead();
            }
        })
        .map_err(|e| Error::io("starting the log zeroing thread", e))?;
    let zero_thread = zeroer.thread().clone();
    writer.set_zeroer(zero_thread.clone());
    let zero_stop2 = Arc::clone(&zero_stop);
    let stop2 = Arc::clone(&stop);
    let w = Arc::clone(&writer);
    let handle = std::thread::Builder::new()
        .name("mantisdb-syncer".into())
        .spawn(move || {
            while !stop2.load(Ordering::Acquire) {
                std::thread::park();
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                // A failure poisons the writer; the waiting commits report it.
                w.relay();
            }
            zero_stop.store(true, Ordering::Release);
            zeroer.thread().unpark();
            let _ = zeroer.join();
        });
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            // The zeroer was started: let it end before reporting.
            zero_stop2.store(true, Ordering::Release);
            zero_thread.unpark();
            return Err(Error::io("starting the log syncer thread", e));
        }
    };
    writer.set_relay(handle.thread().clone());
    Ok((handle, stop))
}

fn spawn_flusher(writer: Arc<LogWriter>, every: Duration, sync: bool) -> Result<(JoinHandle<()>, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let handle = std::thread::Builder::new()
        .name("mantisdb-flusher".into())
        .spawn(move || {
            while !stop2.load(Ordering::Acquire) {
                std::thread::park_timeout(every);
                // A failure poisons the writer; the next append reports it.
                let _ = writer.flush(sync);
            }
        })
        .map_err(|e| Error::io("starting the log flusher thread", e))?;
    Ok((handle, stop))
}

#[cfg(test)]
mod tests {
    use super::record::{self, OpKind, OpRef, Salt};
    use super::segment::{self, SEGMENT_HEADER_LEN};
    use super::*;
    use crate::vfs::OsFileSystem;

    /// A segment's file kept for reuse is not handed to the writer while
    /// anything still holds the old segment (its open file and its map):
    /// a reader of the old segment never sees the records of the file's
    /// next life.
    #[test]
    fn a_retired_file_is_reused_only_once_its_old_segment_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let file = segment::create(&fs, dir.path(), 1, 0, 0).unwrap();
        let (mut frame, mut kv) = (Vec::new(), Vec::new());
        let op = OpRef {
            kind: OpKind::Put,
            key: b"key",
            value: b"the old life's value",
            expires_at: 0,
        };
        record::encode_salted(&mut frame, 1, &[op], &mut kv, Salt::of_segment(1));
        file.write_at(&frame, SEGMENT_HEADER_LEN).unwrap();
        file.sync_data().unwrap();
        drop(file);

        let set = SegmentSet::default();
        set.free_limit.store(2, Ordering::Release);
        let seg = Arc::new(Segment::open(&fs, dir.path(), 1, false).unwrap());
        set.insert(Arc::clone(&seg));
        assert!(seg.mapped().is_none(), "a segment being written is not mapped");
        set.closed(1);
        let old = seg.mapped().expect("a closed segment is mapped").to_vec();
        assert!(seg.is_mapped());

        // Retired as compaction retires a file for reuse, while a reader
        // (`seg`) still holds the segment.
        drop(set.remove(1));
        fs.rename(&seg.path, &dir.path().join(segment::free_file_name(1)))
            .unwrap();
        set.add_free(1);
        assert_eq!(
            set.take_free(),
            None,
            "a file was handed out under a reader of its old life"
        );
        assert_eq!(set.free_count(), 1, "the file stays in the pool");
        assert_eq!(seg.mapped().unwrap(), &old[..]);
        assert_eq!(seg.read_at(SEGMENT_HEADER_LEN, frame.len()).unwrap(), frame);

        drop(seg);
        assert_eq!(set.take_free(), Some(1), "the last holder let go: the file is free");
        let reused = segment::recycle(&fs, dir.path(), 1, 2, 1, 1)
            .unwrap()
            .expect("the file was taken");
        reused.write_at(&[0xAA; 64], SEGMENT_HEADER_LEN).unwrap();
    }

    /// A file kept from an earlier run (no segment of this process ever
    /// held it) is handed out at once; one of several held is skipped.
    #[test]
    fn take_free_skips_only_held_files() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        drop(segment::create(&fs, dir.path(), 5, 0, 0).unwrap());
        let set = SegmentSet::default();
        set.free_limit.store(3, Ordering::Release);
        let seg = Arc::new(Segment::open(&fs, dir.path(), 5, false).unwrap());
        set.insert(Arc::clone(&seg));
        drop(set.remove(5));
        set.add_free(3);
        set.add_free(5);
        assert_eq!(set.take_free(), Some(3), "the held file 5 is skipped");
        assert_eq!(set.take_free(), None);
        drop(seg);
        assert_eq!(set.take_free(), Some(5));
    }

    /// With maps off, a closed segment is read through its file.
    #[test]
    fn maps_off_reads_closed_segments_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        drop(segment::create(&fs, dir.path(), 1, 0, 0).unwrap());
        let set = SegmentSet::default();
        set.set_map_reads(false);
        let seg = Arc::new(Segment::open(&fs, dir.path(), 1, false).unwrap());
        set.insert(Arc::clone(&seg));
        set.closed(1);
        assert!(seg.mapped().is_none());
        assert_eq!(seg.read_at(0, 8).unwrap(), segment::SEGMENT_MAGIC);
    }
}
