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
//! The map does not own what its pointers lead to. [`KeyMap::insert`]'s
//! contract (see there) is what makes [`KeyMap::get`] safe: an item stays
//! allocated while it is in the map, and after its removal it is freed only
//! through the epoch collector, so an item found under an epoch guard
//! outlives the guard's borrow.

use std::ptr::NonNull;

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

/// What the map holds: something that carries its own key.
pub trait Keyed {
    /// The key bytes the item is found by.
    fn map_key(&self) -> &[u8];
}

/// A pointer to an item the map does not own.
struct Ptr<T>(NonNull<T>);

// SAFETY: a `Ptr` is only read through as a shared reference (`&T`), from
// whichever thread holds the shard; it is as safe to send and share as `&T`
// is, which needs `T: Sync`.
unsafe impl<T: Sync> Send for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Ptr<T> {}

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
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
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
