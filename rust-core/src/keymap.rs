//! The index's hash map for point lookups: key -> the key's slot in the
//! ordered index, so a point get or an overwrite finds its key with one
//! hash probe instead of a skiplist search.
//!
//! The map stores one pointer per key and nothing else: the key bytes are
//! read from the slot the pointer leads to (which holds the key already),
//! both to compare on a probe and to hash again when a table grows. It is
//! split into [`SHARDS`] `hashbrown` tables, each behind its own
//! reader-writer lock on its own cache line: a probe holds a shard's read
//! lock only for the probe, an insert or removal its write lock for one
//! table operation, and a table grows one shard at a time (a pause of
//! 1/[`SHARDS`] of the keys, and 1/[`SHARDS`] of the transient memory).
//!
//! A bulk load (an open rebuilding the index) need not insert one key at a
//! time: it collects its new items in [`Pending`] lists, grouped by shard
//! as they come, and [`KeyMap::fill`] then adds each shard's items in one
//! go, on several threads, each thread taking whole shards: one lock per
//! shard instead of one per item, each table sized once for what it
//! receives, and while a shard is filled its table (1/[`SHARDS`] of the
//! map) stays in cache instead of every insert missing it.
//!
//! The map does not own what its pointers lead to. [`KeyMap::insert`]'s
//! contract (see there) is what makes [`KeyMap::get`] safe: an item stays
//! allocated while it is in the map, and after its removal it is freed only
//! through the epoch collector, so an item found under an epoch guard
//! outlives the guard's borrow.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_epoch::Guard;
use hashbrown::HashTable;
use parking_lot::RwLock;

/// Number of shards (a power of two).
pub const SHARDS: usize = 256;

/// The shard of a hash: bits 40.. of it. A shard's table places entries by
/// the low bits of the hash and tags them with its top seven, so the
/// shard's bits must be neither, or every entry of a shard would share them.
#[inline]
fn shard_of(hash: u64) -> usize {
    (hash >> 40) as usize & (SHARDS - 1)
}

/// The bits of a hash a table tags its entries with (`hashbrown` keeps the
/// top seven in the control byte, and places by the low bits).
const TAG: u64 = 0x7f << 57;

/// What the map holds: something that carries its own key.
pub trait Keyed {
    /// The key bytes the item is found by.
    fn map_key(&self) -> &[u8];
}

/// A pointer to an item the map does not own.
struct Ptr<T>(NonNull<T>);

impl<T> Clone for Ptr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ptr<T> {}

// SAFETY: a `Ptr` is only read through as a shared reference (`&T`), from
// whichever thread holds the shard; it is as safe to send and share as `&T`
// is, which needs `T: Sync`.
unsafe impl<T: Sync> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Ptr<T> {}

/// Items waiting for one shard, with their hashes.
type ShardList<T> = Vec<(u64, Ptr<T>)>;

/// Items waiting to be added to a map by [`KeyMap::fill`], with their
/// hashes, grouped by the shard they go to.
pub struct Pending<T> {
    shards: Box<[ShardList<T>]>,
    len: usize,
}

impl<T> Default for Pending<T> {
    fn default() -> Pending<T> {
        Pending {
            shards: (0..SHARDS).map(|_| Vec::new()).collect(),
            len: 0,
        }
    }
}

impl<T> Pending<T> {
    /// Adds `item`, whose key hashes to `hash` (by the map it will fill).
    ///
    /// # Safety
    ///
    /// From this call on, `item` must meet [`KeyMap::insert`]'s contract
    /// (allocated, its key unchanged, until removed from the map after the
    /// fill, and then freed only through the epoch collector); and no
    /// other item with its key may be in the map that this list fills, or
    /// in any list filled with it: [`KeyMap::fill`] adds items without
    /// comparing keys.
    #[inline]
    pub unsafe fn push(&mut self, hash: u64, item: &T) {
        self.shards[shard_of(hash)].push((hash, Ptr(NonNull::from(item))));
        self.len += 1;
    }

    /// Number of items waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the items (keeping the room they took, for the next load).
    fn clear(&mut self) {
        for s in self.shards.iter_mut() {
            s.clear();
        }
        self.len = 0;
    }
}

/// One shard, alone on its cache line(s) so that the locks of neighbouring
/// shards do not share a line between cores.
#[repr(align(64))]
struct Shard<T> {
    table: RwLock<HashTable<Ptr<T>>>,
}

/// The map: key bytes -> an item holding them (see the module comment).
pub struct KeyMap<T> {
    shards: Box<[Shard<T>]>,
    hasher: ahash::RandomState,
}

impl<T> Default for KeyMap<T> {
    fn default() -> KeyMap<T> {
        KeyMap {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    table: RwLock::new(HashTable::new()),
                })
                .collect(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl<T: Keyed + Sync> KeyMap<T> {
    /// The hash of `key`, for the other calls.
    ///
    /// Keys that differ only in their last byte are placed side by side:
    /// the hash is that of the key without its last byte, plus that byte,
    /// so a shard's table puts `k/0000000120` to `k/0000000129` in
    /// neighbouring buckets (one group of control bytes, two cache lines of
    /// pointers) and in one shard. Keys read in order then find their
    /// buckets in cache, as the skiplist's search finds its nodes; with a
    /// hash of the whole key every probe of such a read missed the cache
    /// twice (control bytes, then the bucket), which made in-order gets
    /// slower through the map than through the skiplist. Keys of different
    /// heads are still spread by the seeded hash of the head.
    ///
    /// The table tags each entry with the hash's top seven bits ([`TAG`]),
    /// which would be one tag for all the neighbours of a head and make a
    /// probe compare the key of each; those bits take the last byte mixed
    /// in by a multiplication instead, so that neighbours' tags differ.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        let Some((&last, head)) = key.split_last() else {
            return self.hasher.hash_one(key);
        };
        let h = self.hasher.hash_one(head);
        let last = u64::from(last);
        let place = h.wrapping_add(last) & !TAG;
        let tag = (h ^ last.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & TAG;
        place | tag
    }

    /// Rehashes an item in the map (a table growing).
    #[inline]
    fn rehash(&self, p: &Ptr<T>) -> u64 {
        // SAFETY: `p` is in the map, so (by `insert`'s contract) the item
        // it points to is allocated.
        self.hash(unsafe { p.0.as_ref() }.map_key())
    }

    /// The item with key `key` (whose hash is `hash`), valid for as long as
    /// `guard` stays pinned.
    #[inline]
    pub fn get<'g>(&'g self, hash: u64, key: &[u8], _guard: &'g Guard) -> Option<&'g T> {
        let table = self.shards[shard_of(hash)].table.read();
        let p = table
            .find(hash, |p| {
                // SAFETY: `p` is in the map: its item is allocated.
                unsafe { p.0.as_ref() }.map_key() == key
            })?
            .0;
        drop(table);
        // SAFETY: the item was in the map while `guard` was pinned (the
        // guard was pinned before this call and the item found under the
        // shard's lock). By `insert`'s contract it is freed only through
        // the epoch collector after its removal from the map, and a removal
        // that follows this probe defers the free past every guard pinned
        // now, `guard` included: the reference stays valid while `guard`
        // is pinned.
        Some(unsafe { p.as_ref() })
    }

    /// Asks the CPU to load what a probe for `hash` will read: the table's
    /// entries for it (read here, under the shard's read lock) and the
    /// first cache lines of every item they point to (prefetched, not
    /// read). A probe of the same key soon after then finds them in cache;
    /// nothing is returned, so nothing depends on the map staying as it is.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let table = self.shards[shard_of(hash)].table.read();
        for p in table.iter_hash(hash) {
            let at = p.0.as_ptr().cast::<u8>();
            crate::prefetch::line(at);
            crate::prefetch::line(at.wrapping_add(64));
        }
    }

    /// Adds `item` under its key (whose hash is `hash`) unless the map
    /// holds an item with that key already; returns the item the map holds
    /// afterwards under that key.
    ///
    /// # Safety
    ///
    /// `item` must stay allocated (and its key unchanged) until it is
    /// removed with [`KeyMap::remove`], and after its removal be freed
    /// only through the epoch collector (`Guard::defer` or a structure that
    /// uses it, such as the skiplist's unlinking), by a deferral made after
    /// the removal returned: guards pinned before then may still hold it.
    pub unsafe fn insert<'a>(&'a self, hash: u64, item: &'a T) -> &'a T {
        let key = item.map_key();
        let mut table = self.shards[shard_of(hash)].table.write();
        let entry = table.entry(
            hash,
            |p| {
                // SAFETY: `p` is in the map: its item is allocated.
                unsafe { p.0.as_ref() }.map_key() == key
            },
            |p| self.rehash(p),
        );
        let p = entry.or_insert_with(|| Ptr(NonNull::from(item))).get().0;
        // SAFETY: the item the map holds is allocated; the caller's borrow
        // of `self` bounds its use (the caller keeps it alive, see above).
        unsafe { p.as_ref() }
    }

    /// Removes `item` (the very item, compared by address) from the map;
    /// false if the map does not hold it.
    pub fn remove(&self, hash: u64, item: &T) -> bool {
        let at = NonNull::from(item);
        let mut table = self.shards[shard_of(hash)].table.write();
        match table.find_entry(hash, |p| p.0 == at) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Makes room for `additional` more keys, spread evenly over the
    /// shards (a bulk load, such as an open, grows each table once).
    pub fn reserve(&self, additional: usize) {
        let per_shard = additional.div_ceil(SHARDS);
        for s in self.shards.iter() {
            s.table.write().reserve(per_shard, |p| self.rehash(p));
        }
    }

    /// Adds every item of `pending` to the map and empties the lists, on
    /// up to `threads` threads (the calling one included). Each thread takes
    /// whole shards in turn: it locks the shard once, grows its table once
    /// to hold what the lists bring it, and inserts their items for the
    /// shard without hashing or comparing keys (by [`Pending::push`]'s
    /// contract, no item's key is in the map or in the lists twice).
    pub fn fill(&self, pending: &mut [Pending<T>], threads: usize) {
        let total: usize = pending.iter().map(Pending::len).sum();
        if total == 0 {
            return;
        }
        let lists: &[Pending<T>] = pending;
        let next = AtomicUsize::new(0);
        let work = || loop {
            let s = next.fetch_add(1, Ordering::Relaxed);
            if s >= SHARDS {
                return;
            }
            let n: usize = lists.iter().map(|p| p.shards[s].len()).sum();
            if n == 0 {
                continue;
            }
            let mut table = self.shards[s].table.write();
            table.reserve(n, |p| self.rehash(p));
            for list in lists {
                for &(hash, p) in &list.shards[s] {
                    debug_assert!(
                        table
                            .find(hash, |q| {
                                // SAFETY: both items are allocated (`q` is in
                                // the map, `p` meets `push`'s contract).
                                unsafe { q.0.as_ref().map_key() == p.0.as_ref().map_key() }
                            })
                            .is_none(),
                        "a pending item's key is in the map already"
                    );
                    table.insert_unique(hash, p, |p| self.rehash(p));
                }
            }
        };
        // A thread per ~64k items at most: small loads are not worth a spawn.
        let threads = threads.clamp(1, total.div_ceil(1 << 16));
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        for p in pending.iter_mut() {
            p.clear();
        }
    }

    /// Gives back the tables' room beyond what their items need (each
    /// shard that would shrink is rehashed into a smaller table).
    pub fn shrink_to_fit(&self) {
        for s in self.shards.iter() {
            s.table.write().shrink_to_fit(|p| self.rehash(p));
        }
    }

    /// Number of items in the map (locks every shard in turn).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.table.read().len()).sum()
    }

    /// Bytes the shards' tables have allocated (buckets and control bytes).
    pub fn allocated_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.table.read().allocation_size()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(Vec<u8>);

    impl Keyed for Item {
        fn map_key(&self) -> &[u8] {
            &self.0
        }
    }

    /// Lists filled on several "replay threads", some keys already in the
    /// map, several fills in a row: every key is found once, by its own
    /// item, and the map holds nothing else.
    #[test]
    fn fill_adds_every_pending_item_once_on_any_number_of_threads() {
        for threads in [1, 2, 3, 8] {
            let items: Vec<Item> = (0..200_000u32)
                .map(|i| Item(format!("key:{i:08}").into_bytes()))
                .collect();
            let map: KeyMap<Item> = KeyMap::default();
            // The first 1,000 one at a time.
            for it in &items[..1_000] {
                // SAFETY: `items` outlives `map` and is not changed; every
                // key is distinct.
                unsafe { map.insert(map.hash(&it.0), it) };
            }
            // The rest in two loads of three lists each.
            for load in [1_000..90_000, 90_000..200_000] {
                let mut lists: Vec<Pending<Item>> = (0..3).map(|_| Pending::default()).collect();
                for i in load {
                    let it = &items[i];
                    // SAFETY: as above; each key goes to one list once.
                    unsafe { lists[i % 3].push(map.hash(&it.0), it) };
                }
                let n: usize = lists.iter().map(Pending::len).sum();
                let before = map.len();
                map.fill(&mut lists, threads);
                assert!(lists.iter().all(Pending::is_empty));
                assert_eq!(map.len(), before + n, "{threads} threads");
            }
            let guard = crossbeam_epoch::pin();
            for it in &items {
                let got = map.get(map.hash(&it.0), &it.0, &guard).expect("every key is found");
                assert!(std::ptr::eq(got, it), "{threads} threads: the key's own item");
            }
            assert!(map.get(map.hash(b"key:99999999"), b"key:99999999", &guard).is_none());
            // Items removed after a fill leave the map.
            for it in items.iter().step_by(7) {
                assert!(map.remove(map.hash(&it.0), it));
            }
            assert_eq!(map.len(), items.len() - items.len().div_ceil(7));
        }
    }

    #[test]
    fn keys_that_differ_in_their_last_byte_are_neighbours_with_distinct_tags() {
        let map: KeyMap<Item> = KeyMap::default();
        for head in [&b""[..], b"k/000000012", b"user:42:", &[0xff; 40]] {
            let hash = |last: u8| map.hash(&[head, &[last]].concat());
            let first = hash(0);
            for last in 1..=255u8 {
                let h = hash(last);
                // Placed `last` buckets after the key ending in 0, in its shard.
                assert_eq!(h.wrapping_sub(first) & !TAG, u64::from(last), "head {head:?}");
                assert_eq!(shard_of(h), shard_of(first), "head {head:?}, last byte {last}");
            }
            // Any 16 neighbours (one group of control bytes) have 16 tags.
            for from in 0..=240u16 {
                let mut tags: Vec<u64> = (from..from + 16).map(|b| hash(b as u8) >> 57).collect();
                tags.sort_unstable();
                tags.dedup();
                assert_eq!(tags.len(), 16, "head {head:?}, bytes {from}..{}", from + 16);
            }
        }
        // Heads are spread: the neighbours of two heads are not.
        let (a, b) = (map.hash(b"k/0000000120"), map.hash(b"k/0000000130"));
        assert_ne!(b.wrapping_sub(a) & !TAG, 10);
        assert_eq!(map.hash(b""), map.hasher.hash_one(b""));
    }

    #[test]
    fn runs_of_neighbours_are_found_and_removed() {
        let map: KeyMap<Item> = KeyMap::default();
        // 300 heads of 256 neighbours each: long runs of full buckets.
        let items: Vec<Item> = (0..300u32)
            .flat_map(|h| (0..=255u8).map(move |b| Item([&h.to_be_bytes()[..], b"/", &[b]].concat())))
            .collect();
        let guard = crossbeam_epoch::pin();
        for it in &items {
            // SAFETY: `items` outlives the map's every use below and is
            // freed only after the map is dropped (it was declared before
            // the map is last used, and no item is freed on removal).
            let held = unsafe { map.insert(map.hash(&it.0), it) };
            assert!(std::ptr::eq(held, it));
        }
        assert_eq!(map.len(), items.len());
        for it in &items {
            let found = map.get(map.hash(&it.0), &it.0, &guard).expect("inserted key");
            assert!(std::ptr::eq(found, it));
        }
        for absent in [&b"\0\0\x01\x2d/"[..], b"\0\0\x01\x2c", b"", b"/\x05"] {
            assert!(map.get(map.hash(absent), absent, &guard).is_none(), "{absent:?}");
        }
        for it in items.iter().step_by(2) {
            assert!(map.remove(map.hash(&it.0), it));
            assert!(!map.remove(map.hash(&it.0), it));
        }
        for (i, it) in items.iter().enumerate() {
            assert_eq!(map.get(map.hash(&it.0), &it.0, &guard).is_some(), i % 2 == 1);
        }
        map.shrink_to_fit();
        assert_eq!(map.len(), items.len() / 2);
    }
}
