//! The value cache: recently and frequently read values, held in memory up to
//! a budget in bytes.
//!
//! # What it owns
//!
//! A [`ValueCache`] maps keys to values (`Arc<[u8]>`, so a value handed out
//! stays valid after the cache lets go of it). It owns its entries, their
//! bookkeeping, and per-shard counters that [`ValueCache::stats`] sums.
//!
//! # What it promises
//!
//! - **Byte bound.** Each entry is charged `value.len() + ENTRY_OVERHEAD`
//!   ([`ENTRY_OVERHEAD`] covers the cache's own memory per entry, not the
//!   key's heap bytes). The capacity is split exactly between the shards and no
//!   shard ever holds more than its share, so resident bytes never exceed the
//!   capacity. An entry larger than one shard's share is not cached. Capacity 0
//!   disables the cache (every get is a counted miss, every insert a no-op).
//! - **Never stale.** `insert` replaces the value of a key that is present;
//!   when the new value cannot be cached, the old one is dropped all the same.
//! - **Exact counters.** Every get counts one hit or one miss, every stored
//!   insert one insert; no count is lost under concurrency.
//! - **No panics** on any input, and no `unsafe`.
//!
//! # Policy: S3-FIFO
//!
//! Each shard runs S3-FIFO (Yang et al., SOSP 2023): new entries enter a
//! *small* FIFO (about 3% of the shard's bytes); an entry read at least once
//! while there moves to the *main* FIFO when it reaches the head, otherwise it
//! is evicted and its key hash is remembered in a *ghost* FIFO. A key found in
//! the ghost when it is inserted again goes straight to main. Main is a CLOCK:
//! an entry at the head with a nonzero frequency is moved to the tail with its
//! frequency decremented, else evicted. Frequencies are 2 bits (0..=3).
//!
//! Why this policy: one-time reads (scans, compaction, a range read) pass
//! through the small FIFO without displacing the working set, which plain LRU
//! cannot do; and a hit only bumps a counter in the entry, where LRU relinks
//! the entry on every hit, so the time a get holds its shard stays a table
//! probe. Eviction is O(1) amortised: each rotation in main consumes one unit
//! of an entry's frequency.
//!
//! # Concurrency
//!
//! Keys are spread over a power-of-two number of shards by an `ahash` hash
//! (randomly seeded per cache, so crafted keys cannot be aimed at one shard or
//! one probe chain). Each shard is a `parking_lot::Mutex`, padded to its own
//! cache line, over its entries and counters. What makes two threads scale is
//! the shard count (16 per core): a get holds its shard for one table probe,
//! so with many shards two threads seldom want the same one. A read-write
//! lock measured no faster: a get under a read lock still writes the lock
//! word, and would also need atomic hit/miss counters and an atomic
//! frequency; under the mutex every field is a plain integer and every count
//! is exact by construction (`docs/performance/value-cache.md` has the measurements).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

/// Bytes charged per entry on top of the value's length.
///
/// It stands for the cache's own memory per entry on a 64-bit target: the
/// entry record (48 bytes with a `u64` key, 64 with a `Vec<u8>` key, plus the
/// slack of its growable array), its slot in the hash table (8 bytes at a
/// load of at most one half), the `Arc` header of the value (16 bytes) and a
/// ghost record (about 32 bytes). Heap memory owned by the key itself is not
/// charged.
pub const ENTRY_OVERHEAD: u64 = 128;

/// The shard count [`ValueCache::new`] aims for per available core.
const SHARDS_PER_CORE: usize = 16;
/// [`ValueCache::new`] halves the shard count until each shard gets at least
/// this many bytes, so a small cache keeps room for large values.
const MIN_SHARD_BYTES: u64 = 1 << 20;
/// Upper bound on the shard count, whatever [`ValueCache::with_shards`] is asked.
const MAX_SHARDS: usize = 1 << 12;
/// Upper bound on the entries of one shard (it takes a shard of over 128 GiB
/// to reach it), which keeps node indices within 30 bits.
const MAX_NODES: usize = 1 << 30;
/// The small FIFO's share of a shard's bytes is `1 / SMALL_FIFO_DIVISOR`.
/// The paper suggests 10%; about 3% did better on the Zipf hit-ratio
/// benchmark, with or without scans mixed in (docs/performance/value-cache.md).
const SMALL_FIFO_DIVISOR: u64 = 32;
/// An entry at the head of the small FIFO that was read at least this many
/// times moves to main.
const PROMOTE_FREQ: u8 = 1;
/// Frequencies saturate here (2 bits).
const MAX_FREQ: u8 = 3;
/// "No node" in the list links.
const NIL: u32 = u32::MAX;
/// A free slot of the hash table.
const EMPTY: u64 = u64::MAX;

/// Counters of a [`ValueCache`], summed over its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Gets that found their key.
    pub hits: u64,
    /// Gets that did not.
    pub misses: u64,
    /// Inserts that stored their value (replacements included; inserts of a
    /// value too large for a shard are not counted).
    pub inserts: u64,
    /// Entries dropped by the policy to make room (not removals, replacements
    /// or invalidations).
    pub evictions: u64,
    /// Bytes charged for the entries held: `sum(value.len() + ENTRY_OVERHEAD)`.
    pub resident_bytes: u64,
    /// Entries held.
    pub entries: u64,
    /// The byte budget the cache was created with.
    pub capacity_bytes: u64,
}

/// A byte-bounded, sharded, concurrent cache from `K` to `Arc<[u8]>` values.
///
/// See the [module documentation](self) for the policy and the promises.
pub struct ValueCache<K> {
    shards: Box<[CachePadded<Mutex<Shard<K>>>]>,
    hasher: ahash::RandomState,
    shard_mask: usize,
    capacity_bytes: u64,
}

impl<K> ValueCache<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Creates a cache holding at most `capacity_bytes`, with a shard count
    /// chosen from the available parallelism (16 shards per core, fewer when
    /// shards would get less than 1 MiB each).
    pub fn new(capacity_bytes: u64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut shards = cores
            .saturating_mul(SHARDS_PER_CORE)
            .checked_next_power_of_two()
            .map_or(MAX_SHARDS, |n| n.min(MAX_SHARDS));
        while shards > 1 && capacity_bytes / (shards as u64) < MIN_SHARD_BYTES {
            shards /= 2;
        }
        Self::with_shards(capacity_bytes, shards)
    }

    /// Creates a cache holding at most `capacity_bytes` over `shards` shards,
    /// rounded up to a power of two and clamped to `1..=4096`. Each shard gets
    /// an equal share of the capacity (the remainder goes to the first ones).
    pub fn with_shards(capacity_bytes: u64, shards: usize) -> Self {
        let count = shards
            .clamp(1, MAX_SHARDS)
            .checked_next_power_of_two()
            .unwrap_or(MAX_SHARDS);
        let base = capacity_bytes / count as u64;
        let extra = capacity_bytes % count as u64;
        let shards = (0..count as u64)
            .map(|i| CachePadded::new(Mutex::new(Shard::new(base + u64::from(i < extra)))))
            .collect();
        Self {
            shards,
            hasher: ahash::RandomState::new(),
            shard_mask: count - 1,
            capacity_bytes,
        }
    }

    /// Returns the value cached for `key`, counting a hit or a miss.
    pub fn get(&self, key: &K) -> Option<Arc<[u8]>> {
        let hash = self.hasher.hash_one(key);
        self.shard(hash).lock().get(hash, key)
    }

    /// Lends the value cached for `key` to `f` under its shard's lock (so `f`
    /// must be short, a copy, and must not block), without counting a hit or
    /// a miss and without raising the entry's frequency: a probe for a scan,
    /// whose one-time reads must neither promote the entries they meet to
    /// the main FIFO nor skew the hit ratio the counters report.
    pub fn peek_with<R>(&self, key: &K, f: impl FnOnce(&Arc<[u8]>) -> R) -> Option<R> {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash).lock();
        let pos = shard.find(hash, key)?;
        Some(f(&shard.nodes[slot_node(shard.table[pos]) as usize].value))
    }

    /// Caches `value` under `key`, replacing the key's previous value. A value
    /// whose charge exceeds a shard's share of the capacity is not cached (and
    /// the key's previous value, if any, is dropped).
    pub fn insert(&self, key: K, value: Arc<[u8]>) {
        let hash = self.hasher.hash_one(&key);
        let displaced = self.shard(hash).lock().insert(hash, key, value);
        // The displaced value, if this held its last reference, is freed here,
        // outside the lock.
        drop(displaced);
    }

    /// Drops the value cached for `key`, if any.
    pub fn remove(&self, key: &K) {
        let hash = self.hasher.hash_one(key);
        let removed = self.shard(hash).lock().remove(hash, key);
        drop(removed);
    }

    /// Returns the counters, summed over the shards (each shard is read at one
    /// instant; the sum is not one global instant).
    pub fn stats(&self) -> CacheStats {
        let mut stats = CacheStats {
            capacity_bytes: self.capacity_bytes,
            ..CacheStats::default()
        };
        for shard in self.shards.iter() {
            let shard = shard.lock();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.inserts += shard.inserts;
            stats.evictions += shard.evictions;
            stats.resident_bytes += shard.resident;
            stats.entries += shard.nodes.len() as u64;
        }
        stats
    }

    /// Returns the byte budget the cache was created with.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard<K>> {
        // The high half of the hash picks the shard; the low half, the slot
        // in the shard's table.
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }
}

impl<K> std::fmt::Debug for ValueCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueCache")
            .field("capacity_bytes", &self.capacity_bytes)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// One shard: a dense array of nodes, an open-addressing hash table over
/// them (linear probing, backward-shift deletion), the small and main FIFOs
/// threaded through the nodes as doubly linked lists, the ghost, and the
/// counters.
struct Shard<K> {
    budget: u64,
    small_budget: u64,
    resident: u64,
    /// A power of two at least twice the node count. A used slot holds the
    /// low 32 bits of the key's hash above the node's index, so a probe skips
    /// other keys without reading their nodes, and a slot's home position is
    /// known without its node.
    table: Vec<u64>,
    nodes: Vec<Node<K>>,
    small: List,
    main: List,
    ghost: Ghost,
    hits: u64,
    misses: u64,
    inserts: u64,
    evictions: u64,
}

struct Node<K> {
    key: K,
    value: Arc<[u8]>,
    hash: u64,
    prev: u32,
    next: u32,
    /// Reads since the entry entered its FIFO (or last rotated in main),
    /// saturating at `MAX_FREQ`.
    freq: u8,
    in_main: bool,
}

impl<K> Node<K> {
    fn charge(&self) -> u64 {
        charge_of(&self.value)
    }
}

fn charge_of(value: &[u8]) -> u64 {
    (value.len() as u64).saturating_add(ENTRY_OVERHEAD)
}

fn slot(hash: u64, idx: u32) -> u64 {
    (hash << 32) | u64::from(idx)
}

fn slot_node(slot: u64) -> u32 {
    slot as u32
}

fn slot_home(slot: u64, mask: usize) -> usize {
    (slot >> 32) as usize & mask
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    bytes: u64,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        bytes: 0,
    };

    fn is_empty(&self) -> bool {
        self.head == NIL
    }
}

impl<K: Hash + Eq> Shard<K> {
    fn new(budget: u64) -> Self {
        Self {
            budget,
            small_budget: budget / SMALL_FIFO_DIVISOR,
            resident: 0,
            table: vec![EMPTY; 8],
            nodes: Vec::new(),
            small: List::EMPTY,
            main: List::EMPTY,
            ghost: Ghost::default(),
            hits: 0,
            misses: 0,
            inserts: 0,
            evictions: 0,
        }
    }

    fn get(&mut self, hash: u64, key: &K) -> Option<Arc<[u8]>> {
        let Some(pos) = self.find(hash, key) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        let node = &mut self.nodes[slot_node(self.table[pos]) as usize];
        // Skipping the write once saturated keeps a hot entry's line clean,
        // so it is not passed back and forth between cores.
        if node.freq < MAX_FREQ {
            node.freq += 1;
        }
        Some(Arc::clone(&node.value))
    }

    /// Inserts or replaces; returns the value it displaced, to be dropped
    /// outside the lock.
    fn insert(&mut self, hash: u64, key: K, value: Arc<[u8]>) -> Option<Arc<[u8]>> {
        let charge = charge_of(&value);
        let found = self.find(hash, &key);
        if charge > self.budget || (found.is_none() && self.nodes.len() >= MAX_NODES) {
            return found.map(|pos| self.remove_at(pos).value);
        }
        self.inserts += 1;
        if let Some(pos) = found {
            // In place: the entry keeps its place in the policy.
            let idx = slot_node(self.table[pos]);
            let node = &mut self.nodes[idx as usize];
            let old = std::mem::replace(&mut node.value, value);
            let list = if node.in_main { &mut self.main } else { &mut self.small };
            list.bytes = list.bytes - charge_of(&old) + charge;
            self.resident = self.resident - charge_of(&old) + charge;
            self.make_room(0);
            return Some(old);
        }
        // A key evicted recently (still in the ghost) goes straight to main.
        let in_main = self.ghost.remove(hash);
        self.make_room(charge);
        self.push(Node {
            key,
            value,
            hash,
            prev: NIL,
            next: NIL,
            freq: 0,
            in_main,
        });
        None
    }

    fn remove(&mut self, hash: u64, key: &K) -> Option<Arc<[u8]>> {
        let pos = self.find(hash, key)?;
        Some(self.remove_at(pos).value)
    }

    /// Evicts until `needed` more bytes fit in the budget.
    fn make_room(&mut self, needed: u64) {
        while self.resident.saturating_add(needed) > self.budget {
            if !self.small.is_empty() && (self.small.bytes > self.small_budget || self.main.is_empty()) {
                self.evict_small();
            } else if !self.main.is_empty() {
                self.evict_main();
            } else {
                break;
            }
        }
    }

    fn evict_small(&mut self) {
        let idx = self.small.head;
        let node = &mut self.nodes[idx as usize];
        if node.freq >= PROMOTE_FREQ {
            node.freq = 0;
            self.unlink(idx);
            self.link(idx, true);
        } else {
            let hash = node.hash;
            self.remove_node(idx);
            self.evictions += 1;
            self.ghost.insert(hash, self.nodes.len().max(1));
        }
    }

    fn evict_main(&mut self) {
        let idx = self.main.head;
        let freq = &mut self.nodes[idx as usize].freq;
        if *freq > 0 {
            *freq -= 1;
            self.unlink(idx);
            self.link(idx, true);
        } else {
            self.remove_node(idx);
            self.evictions += 1;
        }
    }

    /// The table position of `key`.
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        let mask = self.table.len() - 1;
        let tag = hash << 32;
        let mut pos = hash as usize & mask;
        loop {
            let slot = self.table[pos];
            if slot == EMPTY {
                return None;
            }
            if slot & !u64::from(NIL) == tag && self.nodes[slot_node(slot) as usize].key == *key {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// The table position that holds node `idx`.
    fn position_of(&self, idx: u32) -> usize {
        let mask = self.table.len() - 1;
        let mut pos = self.nodes[idx as usize].hash as usize & mask;
        while slot_node(self.table[pos]) != idx {
            pos = (pos + 1) & mask;
        }
        pos
    }

    /// Puts `slot` in the first free position from its home.
    fn place(table: &mut [u64], slot: u64) {
        let mask = table.len() - 1;
        let mut pos = slot_home(slot, mask);
        while table[pos] != EMPTY {
            pos = (pos + 1) & mask;
        }
        table[pos] = slot;
    }

    fn push(&mut self, node: Node<K>) {
        if (self.nodes.len() + 1) * 2 > self.table.len() {
            let mut table = vec![EMPTY; self.table.len() * 2];
            for &slot in self.table.iter().filter(|&&slot| slot != EMPTY) {
                Self::place(&mut table, slot);
            }
            self.table = table;
        }
        let idx = self.nodes.len() as u32;
        let in_main = node.in_main;
        Self::place(&mut self.table, slot(node.hash, idx));
        self.resident += node.charge();
        self.nodes.push(node);
        self.link(idx, in_main);
    }

    fn remove_node(&mut self, idx: u32) -> Node<K> {
        let pos = self.position_of(idx);
        self.remove_at(pos)
    }

    /// Removes the node at table position `pos`, keeping the node array dense
    /// by moving the last node into the freed index.
    fn remove_at(&mut self, pos: usize) -> Node<K> {
        let idx = slot_node(self.table[pos]);
        self.unindex(pos);
        self.unlink(idx);
        let last = (self.nodes.len() - 1) as u32;
        if idx != last {
            let last_pos = self.position_of(last);
            self.table[last_pos] = slot(self.nodes[last as usize].hash, idx);
        }
        let node = self.nodes.swap_remove(idx as usize);
        if idx != last {
            self.relink_moved(idx);
        }
        self.resident -= node.charge();
        node
    }

    /// Backward-shift deletion: closes the hole at `hole` so that every probe
    /// chain stays unbroken, without tombstones.
    fn unindex(&mut self, mut hole: usize) {
        let mask = self.table.len() - 1;
        let mut pos = (hole + 1) & mask;
        loop {
            let slot = self.table[pos];
            if slot == EMPTY {
                break;
            }
            // The slot may fill the hole if the hole lies on its probe path,
            // i.e. between its home position and where it sits now.
            let home = slot_home(slot, mask);
            if pos.wrapping_sub(home) & mask >= pos.wrapping_sub(hole) & mask {
                self.table[hole] = slot;
                hole = pos;
            }
            pos = (pos + 1) & mask;
        }
        self.table[hole] = EMPTY;
    }

    fn list(&mut self, main: bool) -> &mut List {
        if main {
            &mut self.main
        } else {
            &mut self.small
        }
    }

    /// Appends node `idx` at the tail of small or main.
    fn link(&mut self, idx: u32, main: bool) {
        let charge = self.nodes[idx as usize].charge();
        let list = self.list(main);
        let tail = list.tail;
        list.tail = idx;
        list.bytes += charge;
        if tail == NIL {
            list.head = idx;
        }
        let node = &mut self.nodes[idx as usize];
        node.in_main = main;
        node.prev = tail;
        node.next = NIL;
        if tail != NIL {
            self.nodes[tail as usize].next = idx;
        }
    }

    fn unlink(&mut self, idx: u32) {
        let node = &self.nodes[idx as usize];
        let (prev, next, main, charge) = (node.prev, node.next, node.in_main, node.charge());
        self.set_next(prev, next, main);
        self.set_prev(next, prev, main);
        self.list(main).bytes -= charge;
    }

    /// Points the neighbours of a node just moved to index `idx` at it.
    fn relink_moved(&mut self, idx: u32) {
        let node = &self.nodes[idx as usize];
        let (prev, next, main) = (node.prev, node.next, node.in_main);
        self.set_next(prev, idx, main);
        self.set_prev(next, idx, main);
    }

    /// Sets the successor of `idx` (the list head when `idx` is `NIL`).
    fn set_next(&mut self, idx: u32, next: u32, main: bool) {
        match self.nodes.get_mut(idx as usize) {
            Some(node) => node.next = next,
            None => self.list(main).head = next,
        }
    }

    /// Sets the predecessor of `idx` (the list tail when `idx` is `NIL`).
    fn set_prev(&mut self, idx: u32, prev: u32, main: bool) {
        match self.nodes.get_mut(idx as usize) {
            Some(node) => node.prev = prev,
            None => self.list(main).tail = prev,
        }
    }
}

/// Hashes of keys recently evicted from the small FIFO, oldest first, bounded
/// by the number of entries in the shard.
#[derive(Default)]
struct Ghost {
    fifo: VecDeque<u64>,
    /// How many hashes have left the front of `fifo` so far, which makes
    /// `popped + i` the absolute position of `fifo[i]`.
    popped: u64,
    /// Hash -> absolute position of its newest copy in `fifo`. Older copies
    /// left in `fifo` no longer match and are ignored when they leave it.
    live: HashMap<u64, u64, ahash::RandomState>,
}

impl Ghost {
    fn insert(&mut self, hash: u64, capacity: usize) {
        while self.fifo.len() >= capacity {
            if let Some(old) = self.fifo.pop_front() {
                if self.live.get(&old) == Some(&self.popped) {
                    self.live.remove(&old);
                }
                self.popped += 1;
            }
        }
        self.live.insert(hash, self.popped + self.fifo.len() as u64);
        self.fifo.push_back(hash);
    }

    /// Forgets `hash`; returns whether it was remembered.
    fn remove(&mut self, hash: u64) -> bool {
        self.live.remove(&hash).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(len: usize) -> Arc<[u8]> {
        vec![len as u8; len].into()
    }

    /// xorshift64*: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    impl<K: Hash + Eq + Clone + Send + Sync + 'static> ValueCache<K> {
        /// Asserts every structural invariant of every shard.
        fn check(&self) {
            for shard in self.shards.iter() {
                shard.lock().check();
            }
        }
    }

    impl<K: Hash + Eq> Shard<K> {
        fn check(&self) {
            assert!(self.resident <= self.budget);
            let charged: u64 = self.nodes.iter().map(Node::charge).sum();
            assert_eq!(self.resident, charged);
            assert_eq!(self.resident, self.small.bytes + self.main.bytes);
            assert!(self.table.len() >= 2 * self.nodes.len());
            assert_eq!(
                self.table.iter().filter(|&&slot| slot != EMPTY).count(),
                self.nodes.len()
            );
            for (idx, node) in self.nodes.iter().enumerate() {
                let pos = self.find(node.hash, &node.key).expect("indexed");
                assert_eq!(self.table[pos], slot(node.hash, idx as u32));
            }
            let mut linked = 0;
            for (list, main) in [(self.small, false), (self.main, true)] {
                let (mut prev, mut idx, mut bytes) = (NIL, list.head, 0);
                while idx != NIL {
                    let node = &self.nodes[idx as usize];
                    assert_eq!(node.prev, prev);
                    assert_eq!(node.in_main, main);
                    assert!(node.freq <= MAX_FREQ);
                    bytes += node.charge();
                    linked += 1;
                    (prev, idx) = (idx, node.next);
                }
                assert_eq!(list.tail, prev);
                assert_eq!(list.bytes, bytes);
            }
            assert_eq!(linked, self.nodes.len());
            assert!(self.ghost.live.len() <= self.ghost.fifo.len());
        }
    }

    #[test]
    fn byte_bound_holds_under_random_mixed_inserts() {
        let cache = ValueCache::with_shards(64 * 1024, 4);
        let mut rng = Rng(7);
        for step in 0..50_000 {
            let key = rng.below(3_000);
            match rng.below(10) {
                0 => cache.remove(&key),
                1..=3 => drop(cache.get(&key)),
                // Up to 20 KB: some values exceed a shard's 16 KiB.
                _ => cache.insert(key, value(rng.below(20_000) as usize)),
            }
            let stats = cache.stats();
            assert!(stats.resident_bytes <= stats.capacity_bytes);
            if step % 1_000 == 0 {
                cache.check();
            }
        }
        let stats = cache.stats();
        assert!(stats.evictions > 0 && stats.entries > 0);
        cache.check();
    }

    #[test]
    fn a_peek_counts_nothing_and_does_not_save_an_entry_from_eviction() {
        let per_entry = 100 + ENTRY_OVERHEAD;
        // One shard of two entries.
        let cache = ValueCache::with_shards(2 * per_entry, 1);
        cache.insert(0u32, value(100));
        cache.insert(1, value(100));
        let before = cache.stats();
        assert_eq!(cache.peek_with(&0, |v| v.len()), Some(100));
        assert_eq!(cache.peek_with(&7, |v| v.len()), None);
        assert_eq!(cache.stats(), before, "a peek is neither a hit nor a miss");
        // Key 0 was only peeked at, so it is evicted like any unread entry;
        // key 1 was read, so it moves to main and stays.
        assert!(cache.get(&1).is_some());
        cache.insert(2, value(100));
        assert_eq!(cache.peek_with(&0, |_| ()), None);
        assert!(cache.peek_with(&1, |_| ()).is_some());
        cache.check();
    }

    #[test]
    fn counters_are_exact() {
        let per_entry = 100 + ENTRY_OVERHEAD;
        // One shard of ten entries; the small FIFO's share is under one.
        let cache = ValueCache::with_shards(10 * per_entry, 1);
        for key in 0..10u32 {
            cache.insert(key, value(100));
        }
        for key in 0..5 {
            assert!(cache.get(&key).is_some());
        }
        assert!(cache.get(&100).is_none());
        // Room for key 10: keys 0..5 were read, so they move to main; key 5
        // was not, so it is evicted.
        cache.insert(10, value(100));
        assert!(cache.get(&5).is_none());
        assert!(cache.get(&0).is_some());
        assert!(cache.get(&10).is_some());
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 7,
                misses: 2,
                inserts: 11,
                evictions: 1,
                resident_bytes: 10 * per_entry,
                entries: 10,
                capacity_bytes: 10 * per_entry,
            }
        );
        cache.check();
    }

    #[test]
    fn replace_adjusts_resident_bytes() {
        let cache = ValueCache::with_shards(1 << 20, 2);
        cache.insert("k", value(100));
        assert_eq!(cache.stats().resident_bytes, 100 + ENTRY_OVERHEAD);
        cache.insert("k", value(300));
        assert_eq!(cache.get(&"k").map(|v| v.len()), Some(300));
        assert_eq!(cache.stats().resident_bytes, 300 + ENTRY_OVERHEAD);
        cache.insert("k", value(7));
        let stats = cache.stats();
        assert_eq!((stats.resident_bytes, stats.entries), (7 + ENTRY_OVERHEAD, 1));
        assert_eq!((stats.inserts, stats.evictions), (3, 0));
        cache.check();
    }

    #[test]
    fn remove_drops_the_entry() {
        let cache = ValueCache::with_shards(1 << 20, 2);
        for key in 0..100u64 {
            cache.insert(key, value(key as usize));
        }
        for key in (0..100u64).step_by(2) {
            cache.remove(&key);
        }
        cache.remove(&1_000);
        for key in 0..100u64 {
            assert_eq!(cache.get(&key).is_some(), key % 2 == 1, "key {key}");
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, 50);
        let expected: u64 = (1..100).step_by(2).map(|k| k + ENTRY_OVERHEAD).sum();
        assert_eq!(stats.resident_bytes, expected);
        cache.check();
        for key in 0..100u64 {
            cache.remove(&key);
        }
        assert_eq!(cache.stats().resident_bytes, 0);
        cache.check();
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let cache = ValueCache::new(0);
        cache.insert(1u8, value(0));
        cache.insert(2u8, value(10));
        assert!(cache.get(&1).is_none());
        assert!(cache.get(&2).is_none());
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.hits), (2, 0));
        assert_eq!((stats.inserts, stats.entries, stats.resident_bytes), (0, 0, 0));
        assert_eq!(cache.capacity_bytes(), 0);
    }

    #[test]
    fn oversize_entry_is_not_cached_and_invalidates_the_old_value() {
        // Four shards of 1 KiB each.
        let cache = ValueCache::with_shards(4096, 4);
        let fits = (1024 - ENTRY_OVERHEAD) as usize;
        cache.insert(1u64, value(fits + 1));
        assert!(cache.get(&1).is_none());
        cache.insert(1, value(fits));
        assert_eq!(cache.get(&1).map(|v| v.len()), Some(fits));
        cache.insert(1, value(1 << 20));
        assert!(cache.get(&1).is_none(), "a stale value was served");
        let stats = cache.stats();
        assert_eq!((stats.inserts, stats.entries, stats.resident_bytes), (1, 0, 0));
        cache.check();
    }

    #[test]
    fn shard_counts_are_clamped_powers_of_two() {
        for (asked, got) in [(0, 1), (1, 1), (3, 4), (8, 8), (usize::MAX, MAX_SHARDS)] {
            let cache = ValueCache::<u64>::with_shards(1000, asked);
            assert_eq!(cache.shards.len(), got);
            let budgets: u64 = cache.shards.iter().map(|s| s.lock().budget).sum();
            assert_eq!(budgets, 1000);
        }
        let small = ValueCache::<u64>::new(1 << 20);
        assert_eq!(small.shards.len(), 1);
        let big = ValueCache::<u64>::new(u64::MAX);
        assert!(big.shards.len().is_power_of_two());
        big.insert(1, value(10));
        assert_eq!(big.stats().capacity_bytes, u64::MAX);
    }

    #[test]
    fn concurrent_use_keeps_the_bound_and_every_count() {
        const THREADS: u64 = 4;
        const OPS: u64 = 40_000;
        let cache = ValueCache::with_shards(256 * 1024, 8);
        let totals: Vec<(u64, u64, u64)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let cache = &cache;
                    scope.spawn(move || {
                        let mut rng = Rng(t + 1);
                        let (mut hits, mut misses, mut inserts) = (0, 0, 0);
                        for _ in 0..OPS {
                            let key = rng.below(4_000);
                            if cache.get(&key).is_some() {
                                hits += 1;
                            } else {
                                misses += 1;
                                cache.insert(key, value(64 + rng.below(1_000) as usize));
                                inserts += 1;
                            }
                            if rng.below(100) == 0 {
                                cache.remove(&rng.below(4_000));
                                let stats = cache.stats();
                                assert!(stats.resident_bytes <= stats.capacity_bytes);
                            }
                        }
                        (hits, misses, inserts)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let stats = cache.stats();
        assert_eq!(stats.hits, totals.iter().map(|t| t.0).sum::<u64>());
        assert_eq!(stats.misses, totals.iter().map(|t| t.1).sum::<u64>());
        assert_eq!(stats.inserts, totals.iter().map(|t| t.2).sum::<u64>());
        assert_eq!(stats.hits + stats.misses, THREADS * OPS);
        assert!(stats.resident_bytes <= stats.capacity_bytes);
        assert!(stats.evictions > 0);
        cache.check();
    }

    /// A hot set read repeatedly, then a scan of one-time keys ten times the
    /// cache's size, read through the cache. S3-FIFO keeps the hot set;
    /// LRU (a model of it runs the same trace) loses all of it.
    #[test]
    fn hot_set_survives_a_scan_that_flushes_lru() {
        const CAPACITY: usize = 100;
        const HOT: u64 = 50;
        let cache = ValueCache::with_shards(CAPACITY as u64 * (100 + ENTRY_OVERHEAD), 1);
        let mut lru = std::collections::VecDeque::new();
        let mut read_through = |key: u64| {
            if cache.get(&key).is_none() {
                cache.insert(key, value(100));
            }
            if let Some(pos) = lru.iter().position(|&k| k == key) {
                lru.remove(pos);
            } else if lru.len() == CAPACITY {
                lru.pop_front();
            }
            lru.push_back(key);
        };
        for _ in 0..3 {
            (0..HOT).for_each(&mut read_through);
        }
        (1_000..1_000 + 10 * CAPACITY as u64).for_each(&mut read_through);

        assert!((0..HOT).all(|key| !lru.contains(&key)), "LRU kept the hot set");
        let before = cache.stats();
        for key in 0..HOT {
            assert!(cache.get(&key).is_some(), "hot key {key} was evicted");
        }
        assert_eq!(cache.stats().hits - before.hits, HOT);
        cache.check();
    }

    #[test]
    fn node_fits_the_overhead_constant() {
        // The record, its table slot and the Arc header must stay within the
        // charge; the remainder covers growth slack and the ghost record.
        let record = std::mem::size_of::<Node<Vec<u8>>>() as u64;
        assert!(record <= 64, "{record}");
        assert!(record + 2 * 8 + 16 + 32 <= ENTRY_OVERHEAD);
    }
}
