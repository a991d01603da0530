//! The database: open and recover, write, read, snapshot, close.
//!
//! A write validates its input, appends one record to the log (which assigns
//! the sequence number and, under `Always`, waits for group commit), inserts
//! its versions into the index, fills the cache, and publishes its sequence.
//! A read takes the visible sequence, finds the version in the index, and
//! loads the value from the index (inline), the cache, or one positioned read.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::accounting::{account_op, op_log_bytes};
use crate::background::Background;
use crate::batch::WriteBatch;
use crate::cache::ValueCache;
use crate::checkpoint::{self, CheckpointReport};
use crate::compaction::{self, CompactionReport};
use crate::dirlock::DirLock;
use crate::error::{Error, Result};
use crate::index::{Index, Lookup, ValueRef, Version};
use crate::iter::{Iter, Snapshot};
use crate::log::record::kv_checksum;
use crate::log::recovery::{self, RecoveryReport};
use crate::log::{Appended, Log, OpKind, OpRef};
use crate::mvcc::{Snapshots, Visibility};
use crate::options::Options;
use crate::stats::{Counters, Stats};
use crate::txn::{ConflictTracker, ReadSet, Transaction};
use crate::vfs::{self, FileSystem};

/// A value returned by the engine: shared, immutable bytes.
pub type Value = Arc<[u8]>;

/// Cache key: (segment id, offset of the op's key in the segment).
pub(crate) type CacheKey = (u32, u64);

/// Lookups a read retries when compaction keeps moving its value.
const RELOCATION_RETRIES: usize = 10_000;

/// How often (in commits) the GC watermark is recomputed.
const WATERMARK_EVERY: u64 = 64;

/// An open database. Cloning is cheap and shares the same database; it is
/// safe to use from many threads at once.
#[derive(Clone)]
pub struct Db {
    // Field order matters: the guard drops first, joining the background
    // thread, so the last handle's drop releases the directory at once.
    pub(crate) guard: Arc<Background>,
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    opts: Options,
    pub(crate) log: Log,
    pub(crate) conflicts: ConflictTracker,
    index: Index,
    cache: ValueCache<CacheKey>,
    pub(crate) vis: Visibility,
    pub(crate) snapshots: Snapshots,
    /// Deletes waiting until no snapshot can see below them, to unlink the key.
    tombstones: Mutex<VecDeque<(u64, Box<[u8]>)>>,
    counters: Counters,
    closed: AtomicBool,
    recovery: RecoveryReport,
    /// Held by a compaction pass or a checkpoint: no segment is retired meanwhile.
    compaction_lock: Mutex<()>,
    // Last field: dropped after the log is closed, so the lock outlives every write.
    _lock: DirLock,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The absolute expiry of a write made at `now_ms` with `ttl`.
pub(crate) fn expiry_at(now_ms: u64, ttl: Duration) -> u64 {
    now_ms
        .saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64)
        .max(1)
}

fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < Duration::from_millis(1) {
        return Err(Error::InvalidArgument(format!(
            "ttl {ttl:?} is below the 1 ms resolution"
        )));
    }
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database in `dir`, recovering its log.
    /// Fails with [`Error::Locked`] if another open database holds `dir`,
    /// and with [`Error::Corruption`] if a record before the tail is bad.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        let fs = opts.file_system.clone().unwrap_or_else(vfs::os);
        let dir = dir.as_ref().to_path_buf();
        match fs.stat(&dir) {
            Ok(st) if !st.is_dir => {
                return Err(Error::InvalidArgument(format!("{} is not a directory", dir.display())));
            }
            Ok(_) => {}
            // The new directory's name is made durable too: a commit
            // acknowledged later must not vanish with its directory.
            Err(_) => {
                vfs::create_dir_durable(&*fs, &dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?
            }
        }
        let lock = DirLock::acquire(&*fs, &dir)?;

        let index = Index::new();
        let counters = Counters::default();
        let rec = recovery::rebuild_index(&*fs, &dir, &opts, &index, &counters)?;
        let log = Log::open(Arc::clone(&fs), &dir, &opts, rec.segments, rec.active, rec.last_seq)?;
        let cache = ValueCache::new(opts.cache_bytes);
        let segments = Arc::clone(log.segments());
        let inner = Arc::new(Inner {
            fs,
            dir,
            log,
            index,
            cache,
            vis: Visibility::new(rec.last_seq),
            snapshots: Snapshots::new(rec.last_seq),
            tombstones: Mutex::new(VecDeque::new()),
            conflicts: ConflictTracker::default(),
            compaction_lock: Mutex::new(()),
            counters,
            closed: AtomicBool::new(false),
            recovery: rec.report,
            opts,
            _lock: lock,
        });
        let guard = Arc::new(Background::start(&inner, segments)?);
        Ok(Db { guard, inner })
    }

    /// Writes a consistent copy of the database, as of one commit, into
    /// `dest` (created if missing; must be empty) while reads and writes go
    /// on. The copy opens as a database of its own.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<CheckpointReport> {
        self.inner.check_open()?;
        checkpoint::checkpoint(&self.inner, dest.as_ref())
    }

    /// Compacts now: closes the active segment, then rewrites every closed
    /// segment that holds dead or expiring data, and writes missing hints.
    pub fn compact(&self) -> Result<CompactionReport> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.log.roll()?;
        let _g = inner.compaction_lock.lock();
        inner.snapshots.advance(&inner.vis);
        inner.collect_tombstones();
        compaction::write_pending_hints(inner)?;
        let report = compaction::compact(inner, inner.opts.compaction_threshold, true)?;
        inner.note_compaction(&report);
        Ok(report)
    }

    /// Syncs and closes the database. Later calls on any clone fail with
    /// [`Error::Closed`]. The directory lock is released when the last clone,
    /// snapshot and iterator are dropped.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.guard.stop();
        self.inner.log.close()
    }

    /// Fails with [`Error::Closed`] once the database is closed.
    pub fn check_open(&self) -> Result<()> {
        self.inner.check_open()
    }

    /// The directory this database lives in.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// What recovery did on open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner
            .commit(&[OpRef {
                kind: OpKind::Put,
                key,
                value,
                expires_at: 0,
            }])
            .map(drop)
    }

    /// Sets `key` to `value`, invisible once `ttl` has passed (at least 1 ms).
    pub fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl: Duration) -> Result<()> {
        check_ttl(ttl)?;
        self.inner
            .commit(&[OpRef {
                kind: OpKind::Put,
                key,
                value,
                expires_at: expiry_at(now_ms(), ttl),
            }])
            .map(drop)
    }

    /// Removes `key`. Removing a missing key succeeds (and is logged).
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        self.inner
            .commit(&[OpRef {
                kind: OpKind::Delete,
                key,
                value: &[],
                expires_at: 0,
            }])
            .map(drop)
    }

    /// Commits every op of `batch` atomically as one record. An empty batch is a no-op.
    pub fn write(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return self.inner.check_open();
        }
        for op in &batch.ops {
            if let Some(ttl) = op.ttl {
                check_ttl(ttl)?;
            }
        }
        self.inner.commit(&batch.op_refs(now_ms())).map(drop)
    }

    /// Commits ops given as `(is_delete, key, value, ttl)` borrowed from the
    /// caller, atomically as one record, without building a [`WriteBatch`]
    /// (the C ABI passes its batch buffer straight through).
    pub fn write_borrowed<'a>(
        &self,
        ops: impl Iterator<Item = (bool, &'a [u8], &'a [u8], Option<Duration>)>,
    ) -> Result<()> {
        let now = now_ms();
        let mut refs = Vec::new();
        for (delete, key, value, ttl) in ops {
            if let Some(ttl) = ttl {
                check_ttl(ttl)?;
            }
            refs.push(OpRef {
                kind: if delete { OpKind::Delete } else { OpKind::Put },
                key,
                value,
                expires_at: ttl.map_or(0, |t| expiry_at(now, t)),
            });
        }
        if refs.is_empty() {
            return self.inner.check_open();
        }
        self.inner.commit(&refs).map(drop)
    }

    /// The value of `key`, or `None` if absent, deleted or expired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.check_key(key)?;
        inner.counters.reads.add(1);
        for _ in 0..RELOCATION_RETRIES {
            match inner.index.get(key, inner.vis.visible()) {
                Lookup::Found(v) => {
                    // The clock is read only for keys that carry an expiry.
                    let now = if v.expires_at != 0 { now_ms() } else { 0 };
                    if v.is_absent(now) {
                        return Ok(None);
                    }
                    if let Some(value) = inner.load(key, &v)? {
                        return Ok(Some(value));
                    }
                    // Compaction moved the value: look the key up again.
                    std::thread::yield_now();
                }
                Lookup::Missing => return Ok(None),
                // The version this read wanted was reclaimed because a newer
                // one became visible: read again at the newer point.
                Lookup::Stale => continue,
            }
        }
        Err(inner.missing_segment(key))
    }

    /// The values of `keys`, all read at one snapshot.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        self.snapshot()?.get_many(keys)
    }

    /// Begins an optimistic, serializable transaction; see [`Transaction`].
    pub fn begin(&self) -> Result<Transaction> {
        Transaction::begin(self.clone())
    }

    /// A consistent read view at the newest visible commit. It pins the
    /// versions it can see until dropped.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.inner.check_open()?;
        Ok(Snapshot::new(self.clone()))
    }

    /// An iterator over keys between `lower` and `upper`, in byte order, at one snapshot.
    pub fn scan(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<Iter> {
        Ok(self.snapshot()?.into_scan(lower, upper))
    }

    /// An iterator over keys in `[start, end)` (to the last key when `end` is `None`).
    pub fn scan_range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Iter> {
        Ok(self
            .snapshot()?
            .into_scan(Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded)))
    }

    /// An iterator over keys starting with `prefix`, in byte order, at one snapshot.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Iter> {
        Ok(self.snapshot()?.into_scan_prefix(prefix))
    }

    /// Writes buffered log records to disk and syncs them, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.log.sync()
    }

    /// Number of versions held in the index (walks every key; for tests
    /// that check old versions are reclaimed).
    #[doc(hidden)]
    pub fn debug_version_count(&self) -> usize {
        self.inner.index.version_count()
    }

    /// Counters of the engine and its cache.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let wc = inner.log.counters();
        let syncs = wc.syncs.load(Ordering::Relaxed);
        let (mut live_bytes, mut dead_bytes) = (0, 0);
        for seg in inner.log.segments().all() {
            live_bytes += seg.usage.live.load(Ordering::Relaxed);
            dead_bytes += seg.usage.dead.load(Ordering::Relaxed);
        }
        let synced_commits = wc.synced_commits.load(Ordering::Relaxed);
        Stats {
            reads: c.reads.get(),
            writes: c.writes.get(),
            deletes: c.deletes.get(),
            keys: c.live_keys.load(Ordering::Relaxed).max(0) as u64,
            live_bytes,
            dead_bytes,
            compactions: c.compactions.get(),
            compaction_bytes_reclaimed: c.compaction_bytes_reclaimed.get(),
            segments: inner.log.segment_count() as u64,
            syncs,
            synced_commits,
            avg_group_commit: if syncs == 0 {
                0.0
            } else {
                synced_commits as f64 / syncs as f64
            },
            last_seq: inner.vis.visible(),
            open_snapshots: inner.snapshots.open_count() as u64,
            cache: inner.cache.stats(),
        }
    }
}

impl Inner {
    /// Holds compaction off (checkpoints need every segment to stay).
    pub(crate) fn compaction_guard(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.compaction_lock.lock()
    }

    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn fs(&self) -> &dyn FileSystem {
        &*self.fs
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn segment_size(&self) -> u64 {
        self.opts.segment_size
    }

    pub(crate) fn hint_inline(&self) -> usize {
        compaction::hint_inline(self.opts.inline_threshold)
    }

    /// Compaction turned the newest version of `key` (an expired value) into a delete.
    pub(crate) fn expired_by_compaction(&self, seq: u64, key: &[u8]) {
        self.counters.live_keys.fetch_sub(1, Ordering::Relaxed);
        self.tombstones.lock().push_back((seq, Box::from(key)));
    }

    pub(crate) fn note_compaction(&self, r: &CompactionReport) {
        if r.segments_in > 0 {
            self.counters.compactions.add(1);
            self.counters
                .compaction_bytes_reclaimed
                .add(r.bytes_in.saturating_sub(r.bytes_out));
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > self.opts.max_key_len {
            return Err(Error::InvalidKey {
                len: key.len(),
                max: self.opts.max_key_len,
            });
        }
        Ok(())
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.opts.max_value_len {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: self.opts.max_value_len,
            });
        }
        Ok(())
    }

    /// Logs `ops` as one record, applies them to the index and publishes them.
    pub(crate) fn commit(&self, ops: &[OpRef<'_>]) -> Result<u64> {
        self.commit_checked(ops, None)
    }

    /// Like [`Inner::commit`], validating a transaction's read set against
    /// every later commit under the append lock first.
    pub(crate) fn commit_checked(&self, ops: &[OpRef<'_>], check: Option<&ReadSet<'_>>) -> Result<u64> {
        self.check_open()?;
        for op in ops {
            self.check_key(op.key)?;
            self.check_value(op.value)?;
        }
        let appended = self.log.append(ops, |seq| self.conflicts.on_commit(seq, ops, check))?;
        self.apply(&appended, ops);
        Ok(appended.seq)
    }

    fn apply(&self, a: &Appended, ops: &[OpRef<'_>]) {
        let watermark = self.snapshots.watermark();
        let mut deletes = 0u64;
        for (op, &(kv_offset, crc)) in ops.iter().zip(&a.kv) {
            let log_bytes = op_log_bytes(op.key.len(), op.value.len(), op.expires_at);
            let value = match op.kind {
                OpKind::Delete => {
                    deletes += 1;
                    ValueRef::Tombstone
                }
                OpKind::Put if op.value.len() <= self.opts.inline_threshold => ValueRef::Inline(Arc::from(op.value)),
                OpKind::Put => {
                    let offset = a.frame_offset + kv_offset as u64;
                    if self.opts.cache_bytes > 0 {
                        self.cache.insert((a.segment.id, offset), Arc::from(op.value));
                    }
                    ValueRef::Disk {
                        segment: a.segment.id,
                        offset,
                        len: op.value.len() as u32,
                        crc,
                    }
                }
            };
            let effect = self.index.insert(
                op.key,
                Version {
                    seq: a.seq,
                    expires_at: op.expires_at,
                    value,
                    log_bytes,
                    segment: a.segment.id,
                },
                watermark,
            );
            account_op(
                &a.segment.usage,
                a.segment.id,
                op.kind,
                log_bytes,
                op.expires_at,
                &effect,
                |id, bytes| {
                    if let Some(old) = self.log.segments().get(id) {
                        old.usage.kill(bytes);
                    }
                },
            );
            self.counters.account(effect.live_keys);
        }
        self.vis.publish(a.seq);
        let puts = ops.len() as u64 - deletes;
        if puts > 0 {
            self.counters.writes.add(puts);
        }
        if deletes > 0 {
            self.counters.deletes.add(deletes);
            let mut q = self.tombstones.lock();
            for op in ops.iter().filter(|op| op.kind == OpKind::Delete) {
                q.push_back((a.seq, Box::from(op.key)));
            }
        }
        if a.seq % WATERMARK_EVERY == 0 {
            self.snapshots.advance(&self.vis);
            self.collect_tombstones();
        }
    }

    /// Unlinks deleted keys that no snapshot can see any more.
    pub(crate) fn collect_tombstones(&self) {
        let watermark = self.snapshots.watermark();
        let mut q = self.tombstones.lock();
        while q.front().is_some_and(|(seq, _)| *seq <= watermark) {
            if let Some((seq, key)) = q.pop_front() {
                self.index.remove_tombstone(&key, seq, watermark);
            }
        }
    }

    /// The value of a visible, present version, or `None` when compaction
    /// moved it meanwhile (look the key up again).
    pub(crate) fn load(&self, key: &[u8], v: &Version) -> Result<Option<Value>> {
        match &v.value {
            ValueRef::Inline(bytes) => Ok(Some(Arc::clone(bytes))),
            ValueRef::Tombstone => Err(Error::Internal("load of a tombstone".into())),
            &ValueRef::Disk {
                segment,
                offset,
                len,
                crc,
            } => {
                let cached = self.opts.cache_bytes > 0;
                if let Some(hit) = cached.then(|| self.cache.get(&(segment, offset))).flatten() {
                    return Ok(Some(hit));
                }
                let Some(bytes) = self.log.read(segment, offset, key.len() + len as usize)? else {
                    return Ok(None);
                };
                if kv_checksum(&bytes[..key.len()], &bytes[key.len()..]) != crc || bytes[..key.len()] != *key {
                    return Err(Error::corruption(
                        self.log.segment_path(segment),
                        offset,
                        "value checksum mismatch on read",
                    ));
                }
                let value: Value = Arc::from(&bytes[key.len()..]);
                if cached {
                    self.cache.insert((segment, offset), Arc::clone(&value));
                }
                Ok(Some(value))
            }
        }
    }

    /// The value of `key` at `seq`, looking the key up again when compaction
    /// moved the value between lookup and read.
    pub(crate) fn read_at(&self, key: &[u8], seq: u64, now_ms: u64) -> Result<Option<Value>> {
        for _ in 0..RELOCATION_RETRIES {
            match self.index.get(key, seq) {
                Lookup::Found(v) if !v.is_absent(now_ms) => {
                    if let Some(value) = self.load(key, &v)? {
                        return Ok(Some(value));
                    }
                    std::thread::yield_now();
                }
                _ => return Ok(None),
            }
        }
        Err(self.missing_segment(key))
    }

    /// The error for a version whose segment stays gone: the index points
    /// at a file that no longer exists, which only damage can cause.
    fn missing_segment(&self, key: &[u8]) -> Error {
        Error::corruption(
            &self.dir,
            0,
            format!(
                "the value of a key ({} bytes) points to a segment that no longer exists",
                key.len()
            ),
        )
    }

    /// Looks up `key` at `seq` (a registered snapshot) and loads its value.
    pub(crate) fn get_at(&self, key: &[u8], seq: u64, now_ms: u64) -> Result<Option<Value>> {
        self.check_open()?;
        self.check_key(key)?;
        self.counters.reads.add(1);
        self.read_at(key, seq, now_ms)
    }

    /// Fills `out` with up to `limit` present entries in `(lower, upper)` at `seq`.
    pub(crate) fn range_at(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        seq: u64,
        limit: usize,
        out: &mut Vec<(Box<[u8]>, Version)>,
    ) -> crate::index::RangeEnd {
        self.index.range_from(lower, upper, seq, limit, out)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close flushes and syncs; errors have nowhere to go here, and an
        // unsynced tail is what recovery is for.
        let _ = self.log.close();
    }
}
