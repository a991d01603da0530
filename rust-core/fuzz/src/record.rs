//! `record_decode`: `log::record::decode` over arbitrary bytes.
//!
//! Each input is decoded twice: as it is (so the frame checksum rejects most
//! of it) and with the checksum rewritten to match (so the op parser behind
//! it sees the bytes). Decoding must never panic, and whenever it succeeds:
//! `frame_len <= input length`, the length field agrees, every op has a
//! non-empty key, deletes carry no value, `kv_offset`/`kv_crc` locate and
//! checksum each op's key and value, and re-encoding the decoded ops with
//! `record::encode` gives back exactly the frame's bytes.

use mantisdb_core::log::record::{self, OpKind, OpRef, Record, Salt, FRAME_HEADER_LEN, PAYLOAD_HEADER_LEN};

/// Checks every property of a successful decode of `buf`.
pub fn check(buf: &[u8], rec: &Record<'_>) {
    check_salted(buf, rec, Salt::NONE)
}

/// [`check`] for a frame of a segment whose frames carry `salt`.
pub fn check_salted(buf: &[u8], rec: &Record<'_>, salt: Salt) {
    assert!(rec.frame_len <= buf.len());
    assert!(rec.frame_len >= FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN);
    assert_eq!(record::announced_len(buf), Some(rec.frame_len - FRAME_HEADER_LEN));
    assert!(!rec.ops.is_empty());
    for op in &rec.ops {
        assert!(!op.key.is_empty(), "empty key decoded");
        if op.kind == OpKind::Delete {
            assert!(op.value.is_empty(), "delete with a value decoded");
        }
        let k = op.kv_offset;
        assert_eq!(&buf[k..k + op.key.len()], op.key);
        let v = k + op.key.len();
        assert_eq!(&buf[v..v + op.value.len()], op.value);
        assert!(v + op.value.len() <= rec.frame_len);
        assert_eq!(record::kv_checksum(op.key, op.value), op.kv_crc);
    }
    let again = record::decode_salted(&buf[..rec.frame_len], salt).expect("the frame alone must decode");
    assert_eq!(&again, rec);
    let ops: Vec<OpRef<'_>> = rec
        .ops
        .iter()
        .map(|o| OpRef {
            kind: o.kind,
            key: o.key,
            value: o.value,
            expires_at: o.expires_at,
        })
        .collect();
    assert_eq!(record::frame_len(&ops), rec.frame_len);
    let mut out = Vec::new();
    let mut kv = Vec::new();
    record::encode_salted(&mut out, rec.seq, &ops, &mut kv, salt);
    assert_eq!(out, &buf[..rec.frame_len], "re-encoding differs");
    let locs: Vec<(usize, u32)> = rec.ops.iter().map(|o| (o.kv_offset, o.kv_crc)).collect();
    assert_eq!(kv, locs);
}

/// Decodes `buf`, checking the result when it succeeds.
pub fn decode_checked(buf: &[u8]) -> Option<Record<'_>> {
    decode_checked_salted(buf, Salt::NONE)
}

/// [`decode_checked`] for a frame of a segment whose frames carry `salt`.
pub fn decode_checked_salted(buf: &[u8], salt: Salt) -> Option<Record<'_>> {
    let rec = record::decode_salted(buf, salt).ok()?;
    check_salted(buf, &rec, salt);
    Some(rec)
}

/// Rewrites the frame checksum at the start of `buf` to match its bytes;
/// false when the length field points past the end.
pub fn fix_crc(buf: &mut [u8]) -> bool {
    fix_crc_salted(buf, Salt::NONE)
}

/// [`fix_crc`] for a frame of a segment whose frames carry `salt`.
pub fn fix_crc_salted(buf: &mut [u8], salt: Salt) -> bool {
    let Some(len) = record::announced_len(buf) else {
        return false;
    };
    let end = FRAME_HEADER_LEN.saturating_add(len);
    if end > buf.len() {
        return false;
    }
    let crc = crc32c::crc32c_append(salt.0, &buf[4..end]);
    buf[..4].copy_from_slice(&crc.to_le_bytes());
    true
}

/// The target.
pub fn run(data: &[u8]) {
    decode_checked(data);
    let mut fixed = data.to_vec();
    if fix_crc(&mut fixed) {
        decode_checked(&fixed);
    }
}
