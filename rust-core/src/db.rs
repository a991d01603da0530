//! The database: open and recover, write, read, snapshot, close.
//!
//! A write validates its input, appends one record to the log (which assigns
//! the sequence number and, under `Always`, waits for group commit), inserts
//! its versions into the index, fills the cache, and publishes its sequence.
//! A read takes the visible sequence, finds the version in the index, and
//! loads the value from the index (inline), the cache, or one positioned read.

use std::collections::VecDeque;
use std::fs;
use std::ops::Bound;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::batch::WriteBatch;
use crate::cache::ValueCache;
use crate::dirlock::DirLock;
use crate::error::{Error, Result};
use crate::index::{Index, Lookup, ValueRef, Version};
use crate::iter::{Iter, Snapshot};
use crate::log::record::{self, kv_checksum};
use crate::log::recovery::{self, Recovered};
use crate::log::{Appended, Log, OpKind, OpRef};
use crate::mvcc::{Snapshots, Visibility};
use crate::options::Options;
use crate::stats::{Counters, Stats};
use crate::txn::{ConflictTracker, ReadSet, Transaction};

/// A value returned by the engine: shared, immutable bytes.
pub type Value = Arc<[u8]>;

/// Cache key: (segment id, offset of the op's key in the segment).
type CacheKey = (u32, u64);

/// How often (in commits) the GC watermark is recomputed.
const WATERMARK_EVERY: u64 = 64;

/// An open database. Cloning is cheap and shares the same database; it is
/// safe to use from many threads at once.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
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
    // Last field: dropped after the log is closed, so the lock outlives every write.
    _lock: DirLock,
}

/// What recovery did when the database was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records replayed.
    pub records: u64,
    /// Torn tails cut from the newest segment: (file, offset, bytes dropped).
    pub truncated: Vec<(String, u64, u64)>,
    /// Corrupt regions dropped under `repair`: (file, offset, bytes dropped).
    pub repaired: Vec<(String, u64, u64)>,
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
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(format!("setting permissions of {}", dir.display()), e))?;
        } else if !dir.is_dir() {
            return Err(Error::InvalidArgument(format!("{} is not a directory", dir.display())));
        }
        let lock = DirLock::acquire(&dir)?;

        let index = Index::new();
        let counters = Counters::default();
        let mut records = 0u64;
        let inline = opts.inline_threshold;
        let rec: Recovered = recovery::replay(&dir, opts.repair, |segment, frame_offset, rec| {
            records += 1;
            for op in &rec.ops {
                let log_bytes = op_log_bytes(op.key.len(), op.value.len(), op.expires_at);
                let value = match op.kind {
                    OpKind::Delete => ValueRef::Tombstone,
                    OpKind::Put if op.value.len() <= inline => ValueRef::Inline(Arc::from(op.value)),
                    OpKind::Put => ValueRef::Disk {
                        segment,
                        offset: frame_offset + op.kv_offset as u64,
                        len: op.value.len() as u32,
                        crc: op.kv_crc,
                    },
                };
                let is_put = op.kind == OpKind::Put;
                let effect = index.apply_recovered(
                    op.key,
                    Version {
                        seq: rec.seq,
                        expires_at: op.expires_at,
                        value,
                        log_bytes,
                    },
                );
                counters.account(is_put, true, log_bytes, effect.superseded_bytes, effect.live_keys);
            }
        })?;
        let log = Log::open(&dir, &opts, &rec.segments, rec.newest_end, rec.last_seq)?;
        let cache = ValueCache::new(opts.cache_bytes);
        Ok(Db {
            inner: Arc::new(Inner {
                dir,
                log,
                index,
                cache,
                vis: Visibility::new(rec.last_seq),
                snapshots: Snapshots::new(rec.last_seq),
                tombstones: Mutex::new(VecDeque::new()),
                conflicts: ConflictTracker::default(),
                counters,
                closed: AtomicBool::new(false),
                recovery: RecoveryReport {
                    records,
                    truncated: rec.truncated,
                    repaired: rec.repairs,
                },
                opts,
                _lock: lock,
            }),
        })
    }

    /// Syncs and closes the database. Later calls on any clone fail with
    /// [`Error::Closed`]. The directory lock is released when the last clone,
    /// snapshot and iterator are dropped.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.log.close()
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

    /// The value of `key`, or `None` if absent, deleted or expired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.check_key(key)?;
        inner.counters.reads.add(1);
        loop {
            match inner.index.get(key, inner.vis.visible()) {
                Lookup::Found(v) => {
                    // The clock is read only for keys that carry an expiry.
                    let now = if v.expires_at != 0 { now_ms() } else { 0 };
                    if v.is_absent(now) {
                        return Ok(None);
                    }
                    return inner.load(key, &v).map(Some);
                }
                Lookup::Missing => return Ok(None),
                // The version this read wanted was reclaimed because a newer
                // one became visible: read again at the newer point.
                Lookup::Stale => continue,
            }
        }
    }

    /// The values of `keys`, all read at one snapshot.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        self.snapshot()?.get_many(keys)
    }

    /// Begins an optimistic, serializable transaction; see [`Transaction`].
    pub fn begin(&self) -> Result<Transaction> {
        Transaction::begin(Arc::clone(&self.inner))
    }

    /// A consistent read view at the newest visible commit. It pins the
    /// versions it can see until dropped.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.inner.check_open()?;
        Ok(Snapshot::new(Arc::clone(&self.inner)))
    }

    /// An iterator over keys between `lower` and `upper`, in byte order, at one snapshot.
    pub fn scan(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Result<Iter> {
        Ok(self.snapshot()?.scan(lower, upper))
    }

    /// An iterator over keys in `[start, end)` (to the last key when `end` is `None`).
    pub fn scan_range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Iter> {
        Ok(self.snapshot()?.scan_range(start, end))
    }

    /// An iterator over keys starting with `prefix`, in byte order, at one snapshot.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Iter> {
        Ok(self.snapshot()?.scan_prefix(prefix))
    }

    /// Writes buffered log records to disk and syncs them, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.log.sync()
    }

    /// Counters of the engine and its cache.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let wc = inner.log.counters();
        let syncs = wc.syncs.load(Ordering::Relaxed);
        let synced_commits = wc.synced_commits.load(Ordering::Relaxed);
        Stats {
            reads: c.reads.get(),
            writes: c.writes.get(),
            deletes: c.deletes.get(),
            keys: c.live_keys.load(Ordering::Relaxed).max(0) as u64,
            live_bytes: c.live_bytes.load(Ordering::Relaxed).max(0) as u64,
            dead_bytes: c.dead_bytes.load(Ordering::Relaxed),
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

/// Bytes an op takes in the log (header, key, value).
fn op_log_bytes(key_len: usize, value_len: usize, expires_at: u64) -> u32 {
    let op = OpRef {
        kind: OpKind::Put,
        key: &[],
        value: &[],
        expires_at,
    };
    (record::op_encoded_len(&op) + key_len + value_len) as u32
}

impl Counters {
    /// Accounts one op: a put that became the newest version is live, anything
    /// else (a delete, or a put a newer commit already beat) is dead at once;
    /// the put it superseded turns dead.
    fn account(&self, is_put: bool, is_newest: bool, log_bytes: u32, superseded: u64, live_keys: i64) {
        let lb = log_bytes as i64;
        if is_put && is_newest {
            self.live_bytes.fetch_add(lb, Ordering::Relaxed);
        } else {
            self.dead_bytes.fetch_add(lb as u64, Ordering::Relaxed);
        }
        if superseded > 0 {
            self.live_bytes.fetch_sub(superseded as i64, Ordering::Relaxed);
            self.dead_bytes.fetch_add(superseded, Ordering::Relaxed);
        }
        if live_keys != 0 {
            self.live_keys.fetch_add(live_keys, Ordering::Relaxed);
        }
    }
}

impl Inner {
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
                        self.cache.insert((a.segment, offset), Arc::from(op.value));
                    }
                    ValueRef::Disk {
                        segment: a.segment,
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
                },
                watermark,
            );
            self.counters.account(
                op.kind == OpKind::Put,
                effect.is_newest,
                log_bytes,
                effect.superseded_bytes,
                effect.live_keys,
            );
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
    fn collect_tombstones(&self) {
        let watermark = self.snapshots.watermark();
        let mut q = self.tombstones.lock();
        while q.front().is_some_and(|(seq, _)| *seq <= watermark) {
            if let Some((seq, key)) = q.pop_front() {
                self.index.remove_tombstone(&key, seq, watermark);
            }
        }
    }

    /// The value of a visible, present version.
    pub(crate) fn load(&self, key: &[u8], v: &Version) -> Result<Value> {
        match &v.value {
            ValueRef::Inline(bytes) => Ok(Arc::clone(bytes)),
            ValueRef::Tombstone => Err(Error::InvalidArgument("load of a tombstone".into())),
            &ValueRef::Disk {
                segment,
                offset,
                len,
                crc,
            } => {
                if let Some(hit) = self.cache.get(&(segment, offset)) {
                    return Ok(hit);
                }
                let bytes = self.log.read(segment, offset, key.len() + len as usize)?;
                if kv_checksum(&bytes[..key.len()], &bytes[key.len()..]) != crc || bytes[..key.len()] != *key {
                    return Err(Error::corruption(
                        self.log.segment_path(segment),
                        offset,
                        "value checksum mismatch on read",
                    ));
                }
                let value: Value = Arc::from(&bytes[key.len()..]);
                self.cache.insert((segment, offset), Arc::clone(&value));
                Ok(value)
            }
        }
    }

    /// Looks up `key` at `seq` (a registered snapshot) and loads its value.
    pub(crate) fn get_at(&self, key: &[u8], seq: u64, now_ms: u64) -> Result<Option<Value>> {
        self.check_open()?;
        self.check_key(key)?;
        self.counters.reads.add(1);
        match self.index.get(key, seq) {
            Lookup::Found(v) if !v.is_absent(now_ms) => self.load(key, &v).map(Some),
            _ => Ok(None),
        }
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
