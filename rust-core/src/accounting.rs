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
    if kind == OpKind::Put && effect.is_newest {
        usage.live.fetch_add(log_bytes as u64, Ordering::Relaxed);
    } else {
        usage.dead.fetch_add(log_bytes as u64, Ordering::Relaxed);
    }
    if effect.superseded_bytes > 0 {
        if effect.superseded_segment == segment {
            usage.kill(effect.superseded_bytes);
        } else {
            kill_elsewhere(effect.superseded_segment, effect.superseded_bytes);
        }
    }
    if expires_at != 0 {
        usage.has_expiry.store(true, Ordering::Relaxed);
    }
}
