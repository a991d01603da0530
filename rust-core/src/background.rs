//! The background thread of an open database: hint files for closed
//! segments, and compaction of segments past the dead-bytes threshold.
//!
//! It holds the database weakly, so it never keeps one alive; a pass that
//! fails leaves the files as they were and is retried the next round.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::compaction;
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::log::SegmentSet;

/// How soon background work looks again at a closed segment whose last
/// commits were not visible yet.
const PENDING_RETRY: Duration = Duration::from_millis(20);

/// Owns the background thread. Every user-visible handle (database clones,
/// snapshots, iterators, transactions) holds one reference; when the last
/// one goes, the thread is stopped and joined.
pub(crate) struct Background {
    thread: Mutex<Option<(JoinHandle<()>, Arc<AtomicBool>)>>,
    segments: Arc<SegmentSet>,
}

impl Background {
    /// Starts the thread that writes hint files for closed segments and,
    /// when enabled, compacts segments past the threshold.
    pub(crate) fn start(inner: &Arc<Inner>, segments: Arc<SegmentSet>) -> Result<Background> {
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let every = inner.options().compaction_interval;
        let handle = std::thread::Builder::new()
            .name("mantisdb-compactor".into())
            .spawn(move || {
                // The first pass runs at once: segments found at open are
                // closed and visible, and a process that restarts often must
                // still get its space back.
                let mut wait = Duration::ZERO;
                while !stop2.load(Ordering::Acquire) {
                    if !wait.is_zero() {
                        std::thread::park_timeout(wait);
                    }
                    let Some(inner) = weak.upgrade() else { break };
                    if stop2.load(Ordering::Acquire) || inner.check_open().is_err() {
                        break;
                    }
                    // Errors leave the files as they were; the pass is retried
                    // next round, and reads and writes are unaffected.
                    let _ = pass(&inner);
                    // A segment that just closed waits for its last commits to
                    // become visible: look again shortly rather than a whole
                    // interval later.
                    wait = if compaction::closed_segment_pending(&inner) {
                        every.min(PENDING_RETRY)
                    } else {
                        every
                    };
                }
            })
            .map_err(|e| Error::io("starting the compaction thread", e))?;
        inner.log.segments().notify_on_close(Some(handle.thread().clone()));
        Ok(Background {
            thread: Mutex::new(Some((handle, stop))),
            segments,
        })
    }

    /// Stops the thread and waits for its current pass.
    pub(crate) fn stop(&self) {
        let Some((handle, stop)) = self.thread.lock().take() else {
            return;
        };
        stop.store(true, Ordering::Release);
        self.segments.notify_on_close(None);
        handle.thread().unpark();
        if handle.thread().id() != std::thread::current().id() {
            let _ = handle.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One round of background work: hints for closed segments, then
/// compaction of segments past the threshold.
fn pass(inner: &Inner) -> Result<()> {
    let mut bufs = inner.compaction_guard();
    inner.snapshots.advance(&inner.vis);
    inner.collect_tombstones();
    compaction::write_pending_hints(inner, &mut bufs)?;
    let opts = inner.options();
    if opts.background_compaction {
        let report = compaction::compact(inner, opts.compaction_threshold, false, &mut bufs)?;
        inner.note_compaction(&report);
    }
    Ok(())
}
