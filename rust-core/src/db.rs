//! The database handle, [`Db`]: the public API of an open database (open,
//! write, read, scan, snapshot, transaction, maintenance, close).
//!
//! What each call does lives elsewhere: the write and read paths in
//! `engine.rs`, recovery at open in `log/recovery.rs`, the background
//! thread in `background.rs`.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::background::Background;
use crate::batch::WriteBatch;
use crate::checkpoint::{self, CheckpointReport};
use crate::compaction::{self, CompactionReport};
use crate::dirlock::DirLock;
use crate::engine::{expiry_at, now_ms, Inner, PointRead, RELOCATION_RETRIES};
use crate::error::{Error, Result};
use crate::iter::{Iter, Snapshot};
use crate::log::recovery::RecoveryReport;
use crate::log::{OpKind, OpRef};
use crate::meta::Expiry;
use crate::options::Options;
use crate::stats::Stats;
use crate::txn::Transaction;
use crate::vfs;

/// A value returned by the engine: shared, immutable bytes.
pub type Value = Arc<[u8]>;

/// An open database. Cloning is cheap and shares the same database; it is
/// safe to use from many threads at once.
#[derive(Clone)]
pub struct Db {
    // Field order matters: the guard drops first, joining the background
    // thread, so the last handle's drop releases the directory at once.
    pub(crate) guard: Arc<Background>,
    pub(crate) inner: Arc<Inner>,
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
        let inner = Arc::new(Inner::open(fs, dir, opts, lock)?);
        // What the open freed (the hint files' entries, the sort buffers
        // of the loader threads, which have exited) goes back to the OS
        // rather than staying in the allocator's heaps.
        crate::allocator::release_free_memory();
        let segments = Arc::clone(inner.log.segments());
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
        let mut bufs = inner.compaction_guard();
        inner.snapshots.advance(&inner.vis);
        inner.collect_tombstones();
        compaction::write_pending_hints(inner, &mut bufs)?;
        let report = compaction::compact(inner, inner.opts.compaction_threshold, true, &mut bufs)?;
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
        Expiry::After(ttl).check()?;
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

    /// The first half of [`Db::put`], for a caller that waits for durability
    /// elsewhere: the record is appended and applied, but not yet durable nor
    /// visible. `Some(ticket)` under [`crate::SyncPolicy::Always`]: the write
    /// is acknowledged only after [`Db::commit_wait`]`(ticket)` returns Ok
    /// (one call for the newest ticket of many writers leads their group
    /// commit; the others then find theirs done). `None`: nothing to wait for.
    #[doc(hidden)]
    pub fn put_begin(&self, key: &[u8], value: &[u8]) -> Result<Option<u64>> {
        self.commit_begin(&[OpRef {
            kind: OpKind::Put,
            key,
            value,
            expires_at: 0,
        }])
    }

    /// [`Db::put_with_ttl`] in two halves, as [`Db::put_begin`].
    #[doc(hidden)]
    pub fn put_with_ttl_begin(&self, key: &[u8], value: &[u8], ttl: Duration) -> Result<Option<u64>> {
        Expiry::After(ttl).check()?;
        self.commit_begin(&[OpRef {
            kind: OpKind::Put,
            key,
            value,
            expires_at: expiry_at(now_ms(), ttl),
        }])
    }

    /// [`Db::delete`] in two halves, as [`Db::put_begin`].
    #[doc(hidden)]
    pub fn delete_begin(&self, key: &[u8]) -> Result<Option<u64>> {
        self.commit_begin(&[OpRef {
            kind: OpKind::Delete,
            key,
            value: &[],
            expires_at: 0,
        }])
    }

    /// Returns once the commit of `ticket` (from a `*_begin` call of this
    /// database) is durable and visible, or with the error of its group's
    /// failed write or sync.
    #[doc(hidden)]
    pub fn commit_wait(&self, ticket: u64) -> Result<()> {
        // A ticket never issued would wait for ever.
        if ticket >= self.inner.log.next_seq() {
            return Err(Error::InvalidArgument(format!(
                "commit ticket {ticket} was never issued"
            )));
        }
        self.inner.commit_finish(ticket)
    }

    /// A new descriptor (the caller's to close) of an eventfd signalled
    /// whenever the durable point moves or the log stops taking writes, for
    /// a caller that waits for group commit without a thread of its own:
    /// it hands each ticket to [`Db::commit_request`], waits for the
    /// descriptor to be readable (and drains it), and calls
    /// [`Db::commit_wait`] for the tickets the durable point then covers,
    /// which returns without waiting for a sync. Linux only.
    #[doc(hidden)]
    pub fn commit_notifier(&self) -> Result<i32> {
        self.inner
            .log
            .notifier()
            .map_err(|e| Error::io("creating the commit notifier", e))
    }

    /// Makes sure a sync will cover the commit of `ticket` without waiting
    /// for it (0: none to cover), and returns the durable point: every
    /// ticket up to it is durable, and [`Db::commit_wait`] returns for it
    /// without a sync. Fails once the log stopped taking writes.
    #[doc(hidden)]
    pub fn commit_request(&self, ticket: u64) -> Result<u64> {
        self.inner.log.request_sync(ticket)
    }

    /// Prepares log space for later writes (zeroes the segment being written
    /// ahead of its records when they come close to the zeros' end; see
    /// [`Options::preallocate`]). For a caller of [`Db::commit_wait`] once it
    /// has acknowledged the writes that wait covered: the work stays off
    /// their path. Cheap when there is nothing to do.
    #[doc(hidden)]
    pub fn prepare_log(&self) {
        self.inner.log.zero_ahead();
    }

    fn commit_begin(&self, ops: &[OpRef<'_>]) -> Result<Option<u64>> {
        if self.inner.opts.sync == crate::options::SyncPolicy::Always {
            return self.inner.commit_begin(ops, None).map(Some);
        }
        self.inner.commit_unsynced(ops, None)?;
        Ok(None)
    }

    /// Commits every op of `batch` atomically as one record. An empty batch is a no-op.
    pub fn write(&self, batch: &WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return self.inner.check_open();
        }
        for op in &batch.ops {
            op.expiry.check()?;
            // Checked here too: a put that commits as a delete drops its value.
            self.inner.check_value(&op.value)?;
        }
        self.inner.commit(&batch.op_refs(now_ms())).map(drop)
    }

    /// Commits ops given as `(is_delete, key, value, expiry)` borrowed from
    /// the caller, atomically as one record, without building a
    /// [`WriteBatch`] (the C ABI passes its batch buffer straight through).
    pub fn write_borrowed<'a>(&self, ops: impl Iterator<Item = (bool, &'a [u8], &'a [u8], Expiry)>) -> Result<()> {
        match self.write_borrowed_begin(ops)? {
            Some(ticket) => self.commit_wait(ticket),
            None => Ok(()),
        }
    }

    /// [`Db::write_borrowed`] in two halves, as [`Db::put_begin`].
    #[doc(hidden)]
    pub fn write_borrowed_begin<'a>(
        &self,
        ops: impl Iterator<Item = (bool, &'a [u8], &'a [u8], Expiry)>,
    ) -> Result<Option<u64>> {
        // The clock is read once, and only when an op carries an expiry.
        let mut clock = 0;
        let mut now = || {
            if clock == 0 {
                clock = now_ms();
            }
            clock
        };
        // Inline for the common small batch (a SET, an MSET of 10 keys).
        let mut refs: smallvec::SmallVec<[OpRef<'a>; 16]> = smallvec::SmallVec::new();
        for (delete, key, value, expiry) in ops {
            expiry.check()?;
            // Checked here too: a put that commits as a delete drops its value.
            self.inner.check_value(value)?;
            refs.push(if delete {
                OpRef {
                    kind: OpKind::Delete,
                    key,
                    value,
                    expires_at: 0,
                }
            } else if expiry == Expiry::Never {
                OpRef {
                    kind: OpKind::Put,
                    key,
                    value,
                    expires_at: 0,
                }
            } else {
                expiry.put_op(key, value, now())
            });
        }
        if refs.is_empty() {
            return self.inner.check_open().map(|_| None);
        }
        self.commit_begin(&refs)
    }

    /// The value of `key`, or `None` if absent, deleted or expired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.check_key(key)?;
        inner.counters.reads.add(1);
        for _ in 0..RELOCATION_RETRIES {
            // The clock is read only for keys that carry an expiry.
            match inner.read_once(key, inner.vis.visible(), now_ms)? {
                PointRead::Value(value) => return Ok(Some(value)),
                PointRead::Absent => return Ok(None),
                // Compaction moved the value: look the key up again.
                PointRead::Moved => std::thread::yield_now(),
                // The version this read wanted was reclaimed because a newer
                // one became visible: read again at the newer point.
                PointRead::Stale => continue,
            }
        }
        Err(inner.missing_segment(key))
    }

    /// Loads into the CPU's caches what a read or write of `key` touches
    /// first (see [`Index::prefetch_key`](crate::index::Index::prefetch_key)),
    /// for a caller that reads many keys in a row; changes nothing.
    #[inline]
    pub(crate) fn prefetch_key(&self, key: &[u8]) {
        self.inner.index.prefetch_key(key);
    }

    /// Lends the value of `key` to `f` and returns what `f` made of it, or
    /// `None` if the key is absent, deleted or expired. As [`Db::get`], but
    /// a value kept in the index is lent in place, under its key's read
    /// lock, so `f` must be short (a copy) and must not block or call into
    /// the database; no reference to the value is counted.
    #[doc(hidden)]
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.check_key(key)?;
        inner.counters.reads.add(1);
        let mut lend = Some(f);
        for _ in 0..RELOCATION_RETRIES {
            match inner.read_once_lent(key, inner.vis.visible(), now_ms, &mut lend)? {
                PointRead::Value(r) => return Ok(Some(r)),
                PointRead::Absent => return Ok(None),
                PointRead::Moved => std::thread::yield_now(),
                PointRead::Stale => continue,
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

    /// Keys in the index's ordered skiplist and in its hash map (equal when
    /// no write is in flight; for tests of the two staying one index).
    #[doc(hidden)]
    pub fn debug_index_lens(&self) -> (usize, usize) {
        (self.inner.index.len(), self.inner.index.hashed_len())
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
            recycled_segments: wc.recycled_segments.load(Ordering::Relaxed),
            free_segment_files: inner.log.segments().free_count() as u64,
            last_seq: inner.vis.visible(),
            open_snapshots: inner.snapshots.open_count() as u64,
            cache: inner.cache.stats(),
        }
    }
}
