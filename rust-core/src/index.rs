//! The in-memory ordered index: key -> newest versions.
//!
//! A lock-free `crossbeam_skiplist` skiplist orders the keys byte-wise, so
//! point lookups, prefix and range scans are skiplist walks that never block
//! on each other or on writers. The index uses the crate's base `SkipList`
//! rather than its `SkipMap` wrapper: every operation runs under one epoch
//! guard and reads entries through it, where the wrapper counts a reference
//! on each entry it hands out (two atomic read-modify-writes on the node and
//! a second pin per lookup or per step of a walk). An entry seen under the
//! guard stays allocated until the guard is dropped, even if it is unlinked
//! meanwhile. Each key holds a short list of versions,
//! newest first, behind a per-key reader-writer lock held only to copy or
//! insert one small entry (never across I/O).
//!
//! Versions carry the commit sequence number (MVCC): a reader at snapshot `s`
//! sees, per key, the newest version with `seq <= s`. When a version is
//! inserted, versions that no snapshot can read any more (older than the
//! newest one at or below the GC watermark) are dropped, so a steady
//! overwrite load keeps one version per key.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::ops::{Bound, ControlFlow, Deref};
use std::sync::Arc;

use crossbeam_epoch::{self as epoch, Guard};
use crossbeam_skiplist::base::SkipList;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::keymap::{KeyMap, Keyed, Pending};
use crate::prefetch;

/// Longest key an [`IndexKey`] holds without a heap allocation.
pub const INLINE_KEY_MAX: usize = 22;

/// A key as the index stores it: up to [`INLINE_KEY_MAX`] bytes inside the
/// skiplist node itself (no allocation of its own, and a comparison reads
/// the node it already loaded), longer ones boxed. Ordered, compared and
/// hashed as its bytes.
#[derive(Clone)]
pub struct IndexKey(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline { len: u8, bytes: [u8; INLINE_KEY_MAX] },
    Heap(Box<[u8]>),
}

impl IndexKey {
    /// A copy of `key`.
    pub fn new(key: &[u8]) -> IndexKey {
        if key.len() <= INLINE_KEY_MAX {
            let mut bytes = [0u8; INLINE_KEY_MAX];
            bytes[..key.len()].copy_from_slice(key);
            IndexKey(KeyRepr::Inline {
                len: key.len() as u8,
                bytes,
            })
        } else {
            IndexKey(KeyRepr::Heap(Box::from(key)))
        }
    }
}

impl Deref for IndexKey {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, bytes } => &bytes[..*len as usize],
            KeyRepr::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for IndexKey {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl Borrow<KeyBytes> for IndexKey {
    #[inline]
    fn borrow(&self) -> &KeyBytes {
        KeyBytes::new(self)
    }
}

/// Key bytes as the skiplist's searches compare them: ordered byte-wise
/// like `[u8]`, but compared eight bytes at a time in registers for short
/// keys instead of through a `memcmp` call (a lookup compares the key with
/// a node at every step, and keys are typically 10 to 30 bytes).
#[repr(transparent)]
#[derive(Debug)]
pub struct KeyBytes([u8]);

impl KeyBytes {
    /// `bytes` as a key to search for.
    #[inline]
    pub fn new(bytes: &[u8]) -> &KeyBytes {
        // SAFETY: `KeyBytes` is a `repr(transparent)` wrapper of `[u8]`, so
        // both references have the same layout and metadata (the length).
        unsafe { &*(bytes as *const [u8] as *const KeyBytes) }
    }
}

impl PartialEq for KeyBytes {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && compare_bytes(&self.0, &other.0) == Ordering::Equal
    }
}

impl Eq for KeyBytes {}

impl PartialOrd for KeyBytes {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyBytes {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        compare_bytes(&self.0, &other.0)
    }
}

/// Keys longer than this are compared with `memcmp`, which is faster than
/// word-by-word compares once the prefix they share is long.
const WORD_COMPARE_MAX: usize = 64;

/// Byte-wise order of `a` and `b` (as `<[u8]>::cmp`), comparing big-endian
/// 8-byte words, so the first differing word orders the keys like its first
/// differing byte.
#[inline]
pub fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    if n > WORD_COMPARE_MAX {
        return a.cmp(b);
    }
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut a8).zip(&mut b8) {
        let x = u64::from_be_bytes(x.try_into().expect("8-byte chunk"));
        let y = u64::from_be_bytes(y.try_into().expect("8-byte chunk"));
        if x != y {
            return x.cmp(&y);
        }
    }
    let done = n & !7;
    for i in done..n {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
    }
    a.len().cmp(&b.len())
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (KeyRepr::Inline { len: a, bytes: x }, KeyRepr::Inline { len: b, bytes: y }) => {
                compare_inline(x, y).then(a.cmp(b))
            }
            _ => compare_bytes(self, other),
        }
    }
}

/// Byte-wise order of two inline keys' whole arrays, as three big-endian
/// words with no length checks. The bytes past a key's length are zero
/// (see [`IndexKey::new`]), so where the arrays differ the keys differ the
/// same way, and equal arrays leave the order to the lengths.
#[inline]
fn compare_inline(x: &[u8; INLINE_KEY_MAX], y: &[u8; INLINE_KEY_MAX]) -> Ordering {
    let word = |k: &[u8; INLINE_KEY_MAX], at: usize| {
        let mut w = [0u8; 8];
        let end = (at + 8).min(INLINE_KEY_MAX);
        w[..end - at].copy_from_slice(&k[at..end]);
        u64::from_be_bytes(w)
    };
    word(x, 0)
        .cmp(&word(y, 0))
        .then_with(|| word(x, 8).cmp(&word(y, 8)))
        .then_with(|| word(x, 16).cmp(&word(y, 16)))
}

impl std::hash::Hash for IndexKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// Longest value a version holds in its own bytes ([`ValueRef::Small`]):
/// what fits beside the tag in the 24 bytes a disk location takes, so a
/// [`Version`] stays 48 bytes.
pub const SMALL_VALUE_MAX: usize = 22;

/// A value of up to [`SMALL_VALUE_MAX`] bytes, held by value: a counter, a
/// flag, a short token. Copied rather than shared, it needs no allocation,
/// no reference count and no deferred free, and a read finds it in the
/// cache line of the key's version.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SmallValue {
    len: u8,
    bytes: [u8; SMALL_VALUE_MAX],
}

impl SmallValue {
    /// `value`, when it is short enough.
    #[inline]
    pub fn new(value: &[u8]) -> Option<SmallValue> {
        if value.len() > SMALL_VALUE_MAX {
            return None;
        }
        let mut bytes = [0u8; SMALL_VALUE_MAX];
        bytes[..value.len()].copy_from_slice(value);
        Some(SmallValue {
            len: value.len() as u8,
            bytes,
        })
    }

    /// The value's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for SmallValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SmallValue").field(&self.as_bytes()).finish()
    }
}

/// Where a version's value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueRef {
    /// The key was deleted.
    Tombstone,
    /// A value of up to [`SMALL_VALUE_MAX`] bytes, in the version itself.
    Small(SmallValue),
    /// A longer value kept in the index, up to the inline threshold.
    Inline(Arc<[u8]>),
    /// A value in a segment: `offset` is where the key starts (the value
    /// follows it), `crc` the checksum of key || value.
    Disk {
        /// Segment id.
        segment: u32,
        /// Offset of the key in the segment.
        offset: u64,
        /// Length of the value.
        len: u32,
        /// CRC32C of key || value.
        crc: u32,
    },
}

impl ValueRef {
    /// How a value kept in the index is held: in the version when it is
    /// short enough ([`ValueRef::Small`]), otherwise in an allocation of its
    /// own ([`ValueRef::Inline`]).
    #[inline]
    pub fn in_memory(value: &[u8]) -> ValueRef {
        match SmallValue::new(value) {
            Some(small) => ValueRef::Small(small),
            None => ValueRef::Inline(Arc::from(value)),
        }
    }

    /// The bytes of a value kept in the index (small or inline), `None` for
    /// a tombstone or a value on disk.
    #[inline]
    pub fn held_bytes(&self) -> Option<&[u8]> {
        match self {
            ValueRef::Small(small) => Some(small.as_bytes()),
            ValueRef::Inline(bytes) => Some(bytes),
            ValueRef::Tombstone | ValueRef::Disk { .. } => None,
        }
    }
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Commit sequence number.
    pub seq: u64,
    /// Absolute expiry in ms since the Unix epoch; 0 means never.
    pub expires_at: u64,
    /// The value, or a tombstone.
    pub value: ValueRef,
    /// Bytes this version's op takes in the log (for live/dead accounting).
    pub log_bytes: u32,
    /// Segment holding this version's op (inline values are in the log too).
    pub segment: u32,
}

// A small value must not make a version larger than a disk location does
// (the skiplist node and the version list are sized for 48 bytes).
const _: () = assert!(std::mem::size_of::<ValueRef>() == 24 && std::mem::size_of::<Version>() == 48);

impl Version {
    /// True when this version hides the key at time `now_ms`.
    pub fn is_absent(&self, now_ms: u64) -> bool {
        matches!(self.value, ValueRef::Tombstone) || (self.expires_at != 0 && self.expires_at <= now_ms)
    }
}

/// Lets go of a version the index held: an inline value's bytes are freed
/// only through the epoch collector, after every guard pinned now is
/// unpinned, because a range walk ([`Index::range_views`]) reads them under
/// its guard after it released the key's lock. Every version that leaves a
/// key's list while the key stays in the index goes through here; a slot's
/// own versions go when the skiplist frees the slot, which is itself
/// deferred past the epoch.
fn retire(version: Version) {
    retire_value(version.value);
}

/// [`retire`] for a value alone.
fn retire_value(value: ValueRef) {
    if let ValueRef::Inline(bytes) = value {
        epoch::pin().defer(move || drop(bytes));
    }
}

/// A version as a range walk lends it ([`Index::range_views`]): its fields,
/// with an inline value's bytes borrowed for as long as the walk's epoch
/// guard (see [`retire`]) rather than its handle cloned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionView<'g> {
    /// Commit sequence number.
    pub seq: u64,
    /// Absolute expiry in ms since the Unix epoch; 0 means never.
    pub expires_at: u64,
    /// The value, or a tombstone.
    pub value: ValueView<'g>,
    /// Bytes this version's op takes in the log.
    pub log_bytes: u32,
    /// Segment holding this version's op.
    pub segment: u32,
}

/// [`ValueRef`] as a [`VersionView`] lends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueView<'g> {
    /// The key was deleted.
    Tombstone,
    /// A small value, copied out of the version with the view (the version
    /// list may move it once the key's lock is released).
    Small(SmallValue),
    /// A longer value kept in the index itself.
    Inline(&'g [u8]),
    /// A value in a segment (see [`ValueRef::Disk`]).
    Disk {
        /// Segment id.
        segment: u32,
        /// Offset of the key in the segment.
        offset: u64,
        /// Length of the value.
        len: u32,
        /// CRC32C of key || value.
        crc: u32,
    },
}

impl VersionView<'_> {
    /// True when this version hides the key at time `now_ms`.
    pub fn is_absent(&self, now_ms: u64) -> bool {
        matches!(self.value, ValueView::Tombstone) || (self.expires_at != 0 && self.expires_at <= now_ms)
    }

    /// The bytes of a value kept in the index (small or inline), `None` for
    /// a tombstone or a value on disk.
    #[inline]
    pub fn held_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            ValueView::Small(small) => Some(small.as_bytes()),
            ValueView::Inline(bytes) => Some(bytes),
            ValueView::Tombstone | ValueView::Disk { .. } => None,
        }
    }

    /// The version itself, for a value that is not inline (an inline one
    /// is borrowed from the index, and copied by whoever needs it to
    /// outlive the walk; a small one is the view's own copy).
    pub fn to_version(&self) -> Option<Version> {
        self.version_with(|_| None)
    }

    /// The version itself, with `inline` making an inline value's
    /// [`ValueRef`] (or refusing, with `None`).
    fn version_with(&self, inline: impl FnOnce(&[u8]) -> Option<ValueRef>) -> Option<Version> {
        let value = match self.value {
            ValueView::Tombstone => ValueRef::Tombstone,
            ValueView::Small(small) => ValueRef::Small(small),
            ValueView::Inline(bytes) => inline(bytes)?,
            ValueView::Disk {
                segment,
                offset,
                len,
                crc,
            } => ValueRef::Disk {
                segment,
                offset,
                len,
                crc,
            },
        };
        Some(Version {
            seq: self.seq,
            expires_at: self.expires_at,
            value,
            log_bytes: self.log_bytes,
            segment: self.segment,
        })
    }
}

#[derive(Debug, Default)]
struct Versions {
    /// Newest first.
    list: SmallVec<[Version; 1]>,
    /// Low 63 bits: sequence number of the oldest version kept when older
    /// ones were last reclaimed (0 if none ever was): a reader below it may
    /// have lost the version it wanted, a reader at or above it has not.
    /// Top bit ([`REMOVED`]): set when the entry was unlinked from the
    /// index; writers then retry. One word for both keeps a key's slot in
    /// the skiplist node at 96 bytes (see [`Slot`]).
    marks: u64,
}

/// The `removed` bit of [`Versions::marks`]; sequence numbers stay below it.
const REMOVED: u64 = 1 << 63;

impl Versions {
    /// See [`Versions::marks`].
    #[inline]
    fn reclaimed_below(&self) -> u64 {
        self.marks & !REMOVED
    }

    #[inline]
    fn set_reclaimed_below(&mut self, seq: u64) {
        debug_assert!(seq < REMOVED, "sequence number {seq} out of range");
        self.marks = (self.marks & REMOVED) | (seq & !REMOVED);
    }

    /// True once the entry was unlinked from the index.
    #[inline]
    fn removed(&self) -> bool {
        self.marks & REMOVED != 0
    }

    #[inline]
    fn mark_removed(&mut self) {
        self.marks |= REMOVED;
    }

    /// Drops every version older than the newest one at or below
    /// `watermark`: no reader at or above the watermark can see them.
    fn reclaim(&mut self, watermark: u64) {
        if let Some(keep) = self.list.iter().position(|x| x.seq <= watermark) {
            if keep + 1 < self.list.len() {
                let seq = self.list[keep].seq;
                self.set_reclaimed_below(seq);
                self.list.drain(keep + 1..).for_each(retire);
            }
        }
    }
}

/// The per-key slot in the skiplist.
#[derive(Debug, Default)]
pub struct KeyEntry {
    versions: RwLock<Versions>,
}

impl KeyEntry {
    /// The newest version visible at `read_seq`.
    pub fn visible(&self, read_seq: u64) -> Lookup {
        match self.seen(read_seq, Version::clone) {
            Seen::Found(v) => Lookup::Found(v),
            Seen::Missing => Lookup::Missing,
            Seen::Stale => Lookup::Stale,
        }
    }

    /// Lends the newest version visible at `read_seq` to `f` under the
    /// key's read lock; as [`KeyEntry::visible`] without the copy.
    #[inline]
    fn seen<R>(&self, read_seq: u64, f: impl FnOnce(&Version) -> R) -> Seen<R> {
        let v = self.versions.read();
        match v.list.iter().find(|ver| ver.seq <= read_seq) {
            Some(ver) => Seen::Found(f(ver)),
            // Only newer versions are left, and the ones this reader wanted
            // were reclaimed: that happens only once a newer one is visible.
            None if read_seq < v.reclaimed_below() => Seen::Stale,
            // Nothing was reclaimed at or above `read_seq`: the key had no
            // version then (its first one may be a commit still in flight).
            None => Seen::Missing,
        }
    }

    /// Sequence number of the newest version, if any.
    pub fn newest_seq(&self) -> Option<u64> {
        self.versions.read().list.first().map(|v| v.seq)
    }

    /// Drops the versions no reader at or above `watermark` can see (every
    /// version above it and the newest one at or below it stay), and gives
    /// the version list's heap allocation back once one version is left, so
    /// a key that was overwritten costs what a key written once does, and
    /// the superseded value's memory is free for the next write to reuse.
    pub fn drop_superseded(&self, watermark: u64) {
        let mut v = self.versions.write();
        if v.removed() {
            return;
        }
        v.reclaim(watermark);
        if v.list.len() == 1 && v.list.spilled() {
            v.list.shrink_to_fit();
        }
    }

    /// Lends the newest version visible at `read_seq` to `f`, under the
    /// key's read lock (so `f` must not block), without copying it; `None`
    /// when there is none (missing or reclaimed, see [`KeyEntry::visible`]).
    fn with_visible<R>(&self, read_seq: u64, f: impl FnOnce(&Version) -> R) -> Option<R> {
        let v = self.versions.read();
        v.list.iter().find(|ver| ver.seq <= read_seq).map(f)
    }

    /// The newest version visible at `read_seq` as a view valid while
    /// `guard` stays pinned, taken under the key's read lock; `None` as for
    /// [`KeyEntry::with_visible`].
    #[inline]
    fn view<'g>(&'g self, read_seq: u64, _guard: &'g Guard) -> Option<VersionView<'g>> {
        let v = self.versions.read();
        let ver = v.list.iter().find(|ver| ver.seq <= read_seq)?;
        let value = match &ver.value {
            ValueRef::Tombstone => ValueView::Tombstone,
            &ValueRef::Small(small) => ValueView::Small(small),
            ValueRef::Inline(bytes) => {
                let bytes: *const [u8] = &**bytes;
                // SAFETY: the bytes belong to an `Arc` the version list holds
                // while the read lock is held. After the lock is released, the
                // list lets go of that `Arc` only through `retire` (which drops
                // it through the epoch collector, so not before every guard
                // pinned before that moment, `guard` included, is unpinned), or
                // when the skiplist frees the slot, also through the epoch
                // collector. Other clones of the `Arc` only keep the bytes
                // longer. So the bytes stay allocated and unchanged (an `Arc`'s
                // contents are immutable) for as long as `guard` is pinned.
                ValueView::Inline(unsafe { &*bytes })
            }
            &ValueRef::Disk {
                segment,
                offset,
                len,
                crc,
            } => ValueView::Disk {
                segment,
                offset,
                len,
                crc,
            },
        };
        Some(VersionView {
            seq: ver.seq,
            expires_at: ver.expires_at,
            value,
            log_bytes: ver.log_bytes,
            segment: ver.segment,
        })
    }
}

/// Result of a lookup at a read sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// This version is the one visible (it may be a tombstone or expired).
    Found(Version),
    /// The key has no version.
    Missing,
    /// The versions old enough for this reader were reclaimed; read again at
    /// a newer sequence.
    Stale,
}

/// What an insert changed, for the engine's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InsertEffect {
    /// +1 when the key became live, -1 when it stopped being live.
    pub live_keys: i64,
    /// Log bytes of a live put that this insert superseded (now dead).
    pub superseded_bytes: u64,
    /// Segment of that superseded put.
    pub superseded_segment: u32,
    /// True when the inserted version is the newest of its key.
    pub is_newest: bool,
}

/// A key's slot in the ordered index: the key and its entry, stored
/// together as the skiplist node's key (the node's value is `()`), so that
/// one reference reaches both and the hash map holds one pointer per key.
/// Ordered, compared and searched as its key's bytes. 96 bytes for keys
/// of up to [`INLINE_KEY_MAX`] bytes.
pub struct Slot {
    key: IndexKey,
    entry: KeyEntry,
}

impl Slot {
    fn new(key: &[u8]) -> Slot {
        Slot {
            key: IndexKey::new(key),
            entry: KeyEntry::default(),
        }
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Slot {}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl Borrow<KeyBytes> for Slot {
    #[inline]
    fn borrow(&self) -> &KeyBytes {
        KeyBytes::new(&self.key)
    }
}

impl Keyed for Slot {
    #[inline]
    fn map_key(&self) -> &[u8] {
        &self.key
    }
}

/// The index: a skiplist of key slots in key order (scans), and a hash map
/// from key to the same slots (point reads and writes to existing keys).
///
/// # How the two stay one index
///
/// A key's slot lives in a skiplist node; the map ([`KeyMap`]) holds a
/// pointer to it. Every change of whether a slot is in the map happens under
/// the slot's version lock (write), and these rules hold:
///
/// 1. A slot is published in the map before any version is added to it:
///    a writer that got the slot from the skiplist takes its lock, checks
///    `removed`, adds the slot to the map if it holds no version yet, and
///    only then inserts its version, still under the lock. So, under its
///    lock, a slot holding a version is in the map (until removed) and an
///    empty one is not (no path empties a version list).
/// 2. A slot is unlinked only by [`Index::unlink`], which, under the slot's
///    lock and without releasing it, sets `removed`, removes the slot from
///    the map, then unlinks it from the skiplist. A slot with `removed` set
///    is never published again (rule 1 checks the bit under the lock), so
///    the map only ever holds slots that are linked, and at most one per key
///    (the skiplist links one node per key).
/// 3. A node's memory is freed by the skiplist through the epoch collector,
///    after it is unlinked, past every guard pinned before the unlink; so
///    (by rule 2) past every guard pinned before the slot left the map. A
///    probe runs under a guard pinned before it: a slot it finds stays
///    allocated while that guard is pinned.
/// 4. Locks are taken in one order: a slot's version lock, then a map
///    shard's lock. Readers never hold both (the shard's read lock is
///    released before the slot's is taken), and a table growing under a
///    shard's write lock reads only the keys of slots in the map, which
///    never change.
///
/// The interleavings:
///
/// - **get vs remove.** A reader that probes the map before the slot left
///   it reads the slot (allocated, rule 3) and sees its tombstone or a
///   version the tombstone hides from no reader: a tombstone is collected
///   only at or below the watermark, at or below every reader's sequence,
///   so the key reads as absent, as it does after the removal. A reader
///   that probes after finds no slot: absent. A new slot for the key holds
///   a version only once published (rule 1), and that version's commit is
///   visible only after its insert returned, so a reader that can see it
///   finds the new slot.
/// - **new key vs new key.** Both writers miss the map; the skiplist's
///   `get_or_insert_with` hands both the same node (one links it). They
///   take its lock in turn: the first publishes it, the second finds it
///   published (the map returns the same slot) and adds its version.
/// - **overwrite vs remove.** A writer that found the slot (in the map, or
///   in the skiplist while it was still linked) takes its lock. Before the
///   remover: the remover then sees a version newer than its tombstone and
///   collects nothing. After: the writer sees `removed` and retries, and
///   by then (the remover released the lock only after both removals) the
///   map misses and the skiplist creates a new slot, which the writer
///   publishes. Without the retry the version would go to a slot in
///   neither structure: a lost write (`tests/hash_index.rs` checks this).
/// - **compaction vs remove.** [`Index::holds`], [`Index::relocate`] and
///   [`Index::expire_to_tombstone`] go through `with_live_entry`, which
///   skips a removed slot and probes again (the slot is out of the map by
///   then, so the loop ends).
/// - **recovery.** [`Index::apply_recovered`] is the same upsert on each
///   replay thread, and [`Index::remove_tombstones`] unlinks through
///   [`Index::unlink`] once replay is over. An open uses
///   [`Index::apply_recovered_deferred`] instead, the one exception to
///   rule 1: a new slot gets its version at once but goes to the replay
///   thread's [`PendingSlots`] rather than into the map, and
///   [`Index::publish`] adds every pending slot to the map in one parallel
///   pass after each batch of hints or segment (the map's tables filled
///   shard by shard, see [`KeyMap::fill`]). Until then the map misses those
///   keys while the skiplist holds them, which is safe because nothing but
///   the replay reads the index during an open, and the replay finds keys
///   through the skiplist (a map probe that misses goes on to it). A
///   pending slot is never unlinked before it is published (every unlink
///   starts from a slot found in the map), so it stays allocated; it is
///   pushed only while it holds no version (once per slot), and the
///   skiplist links one slot per key, so the map never receives a key
///   twice.
pub struct Index {
    list: SkipList<Slot, ()>,
    map: KeyMap<Slot>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            list: SkipList::new(epoch::default_collector().clone()),
            map: KeyMap::default(),
        }
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("len", &self.list.len())
            .finish_non_exhaustive()
    }
}

/// New slots an open created with [`Index::apply_recovered_deferred`] and
/// has not yet added to the hash map; [`Index::publish`] adds them. Tied to
/// the index they belong to (which outlives them).
#[derive(Default)]
pub struct PendingSlots<'i> {
    slots: Pending<Slot>,
    /// Address of that index (0 before the first slot).
    owner: usize,
    _index: PhantomData<&'i Index>,
}

impl PendingSlots<'_> {
    /// Number of slots waiting.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is waiting.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Result of [`Index::get_with`]: what the visitor returned for the visible
/// version, or why there is none (as [`Lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<R> {
    /// The visitor's result for the visible version.
    Found(R),
    /// The key has no version.
    Missing,
    /// The versions old enough for this reader were reclaimed.
    Stale,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Number of keys with at least one version (live, deleted or expired).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Versions held, over all keys (walks the whole index under one epoch
    /// guard: memory unlinked meanwhile is freed only after the walk).
    pub fn version_count(&self) -> usize {
        let guard = epoch::pin();
        self.list
            .iter(&guard)
            .map(|e| e.key().entry.versions.read().list.len())
            .sum()
    }

    /// True when the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Keys the hash map holds (equal to [`Index::len`] whenever no write
    /// or removal is in flight).
    pub fn hashed_len(&self) -> usize {
        self.map.len()
    }

    /// Bytes the hash map's tables have allocated.
    pub fn hash_bytes(&self) -> usize {
        self.map.allocated_bytes()
    }

    /// Makes room in the hash map for `additional` more keys.
    pub fn reserve(&self, additional: usize) {
        self.map.reserve(additional);
    }

    /// Gives back the hash map's room beyond what its keys need (after a
    /// [`Index::reserve`] that counted keys more than once).
    pub fn shrink_hash(&self) {
        self.map.shrink_to_fit();
    }

    /// The slot of `key`, found by hash, read under `guard`.
    #[inline]
    fn slot<'g>(&'g self, key: &[u8], guard: &'g Guard) -> Option<&'g Slot> {
        self.map.get(self.map.hash(key), key, guard)
    }

    /// The entry of `key`, read under `guard` (no reference is counted).
    #[inline]
    fn entry<'g>(&'g self, key: &[u8], guard: &'g Guard) -> Option<&'g KeyEntry> {
        self.slot(key, guard).map(|s| &s.entry)
    }

    /// The version of `key` visible at `read_seq`.
    pub fn get(&self, key: &[u8], read_seq: u64) -> Lookup {
        match self.get_with(key, read_seq, Version::clone) {
            Seen::Found(v) => Lookup::Found(v),
            Seen::Missing => Lookup::Missing,
            Seen::Stale => Lookup::Stale,
        }
    }

    /// Lends the version of `key` visible at `read_seq` to `f`, under the
    /// key's read lock (so `f` must be short and must not block), without
    /// copying it: a point read takes what it needs (an inline value's
    /// handle, a disk location) and nothing else. The key is found by
    /// hash; a slot being unlinked meanwhile is still read (see
    /// [`Index`]: it answers as a missing key would).
    #[inline]
    pub fn get_with<R>(&self, key: &[u8], read_seq: u64, f: impl FnOnce(&Version) -> R) -> Seen<R> {
        let guard = epoch::pin();
        match self.entry(key, &guard) {
            Some(e) => {
                race_point();
                e.seen(read_seq, f)
            }
            None => Seen::Missing,
        }
    }

    /// Sequence number of the newest version of `key`, if any.
    pub fn newest_seq(&self, key: &[u8]) -> Option<u64> {
        let guard = epoch::pin();
        self.entry(key, &guard).and_then(KeyEntry::newest_seq)
    }

    /// Runs `f` on the entry of `key` and its versions, under the key's
    /// write lock, creating the entry if the key has none; `f` is lent the
    /// entry for as long as `guard` is pinned.
    ///
    /// An existing key is found by hash and its versions locked; a key the
    /// map does not hold goes to the skiplist, which finds or links its
    /// slot with one search, and the slot is published in the map before
    /// `f` runs (rule 1 of [`Index`]). A slot found with `removed` set was
    /// unlinked meanwhile (and is out of the map by then): look again.
    fn upsert_in<'g, R>(&'g self, key: &[u8], f: impl FnOnce(&'g KeyEntry, &mut Versions) -> R, guard: &'g Guard) -> R {
        self.upsert_via(key, true, None, f, guard)
    }

    /// [`Index::upsert_in`], probing the map first only when `probe`: a
    /// caller whose keys are mostly new, in key order (an open applying
    /// hints), goes straight to the skiplist, whose search it needs for a
    /// new key anyway and which finds an existing one as well.
    ///
    /// With `defer`, a new slot goes to that list instead of into the map
    /// (an open, see [`Index::apply_recovered_deferred`]).
    fn upsert_via<'g, R>(
        &'g self,
        key: &[u8],
        probe: bool,
        mut defer: Option<&mut PendingSlots<'_>>,
        f: impl FnOnce(&'g KeyEntry, &mut Versions) -> R,
        guard: &'g Guard,
    ) -> R {
        let hash = self.map.hash(key);
        let mut f = Some(f);
        let mut probe = probe;
        loop {
            if probe {
                if let Some(slot) = self.map.get(hash, key, guard) {
                    race_point();
                    let mut v = slot.entry.versions.write();
                    if v.removed() {
                        continue;
                    }
                    return (f.take().expect("run once"))(&slot.entry, &mut v);
                }
            }
            probe = true;
            let e = self.list.get_or_insert_with(Slot::new(key), || (), guard);
            // SAFETY: a node of the skiplist is freed only through the
            // epoch collector (when its last reference is released, and
            // only once it is unlinked), and never while a guard pinned
            // before that, as `guard` is, stays pinned: the slot outlives
            // the counted reference released below.
            let slot: &'g Slot = unsafe { &*(e.key() as *const Slot) };
            race_point();
            let mut v = slot.entry.versions.write();
            let done = if v.removed() {
                None
            } else {
                // A slot holding a version is in the map already (rule 1
                // of `Index`): only an empty one, new, is published.
                if let Some(pending) = defer.as_deref_mut().filter(|_| v.list.is_empty()) {
                    let me = self as *const Index as usize;
                    assert!(
                        pending.owner == 0 || pending.owner == me,
                        "pending slots of another index"
                    );
                    pending.owner = me;
                    // SAFETY: the slot stays allocated while linked, and a
                    // slot out of the map is never unlinked (every unlink
                    // starts from the map); once published, the same holds
                    // as for `insert` below. It holds no version, so it is
                    // neither in the map nor pending already, and it is the
                    // one linked slot of its key (see "recovery" at
                    // `Index`).
                    unsafe { pending.slots.push(hash, slot) };
                } else if v.list.is_empty() {
                    // SAFETY: the slot stays allocated while linked; it is
                    // removed from the map before it is unlinked, under
                    // this lock (`unlink`), and its node is then freed only
                    // through the epoch collector, by the skiplist's
                    // unlinking, which follows that removal (rules 2 and 3
                    // of `Index`).
                    let held = unsafe { self.map.insert(hash, slot) };
                    debug_assert!(std::ptr::eq(held, slot), "two linked slots for one key");
                }
                Some((f.take().expect("run once"))(&slot.entry, &mut v))
            };
            drop(v);
            e.release(guard);
            if let Some(r) = done {
                return r;
            }
        }
    }

    /// Unlinks `slot`, whose versions the caller holds write-locked as `v`
    /// (and keeps locked until this returns): sets `removed`, removes the
    /// slot from the map, then unlinks its node from the skiplist, in this
    /// order (rule 2 of [`Index`]).
    fn unlink(&self, hash: u64, slot: &Slot, v: &mut Versions, guard: &Guard) {
        debug_assert!(!v.removed());
        v.mark_removed();
        race_point();
        self.map.remove(hash, slot);
        race_point();
        // While the slot is linked and not yet marked in the skiplist, no
        // other node of its key can be linked (a writer's
        // `get_or_insert_with` returns this one and waits on its lock), so
        // the search finds this very node.
        if let Some(e) = self.list.get(KeyBytes::new(&slot.key), guard) {
            debug_assert!(
                std::ptr::eq(e.key(), slot),
                "another slot linked for a key being removed"
            );
            if std::ptr::eq(e.key(), slot) {
                e.remove();
            }
        }
    }

    /// Inserts `version` of `key`. Versions no snapshot at or above
    /// `watermark` can read are dropped. A version with the same seq (a batch
    /// touching one key twice) replaces the earlier one: the later op wins.
    pub fn insert(&self, key: &[u8], version: Version, watermark: u64) -> InsertEffect {
        let guard = epoch::pin();
        self.insert_in(key, version, watermark, &guard).0
    }

    /// Loads into the CPU's caches what an insert of `key` will read
    /// first: its hash map entries and the slot they lead to (see
    /// [`KeyMap::prefetch`]). A batch's apply calls it a few keys ahead of
    /// the one it inserts, so the cache misses of several keys overlap. Like
    /// a probe, it takes one map shard's read lock and releases it before it
    /// returns, and takes no slot's lock.
    #[inline]
    pub fn prefetch_key(&self, key: &[u8]) {
        self.map.prefetch(self.map.hash(key));
    }

    /// [`Index::insert`] under the caller's `guard`. Also returns the key's
    /// entry when it holds more than one version afterwards (an older one
    /// readers below the new version may still need): once the new version
    /// is visible, [`KeyEntry::drop_superseded`] on it, under the same
    /// guard, frees the versions no reader can see any more.
    pub fn insert_in<'g>(
        &'g self,
        key: &[u8],
        version: Version,
        watermark: u64,
        guard: &'g Guard,
    ) -> (InsertEffect, Option<&'g KeyEntry>) {
        self.upsert_in(
            key,
            |entry, v| {
                // Versions no reader can see go first, so the new one takes the
                // slot of the one it made unreadable: an overwrite of a key that
                // holds two versions (the newest and the one a reader below
                // the watermark saw) keeps two, in the allocation it has,
                // instead of growing the list to four. Reclaiming before or
                // after inserting a version above the watermark drops the same
                // versions, and never the newest.
                v.reclaim(watermark);
                let was_live = v.list.first().is_some_and(|x| !matches!(x.value, ValueRef::Tombstone));
                let pos = v.list.iter().position(|x| x.seq <= version.seq).unwrap_or(v.list.len());
                let mut effect = InsertEffect::default();
                // pos > 0: a newer commit already won this key, and this version
                // is dead at birth (the caller counts it so).
                if pos == 0 {
                    effect.is_newest = true;
                    if let Some(old) = v.list.first().filter(|o| !matches!(o.value, ValueRef::Tombstone)) {
                        effect.superseded_bytes = old.log_bytes as u64;
                        effect.superseded_segment = old.segment;
                    }
                }
                let at_or_below = version.seq <= watermark;
                if v.list.get(pos).is_some_and(|x| x.seq == version.seq) {
                    retire(std::mem::replace(&mut v.list[pos], version));
                } else {
                    v.list.insert(pos, version);
                }
                // Keep every version above the watermark and the newest at or
                // below it: a version inserted at or below the watermark (a
                // caller whose readers are all past it) may leave older ones
                // unreadable.
                if at_or_below {
                    v.reclaim(watermark);
                }
                let is_live = v.list.first().is_some_and(|x| !matches!(x.value, ValueRef::Tombstone));
                effect.live_keys = is_live as i64 - was_live as i64;
                (effect, (v.list.len() > 1).then_some(entry))
            },
            guard,
        )
    }

    /// Unlinks `key` when its newest version is the tombstone `seq` and that
    /// tombstone is at or below `watermark` (no snapshot can see past it).
    pub fn remove_tombstone(&self, key: &[u8], seq: u64, watermark: u64) -> bool {
        let guard = epoch::pin();
        let hash = self.map.hash(key);
        let Some(slot) = self.map.get(hash, key, &guard) else {
            return false;
        };
        race_point();
        let mut v = slot.entry.versions.write();
        let collectable = !v.removed()
            && seq <= watermark
            && v.list
                .first()
                .is_some_and(|x| x.seq == seq && matches!(x.value, ValueRef::Tombstone));
        if collectable {
            self.unlink(hash, slot, &mut v, &guard);
        }
        collectable
    }

    /// Recovery: keeps `version` if it is newer than what `key` has (files
    /// are not read in sequence order once compaction has run). Tombstones
    /// are kept; the caller unlinks them once replay is over.
    ///
    /// Replay applies mostly new keys in key order: a key kept inline goes
    /// straight to the skiplist (no hash probe first; the map is filled as
    /// a new key's slot is created), a longer one is probed first so that a
    /// key seen before does not allocate a copy of itself.
    pub fn apply_recovered(&self, key: &[u8], version: Version) -> InsertEffect {
        self.apply_recovered_via(key, version, None)
    }

    /// [`Index::apply_recovered`] for an open: a new key's slot is added to
    /// `pending` instead of the hash map, for [`Index::publish`] to add to
    /// the map with the others (see "recovery" at [`Index`]). Until then
    /// the key is found by scans and by further `apply_recovered` calls,
    /// but not by point reads.
    pub fn apply_recovered_deferred<'i>(
        &'i self,
        key: &[u8],
        version: Version,
        pending: &mut PendingSlots<'i>,
    ) -> InsertEffect {
        self.apply_recovered_via(key, version, Some(pending))
    }

    /// Adds the slots of `pending` (lists filled by
    /// [`Index::apply_recovered_deferred`] on this index) to the hash map,
    /// on up to `threads` threads, and empties the lists.
    ///
    /// # Panics
    ///
    /// If a list holds slots of another index.
    pub fn publish(&self, pending: &mut [PendingSlots<'_>], threads: usize) {
        let me = self as *const Index as usize;
        assert!(
            pending.iter().all(|p| p.owner == 0 || p.owner == me),
            "pending slots of another index"
        );
        let mut lists: Vec<Pending<Slot>> = pending.iter_mut().map(|p| std::mem::take(&mut p.slots)).collect();
        self.map.fill(&mut lists, threads);
        for (p, l) in pending.iter_mut().zip(lists) {
            p.slots = l;
        }
    }

    fn apply_recovered_via(&self, key: &[u8], version: Version, defer: Option<&mut PendingSlots<'_>>) -> InsertEffect {
        let guard = epoch::pin();
        let probe = key.len() > INLINE_KEY_MAX;
        self.upsert_via(
            key,
            probe,
            defer,
            |_, v| {
                let mut effect = InsertEffect::default();
                let old = v.list.first();
                if old.is_some_and(|o| o.seq > version.seq) {
                    return effect; // dead at birth
                }
                effect.is_newest = true;
                let was_live = old.is_some_and(|o| !matches!(o.value, ValueRef::Tombstone));
                if let Some(o) = old.filter(|_| was_live) {
                    effect.superseded_bytes = o.log_bytes as u64;
                    effect.superseded_segment = o.segment;
                }
                let is_live = !matches!(version.value, ValueRef::Tombstone);
                if !v.list.is_empty() {
                    v.set_reclaimed_below(version.seq);
                }
                v.list.drain(..).for_each(retire);
                v.list.push(version);
                effect.live_keys = is_live as i64 - was_live as i64;
                effect
            },
            &guard,
        )
    }

    /// Whether `key` still holds the version `seq` located in `segment`:
    /// `Some(true)` when it is the newest, `Some(false)` when a snapshot may
    /// still read it, `None` when it is gone. Versions no reader at or above
    /// `watermark` can see are dropped first.
    pub fn holds(&self, key: &[u8], seq: u64, segment: u32, watermark: u64) -> Option<bool> {
        self.with_live_entry(key, |v| {
            v.reclaim(watermark);
            let pos = v.list.iter().position(|x| x.seq == seq && x.segment == segment)?;
            Some(pos == 0)
        })?
    }

    /// Runs `f` on the versions of `key` under its write lock. An entry that
    /// tombstone collection unlinked meanwhile is skipped for the key's
    /// current one, so compaction never decides on a stale entry while a
    /// writer has re-created the key.
    fn with_live_entry<R>(&self, key: &[u8], f: impl FnOnce(&mut Versions) -> R) -> Option<R> {
        let guard = epoch::pin();
        let hash = self.map.hash(key);
        loop {
            let slot = self.map.get(hash, key, &guard)?;
            race_point();
            let mut v = slot.entry.versions.write();
            if v.removed() {
                // Out of the map by now (rule 2 of `Index`): probe again.
                continue;
            }
            return Some(f(&mut v));
        }
    }

    /// Moves version `seq` of `key` from `from` to segment `to` (with its
    /// value at `offset` when on disk). Returns whether it is the newest
    /// version and a put (its bytes are live), or `None` if the version is
    /// gone (its copied bytes are dead).
    pub fn relocate(&self, key: &[u8], seq: u64, from: u32, to: u32, offset: u64) -> Option<bool> {
        self.with_live_entry(key, |v| {
            let pos = v.list.iter().position(|x| x.seq == seq && x.segment == from)?;
            let ver = &mut v.list[pos];
            ver.segment = to;
            if let ValueRef::Disk { offset: o, segment, .. } = &mut ver.value {
                *o = offset;
                *segment = to;
            }
            Some(pos == 0 && !matches!(ver.value, ValueRef::Tombstone))
        })?
    }

    /// Compaction reclaiming an expired value: turns version `seq` of `key`
    /// (the newest, in segment `from`) into a tombstone in segment `to`.
    /// Returns false if the key changed meanwhile.
    pub fn expire_to_tombstone(&self, key: &[u8], seq: u64, from: u32, to: u32, log_bytes: u32) -> bool {
        self.with_live_entry(key, |v| match v.list.first_mut() {
            Some(x) if x.seq == seq && x.segment == from && !matches!(x.value, ValueRef::Tombstone) => {
                retire_value(std::mem::replace(&mut x.value, ValueRef::Tombstone));
                x.segment = to;
                x.expires_at = 0;
                x.log_bytes = log_bytes;
                true
            }
            _ => false,
        })
        .unwrap_or(false)
    }

    /// Unlinks every key whose only version is a tombstone (end of recovery).
    pub fn remove_tombstones(&self, keys: &[Box<[u8]>]) {
        let mut guard = epoch::pin();
        for (i, k) in keys.iter().enumerate() {
            let hash = self.map.hash(k);
            if let Some(slot) = self.map.get(hash, k, &guard) {
                let mut v = slot.entry.versions.write();
                if !v.removed() && v.list.len() == 1 && matches!(v.list[0].value, ValueRef::Tombstone) {
                    self.unlink(hash, slot, &mut v, &guard);
                }
            }
            // Let unlinked entries be freed during a long list.
            if i % 1024 == 1023 {
                guard.repin();
            }
        }
    }

    /// Visits up to `limit` entries with keys inside `(lower, upper)`, in key
    /// order, each with its version visible at `read_seq`; keys with no such
    /// version are skipped (a walk at a registered snapshot never meets a
    /// stale key: its versions are not reclaimed). The key and the version
    /// are lent to `visit`, the version under its key's read lock (`visit`
    /// must not block), so the walk itself copies and allocates nothing.
    ///
    /// The walk runs under one epoch guard and counts no reference on the
    /// entries it passes (callers bound `limit`, so the guard is short).
    /// An entry unlinked while the walk is on it is still read (its last
    /// version is a tombstone no snapshot below the watermark can miss), and
    /// the walk goes on from its key.
    pub fn range_from(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        read_seq: u64,
        limit: usize,
        mut visit: impl FnMut(&[u8], &Version),
    ) -> RangeEnd {
        let guard = epoch::pin();
        let mut n = 0;
        for entry in self.list.range::<KeyBytes, _>((bound(lower), bound(upper)), &guard) {
            if n >= limit {
                return RangeEnd::More;
            }
            let slot = entry.key();
            if slot.entry.with_visible(read_seq, |v| visit(&slot.key, v)).is_some() {
                n += 1;
            }
        }
        RangeEnd::Done
    }

    /// [`Index::range_from`] with each version lent as a [`VersionView`],
    /// which the walk takes [`WALK_AHEAD`] keys before it visits them: it
    /// takes a key's read lock once, to copy the view, and asks the CPU to
    /// load the key's inline value, so that the cache misses of values
    /// scattered in memory (keys overwritten in random order) overlap
    /// instead of following one another. The views stay valid while the
    /// walk's guard is pinned (see [`retire`]); `visit` may keep nothing
    /// of them past its call. `visit` ends the walk early by returning
    /// `Break` (the walk then says [`RangeEnd::More`]).
    pub fn range_views(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        read_seq: u64,
        limit: usize,
        mut visit: impl FnMut(&[u8], &VersionView<'_>) -> ControlFlow<()>,
    ) -> RangeEnd {
        let guard = epoch::pin();
        // The views taken and not yet visited (at most `WALK_AHEAD`), the
        // one taken as number `i` at `ahead[i % WALK_AHEAD]`.
        let none = VersionView {
            seq: 0,
            expires_at: 0,
            value: ValueView::Tombstone,
            log_bytes: 0,
            segment: 0,
        };
        let mut ahead: [(&[u8], VersionView<'_>); WALK_AHEAD] = [(&[], none); WALK_AHEAD];
        let (mut taken, mut visited) = (0, 0);
        let mut end = RangeEnd::Done;
        let mut walk = self.list.range::<KeyBytes, _>((bound(lower), bound(upper)), &guard);
        let mut walked_all = false;
        // Each pass takes views until `WALK_AHEAD` wait (or the walk ends),
        // then visits the oldest, until the walk has ended and none waits.
        loop {
            while taken - visited < WALK_AHEAD && !walked_all {
                match walk.next() {
                    None => walked_all = true,
                    Some(_) if taken >= limit => {
                        end = RangeEnd::More;
                        walked_all = true;
                    }
                    Some(entry) => {
                        let slot = entry.key();
                        if let Some(view) = slot.entry.view(read_seq, &guard) {
                            if let ValueView::Inline(bytes) = view.value {
                                prefetch::lines(bytes, 2);
                            }
                            ahead[taken % WALK_AHEAD] = (&slot.key[..], view);
                            taken += 1;
                        }
                    }
                }
            }
            if visited == taken {
                return end;
            }
            let (k, v) = &ahead[visited % WALK_AHEAD];
            let flow = visit(k, v);
            visited += 1;
            if flow.is_break() {
                // The visitor has enough: keys after this one may follow.
                return RangeEnd::More;
            }
        }
    }
}

/// How many keys a range walk ([`Index::range_views`]) looks at ahead of
/// the one it visits.
const WALK_AHEAD: usize = 8;

/// A place where another thread's step changes what this one does next
/// (between a hash probe and the lock it leads to, between the steps of an
/// unlink). Test builds yield the processor there, so that the races of
/// [`Index`]'s comment happen often in `stress`; other builds do nothing.
#[inline(always)]
fn race_point() {
    #[cfg(test)]
    std::thread::yield_now();
}

fn bound(b: Bound<&[u8]>) -> Bound<&KeyBytes> {
    match b {
        Bound::Included(k) => Bound::Included(KeyBytes::new(k)),
        Bound::Excluded(k) => Bound::Excluded(KeyBytes::new(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether a range walk reached its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    /// Stopped at the limit: more keys may follow.
    More,
    /// No key is left in the range.
    Done,
}

#[cfg(test)]
mod stress;

#[cfg(test)]
mod tests {
    use super::*;

    /// A put of the inline value `v` (also used by `stress`).
    pub(super) fn put(seq: u64, v: &[u8]) -> Version {
        Version {
            seq,
            expires_at: 0,
            value: ValueRef::in_memory(v),
            log_bytes: 10,
            segment: 1,
        }
    }

    /// A delete (also used by `stress`).
    pub(super) fn del(seq: u64) -> Version {
        Version {
            seq,
            expires_at: 0,
            value: ValueRef::Tombstone,
            log_bytes: 5,
            segment: 1,
        }
    }

    #[test]
    fn reads_see_their_snapshot() {
        let idx = Index::new();
        idx.insert(b"k", put(1, b"a"), 0);
        idx.insert(b"k", put(3, b"b"), 0);
        // Nothing was reclaimed: before its first commit the key did not exist.
        assert_eq!(idx.get(b"k", 0), Lookup::Missing);
        assert!(matches!(idx.get(b"k", 1), Lookup::Found(v) if v.seq == 1));
        assert!(matches!(idx.get(b"k", 2), Lookup::Found(v) if v.seq == 1));
        assert!(matches!(idx.get(b"k", 9), Lookup::Found(v) if v.seq == 3));
        assert_eq!(idx.get(b"other", 9), Lookup::Missing);
    }

    #[test]
    fn values_of_up_to_22_bytes_are_held_in_the_version() {
        let short = [7u8; SMALL_VALUE_MAX];
        let long = [8u8; SMALL_VALUE_MAX + 1];
        assert!(matches!(ValueRef::in_memory(&short), ValueRef::Small(_)));
        assert!(matches!(ValueRef::in_memory(b""), ValueRef::Small(_)));
        assert!(matches!(ValueRef::in_memory(&long), ValueRef::Inline(_)));
        let idx = Index::new();
        idx.insert(b"empty", put(1, b""), 0);
        idx.insert(b"long", put(2, &long), 0);
        idx.insert(b"short", put(3, &short), 0);
        for (key, want) in [(&b"empty"[..], &b""[..]), (b"long", &long), (b"short", &short)] {
            match idx.get(key, 9) {
                Lookup::Found(v) => assert_eq!(v.value.held_bytes(), Some(want), "{key:?}"),
                other => panic!("{key:?}: {other:?}"),
            }
        }
        // A walk's view of a small value is its own copy: it stays whole
        // after the key is overwritten and its old version dropped while
        // the walk still holds the view.
        let mut seen = Vec::new();
        idx.range_views(Bound::Unbounded, Bound::Unbounded, 9, usize::MAX, |k, v| {
            if k == b"short" {
                idx.insert(b"short", put(10, b"other"), 10);
                assert!(matches!(v.value, ValueView::Small(_)));
            }
            if k == b"long" {
                assert!(matches!(v.value, ValueView::Inline(_)));
            }
            seen.push((k.to_vec(), v.held_bytes().map(<[u8]>::to_vec)));
            ControlFlow::Continue(())
        });
        let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
            (b"empty".to_vec(), Some(Vec::new())),
            (b"long".to_vec(), Some(long.to_vec())),
            (b"short".to_vec(), Some(short.to_vec())),
        ];
        assert_eq!(seen, want);
        assert!(matches!(idx.get(b"short", 10), Lookup::Found(v) if v.value.held_bytes() == Some(&b"other"[..])));
        assert!(matches!(idx.get(b"short", 9), Lookup::Stale));
    }

    #[test]
    fn a_commit_not_yet_visible_reads_as_missing_not_stale() {
        // A new key's first version is inserted before its commit is
        // published; a reader at the visible sequence must not retry on it.
        let idx = Index::new();
        idx.insert(b"new", put(100, b"v"), 97);
        assert_eq!(idx.get(b"new", 98), Lookup::Missing);
        // The same after tombstone collection re-created the entry.
        idx.insert(b"gone", put(1, b"a"), 0);
        idx.insert(b"gone", del(2), 2);
        assert!(idx.remove_tombstone(b"gone", 2, 2));
        idx.insert(b"gone", put(100, b"b"), 2);
        assert_eq!(idx.get(b"gone", 98), Lookup::Missing);
    }

    #[test]
    fn reads_below_reclaimed_versions_are_stale() {
        let idx = Index::new();
        idx.insert(b"k", put(2, b"a"), 0);
        idx.insert(b"k", put(5, b"b"), 0);
        idx.insert(b"k", put(8, b"c"), 6); // drops seq 2, keeps 5
        assert_eq!(idx.get(b"k", 3), Lookup::Stale);
        assert!(matches!(idx.get(b"k", 5), Lookup::Found(v) if v.seq == 5));
        assert!(matches!(idx.get(b"k", 7), Lookup::Found(v) if v.seq == 5));
        // holds() reclaims too: with the watermark at 8 only seq 8 stays.
        assert_eq!(idx.holds(b"k", 5, 1, 8), None);
        assert_eq!(idx.get(b"k", 6), Lookup::Stale);
        assert!(matches!(idx.get(b"k", 8), Lookup::Found(v) if v.seq == 8));
    }

    #[test]
    fn watermark_prunes_old_versions() {
        let idx = Index::new();
        for seq in 1..=10 {
            idx.insert(b"k", put(seq, b"v"), seq);
        }
        assert_eq!(idx.version_count(), 1);
        // With the watermark held at 2, versions 2.. stay.
        let idx = Index::new();
        for seq in 1..=5 {
            idx.insert(b"k", put(seq, b"v"), 2);
        }
        let guard = epoch::pin();
        let e = idx.entry(b"k", &guard).unwrap();
        let seqs: Vec<u64> = e.versions.read().list.iter().map(|v| v.seq).collect();
        assert_eq!(seqs, vec![5, 4, 3, 2]);
    }

    #[test]
    fn an_overwrite_takes_the_slot_of_the_version_it_made_unreadable() {
        // The watermark one commit behind, as readers leave it: each
        // overwrite keeps the new version and the one below the watermark,
        // in the list's first allocation (it used to grow to four slots).
        let idx = Index::new();
        for seq in 1..=50 {
            idx.insert(b"k", put(seq, b"v"), seq - 1);
        }
        let guard = epoch::pin();
        let e = idx.entry(b"k", &guard).unwrap();
        let v = e.versions.read();
        assert_eq!(v.list.iter().map(|x| x.seq).collect::<Vec<_>>(), vec![50, 49]);
        assert_eq!(v.list.capacity(), 2);
        assert_eq!(v.reclaimed_below(), 49);
    }

    #[test]
    fn live_key_accounting_and_dead_bytes() {
        let idx = Index::new();
        assert_eq!(idx.insert(b"k", put(1, b"a"), 0).live_keys, 1);
        let e = idx.insert(b"k", put(2, b"b"), 0);
        assert_eq!((e.live_keys, e.superseded_bytes), (0, 10));
        let e = idx.insert(b"k", del(3), 0);
        assert_eq!((e.live_keys, e.superseded_bytes), (-1, 10));
        // Superseding a tombstone frees nothing more.
        let e = idx.insert(b"k", put(4, b"c"), 0);
        assert_eq!((e.live_keys, e.superseded_bytes), (1, 0));
        // An older commit arriving late is dead at birth and changes nothing visible.
        let e = idx.insert(b"k", put(3, b"late"), 0);
        assert!(!e.is_newest);
        assert_eq!(e.live_keys, 0);
    }

    #[test]
    fn same_seq_replaces() {
        let idx = Index::new();
        idx.insert(b"k", put(4, b"first"), 0);
        idx.insert(b"k", put(4, b"second"), 0);
        match idx.get(b"k", 4) {
            Lookup::Found(v) => assert_eq!(v.value, ValueRef::in_memory(b"second")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn tombstones_are_collected_only_below_watermark() {
        let idx = Index::new();
        idx.insert(b"k", put(1, b"a"), 0);
        idx.insert(b"k", del(2), 0);
        assert!(!idx.remove_tombstone(b"k", 2, 1));
        assert!(idx.remove_tombstone(b"k", 2, 2));
        assert_eq!(idx.get(b"k", 5), Lookup::Missing);
        idx.insert(b"k", put(3, b"again"), 2);
        assert!(matches!(idx.get(b"k", 5), Lookup::Found(v) if v.seq == 3));
    }

    #[test]
    fn inline_and_heap_keys_insert_overwrite_and_come_back() {
        // Both insert paths: a key copied inline (searched once) and one
        // kept on the heap (looked up first).
        for len in [1, INLINE_KEY_MAX, INLINE_KEY_MAX + 1, 100] {
            let idx = Index::new();
            let k = vec![b'k'; len];
            assert_eq!(idx.insert(&k, put(1, b"a"), 0).live_keys, 1);
            let e = idx.insert(&k, put(2, b"b"), 2);
            assert_eq!((e.live_keys, e.superseded_bytes, e.is_newest), (0, 10, true));
            assert_eq!((idx.len(), idx.version_count()), (1, 1));
            assert_eq!(idx.insert(&k, del(3), 3).live_keys, -1);
            assert!(idx.remove_tombstone(&k, 3, 3));
            assert_eq!(idx.len(), 0);
            assert_eq!(idx.insert(&k, put(4, b"c"), 3).live_keys, 1);
            assert!(matches!(idx.get(&k, 9), Lookup::Found(v) if v.seq == 4));
            assert_eq!(idx.apply_recovered(&k, put(5, b"d")).superseded_bytes, 10);
            assert_eq!(idx.len(), 1);
        }
    }

    #[test]
    fn racing_first_inserts_make_one_entry_per_key() {
        // Threads create the same new keys at once: each key gets one entry,
        // every version lands in it, and the key becomes live exactly once.
        let idx = Index::new();
        let live: i64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u64)
                .map(|t| {
                    let idx = &idx;
                    s.spawn(move || {
                        let mut live = 0;
                        for i in 0..2_000u64 {
                            let k = format!("key:{:04}{}", i % 500, "x".repeat((i % 3) as usize * 10));
                            live += idx.insert(k.as_bytes(), put(1 + i * 4 + t, b"v"), 0).live_keys;
                        }
                        live
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(idx.len(), 1_500);
        assert_eq!(live, 1_500);
        assert_eq!(idx.version_count(), 4 * 2_000);
    }

    #[test]
    fn index_keys_order_and_compare_as_their_bytes() {
        // Around the inline size, with shared prefixes, 0x00 and 0xff bytes.
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for len in [0, 1, INLINE_KEY_MAX - 1, INLINE_KEY_MAX, INLINE_KEY_MAX + 1, 40] {
            for fill in [0x00u8, b'a', 0xff] {
                keys.push(vec![fill; len]);
                let mut k = vec![b'a'; len];
                if let Some(last) = k.last_mut() {
                    *last = fill;
                }
                keys.push(k);
            }
        }
        for a in &keys {
            let ka = IndexKey::new(a);
            assert_eq!(&*ka, a.as_slice());
            for b in &keys {
                let kb = IndexKey::new(b);
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
        assert!(std::mem::size_of::<IndexKey>() <= 24);
        // The index orders them as bytes too.
        let idx = Index::new();
        for (i, k) in keys.iter().enumerate() {
            idx.insert(k, put(i as u64 + 1, b"v"), 0);
        }
        let mut walked = Vec::new();
        idx.range_from(Bound::Unbounded, Bound::Unbounded, u64::MAX, usize::MAX, |k, _| {
            walked.push(k.to_vec())
        });
        let mut expected = keys.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(walked, expected);
        for k in &keys {
            assert!(matches!(idx.get(k, u64::MAX), Lookup::Found(_)));
        }
    }

    #[test]
    fn word_compare_orders_as_bytes() {
        // Lengths across the 8-byte words and the memcmp cut-over, with
        // bytes that differ in sign and in position inside a word.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..40_000 {
            // Half the rounds stay within the inline size.
            let len = (next() % if round % 2 == 0 { 80 } else { INLINE_KEY_MAX as u64 + 1 }) as usize;
            let a: Vec<u8> = (0..len)
                .map(|_| [0u8, 1, 0x7f, 0x80, 0xff][(next() % 5) as usize])
                .collect();
            let mut b = a.clone();
            match next() % 4 {
                0 => b.truncate((next() % (len as u64 + 1)) as usize),
                1 => b.push((next() % 256) as u8),
                _ if len > 0 => {
                    let at = (next() % len as u64) as usize;
                    b[at] = (next() % 256) as u8;
                }
                _ => {}
            }
            assert_eq!(compare_bytes(&a, &b), a.cmp(&b), "{a:?} vs {b:?}");
            assert_eq!(compare_bytes(&b, &a), b.cmp(&a), "{b:?} vs {a:?}");
            assert_eq!(KeyBytes::new(&a) == KeyBytes::new(&b), a == b);
            // Stored keys: inline against inline (whole arrays), inline
            // against heap, heap against heap.
            let (ka, kb) = (IndexKey::new(&a), IndexKey::new(&b));
            assert_eq!(ka.cmp(&kb), a.cmp(&b), "{a:?} vs {b:?}");
            assert_eq!(ka == kb, a == b);
        }
    }

    #[test]
    fn get_with_lends_the_visible_version() {
        let idx = Index::new();
        idx.insert(b"k", put(2, b"a"), 0);
        idx.insert(b"k", put(5, b"b"), 0);
        assert_eq!(idx.get_with(b"k", 4, |v| v.seq), Seen::Found(2));
        assert_eq!(idx.get_with(b"k", 9, |v| v.seq), Seen::Found(5));
        assert_eq!(idx.get_with(b"k", 1, |v| v.seq), Seen::Missing);
        assert_eq!(idx.get_with(b"x", 9, |v| v.seq), Seen::Missing);
        idx.insert(b"k", put(8, b"c"), 6);
        assert_eq!(idx.get_with(b"k", 3, |v| v.seq), Seen::Stale);
    }

    #[test]
    fn range_walks_in_order_and_respects_limit() {
        let idx = Index::new();
        for (i, k) in [b"b", b"a", b"d", b"c"].iter().enumerate() {
            idx.insert(*k, put(i as u64 + 1, *k), 0);
        }
        let mut keys = Vec::new();
        let end = idx.range_from(Bound::Included(b"b".as_slice()), Bound::Unbounded, 10, 2, |k, _| {
            keys.push(k.to_vec())
        });
        assert_eq!(end, RangeEnd::More);
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    }

    /// A visitor of a walk that lends views ends it by returning `Break`:
    /// the walk visits no key after that one, even with views taken ahead,
    /// and says More, so the caller walks on from there.
    #[test]
    fn a_lending_walk_stops_where_its_visitor_says() {
        let idx = Index::new();
        for i in 0..40u8 {
            idx.insert(&[b'k', i], put(u64::from(i) + 1, &[i]), 0);
        }
        for stop_after in [1usize, 3, 8, 9, 20, 39] {
            let mut visited = Vec::new();
            let end = idx.range_views(Bound::Unbounded, Bound::Unbounded, u64::MAX, usize::MAX, |k, _| {
                visited.push(k.to_vec());
                if visited.len() == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert_eq!(end, RangeEnd::More, "stop after {stop_after}");
            let want: Vec<Vec<u8>> = (0..stop_after as u8).map(|i| vec![b'k', i]).collect();
            assert_eq!(visited, want, "stop after {stop_after}");
        }
        // A visitor that never stops sees every key, and the walk ends.
        let mut n = 0;
        let end = idx.range_views(Bound::Unbounded, Bound::Unbounded, u64::MAX, usize::MAX, |_, _| {
            n += 1;
            ControlFlow::Continue(())
        });
        assert_eq!((n, end), (40, RangeEnd::Done));
    }

    /// A walk visits the keys with a version at its read sequence, in
    /// order, up to its limit, and says More exactly when a key (visible or
    /// not) is left past the limit, wherever the keys with no version at
    /// the read sequence fall: in runs, at the start, at the end, beside
    /// the limit; checked against a plain model for every limit.
    #[test]
    fn range_visits_what_a_plain_walk_does_around_invisible_keys() {
        let idx = Index::new();
        let mut model: Vec<(Vec<u8>, Vec<u64>)> = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..120u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("k{i:04}").into_bytes();
            // Runs of 11 keys first written at sequence 50, invisible below
            // it; the others at 1 to 20, some overwritten at 30.
            let first = if (i / 12) % 2 == 1 && i % 12 != 0 {
                50
            } else {
                1 + (state % 20)
            };
            let mut seqs = vec![first];
            idx.insert(&key, put(first, &key), 0);
            if state.is_multiple_of(5) && first < 30 {
                idx.insert(&key, put(30, b"new"), 0);
                seqs.insert(0, 30);
            }
            if i % 7 == 3 && first < 40 {
                // Deleted at 40: walks at or above it visit the tombstone.
                idx.insert(&key, del(40), 0);
                seqs.insert(0, 40);
            }
            model.push((key, seqs));
        }
        for read_seq in [0, 10, 25, 40, 60] {
            for lower in [None, Some(0usize), Some(13), Some(23), Some(119)] {
                for limit in (0..=125).chain([usize::MAX]) {
                    let lower_key = lower.map(|i| model[i].0.clone());
                    let lower_bound = match &lower_key {
                        Some(k) => Bound::Included(k.as_slice()),
                        None => Bound::Unbounded,
                    };
                    let mut got = Vec::new();
                    let end = idx.range_from(lower_bound, Bound::Unbounded, read_seq, limit, |k, v| {
                        got.push((k.to_vec(), v.seq))
                    });
                    // The walk that lends views ahead of its visits visits
                    // the same, with the same values.
                    let mut plain = Vec::new();
                    idx.range_from(lower_bound, Bound::Unbounded, read_seq, limit, |k, v| {
                        plain.push((k.to_vec(), v.clone()))
                    });
                    let mut viewed = Vec::new();
                    let views_end = idx.range_views(lower_bound, Bound::Unbounded, read_seq, limit, |k, v| {
                        let owned = v.version_with(|b| Some(ValueRef::Inline(Arc::from(b))));
                        viewed.push((k.to_vec(), owned.expect("every value made")));
                        ControlFlow::Continue(())
                    });
                    assert_eq!(
                        viewed, plain,
                        "views: read_seq {read_seq}, lower {lower:?}, limit {limit}"
                    );
                    assert_eq!(
                        views_end, end,
                        "views: read_seq {read_seq}, lower {lower:?}, limit {limit}"
                    );
                    // The plain walk: every key from the lower bound on; at
                    // the limit, More if any key is left.
                    let mut want = Vec::new();
                    let mut want_end = RangeEnd::Done;
                    for (key, seqs) in &model[lower.unwrap_or(0)..] {
                        if want.len() >= limit {
                            want_end = RangeEnd::More;
                            break;
                        }
                        if let Some(&seq) = seqs.iter().find(|&&s| s <= read_seq) {
                            want.push((key.clone(), seq));
                        }
                    }
                    assert_eq!(got, want, "read_seq {read_seq}, lower {lower:?}, limit {limit}");
                    assert_eq!(end, want_end, "read_seq {read_seq}, lower {lower:?}, limit {limit}");
                }
            }
        }
    }
}
