//! Fuzzes `mantisdb_core::log::record::decode` with arbitrary bytes.
//!
//! Each input is decoded twice: as it is (so the frame checksum rejects most
//! of it) and with the checksum rewritten to match (so the op parser behind
//! it sees the bytes). Decoding must never panic, and whenever it succeeds:
//! `frame_len <= input length`, the length field agrees, every op has a
//! non-empty key, deletes carry no value, `kv_offset`/`kv_crc` locate and
//! checksum each op's key and value, and re-encoding the decoded ops with
//! `record::encode` gives back exactly the frame's bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mantisdb_core::log::record::{self, OpKind, OpRef, Record, FRAME_HEADER_LEN, PAYLOAD_HEADER_LEN};

fn check(buf: &[u8], rec: &Record<'_>) {
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
        assert_eq!(record::kv_checksum(op.key, op.value), op.kv_crc);
    }
    let again = record::decode(&buf[..rec.frame_len]).expect("the frame alone must decode");
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
    let mut out = Vec::new();
    let mut kv = Vec::new();
    record::encode(&mut out, rec.seq, &ops, &mut kv);
    assert_eq!(out, &buf[..rec.frame_len], "re-encoding differs");
    let locs: Vec<(usize, u32)> = rec.ops.iter().map(|o| (o.kv_offset, o.kv_crc)).collect();
    assert_eq!(kv, locs);
}

fn run(buf: &[u8]) {
    if let Ok(rec) = record::decode(buf) {
        check(buf, &rec);
    }
}

fuzz_target!(|data: &[u8]| {
    run(data);
    if let Some(len) = record::announced_len(data) {
        let end = FRAME_HEADER_LEN.saturating_add(len);
        if end <= data.len() {
            let mut fixed = data.to_vec();
            let crc = crc32c::crc32c(&fixed[4..end]);
            fixed[..4].copy_from_slice(&crc.to_le_bytes());
            run(&fixed);
        }
    }
});
