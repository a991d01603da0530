//! Sequence visibility and the snapshot registry.
//!
//! Commits get sequence numbers from the log in log order but finish their
//! index inserts in any order. [`Visibility`] publishes a sequence only once
//! it and every earlier one are fully in the index, so a reader at the
//! visible sequence sees whole commits: a batch appears all at once.
//!
//! [`Snapshots`] records the sequence of every open snapshot. The GC
//! watermark is the oldest sequence any reader may still ask for; the index
//! drops versions older than the newest one at or below it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Commits in flight at once are bounded by the number of writing threads
/// (each waits for its own commit to be published); this is far above that.
const RING: usize = 1 << 16;

/// Publishes commit sequence numbers in order.
pub struct Visibility {
    visible: AtomicU64,
    /// `done[s % RING]` is set when commit `s` is in the index.
    done: Box<[AtomicBool]>,
    /// Threads parked in `park_until_visible`, so advancing skips the unpark call
    /// (a lock and a hash lookup) when nobody waits.
    parked: AtomicUsize,
    /// No sequence past this one becomes visible: under `Always`, the
    /// durable point (a commit is applied to the index before its sync
    /// ends, and shown only once durable); `u64::MAX` otherwise.
    limit: AtomicU64,
}

/// Spins before parking: enough to cover a predecessor that is running on
/// the other core, far less than a context switch.
const SPINS: u32 = 100;

impl Visibility {
    /// Starts with every sequence up to `last_seq` visible.
    pub fn new(last_seq: u64) -> Visibility {
        Visibility {
            visible: AtomicU64::new(last_seq),
            done: (0..RING).map(|_| AtomicBool::new(false)).collect(),
            parked: AtomicUsize::new(0),
            limit: AtomicU64::new(u64::MAX),
        }
    }

    /// Like [`Visibility::new`], but no later sequence becomes visible
    /// before [`Visibility::raise_limit`] allows it.
    pub fn capped(last_seq: u64) -> Visibility {
        let v = Visibility::new(last_seq);
        v.limit.store(last_seq, Ordering::SeqCst);
        v
    }

    /// Lets sequences up to `seq` become visible (once applied), and
    /// advances over those already applied.
    pub fn raise_limit(&self, seq: u64) {
        if self.limit.fetch_max(seq, Ordering::SeqCst) < seq {
            self.advance();
        }
    }

    /// Marks commit `seq` as applied, without waiting for it to be
    /// visible, and advances the visible point if it can: a writer that
    /// raised the limit may be waiting for exactly this commit, and the
    /// writer of this one may not call [`Visibility::advance_until`] itself
    /// (the Go engine waits for its tickets on the Go side).
    pub fn mark_applied(&self, seq: u64) {
        // SeqCst, with the limit's SeqCst update and load: either this
        // thread's advance sees a raised limit, or the raiser's advance
        // sees this slot done.
        self.done[(seq as usize) % RING].store(true, Ordering::SeqCst);
        if seq <= self.limit.load(Ordering::SeqCst) {
            self.advance();
        }
    }

    /// The newest sequence readers may see.
    #[inline]
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The key under which waiters park: the address of `visible`, which
    /// nothing else in the process parks on.
    fn park_key(&self) -> usize {
        &self.visible as *const AtomicU64 as usize
    }

    /// Marks commit `seq` as applied and returns once it is visible. The
    /// thread that finds the next sequence done advances the visible point
    /// and wakes the writers it covered, so no thread holds a lock while it
    /// waits, and a waiter whose predecessor is descheduled sleeps instead
    /// of spinning. (The engine marks and waits apart, see
    /// [`Visibility::capped`].)
    #[cfg(test)]
    pub fn publish(&self, seq: u64) {
        self.mark_applied(seq);
        self.advance_until(seq);
    }

    /// Returns once `seq` is visible (it was marked applied, and allowed
    /// by the limit), advancing the visible point when it can.
    pub fn advance_until(&self, seq: u64) {
        let mut spins = 0u32;
        loop {
            if self.advance() >= seq {
                return;
            }
            // An earlier commit is still inserting.
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
                continue;
            }
            self.park_until_visible(seq, None);
            spins = 0;
        }
    }

    /// Waits until `seq` is visible, at most about `timeout`, spinning
    /// briefly and then parking as `advance_until` does, so a wait as long as a
    /// sync costs no CPU. Returns whether `seq` is visible.
    pub fn wait_visible(&self, seq: u64, timeout: Duration) -> bool {
        let mut spins = 0u32;
        while self.visible() < seq {
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
                continue;
            }
            self.park_until_visible(seq, Some(Instant::now() + timeout));
            return self.visible() >= seq;
        }
        true
    }

    /// Parks the calling thread until `advance` makes `seq` visible (or
    /// `deadline` passes); returns at once if it already is.
    fn park_until_visible(&self, seq: u64, deadline: Option<Instant>) {
        self.parked.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `park_key` is an address no other code parks on; the
        // validate closure only reads an atomic and does not panic; the
        // callbacks are no-ops. The waiter count is raised before the
        // validate re-checks `visible`, and `advance` stores `visible`
        // before it reads the count (both SeqCst), so a wake-up cannot
        // be missed: either the advancer sees this waiter, or the
        // validate sees the new `visible` and does not sleep.
        unsafe {
            parking_lot_core::park(
                self.park_key(),
                || self.visible.load(Ordering::SeqCst) < seq,
                || {},
                |_, _| {},
                parking_lot_core::ParkToken(seq as usize),
                deadline,
            );
        }
        self.parked.fetch_sub(1, Ordering::SeqCst);
    }

    /// Advances `visible` over every consecutive applied commit and wakes the
    /// writers waiting for them. Returns the visible sequence afterwards.
    ///
    /// The limit is read again before each step, not once: a thread that
    /// raises it while this one holds a claimed slot (claimed, `visible`
    /// not yet stored) fails to claim that slot and leaves the advance to
    /// this thread, which must then go on to the new limit. Reading it once
    /// lost that advance, and a writer parked for a sequence past the old
    /// limit slept until the next commit, for ever if none came (every
    /// writer of the Go engine waits on the one waiting there). With both
    /// SeqCst: either this thread's read after storing `visible` sees the
    /// raised limit, or the raiser's read of `visible` sees the stored one
    /// and claims the next slot itself.
    fn advance(&self) -> u64 {
        let mut advanced = false;
        let mut v = self.visible.load(Ordering::SeqCst);
        while v < self.limit.load(Ordering::SeqCst) {
            let slot = &self.done[((v + 1) as usize) % RING];
            // Claiming the slot (true -> false) gives one thread the right to
            // advance past v + 1; clearing it first keeps the slot clean for
            // sequence v + 1 + RING.
            if slot
                .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                break;
            }
            #[cfg(test)]
            tests::after_claim();
            v += 1;
            self.visible.store(v, Ordering::SeqCst);
            advanced = true;
        }
        if advanced && self.parked.load(Ordering::SeqCst) > 0 {
            // SAFETY: same key as `park_until_visible`; the filter and callback only
            // compare integers and do not panic or park.
            unsafe {
                parking_lot_core::unpark_filter(
                    self.park_key(),
                    |token| {
                        if token.0 as u64 <= v {
                            parking_lot_core::FilterOp::Unpark
                        } else {
                            parking_lot_core::FilterOp::Skip
                        }
                    },
                    |_| parking_lot_core::DEFAULT_UNPARK_TOKEN,
                );
            }
        }
        self.visible.load(Ordering::Acquire)
    }
}

/// Open snapshots and the GC watermark.
pub struct Snapshots {
    open: Mutex<Open>,
    watermark: AtomicU64,
}

#[derive(Default)]
struct Open {
    /// Sequence -> number of snapshots at it.
    seqs: BTreeMap<u64, usize>,
    /// Wall-clock time (ms) each snapshot judges expiry at -> count.
    times: BTreeMap<u64, usize>,
}

fn inc(m: &mut BTreeMap<u64, usize>, k: u64) {
    *m.entry(k).or_insert(0) += 1;
}

fn dec(m: &mut BTreeMap<u64, usize>, k: u64) {
    if let Some(n) = m.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            m.remove(&k);
        }
    }
}

impl Snapshots {
    /// No snapshot open; the watermark starts at `seq`.
    pub fn new(seq: u64) -> Snapshots {
        Snapshots {
            open: Mutex::new(Open::default()),
            watermark: AtomicU64::new(seq),
        }
    }

    /// Registers a snapshot at the current visible sequence and returns it.
    /// Registration and watermark updates share one lock, so a watermark is
    /// never computed past a snapshot that is being taken.
    /// `now_ms` is the time the snapshot judges expiry at.
    pub fn acquire(&self, vis: &Visibility, now_ms: u64) -> u64 {
        let mut open = self.open.lock();
        let seq = vis.visible();
        inc(&mut open.seqs, seq);
        inc(&mut open.times, now_ms);
        seq
    }

    /// Registers one more snapshot at `seq`, which an open snapshot already pins.
    pub fn acquire_at(&self, seq: u64, now_ms: u64) {
        let mut open = self.open.lock();
        inc(&mut open.seqs, seq);
        inc(&mut open.times, now_ms);
    }

    /// Releases one snapshot taken at `seq` and `now_ms`.
    pub fn release(&self, seq: u64, now_ms: u64, vis: &Visibility) {
        let mut open = self.open.lock();
        dec(&mut open.seqs, seq);
        dec(&mut open.times, now_ms);
        self.advance_locked(&open, vis);
    }

    /// The earliest time any open snapshot judges expiry at (u64::MAX if none).
    pub fn oldest_time(&self) -> u64 {
        self.open.lock().times.keys().next().copied().unwrap_or(u64::MAX)
    }

    /// Recomputes the watermark: the oldest open snapshot, or the visible sequence.
    pub fn advance(&self, vis: &Visibility) {
        let open = self.open.lock();
        self.advance_locked(&open, vis);
    }

    fn advance_locked(&self, open: &Open, vis: &Visibility) {
        let visible = vis.visible();
        let w = open.seqs.keys().next().map_or(visible, |&oldest| oldest.min(visible));
        self.watermark.fetch_max(w, Ordering::AcqRel);
    }

    /// Versions at or below this sequence that are not the newest such are unreadable.
    #[inline]
    pub fn watermark(&self) -> u64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// Number of open snapshots.
    pub fn open_count(&self) -> usize {
        self.open.lock().seqs.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::Arc;

    thread_local! {
        /// Runs in `advance` on this thread after it claims a slot and
        /// before it stores the new visible point (set by a test).
        static AFTER_CLAIM: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
    }

    pub(super) fn after_claim() {
        AFTER_CLAIM.with(|h| {
            if let Some(f) = h.borrow_mut().as_mut() {
                f()
            }
        });
    }

    /// The limit is raised while another thread holds the slot it would
    /// advance over next: that thread must advance to the new limit, or
    /// nobody does (the raiser found the slot claimed and left it), and a
    /// writer waiting for the new limit sleeps on.
    #[test]
    fn a_limit_raised_during_another_advance_is_reached() {
        let vis = Arc::new(Visibility::capped(10));
        vis.mark_applied(11);
        vis.mark_applied(12);
        let (claimed_tx, claimed_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let v1 = Arc::clone(&vis);
        let first = std::thread::spawn(move || {
            let mut once = Some((claimed_tx, go_rx));
            AFTER_CLAIM.with(|h| {
                *h.borrow_mut() = Some(Box::new(move || {
                    if let Some((claimed, go)) = once.take() {
                        claimed.send(()).unwrap();
                        go.recv().unwrap();
                    }
                }))
            });
            // Advances over 11 with the limit at 11; pauses holding it.
            v1.raise_limit(11);
        });
        claimed_rx.recv().unwrap();
        // Slot 11 is claimed and 11 not yet visible: this raise cannot
        // advance, and leaves 12 to the thread holding 11.
        vis.raise_limit(12);
        assert_eq!(vis.visible(), 10);
        let v2 = Arc::clone(&vis);
        let waiter = std::thread::spawn(move || v2.wait_visible(12, std::time::Duration::from_secs(5)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        go_tx.send(()).unwrap();
        first.join().unwrap();
        assert_eq!(vis.visible(), 12, "the raised limit was not reached");
        assert!(waiter.join().unwrap(), "the waiter for 12 was not woken");
    }

    #[test]
    fn a_capped_visibility_shows_nothing_past_its_limit() {
        let vis = Visibility::capped(10);
        vis.mark_applied(11);
        vis.mark_applied(12);
        assert_eq!(vis.visible(), 10, "applied but not yet durable");
        vis.raise_limit(11);
        assert_eq!(vis.visible(), 11);
        vis.raise_limit(20);
        assert_eq!(vis.visible(), 12, "13 is not applied yet");
    }

    /// The limit is raised while an earlier commit is still being applied,
    /// and that commit's writer never waits for visibility itself (the Go
    /// engine waits on the Go side): marking it applied must advance the
    /// visible point and wake the writer waiting for a later one.
    #[test]
    fn a_late_apply_under_a_raised_limit_wakes_the_waiter() {
        let vis = Arc::new(Visibility::capped(10));
        vis.mark_applied(12);
        vis.raise_limit(12);
        let v2 = Arc::clone(&vis);
        let t = std::thread::spawn(move || v2.advance_until(12));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(vis.visible(), 10);
        vis.mark_applied(11);
        t.join().unwrap();
        assert_eq!(vis.visible(), 12);
    }

    #[test]
    fn out_of_order_completion_publishes_in_order() {
        let vis = Arc::new(Visibility::new(10));
        let v2 = Arc::clone(&vis);
        // 12 finishes first and must wait for 11.
        let t = std::thread::spawn(move || v2.publish(12));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(vis.visible(), 10);
        vis.publish(11);
        t.join().unwrap();
        assert_eq!(vis.visible(), 12);
    }

    #[test]
    fn many_threads_publish_every_sequence() {
        let vis = Arc::new(Visibility::new(0));
        let next = Arc::new(AtomicU64::new(1));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (vis, next) = (Arc::clone(&vis), Arc::clone(&next));
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let s = next.fetch_add(1, Ordering::SeqCst);
                        vis.publish(s);
                        assert!(vis.visible() >= s);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(vis.visible(), 16_000);
    }

    #[test]
    fn watermark_holds_at_oldest_snapshot() {
        let vis = Visibility::new(5);
        let snaps = Snapshots::new(5);
        let s = snaps.acquire(&vis, 100);
        assert_eq!(s, 5);
        assert_eq!(snaps.oldest_time(), 100);
        vis.publish(6);
        vis.publish(7);
        snaps.advance(&vis);
        assert_eq!(snaps.watermark(), 5);
        snaps.release(s, 100, &vis);
        assert_eq!(snaps.watermark(), 7);
        assert_eq!(snaps.oldest_time(), u64::MAX);
        assert_eq!(snaps.open_count(), 0);
    }
}
