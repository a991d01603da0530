//! Optimistic, serializable transactions.
//!
//! A transaction reads at a snapshot taken when it begins, buffers its writes
//! (reading them back: read-your-writes), and commits them as ONE log record.
//! Commit fails with [`Error::Conflict`] if any key the transaction read or
//! wrote, or any key inside a range it scanned, was committed by someone else
//! after it began. Validation and the commit's sequence number are decided
//! under the log's append lock, so the commit order is a serial order in
//! which every committed transaction saw exactly the state it read:
//! serializable, phantoms included. Read-only transactions never conflict.
//!
//! While any transaction is open, the [`ConflictTracker`] records the keys of
//! every commit (with its sequence number), so validation also sees commits
//! that have a sequence number but are not in the index yet. That is also
//! what lets a transaction begin without waiting for commits in flight (under
//! `SyncPolicy::Always`, until after their sync): it reads at the visible
//! sequence and validates against every tracked commit after it, including
//! those appended but not yet visible.

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::db::{Db, Value};
use crate::engine::{now_ms, Inner};
use crate::error::{Error, Result};
use crate::iter::{owned, prefix_successor, Snapshot};
use crate::log::{OpKind, OpRef};
use crate::meta::{Expiry, KeyMeta};
use crate::options::SyncPolicy;

/// Keys of recent commits, kept while transactions are open.
#[derive(Default)]
pub(crate) struct ConflictTracker {
    active: AtomicUsize,
    state: Mutex<TrackerState>,
}

#[derive(Default)]
struct TrackerState {
    /// (commit seq, key), in seq order.
    commits: VecDeque<(u64, Box<[u8]>)>,
    /// Tracking start of each open transaction (a multiset): the first
    /// sequence it validates against, at most one above its snapshot.
    open: BTreeMap<u64, usize>,
    /// While `open` is not empty, `commits` holds every commit numbered
    /// from here on. Set to the next sequence when the first transaction
    /// registers; raised by pruning, never above `visible + 1`.
    covered_from: u64,
}

/// A buffered write: the value and its expiry, or `None` for a delete.
type BufferedWrite = Option<(Vec<u8>, Expiry)>;

/// The value a buffered write leaves for this transaction's own reads at
/// `now_ms`: none for a delete or for a put whose expiry has passed, and
/// the expiry it would have if committed now.
fn own_value(w: &BufferedWrite, now_ms: u64) -> Option<(Value, u64)> {
    let (v, expiry) = w.as_ref()?;
    let expires_at = expiry.resolve(now_ms)?;
    Some((Value::from(v.as_slice()), expires_at))
}

/// The clock an own write is judged at: read only when it carries an expiry.
fn clock_for(w: &BufferedWrite) -> u64 {
    match w {
        Some((_, Expiry::Never)) | None => 0,
        Some(_) => now_ms(),
    }
}

/// A key range a transaction scanned.
type ScannedRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// What a committing transaction observed, to validate against later commits.
pub(crate) struct ReadSet<'a> {
    start: u64,
    /// Set on a conflict: the sequence of the commit it conflicted with.
    conflict_seq: Cell<u64>,
    keys: &'a ahash::AHashSet<Vec<u8>>,
    writes: &'a BTreeMap<Vec<u8>, BufferedWrite>,
    ranges: &'a [ScannedRange],
}

impl ReadSet<'_> {
    fn touches(&self, key: &[u8]) -> bool {
        self.keys.contains(key)
            || self.writes.contains_key(key)
            || self.ranges.iter().any(|(lo, hi)| in_range(key, lo, hi))
    }
}

fn in_range(key: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let above = match lo {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => key <= h.as_slice(),
        Bound::Excluded(h) => key < h.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

impl ConflictTracker {
    /// Registers a transaction and returns its tracking start `from`:
    /// every commit numbered `from` or later is tracked until it
    /// unregisters. Must run under the append lock, with `next` the next
    /// sequence and `visible` the visible sequence read under that lock.
    ///
    /// `from` is `visible + 1` when the commits in flight (numbered above
    /// `visible`, below `next`) are all tracked already, because a
    /// transaction was open when they were appended: then a snapshot at
    /// `visible` or later misses nothing validation does not see. Otherwise
    /// `from` is later and the caller waits until `from - 1` is visible
    /// before taking its snapshot.
    pub(crate) fn register(&self, next: u64, visible: u64) -> u64 {
        let mut st = self.state.lock();
        if st.open.is_empty() {
            st.commits.clear();
            st.covered_from = next;
        }
        let from = (visible + 1).max(st.covered_from);
        *st.open.entry(from).or_insert(0) += 1;
        self.active.fetch_add(1, Ordering::AcqRel);
        from
    }

    /// Unregisters a transaction registered at `from`, and drops the
    /// commits no open transaction validates against and no later one can
    /// need: those below every open tracking start and at or below
    /// `visible` (a later snapshot sees them).
    pub(crate) fn unregister(&self, from: u64, visible: u64) {
        let mut st = self.state.lock();
        if let Some(n) = st.open.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                st.open.remove(&from);
            }
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        match st.open.keys().next().copied() {
            None => st.commits.clear(),
            Some(oldest) => {
                let keep = oldest.min(visible + 1);
                while st.commits.front().is_some_and(|(seq, _)| *seq < keep) {
                    st.commits.pop_front();
                }
                st.covered_from = st.covered_from.max(keep);
            }
        }
    }

    /// Runs under the append lock once commit `seq` has its number: fails if
    /// `check` conflicts with a commit after its start, else records `keys`.
    pub(crate) fn on_commit(&self, seq: u64, keys: &[OpRef<'_>], check: Option<&ReadSet<'_>>) -> Result<()> {
        if self.active.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let mut st = self.state.lock();
        if let Some(rs) = check {
            for (committed, key) in st.commits.iter().rev() {
                if *committed <= rs.start {
                    break;
                }
                if rs.touches(key) {
                    rs.conflict_seq.set(*committed);
                    return Err(Error::Conflict(format!(
                        "key {} was committed by another writer (seq {committed}) after this transaction began (seq {})",
                        show_key(key),
                        rs.start
                    )));
                }
            }
        }
        if !st.open.is_empty() {
            st.commits.extend(keys.iter().map(|op| (seq, Box::from(op.key))));
        }
        Ok(())
    }
}

/// A key for an error message: text when printable, else hex, cut at 64 bytes.
fn show_key(key: &[u8]) -> String {
    let k = &key[..key.len().min(64)];
    let more = if key.len() > 64 { "..." } else { "" };
    match std::str::from_utf8(k) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}{more}"),
        _ => format!("0x{}{more}", k.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// Waits until `seq` is visible, parked; fails if the log writer stopped
/// (a commit it failed may never become visible).
fn wait_visible(inner: &Inner, seq: u64) -> Result<()> {
    while !inner.vis.wait_visible(seq, Duration::from_millis(10)) {
        if let Some(reason) = inner.log.poisoned() {
            return Err(Error::Poisoned(reason));
        }
    }
    Ok(())
}

/// An optimistic transaction. Dropping it without `commit` rolls it back.
pub struct Transaction {
    inner: Arc<Inner>,
    snap: Snapshot,
    /// Tracking start registered with the conflict tracker.
    from: u64,
    reads: ahash::AHashSet<Vec<u8>>,
    writes: BTreeMap<Vec<u8>, BufferedWrite>,
    ranges: Vec<ScannedRange>,
    finished: bool,
    /// The commit a failed commit conflicted with (0: none).
    lost_to: u64,
}

impl Transaction {
    pub(crate) fn begin(db: Db) -> Result<Transaction> {
        let inner = Arc::clone(&db.inner);
        inner.check_open()?;
        // Every commit is either in the snapshot (numbered at or below its
        // sequence) or tracked from `from` on (see `ConflictTracker::register`),
        // so validation sees every commit after the snapshot. Usually `from`
        // is the visible sequence + 1 and nothing is waited for; when commits
        // in flight are untracked, wait (parked) until they are visible.
        let (from, visible) = inner.log.with_append_lock(|next| {
            let visible = inner.vis.visible();
            (inner.conflicts.register(next, visible), visible)
        });
        if from > visible + 1 {
            if let Err(e) = wait_visible(&inner, from - 1) {
                inner.conflicts.unregister(from, inner.vis.visible());
                return Err(e);
            }
        }
        let snap = Snapshot::new(db);
        debug_assert!(snap.seq() + 1 >= from);
        Ok(Transaction {
            inner,
            snap,
            from,
            reads: ahash::AHashSet::default(),
            writes: BTreeMap::new(),
            ranges: Vec::new(),
            finished: false,
            lost_to: 0,
        })
    }

    fn check_active(&self) -> Result<()> {
        if self.finished {
            return Err(Error::InvalidArgument(
                "transaction already committed or rolled back".into(),
            ));
        }
        self.inner.check_open()
    }

    /// The sequence number of the snapshot this transaction reads at.
    pub fn start_seq(&self) -> u64 {
        self.snap.seq()
    }

    /// The value of `key`: this transaction's own write if any, else the snapshot's.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Value>> {
        self.check_active()?;
        self.inner.check_key(key)?;
        if let Some(w) = self.writes.get(key) {
            return Ok(own_value(w, clock_for(w)).map(|(v, _)| v));
        }
        self.reads.insert(key.to_vec());
        self.snap.get(key)
    }

    /// Like [`Transaction::get`], with the version and expiry. This
    /// transaction's own write has `seq` 0 (it has no commit yet) and the
    /// expiry it would get if it committed now; a read of the snapshot adds
    /// the key to the read set, as `get` does.
    pub fn get_with_meta(&mut self, key: &[u8]) -> Result<Option<(Value, KeyMeta)>> {
        self.check_active()?;
        self.inner.check_key(key)?;
        if let Some(w) = self.writes.get(key) {
            return Ok(own_value(w, clock_for(w)).map(|(v, expires_at_ms)| (v, KeyMeta { seq: 0, expires_at_ms })));
        }
        self.reads.insert(key.to_vec());
        self.snap.get_with_meta(key)
    }

    /// Buffers a put of `key`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.buffer(key, Some((value.to_vec(), Expiry::Never)))
    }

    /// Buffers a put of `key` that expires `ttl` after commit.
    pub fn put_with_ttl(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> Result<()> {
        Expiry::After(ttl).check()?;
        self.buffer(key, Some((value.to_vec(), Expiry::After(ttl))))
    }

    /// Buffers a put of `key` that expires at `expires_at_ms` (milliseconds
    /// since the Unix epoch). A time at or before the commit's clock makes
    /// the commit remove the key instead (it commits a delete).
    pub fn put_with_expiry(&mut self, key: &[u8], value: &[u8], expires_at_ms: u64) -> Result<()> {
        self.buffer(key, Some((value.to_vec(), Expiry::At(expires_at_ms))))
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.buffer(key, None)
    }

    fn buffer(&mut self, key: &[u8], value: BufferedWrite) -> Result<()> {
        self.check_active()?;
        self.inner.check_key(key)?;
        if let Some((v, _)) = &value {
            self.inner.check_value(v)?;
        }
        self.writes.insert(key.to_vec(), value);
        Ok(())
    }

    /// Up to `limit` pairs with keys between `lower` and `upper`, in order,
    /// merging this transaction's writes over the snapshot. The part of the
    /// range actually read is recorded: a commit by another writer inside it
    /// (a phantom) makes this transaction's commit fail.
    pub fn scan(&mut self, lower: Bound<&[u8]>, upper: Bound<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        self.check_active()?;
        let mut out: Vec<(Vec<u8>, Value)> = Vec::new();
        let mut base = self.snap.scan(lower, upper).peekable();
        let mut local = self
            .writes
            .range::<[u8], _>((lower, upper))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .peekable();
        while out.len() < limit {
            let take_local = match (base.peek(), local.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) => {
                    return Err(base.next().and_then(|r| r.err()).unwrap_or(Error::Closed));
                }
                (Some(Ok((bk, _))), Some((lk, _))) => {
                    if lk <= bk {
                        if lk == bk {
                            base.next(); // shadowed by the local write
                        }
                        true
                    } else {
                        false
                    }
                }
                (None, Some(_)) => true,
                (Some(Ok(_)), None) => false,
            };
            if take_local {
                if let Some((k, w)) = local.next() {
                    if let Some((v, _)) = own_value(&w, clock_for(&w)) {
                        out.push((k, v));
                    }
                }
            } else if let Some(Ok(pair)) = base.next() {
                out.push(pair);
            }
        }
        // Record what was observed: the whole range, or up to the last key
        // returned when the limit cut it short.
        let observed_hi = match out.last() {
            Some((k, _)) if out.len() >= limit => Bound::Included(k.clone()),
            _ => owned(upper),
        };
        self.ranges.push((owned(lower), observed_hi));
        Ok(out)
    }

    /// Up to `limit` pairs whose keys start with `prefix`; see [`Transaction::scan`].
    pub fn scan_prefix(&mut self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Value)>> {
        let upper = prefix_successor(prefix);
        let lower = if prefix.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(prefix)
        };
        self.scan(lower, upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded), limit)
    }

    /// Commits the buffered writes as one record, or fails with
    /// [`Error::Conflict`] (nothing is written). A transaction that wrote
    /// nothing commits without validation.
    pub fn commit(mut self) -> Result<()> {
        match self.commit_begin() {
            Ok(Some(ticket)) => {
                self.inner.commit_finish(ticket)?;
                // The commit is done: its writer may now prepare log space
                // for the next ones.
                self.inner.log.zero_ahead();
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                // A transaction that lost to a commit still in flight returns
                // once that commit is visible, so a retry reads it instead of
                // conflicting with it again (and again, until its sync ends).
                // If the writer stopped meanwhile, the conflict is still the
                // answer.
                if let Some(seq) = self.lost_to() {
                    let _ = wait_visible(&self.inner, seq);
                }
                Err(e)
            }
        }
    }

    /// The first half of [`Transaction::commit`], for a caller that waits
    /// for durability elsewhere (as [`Db::put_begin`]): validates, logs and
    /// applies the buffered writes, not yet durable nor visible.
    /// `Some(ticket)` under [`crate::SyncPolicy::Always`]: the commit is
    /// acknowledged only once [`Db::commit_wait`]`(ticket)` returns Ok.
    /// `None`: nothing to wait for (no writes, or another sync policy: the
    /// commit is done). On [`Error::Conflict`] nothing is written and
    /// [`Transaction::lost_to`] says which commit to wait for before a
    /// retry. The transaction is finished either way.
    #[doc(hidden)]
    pub fn commit_begin(&mut self) -> Result<Option<u64>> {
        self.check_active()?;
        self.finished = true;
        if self.writes.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let ops: Vec<OpRef<'_>> = self
            .writes
            .iter()
            .map(|(k, w)| match w {
                Some((v, expiry)) => expiry.put_op(k, v, now),
                None => OpRef {
                    kind: OpKind::Delete,
                    key: k,
                    value: &[],
                    expires_at: 0,
                },
            })
            .collect();
        let rs = ReadSet {
            start: self.snap.seq(),
            conflict_seq: Cell::new(0),
            keys: &self.reads,
            writes: &self.writes,
            ranges: &self.ranges,
        };
        let res = self.inner.commit_begin(&ops, Some(&rs));
        self.lost_to = rs.conflict_seq.get();
        let seq = res?;
        if self.inner.opts.sync == SyncPolicy::Always {
            return Ok(Some(seq));
        }
        self.inner.commit_finish(seq)?;
        Ok(None)
    }

    /// After a failed [`Transaction::commit_begin`]: the commit this
    /// transaction conflicted with, when it is not visible yet (its sync is
    /// still running). A retry should wait until it is visible
    /// ([`Db::commit_wait`] of it), or it would read the value it lost to
    /// and conflict again.
    #[doc(hidden)]
    pub fn lost_to(&self) -> Option<u64> {
        (self.lost_to > self.inner.vis.visible()).then_some(self.lost_to)
    }

    /// Discards the buffered writes.
    pub fn rollback(mut self) {
        self.finished = true;
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.inner.conflicts.unregister(self.from, self.inner.vis.visible());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_key_display() {
        assert!(in_range(
            b"b",
            &Bound::Included(b"a".to_vec()),
            &Bound::Excluded(b"c".to_vec())
        ));
        assert!(!in_range(
            b"c",
            &Bound::Included(b"a".to_vec()),
            &Bound::Excluded(b"c".to_vec())
        ));
        assert!(in_range(b"zz", &Bound::Excluded(b"a".to_vec()), &Bound::Unbounded));
        assert_eq!(show_key(b"abc"), "\"abc\"");
        assert_eq!(show_key(&[0, 255]), "0x00ff");
    }
}
