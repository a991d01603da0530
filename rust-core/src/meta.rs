//! Key metadata: a key's version and absolute expiry, and the expiry a put
//! carries.
//!
//! Every version in the index already records the sequence number of the
//! commit that wrote it and its absolute expiry (both are in the log record,
//! the hint file, and every copy compaction makes), so reading them is a
//! lookup like `get`. The version is that sequence number: it changes on
//! every commit that writes the key, even with the same value, and it
//! survives reopening and compaction because the sequence does.
//!
//! A put may expire after a TTL (resolved against the commit's clock) or at
//! an absolute time. An absolute time at or before the commit's clock makes
//! the put a delete of the key: it is logged as one, so readers, conflict
//! checks, recovery and compaction all see a delete and nothing else.

use std::time::Duration;

use crate::db::{Db, Value};
use crate::engine::{expiry_at, now_ms, Inner, RELOCATION_RETRIES};
use crate::error::{Error, Result};
use crate::index::{Lookup, Version};
use crate::iter::Snapshot;
use crate::log::{OpKind, OpRef};

/// The version and expiry of the value a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyMeta {
    /// Sequence number of the commit that wrote this version (0 for a
    /// transaction's own, uncommitted write).
    pub seq: u64,
    /// Absolute expiry in milliseconds since the Unix epoch; 0 when the key
    /// does not expire.
    pub expires_at_ms: u64,
}

impl KeyMeta {
    fn of(v: &Version) -> KeyMeta {
        KeyMeta {
            seq: v.seq,
            expires_at_ms: v.expires_at,
        }
    }
}

/// When a put expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expiry {
    /// Never.
    #[default]
    Never,
    /// This long after the commit (at least 1 ms).
    After(Duration),
    /// At this time, in milliseconds since the Unix epoch. At or before the
    /// commit's clock, the put removes the key instead.
    At(u64),
}

impl Expiry {
    /// Rejects a TTL below the 1 ms resolution.
    pub(crate) fn check(self) -> Result<()> {
        match self {
            Expiry::After(ttl) if ttl < Duration::from_millis(1) => Err(Error::InvalidArgument(format!(
                "ttl {ttl:?} is below the 1 ms resolution"
            ))),
            _ => Ok(()),
        }
    }

    /// The absolute expiry of a put committed at `now_ms` (0: never), or
    /// `None` when the put removes the key.
    pub(crate) fn resolve(self, now_ms: u64) -> Option<u64> {
        match self {
            Expiry::Never => Some(0),
            Expiry::After(ttl) => Some(expiry_at(now_ms, ttl)),
            Expiry::At(at) if at <= now_ms => None,
            Expiry::At(at) => Some(at),
        }
    }

    /// The op that logs a put of `key` with this expiry, committed at `now_ms`.
    pub(crate) fn put_op<'a>(self, key: &'a [u8], value: &'a [u8], now_ms: u64) -> OpRef<'a> {
        match self.resolve(now_ms) {
            Some(expires_at) => OpRef {
                kind: OpKind::Put,
                key,
                value,
                expires_at,
            },
            None => OpRef {
                kind: OpKind::Delete,
                key,
                value: &[],
                expires_at: 0,
            },
        }
    }
}

/// Where a read looks.
#[derive(Clone, Copy)]
enum ReadAt {
    /// The newest visible commit, expiry judged now.
    Latest,
    /// A registered snapshot's sequence and clock.
    Pinned { seq: u64, now_ms: u64 },
}

impl Inner {
    /// The value of `key` and the version it belongs to, or `None` when the
    /// key is absent, deleted or expired.
    fn read_versioned(&self, key: &[u8], at: ReadAt) -> Result<Option<(Value, KeyMeta)>> {
        self.check_open()?;
        self.check_key(key)?;
        self.counters.reads.add(1);
        for _ in 0..RELOCATION_RETRIES {
            let seq = match at {
                ReadAt::Latest => self.vis.visible(),
                ReadAt::Pinned { seq, .. } => seq,
            };
            match self.index.get(key, seq) {
                Lookup::Found(v) => {
                    let now = match at {
                        ReadAt::Pinned { now_ms, .. } => now_ms,
                        // The clock is read only for keys that carry an expiry.
                        ReadAt::Latest if v.expires_at != 0 => now_ms(),
                        ReadAt::Latest => 0,
                    };
                    if v.is_absent(now) {
                        return Ok(None);
                    }
                    if let Some(value) = self.load(key, &v)? {
                        return Ok(Some((value, KeyMeta::of(&v))));
                    }
                    // Compaction moved the value: look the key up again.
                    std::thread::yield_now();
                }
                Lookup::Missing => return Ok(None),
                // A newer version became visible and the wanted one was
                // reclaimed: only a read at the newest commit gets here,
                // a snapshot pins its versions.
                Lookup::Stale if matches!(at, ReadAt::Latest) => continue,
                Lookup::Stale => return Ok(None),
            }
        }
        Err(self.missing_segment(key))
    }
}

impl Db {
    /// The value of `key` with its version and expiry, or `None` if absent,
    /// deleted or expired.
    pub fn get_with_meta(&self, key: &[u8]) -> Result<Option<(Value, KeyMeta)>> {
        self.inner.read_versioned(key, ReadAt::Latest)
    }

    /// Sets `key` to `value`, invisible from `expires_at_ms` (milliseconds
    /// since the Unix epoch) on. A time at or before the commit's clock
    /// removes the key: the write is logged as a delete.
    pub fn put_with_expiry(&self, key: &[u8], value: &[u8], expires_at_ms: u64) -> Result<()> {
        // Checked before the expiry is resolved: a put that commits as a
        // delete drops its value, and must not make a bad one acceptable.
        self.inner.check_value(value)?;
        self.inner
            .commit(&[Expiry::At(expires_at_ms).put_op(key, value, now_ms())])
            .map(drop)
    }
}

impl Snapshot {
    /// The value of `key` with its version and expiry, as of this snapshot.
    pub fn get_with_meta(&self, key: &[u8]) -> Result<Option<(Value, KeyMeta)>> {
        self.inner().read_versioned(
            key,
            ReadAt::Pinned {
                seq: self.seq(),
                now_ms: self.now_ms(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_resolves_against_the_commit_clock() {
        assert_eq!(Expiry::Never.resolve(1000), Some(0));
        assert_eq!(Expiry::After(Duration::from_millis(5)).resolve(1000), Some(1005));
        assert_eq!(Expiry::At(1001).resolve(1000), Some(1001));
        // At the commit's clock or before it, the put removes the key.
        assert_eq!(Expiry::At(1000).resolve(1000), None);
        assert_eq!(Expiry::At(0).resolve(1000), None);
        let op = Expiry::At(999).put_op(b"k", b"v", 1000);
        assert_eq!((op.kind, op.value, op.expires_at), (OpKind::Delete, &b""[..], 0));
        let op = Expiry::At(2000).put_op(b"k", b"v", 1000);
        assert_eq!((op.kind, op.value, op.expires_at), (OpKind::Put, &b"v"[..], 2000));
    }

    #[test]
    fn a_ttl_below_the_resolution_is_refused() {
        assert!(Expiry::After(Duration::from_micros(999)).check().is_err());
        assert!(Expiry::After(Duration::from_millis(1)).check().is_ok());
        assert!(Expiry::At(0).check().is_ok());
    }
}
