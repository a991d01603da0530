//! The engine behind the [`Db`](crate::Db) handles: the state of one open
//! database and its write and read paths.
//!
//! A write validates its input, appends one record to the log (which assigns
//! the sequence number), inserts its versions into the index, waits for
//! group commit (under `Always`), and publishes its
//! sequence. Under `Always` the index insert happens while the group's sync
//! runs; the version stays invisible until the sync made it durable
//! ([`Visibility::capped`]), so no reader sees a commit a crash can take
//! back, and a woken group finds its commits applied and becomes visible
//! at once instead of publishing one by one.
//! A read takes the visible sequence, finds the version in the index, and
//! loads the value from the index (inline), from a closed segment's map
//! (a get that lends it), or from the value cache or one positioned read
//! (which fills the cache).

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_epoch::{self as epoch, Guard};
use parking_lot::Mutex;

use crate::accounting::{account_op, op_log_bytes};
use crate::cache::ValueCache;
use crate::checksum;
use crate::compaction::{self, CompactionReport};
use crate::db::Value;
use crate::dirlock::DirLock;
use crate::error::{Error, Result};
use crate::index::{Index, KeyEntry, Lookup, Seen, ValueRef, Version};
use crate::log::record::kv_checksum;
use crate::log::recovery::{self, RecoveryReport};
use crate::log::{Appended, Computed, Log, OpKind, OpRef, Pending, PendingRead};
use crate::mvcc::{Snapshots, Visibility};
use crate::options::{Options, SyncPolicy};
use crate::prefetch;
use crate::stats::Counters;
use crate::txn::{ConflictTracker, ReadSet};
use crate::update::{Evaluated, Updated};
use crate::vfs::FileSystem;

/// Cache key: (segment id, offset of the op's key in the segment).
pub(crate) type CacheKey = (u32, u64);

/// Lookups a read retries when compaction keeps moving its value.
pub(crate) const RELOCATION_RETRIES: usize = 10_000;

/// Index entries a commit left holding a superseded version (see
/// [`Inner::commit_unsynced`]); inline for a batch of up to 16 ops.
type Superseded<'g> = smallvec::SmallVec<[&'g KeyEntry; 16]>;

/// How often (in commits) the GC watermark is recomputed.
const WATERMARK_EVERY: u64 = 64;

/// The engine behind every handle of one open database: the log, the
/// index, the cache, visibility and snapshots, and the counters, with the
/// write path (validate, append, apply, publish) and the read path (find
/// the version, load its value).
pub(crate) struct Inner {
    fs: Arc<dyn FileSystem>,
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) log: Log,
    pub(crate) conflicts: ConflictTracker,
    /// Ops appended but not yet in the index, by key stripe.
    in_flight: InFlight,
    pub(crate) index: Index,
    pub(crate) cache: ValueCache<CacheKey>,
    pub(crate) vis: Arc<Visibility>,
    pub(crate) snapshots: Snapshots,
    /// Deletes waiting until no snapshot can see below them, to unlink the key.
    tombstones: Mutex<VecDeque<(u64, Box<[u8]>)>>,
    pub(crate) counters: Counters,
    pub(crate) closed: AtomicBool,
    pub(crate) recovery: RecoveryReport,
    /// Held by a compaction pass or a checkpoint: no segment is retired
    /// meanwhile. Holds the buffers compaction and the hint builder reuse
    /// from one pass to the next.
    pub(crate) compaction_lock: Mutex<compaction::Buffers>,
    // Last field: dropped after the log is closed, so the lock outlives every write.
    _lock: DirLock,
}

/// Stripes of the key space [`InFlight`] counts by (a power of two).
const IN_FLIGHT_STRIPES: usize = 4096;

/// Per stripe of the key space, the ops appended to the log whose versions
/// are not in the index yet. A read-modify-write evaluated under the append
/// lock ([`Inner::update_begin`]) reads the key's newest version from the
/// index; that is the newest commit of the key only when no earlier commit
/// of a key on the same stripe is still being applied. Counted up under the
/// append lock, down once the version is in the index.
struct InFlight {
    hasher: ahash::RandomState,
    counts: Box<[AtomicU32]>,
}

impl InFlight {
    fn new() -> InFlight {
        InFlight {
            hasher: ahash::RandomState::new(),
            counts: (0..IN_FLIGHT_STRIPES).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn stripe(&self, key: &[u8]) -> &AtomicU32 {
        &self.counts[(self.hasher.hash_one(key) as usize) & (IN_FLIGHT_STRIPES - 1)]
    }

    /// Counts the ops of a commit just numbered (under the append lock,
    /// which orders this before any later evaluation's check).
    fn appended(&self, ops: &[OpRef<'_>]) {
        for op in ops {
            self.stripe(op.key).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The version of `key` is in the index.
    fn applied(&self, key: &[u8]) {
        self.stripe(key).fetch_sub(1, Ordering::Release);
    }

    /// True when no commit of a key on `key`'s stripe is between its
    /// append and its index insert: the index then holds every earlier
    /// commit of `key`.
    fn settled(&self, key: &[u8]) -> bool {
        self.stripe(key).load(Ordering::Acquire) == 0
    }
}

/// A value read under the append lock ([`Inner::load_pending`]).
enum Loaded {
    Value(Value),
    /// The segment is gone (compaction moved the value): look again.
    Moved,
    /// The bytes are in the buffer a group sync is writing.
    Syncing,
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

/// How many ops ahead of the one it inserts a batch's apply loads the next
/// keys' index entries into the CPU's caches ([`Index::prefetch_key`]).
const APPLY_AHEAD: usize = 8;

impl Inner {
    /// Recovers the database in `dir` (already locked by `lock`) and opens
    /// its log.
    pub(crate) fn open(fs: Arc<dyn FileSystem>, dir: PathBuf, opts: Options, lock: DirLock) -> Result<Inner> {
        let index = Index::new();
        let counters = Counters::default();
        let rec = recovery::rebuild_index(&*fs, &dir, &opts, &index, &counters)?;
        let log = Log::open(Arc::clone(&fs), &dir, &opts, rec.segments, rec.active, rec.last_seq)?;
        let cache = ValueCache::new(opts.cache_bytes);
        let vis = Arc::new(if opts.sync == crate::options::SyncPolicy::Always {
            Visibility::capped(rec.last_seq)
        } else {
            Visibility::new(rec.last_seq)
        });
        // Whoever makes commits durable (a writer leading a sync, or the
        // log's syncer) lets them become visible at once: a reader or a
        // transaction beginning then need not wait for their writers to
        // come back for them.
        let shown = Arc::clone(&vis);
        log.on_durable(Box::new(move |durable| shown.raise_limit(durable)));
        Ok(Inner {
            fs,
            dir,
            log,
            index,
            cache,
            vis,
            snapshots: Snapshots::new(rec.last_seq),
            tombstones: Mutex::new(VecDeque::new()),
            conflicts: ConflictTracker::default(),
            in_flight: InFlight::new(),
            compaction_lock: Mutex::new(compaction::Buffers::default()),
            counters,
            closed: AtomicBool::new(false),
            recovery: rec.report,
            opts,
            _lock: lock,
        })
    }
}

impl Inner {
    /// Holds compaction off (checkpoints need every segment to stay); a
    /// compaction pass runs with the buffers it gives.
    pub(crate) fn compaction_guard(&self) -> parking_lot::MutexGuard<'_, compaction::Buffers> {
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
        let seq = if self.opts.sync == SyncPolicy::Always {
            let seq = self.commit_begin(ops, check)?;
            self.commit_finish(seq)?;
            seq
        } else {
            self.commit_unsynced(ops, check)?
        };
        // The commit is done: its writer may now prepare log space for the next ones.
        self.log.zero_ahead();
        Ok(seq)
    }

    /// A whole commit under a policy whose commits do not wait for a sync
    /// (`Never`, `Interval`): [`Inner::commit_begin`] and
    /// [`Inner::commit_finish`], then, with the commit visible, the
    /// versions its puts and deletes superseded are dropped at once where
    /// no open snapshot can read them, instead of at the key's next write.
    /// So an overwritten key goes back to one version (and its version list
    /// to the entry's own slot), and the memory of the old value and of the
    /// list's second slot is free for the next writes to reuse rather than
    /// fresh pages. The entries are kept under one epoch guard from the
    /// insert to the drop, so none is searched for twice. Under `Always`
    /// the wait for the group's sync is too long to keep a guard pinned:
    /// those versions go at the key's next write.
    pub(crate) fn commit_unsynced(&self, ops: &[OpRef<'_>], check: Option<&ReadSet<'_>>) -> Result<u64> {
        let guard = epoch::pin();
        let mut superseded = Superseded::new();
        let seq = self.commit_begin_in(ops, check, &guard, Some(&mut superseded))?;
        self.commit_finish(seq)?;
        self.drop_superseded(seq, &superseded);
        Ok(seq)
    }

    /// Drops what commit `seq` (visible now) superseded in `entries`, when
    /// no snapshot below `seq` is open.
    fn drop_superseded(&self, seq: u64, entries: &[&KeyEntry]) {
        if entries.is_empty() {
            return;
        }
        // The watermark as of now, under the lock snapshots register with:
        // a snapshot taken later reads at or above the visible point.
        self.snapshots.advance(&self.vis);
        let watermark = self.snapshots.watermark();
        if watermark < seq {
            // A snapshot below this commit may read what it replaced.
            return;
        }
        for e in entries {
            e.drop_superseded(watermark);
        }
    }

    /// The first half of a commit: logs `ops` as one record and applies them
    /// to the index, not yet visible. Returns the commit's sequence number,
    /// which [`Inner::commit_finish`] must be given before the write is
    /// acknowledged.
    pub(crate) fn commit_begin(&self, ops: &[OpRef<'_>], check: Option<&ReadSet<'_>>) -> Result<u64> {
        self.commit_begin_in(ops, check, &epoch::pin(), None)
    }

    /// [`Inner::commit_begin`] under the caller's `guard`; the entries left
    /// holding more than one version go to `superseded`, when given.
    fn commit_begin_in<'g>(
        &'g self,
        ops: &[OpRef<'_>],
        check: Option<&ReadSet<'_>>,
        guard: &'g Guard,
        superseded: Option<&mut Superseded<'g>>,
    ) -> Result<u64> {
        self.check_open()?;
        for op in ops {
            self.check_key(op.key)?;
            self.check_value(op.value)?;
        }
        let appended = self.log.append(ops, |seq| {
            self.conflicts.on_commit(seq, ops, check)?;
            self.in_flight.appended(ops);
            Ok(())
        })?;
        self.apply_in(&appended, ops, guard, superseded);
        Ok(appended.seq)
    }

    /// The second half of a commit: returns once commit `seq` is durable
    /// (under `Always`: group commit) and visible; the error of its group's
    /// failed write or sync otherwise.
    pub(crate) fn commit_finish(&self, seq: u64) -> Result<()> {
        if let Some(durable) = self.log.wait_durable(seq)? {
            self.vis.raise_limit(durable);
        }
        self.vis.advance_until(seq);
        Ok(())
    }

    /// The first half of a read-modify-write of `key` (see `update.rs`):
    /// under the append lock, reads the newest version every earlier commit
    /// left (expired counts as missing), lets `eval` decide the new value,
    /// and logs and applies it as one commit, keeping the key's expiry.
    /// Returns the commit's sequence number (for [`Inner::commit_finish`];
    /// `None` when `eval` refused) and `eval`'s outcome.
    pub(crate) fn update_begin(
        &self,
        key: &[u8],
        mut eval: impl FnMut(Option<&[u8]>) -> Evaluated,
    ) -> Result<(Option<u64>, Updated)> {
        self.check_open()?;
        self.check_key(key)?;
        // The key's entries are read into the cache before the append lock
        // is taken, so the lock, which every writer shares, is not held
        // across their misses while the computation reads the key.
        self.index.prefetch_key(key);
        self.log.append_computed(
            key,
            |pending| {
                if !self.in_flight.settled(key) {
                    return Ok(Computed::Yield);
                }
                let now = now_ms();
                let current = match self.index.get(key, u64::MAX) {
                    Lookup::Found(v) if !v.is_absent(now) => Some(v),
                    _ => None,
                };
                // A value held in the index is read where it is (the
                // version is this call's own copy); one on disk is loaded.
                let loaded;
                let value = match &current {
                    None => None,
                    Some(v) => match v.value.held_bytes() {
                        Some(bytes) => Some(bytes),
                        None => match self.load_pending(key, v, pending)? {
                            Loaded::Value(value) => {
                                loaded = value;
                                Some(&loaded[..])
                            }
                            Loaded::Moved => return Ok(Computed::Yield),
                            Loaded::Syncing => return Ok(Computed::AfterSync),
                        },
                    },
                };
                Ok(match eval(value) {
                    Evaluated::Put(value, out) => {
                        self.check_value(&value)?;
                        Computed::Put {
                            value,
                            expires_at: current.map_or(0, |v| v.expires_at),
                            out,
                        }
                    }
                    Evaluated::Refuse(out) => Computed::Done(out),
                })
            },
            |seq, ops| {
                self.conflicts.on_commit(seq, ops, None)?;
                self.in_flight.appended(ops);
                Ok(())
            },
            |appended, ops| self.apply(appended, ops),
        )
    }

    /// [`Inner::load`] for a caller holding the append lock: bytes not yet
    /// handed to the OS are read from the write buffer through `pending`
    /// (the lock-taking path would deadlock).
    fn load_pending(&self, key: &[u8], v: &Version, pending: &Pending<'_>) -> Result<Loaded> {
        let (segment, offset, len, crc) = match &v.value {
            ValueRef::Small(small) => return Ok(Loaded::Value(Value::from(small.as_bytes()))),
            ValueRef::Inline(bytes) => return Ok(Loaded::Value(Arc::clone(bytes))),
            ValueRef::Tombstone => return Err(Error::Internal("load of a tombstone".into())),
            &ValueRef::Disk {
                segment,
                offset,
                len,
                crc,
            } => (segment, offset, len as usize, crc),
        };
        let cached = self.opts.cache_bytes > 0;
        if let Some(hit) = cached.then(|| self.cache.get(&(segment, offset))).flatten() {
            return Ok(Loaded::Value(hit));
        }
        let (stored_key, value): (Vec<u8>, Value) = match pending.read(segment, offset, key.len() + len) {
            PendingRead::Buffered(mut bytes) => {
                let value = Value::from(&bytes[key.len()..]);
                bytes.truncate(key.len());
                (bytes, value)
            }
            PendingRead::Syncing => return Ok(Loaded::Syncing),
            PendingRead::InFile => match self.log.segments().get(segment) {
                Some(seg) => {
                    let (k, v) = seg.read_kv(offset, key.len(), len)?;
                    (k.to_vec(), v)
                }
                None => return Ok(Loaded::Moved),
            },
        };
        if kv_checksum(&stored_key, &value) != crc || *stored_key != *key {
            return Err(self.value_mismatch(segment, offset));
        }
        Ok(Loaded::Value(value))
    }

    fn apply(&self, a: &Appended, ops: &[OpRef<'_>]) {
        self.apply_in(a, ops, &epoch::pin(), None);
    }

    /// Applies a logged commit's ops to the index (not yet visible), under
    /// `guard`; the entries left holding more than one version go to
    /// `superseded`, when given.
    fn apply_in<'g>(
        &'g self,
        a: &Appended,
        ops: &[OpRef<'_>],
        guard: &'g Guard,
        mut superseded: Option<&mut Superseded<'g>>,
    ) {
        let watermark = self.snapshots.watermark();
        let mut deletes = 0u64;
        for (i, (op, &(kv_offset, crc))) in ops.iter().zip(&a.kv).enumerate() {
            if ops.len() > 1 {
                prefetch::ahead(ops, i, APPLY_AHEAD, |op| self.index.prefetch_key(op.key));
            }
            let log_bytes = op_log_bytes(op.key.len(), op.value.len(), op.expires_at);
            let value = match op.kind {
                OpKind::Delete => {
                    deletes += 1;
                    ValueRef::Tombstone
                }
                OpKind::Put if op.value.len() <= self.opts.inline_threshold => ValueRef::in_memory(op.value),
                // The value is not put in the value cache: reads fill it
                // on a miss (see `Inner::lend_mapped` for the reads that
                // do not need it).
                OpKind::Put => {
                    let offset = a.frame_offset + kv_offset as u64;
                    ValueRef::Disk {
                        segment: a.segment.id,
                        offset,
                        len: op.value.len() as u32,
                        crc,
                    }
                }
            };
            let (effect, older) = self.index.insert_in(
                op.key,
                Version {
                    seq: a.seq,
                    expires_at: op.expires_at,
                    value,
                    log_bytes,
                    segment: a.segment.id,
                },
                watermark,
                guard,
            );
            if let (Some(out), Some(entry)) = (superseded.as_deref_mut(), older) {
                out.push(entry);
            }
            self.in_flight.applied(op.key);
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
        self.vis.mark_applied(a.seq);
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
        if a.seq.is_multiple_of(WATERMARK_EVERY) {
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
        self.load_ref(key, &v.value)
    }

    /// [`Inner::load`] of a version's value reference.
    pub(crate) fn load_ref(&self, key: &[u8], value: &ValueRef) -> Result<Option<Value>> {
        match value {
            ValueRef::Small(small) => Ok(Some(Value::from(small.as_bytes()))),
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
                let Some((stored_key, value)) = self.log.read_kv(segment, offset, key.len(), len as usize)? else {
                    return Ok(None);
                };
                if kv_checksum(&stored_key, &value) != crc || *stored_key != *key {
                    return Err(self.value_mismatch(segment, offset));
                }
                if cached {
                    self.cache.insert((segment, offset), Arc::clone(&value));
                }
                Ok(Some(value))
            }
        }
    }

    /// The error for a value whose record on disk does not match the key
    /// and checksum its version holds.
    fn value_mismatch(&self, segment: u32, offset: u64) -> Error {
        Error::corruption(
            self.log.segment_path(segment),
            offset,
            "value checksum mismatch on read",
        )
    }

    /// Lends the value at `disk` to the caller's `f` where it lies, when its
    /// segment is closed and read through a map: the record (key, then
    /// value) is checked in the map against the key and the CRC32C the
    /// index holds, and the value's bytes are lent from there, with no
    /// buffer of its own and no entry in the value cache (the page cache
    /// holds the bytes; a cache entry would cost an allocation, a copy and
    /// an eviction per read of a data set larger than the cache).
    /// `Ok(None)`, with `f` not taken, when the segment is gone, not mapped
    /// or does not hold the record: [`Inner::load_ref`] then reads it, or
    /// finds it moved, or reports the damage.
    fn lend_mapped<F: FnOnce(&[u8]) -> R, R>(
        &self,
        key: &[u8],
        disk: &ValueRef,
        lend: &mut Option<F>,
    ) -> Result<Option<R>> {
        let &ValueRef::Disk {
            segment,
            offset,
            len,
            crc,
        } = disk
        else {
            return Ok(None);
        };
        let Some(seg) = self.log.segments().get(segment) else {
            return Ok(None);
        };
        let Some(record) = seg.mapped_range(offset, key.len() + len as usize) else {
            return Ok(None);
        };
        let (stored_key, value) = record.split_at(key.len());
        // The record is key then value, so its checksum is the key's
        // continued over the value.
        if stored_key != key || checksum::crc32c(record) != crc {
            return Err(self.value_mismatch(segment, offset));
        }
        match lend.take() {
            Some(f) => Ok(Some(f(value))),
            None => Err(Error::Internal("a point read lent its value twice".into())),
        }
    }

    /// One point read of `key` at `seq`: the index lends the visible
    /// version only long enough to take its expiry and value reference (an
    /// inline value's handle, a disk location), then the value is loaded
    /// outside the key's lock. `now` is called only for a key that carries
    /// an expiry.
    #[inline]
    pub(crate) fn read_once(&self, key: &[u8], seq: u64, now: impl FnOnce() -> u64) -> Result<PointRead> {
        let (expires_at, value) = match self.index.get_with(key, seq, |v| (v.expires_at, v.value.clone())) {
            Seen::Found(found) => found,
            Seen::Missing => return Ok(PointRead::Absent),
            Seen::Stale => return Ok(PointRead::Stale),
        };
        if expires_at != 0 && expires_at <= now() {
            return Ok(PointRead::Absent);
        }
        Ok(match value {
            ValueRef::Tombstone => PointRead::Absent,
            ValueRef::Small(small) => PointRead::Value(Value::from(small.as_bytes())),
            ValueRef::Inline(bytes) => PointRead::Value(bytes),
            disk => match self.load_ref(key, &disk)? {
                Some(v) => PointRead::Value(v),
                None => PointRead::Moved,
            },
        })
    }

    /// Like [`Inner::read_once`], but lends the value's bytes to `f`
    /// instead of handing out a handle: a value inline in the index is lent
    /// under its key's read lock (so `f` must be short, a copy, and must
    /// not block), and no reference is counted on it. `f` is taken from
    /// `lend` only when the value is found.
    #[inline]
    pub(crate) fn read_once_lent<F: FnOnce(&[u8]) -> R, R>(
        &self,
        key: &[u8],
        seq: u64,
        now: impl Fn() -> u64,
        lend: &mut Option<F>,
    ) -> Result<PointRead<R>> {
        let found = self.index.get_with(key, seq, |v| {
            if matches!(v.value, ValueRef::Tombstone) || (v.expires_at != 0 && v.expires_at <= now()) {
                return None;
            }
            Some(match v.value.held_bytes() {
                Some(bytes) => Ok(lend.take().map(|f| f(bytes))),
                None => Err(v.value.clone()),
            })
        });
        let disk = match found {
            Seen::Found(Some(Ok(Some(r)))) => return Ok(PointRead::Value(r)),
            Seen::Found(Some(Ok(None))) => return Err(Error::Internal("a point read lent its value twice".into())),
            Seen::Found(Some(Err(disk))) => disk,
            Seen::Found(None) | Seen::Missing => return Ok(PointRead::Absent),
            Seen::Stale => return Ok(PointRead::Stale),
        };
        if let Some(r) = self.lend_mapped(key, &disk, lend)? {
            return Ok(PointRead::Value(r));
        }
        Ok(match self.load_ref(key, &disk)? {
            Some(v) => match lend.take() {
                Some(f) => PointRead::Value(f(&v)),
                None => return Err(Error::Internal("a point read lent its value twice".into())),
            },
            None => PointRead::Moved,
        })
    }

    /// The value of `key` at `seq`, looking the key up again when compaction
    /// moved the value between lookup and read.
    pub(crate) fn read_at(&self, key: &[u8], seq: u64, now_ms: u64) -> Result<Option<Value>> {
        for _ in 0..RELOCATION_RETRIES {
            match self.read_once(key, seq, || now_ms)? {
                PointRead::Value(v) => return Ok(Some(v)),
                PointRead::Moved => std::thread::yield_now(),
                // A registered snapshot's versions are not reclaimed.
                PointRead::Absent | PointRead::Stale => return Ok(None),
            }
        }
        Err(self.missing_segment(key))
    }

    /// The error for a version whose segment stays gone: the index points
    /// at a file that no longer exists, which only damage can cause.
    pub(crate) fn missing_segment(&self, key: &[u8]) -> Error {
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

    /// Visits up to `limit` entries of `(lower, upper)` that have a version at `seq`.
    pub(crate) fn range_at(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        seq: u64,
        limit: usize,
        visit: impl FnMut(&[u8], &Version),
    ) -> crate::index::RangeEnd {
        self.index.range_from(lower, upper, seq, limit, visit)
    }

    /// [`Inner::range_at`] with versions lent as views taken ahead of the
    /// visits ([`crate::index::Index::range_views`]).
    pub(crate) fn range_views_at(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        seq: u64,
        limit: usize,
        visit: impl FnMut(&[u8], &crate::index::VersionView<'_>) -> std::ops::ControlFlow<()>,
    ) -> crate::index::RangeEnd {
        self.index.range_views(lower, upper, seq, limit, visit)
    }
}

/// What one point read found ([`Inner::read_once`]).
pub(crate) enum PointRead<V = Value> {
    /// The visible value (or what was made of it).
    Value(V),
    /// Absent, deleted or expired.
    Absent,
    /// Compaction moved the value between lookup and read: look again.
    Moved,
    /// The versions old enough for the reader were reclaimed.
    Stale,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close flushes and syncs; errors have nowhere to go here, and an
        // unsynced tail is what recovery is for.
        let _ = self.log.close();
    }
}
