//! PLACEHOLDER replaced by the real cache before commit.
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    pub resident_bytes: u64,
    pub entries: u64,
    pub capacity_bytes: u64,
}
pub struct ValueCache<K> {
    m: Mutex<HashMap<K, Arc<[u8]>>>,
    cap: u64,
}
impl<K: Hash + Eq + Clone + Send + Sync + 'static> ValueCache<K> {
    pub fn new(cap: u64) -> Self {
        ValueCache {
            m: Mutex::new(HashMap::new()),
            cap,
        }
    }
    pub fn get(&self, k: &K) -> Option<Arc<[u8]>> {
        self.m.lock().get(k).cloned()
    }
    pub fn insert(&self, k: K, v: Arc<[u8]>) {
        if self.cap > 0 {
            self.m.lock().insert(k, v);
        }
    }
    pub fn remove(&self, k: &K) {
        self.m.lock().remove(k);
    }
    pub fn stats(&self) -> CacheStats {
        CacheStats::default()
    }
    pub fn capacity_bytes(&self) -> u64 {
        self.cap
    }
}
