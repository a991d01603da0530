//! The byte formats a caller and the library exchange in one buffer: the
//! batch of `mantis_write_batch`, the keys and answer of `mantis_multi_get`,
//! and the pairs of `mantis_iter_next_batch`.
//!
//! Every integer is little-endian. Lengths are `u32`. The sizes, offsets and
//! codes are the constants below, exported to the C header, so a caller (the
//! Go engine, the C test, the fuzzer) builds and reads the buffers by name.
//!
//! Batch buffer, one entry per op, `count` entries back to back:
//!
//! | offset                          | size        | field                                                  |
//! |---------------------------------|-------------|--------------------------------------------------------|
//! | 0                               | 1           | kind: `MANTIS_BATCH_PUT`, `MANTIS_BATCH_DELETE` or `MANTIS_BATCH_PUT_AT` |
//! | `MANTIS_BATCH_KEY_LEN_OFFSET`   | 4           | key_len                                                |
//! | `MANTIS_BATCH_VALUE_LEN_OFFSET` | 4           | value_len (0 for a delete)                             |
//! | `MANTIS_BATCH_TTL_OFFSET`       | 8           | put: ttl_ms (0: no expiry); put-at: expires_at_ms, Unix ms; ignored for a delete |
//! | `MANTIS_BATCH_OP_HEADER_LEN`    | key_len     | key                                                    |
//! | then                            | value_len   | value                                                  |
//!
//! Multi-get keys: per key, `key_len:u32 key` (`MANTIS_MULTI_GET_KEY_HEADER_LEN`
//! bytes of header). Multi-get answer: per key, in order, `found:u8
//! value_len:u32 value` (`MANTIS_MULTI_GET_VALUE_HEADER_LEN` bytes of header;
//! `found` is 1 or 0, and value_len is 0 when absent).
//!
//! Iterator pairs: per pair, `key_len:u32 value_len:u32 key value`
//! (`MANTIS_ITER_PAIR_HEADER_LEN` bytes of header).

use std::time::Duration;

use super::boundary::{fail, Fail};
use super::types::MantisStatus;
use crate::Expiry;

/// Batch op kind (first byte of an op): set the key to the value.
pub const MANTIS_BATCH_PUT: u8 = 0;
/// Batch op kind (first byte of an op): remove the key; value_len must be 0.
pub const MANTIS_BATCH_DELETE: u8 = 1;
/// Batch op kind (first byte of an op): set the key to the value, expiring
/// at an absolute time: the op's 8-byte field at `MANTIS_BATCH_TTL_OFFSET`
/// is the expiry in milliseconds since the Unix epoch instead of a TTL. A
/// time at or before the commit's clock (0 included) makes the op remove the
/// key: it commits as a delete, for readers and for conflict checks.
pub const MANTIS_BATCH_PUT_AT: u8 = 2;
/// Offset of an op's `key_len: u32` in its header.
pub const MANTIS_BATCH_KEY_LEN_OFFSET: usize = 1;
/// Offset of an op's `value_len: u32` in its header.
pub const MANTIS_BATCH_VALUE_LEN_OFFSET: usize = 5;
/// Offset of an op's 8-byte expiry field in its header: for
/// `MANTIS_BATCH_PUT`, `ttl_ms: u64` (0: no expiry); for
/// `MANTIS_BATCH_PUT_AT`, `expires_at_ms: u64` (Unix milliseconds); ignored
/// for a delete.
pub const MANTIS_BATCH_TTL_OFFSET: usize = 9;
/// Size of an op's header (kind, key_len, value_len, expiry field); the key
/// follows it, then the value.
pub const MANTIS_BATCH_OP_HEADER_LEN: usize = 17;
/// Size of the `key_len: u32` before each key of a multi-get keys buffer.
pub const MANTIS_MULTI_GET_KEY_HEADER_LEN: usize = 4;
/// The length `mantis_get_many_into` gives a key that has no value.
pub const MANTIS_VALUE_ABSENT: u64 = u64::MAX;
/// Size of the `found: u8, value_len: u32` before each value of a
/// multi-get answer.
pub const MANTIS_MULTI_GET_VALUE_HEADER_LEN: usize = 5;
/// Size of the `key_len: u32, value_len: u32` before each pair of an
/// iterator batch.
pub const MANTIS_ITER_PAIR_HEADER_LEN: usize = 8;

/// The ops of a batch buffer: inline up to 16 (a SET, an MSET of 10 keys),
/// so the common batch costs no allocation.
pub(super) type BatchEntries<'a> = smallvec::SmallVec<[BatchEntry<'a>; 16]>;

/// One op of a batch buffer, borrowed from it.
pub(super) struct BatchEntry<'a> {
    pub(super) delete: bool,
    pub(super) key: &'a [u8],
    pub(super) value: &'a [u8],
    pub(super) expiry: Expiry,
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Parses `count` ops of a batch buffer. The ops borrow from `buf`: nothing
/// is copied before the commit encodes them.
pub(super) fn parse_batch(buf: &[u8], count: usize) -> Result<BatchEntries<'_>, Fail> {
    const H: usize = MANTIS_BATCH_OP_HEADER_LEN;
    let bad = |m: String| fail(MantisStatus::MantisInvalidArgument, m);
    let mut ops = BatchEntries::with_capacity(count.min(buf.len() / H + 1));
    let mut at = 0usize;
    for i in 0..count {
        let head = buf
            .get(at..at + H)
            .ok_or_else(|| bad(format!("batch op {i}: header past the end of the buffer")))?;
        let kind = head[0];
        let kl = u32_at(head, MANTIS_BATCH_KEY_LEN_OFFSET);
        let vl = u32_at(head, MANTIS_BATCH_VALUE_LEN_OFFSET);
        let when = u64::from_le_bytes(
            head[MANTIS_BATCH_TTL_OFFSET..MANTIS_BATCH_TTL_OFFSET + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        at += H;
        let end = at
            .checked_add(kl)
            .and_then(|e| e.checked_add(vl))
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| bad(format!("batch op {i}: key and value past the end of the buffer")))?;
        let (key, value) = (&buf[at..at + kl], &buf[at + kl..end]);
        at = end;
        let entry = match kind {
            MANTIS_BATCH_PUT => BatchEntry {
                delete: false,
                key,
                value,
                expiry: match when {
                    0 => Expiry::Never,
                    ms => Expiry::After(Duration::from_millis(ms)),
                },
            },
            MANTIS_BATCH_PUT_AT => BatchEntry {
                delete: false,
                key,
                value,
                expiry: Expiry::At(when),
            },
            MANTIS_BATCH_DELETE if vl == 0 => BatchEntry {
                delete: true,
                key,
                value,
                expiry: Expiry::Never,
            },
            MANTIS_BATCH_DELETE => return Err(bad(format!("batch op {i}: delete with a value"))),
            k => return Err(bad(format!("batch op {i}: unknown kind {k}"))),
        };
        ops.push(entry);
    }
    if at != buf.len() {
        return Err(bad(format!(
            "batch buffer has {} bytes after its {count} ops",
            buf.len() - at
        )));
    }
    Ok(ops)
}

/// Parses `count` keys of a multi-get keys buffer.
pub(super) fn parse_keys(buf: &[u8], count: usize) -> Result<Vec<&[u8]>, Fail> {
    const H: usize = MANTIS_MULTI_GET_KEY_HEADER_LEN;
    let mut keys = Vec::with_capacity(count.min(buf.len() / H + 1));
    let mut at = 0usize;
    for i in 0..count {
        let len = buf.get(at..at + H).map(|l| u32_at(l, 0)).ok_or_else(|| {
            fail(
                MantisStatus::MantisInvalidArgument,
                format!("key {i}: length past the end"),
            )
        })?;
        at += H;
        let key = buf.get(at..at + len).ok_or_else(|| {
            fail(
                MantisStatus::MantisInvalidArgument,
                format!("key {i}: bytes past the end"),
            )
        })?;
        at += len;
        keys.push(key);
    }
    if at != buf.len() {
        return Err(fail(
            MantisStatus::MantisInvalidArgument,
            "keys buffer has bytes after its last key",
        ));
    }
    Ok(keys)
}

/// Encodes a multi-get answer.
pub(super) fn encode_values(values: &[Option<crate::Value>]) -> Vec<u8> {
    let total: usize = values
        .iter()
        .map(|v| MANTIS_MULTI_GET_VALUE_HEADER_LEN + v.as_ref().map_or(0, |v| v.len()))
        .sum();
    let mut out = Vec::with_capacity(total);
    for v in values {
        out.push(v.is_some() as u8);
        let bytes: &[u8] = v.as_deref().unwrap_or(&[]);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Appends one pair of an iterator batch.
pub(super) fn append_pair(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    buf.reserve(MANTIS_ITER_PAIR_HEADER_LEN + key.len() + value.len());
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_and_keys_parsers_reject_bad_buffers() {
        assert!(parse_batch(&[0, 1], 1).is_err());
        assert!(parse_batch(&[], 0).is_ok_and(|o| o.is_empty()));
        let mut good = vec![0u8];
        good.extend_from_slice(&1u32.to_le_bytes());
        good.extend_from_slice(&1u32.to_le_bytes());
        good.extend_from_slice(&0u64.to_le_bytes());
        good.extend_from_slice(b"kv");
        let ops = parse_batch(&good, 1).ok().unwrap_or_default();
        assert_eq!(
            (ops.len(), ops[0].key, ops[0].value, ops[0].delete),
            (1, &b"k"[..], &b"v"[..], false)
        );
        assert!(parse_batch(&good, 2).is_err());
        let mut at = good.clone();
        at[0] = MANTIS_BATCH_PUT_AT;
        at[MANTIS_BATCH_TTL_OFFSET..MANTIS_BATCH_TTL_OFFSET + 8].copy_from_slice(&1234u64.to_le_bytes());
        let ops = parse_batch(&at, 1).ok().unwrap_or_default();
        assert_eq!((ops.len(), ops[0].expiry), (1, Expiry::At(1234)));
        let mut extra = good.clone();
        extra.push(9);
        assert!(parse_batch(&extra, 1).is_err());
        let mut bad_kind = good.clone();
        bad_kind[0] = 7;
        assert!(parse_batch(&bad_kind, 1).is_err());
        let mut huge = good.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_batch(&huge, 1).is_err());
        assert!(parse_keys(&[1, 0, 0, 0, b'a'], 1).is_ok());
        assert!(parse_keys(&[9, 0, 0, 0, b'a'], 1).is_err());
        assert!(parse_keys(&[1, 0], 1).is_err());
    }
}
