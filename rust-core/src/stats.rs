//! Engine counters and the [`Stats`] snapshot of them.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::cache::CacheStats;

const STRIPES: usize = 16;

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

fn stripe() -> usize {
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

/// A counter split across cache lines so threads bumping it do not contend.
#[derive(Default)]
pub struct StripedCounter {
    cells: [CachePadded<AtomicU64>; STRIPES],
}

impl StripedCounter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.cells[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    /// The sum over all stripes.
    pub fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Counters the engine updates as it works.
#[derive(Default)]
pub struct Counters {
    pub(crate) reads: StripedCounter,
    pub(crate) writes: StripedCounter,
    pub(crate) deletes: StripedCounter,
    pub(crate) live_keys: AtomicI64,
    pub(crate) compactions: StripedCounter,
    pub(crate) compaction_bytes_reclaimed: StripedCounter,
}

/// A point-in-time view of the engine's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Keys looked up (each key of a multi-get counts).
    pub reads: u64,
    /// Put operations committed (each op of a batch counts).
    pub writes: u64,
    /// Delete operations committed.
    pub deletes: u64,
    /// Keys whose newest version is a value (expired keys count until reclaimed).
    pub keys: u64,
    /// Log bytes held by the newest version of live keys.
    pub live_bytes: u64,
    /// Log bytes held by superseded versions, deletes and tombstones.
    pub dead_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Compaction passes that rewrote at least one segment.
    pub compactions: u64,
    /// Bytes of segment files removed by compaction, net of what it wrote.
    pub compaction_bytes_reclaimed: u64,
    /// fdatasync calls on the log.
    pub syncs: u64,
    /// Commits made durable by those syncs.
    pub synced_commits: u64,
    /// Average commits per sync (the group-commit batch); 0 before the first sync.
    pub avg_group_commit: f64,
    /// Segments the writer started in a retired segment's file (see
    /// [`crate::Options::recycle_segments`]) since open.
    pub recycled_segments: u64,
    /// Retired segment files kept for reuse now.
    pub free_segment_files: u64,
    /// Sequence number of the newest visible commit.
    pub last_seq: u64,
    /// Open snapshots (including those held by iterators).
    pub open_snapshots: u64,
    /// Value cache counters.
    pub cache: CacheStats,
}

impl Counters {
    /// Accounts the change in live keys of one op.
    pub(crate) fn account(&self, live_keys: i64) {
        if live_keys != 0 {
            self.live_keys.fetch_add(live_keys, Ordering::Relaxed);
        }
    }
}
