//! Atomic write batches.

use std::time::Duration;

use crate::log::{OpKind, OpRef};
use crate::meta::Expiry;

/// A group of puts and deletes committed as one log record: after
/// [`crate::Db::write`] returns, all of them are visible; after a crash,
/// all or none are there. A key written twice in a batch keeps the later op.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
}

#[derive(Debug, Clone)]
pub(crate) struct BatchOp {
    pub(crate) kind: OpKind,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) expiry: Expiry,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(OpKind::Put, key.into(), value.into(), Expiry::Never)
    }

    /// Sets `key` to `value`, expiring `ttl` after the batch commits.
    pub fn put_with_ttl(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, ttl: Duration) -> &mut Self {
        self.push(OpKind::Put, key.into(), value.into(), Expiry::After(ttl))
    }

    /// Sets `key` to `value`, expiring at `expires_at_ms` (milliseconds since
    /// the Unix epoch). A time at or before the commit's clock makes this op
    /// remove the key (it commits as a delete), as `SET` with a past `EXAT`
    /// does in Redis.
    pub fn put_with_expiry(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        expires_at_ms: u64,
    ) -> &mut Self {
        self.push(OpKind::Put, key.into(), value.into(), Expiry::At(expires_at_ms))
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.push(OpKind::Delete, key.into(), Vec::new(), Expiry::Never)
    }

    fn push(&mut self, kind: OpKind, key: Vec<u8>, value: Vec<u8>, expiry: Expiry) -> &mut Self {
        self.ops.push(BatchOp {
            kind,
            key,
            value,
            expiry,
        });
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Removes every operation, keeping the allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
    }

    /// The ops as the log encodes them, with expiry resolved at `now_ms`
    /// (a put whose absolute expiry has passed is a delete).
    pub(crate) fn op_refs(&self, now_ms: u64) -> Vec<OpRef<'_>> {
        self.ops
            .iter()
            .map(|op| match op.kind {
                OpKind::Put => op.expiry.put_op(&op.key, &op.value, now_ms),
                OpKind::Delete => OpRef {
                    kind: OpKind::Delete,
                    key: &op.key,
                    value: &[],
                    expires_at: 0,
                },
            })
            .collect()
    }
}
