//! Space accounting: how many log bytes of each segment are live (the
//! newest version of their key) and how many are dead, the figures that
//! decide which segments compaction rewrites.
//!
//! [`account_op`] is the one rule, used when a commit is applied and when
//! recovery replays the log, so a reopened database starts from the figures
//! the running one had.

use std::sync::atomic::Ordering;

use crate::index::InsertEffect;
use crate::log::record;
use crate::log::segment::Usage;
use crate::log::{OpKind, OpRef};

/// Bytes an op takes in the log (header, key, value).
pub(crate) fn op_log_bytes(key_len: usize, value_len: usize, expires_at: u64) -> u32 {
    let op = OpRef {
        kind: OpKind::Put,
        key: &[],
        value: &[],
        expires_at,
    };
    (record::op_encoded_len(&op) + key_len + value_len) as u32
}

/// What one op applied to the index does to the space figures: `live` or
/// `dead` bytes of its own segment, and a superseded live put (segment,
/// bytes) that turns dead. The one rule behind [`account_op`] and the
/// per-thread tallies of recovery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Charge {
    /// Bytes of the op's segment that are live (a put, now the newest version).
    pub(crate) live: u64,
    /// Bytes of the op's segment that are dead at birth (a delete, or a
    /// version older than the key's newest).
    pub(crate) dead: u64,
    /// The live put this op superseded: its segment and bytes, now dead.
    pub(crate) killed: Option<(u32, u64)>,
    /// The op carries an expiry (compaction may reclaim it).
    pub(crate) expiry: bool,
}

/// The [`Charge`] of an op inserted into the index with `effect`.
pub(crate) fn charge(kind: OpKind, log_bytes: u32, expires_at: u64, effect: &InsertEffect) -> Charge {
    let bytes = log_bytes as u64;
    let live = kind == OpKind::Put && effect.is_newest;
    Charge {
        live: if live { bytes } else { 0 },
        dead: if live { 0 } else { bytes },
        killed: (effect.superseded_bytes > 0).then_some((effect.superseded_segment, effect.superseded_bytes)),
        expiry: expires_at != 0,
    }
}

/// Accounts one op of segment `segment` (whose usage is `usage`) just
/// inserted into the index with `effect`: its bytes are live when it is a
/// put and now the newest version of its key, dead otherwise; the live put
/// it superseded, if any, turns dead (in this segment, or through
/// `kill_elsewhere(segment, bytes)` in another).
pub(crate) fn account_op(
    usage: &Usage,
    segment: u32,
    kind: OpKind,
    log_bytes: u32,
    expires_at: u64,
    effect: &InsertEffect,
    kill_elsewhere: impl FnOnce(u32, u64),
) {
    let c = charge(kind, log_bytes, expires_at, effect);
    if c.live > 0 {
        usage.live.fetch_add(c.live, Ordering::Relaxed);
    }
    if c.dead > 0 {
        usage.dead.fetch_add(c.dead, Ordering::Relaxed);
    }
    if let Some((seg, bytes)) = c.killed {
        if seg == segment {
            usage.kill(bytes);
        } else {
            kill_elsewhere(seg, bytes);
        }
    }
    if c.expiry {
        usage.has_expiry.store(true, Ordering::Relaxed);
    }
}
