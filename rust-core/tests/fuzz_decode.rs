//! Stable-toolchain fuzzing of the record decoder and of recovery.
//!
//! The same checks as `fuzz/fuzz_targets/record_decode.rs` (cargo-fuzz,
//! nightly), driven by proptest so they run in every `cargo test`:
//! - `record::decode` never panics on random bytes, on random payloads behind
//!   a correct checksum (so the op parser, not the CRC, must reject them), or
//!   on valid frames mutated by bit flips, truncations, splices, insertions,
//!   deletions and length-field edits (with the checksum left stale or fixed);
//! - whenever it succeeds: `frame_len <= input length`, the length field
//!   agrees, every op has a non-empty key, deletes carry no value, each op's
//!   `kv_offset`/`kv_crc` locate and checksum its key and value, decoding just
//!   the frame gives the same record, and re-encoding the decoded ops with
//!   `record::encode` gives back exactly the frame's bytes;
//! - opening a database whose newest segment has random garbage (or a
//!   mutated frame) after its valid records never panics; random garbage is a
//!   torn tail and every record before it is kept.
//!
//! A few seconds by default; `MANTIS_FUZZ_CASES=N` sets the decoder case
//! count per strategy (default 3000; the database cases scale with it).

use std::collections::BTreeMap;
use std::fs;

use mantisdb_core::log::record::{self, DecodedOp, OpKind, OpRef, Record, FRAME_HEADER_LEN, PAYLOAD_HEADER_LEN};
use mantisdb_core::log::segment;
use mantisdb_core::{Db, Error, Options, SyncPolicy};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn cases() -> u32 {
    std::env::var("MANTIS_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // A failure is a decoder bug: shrink it, but do not spend minutes on it.
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// Every property a successful decode must have.
fn check_record(buf: &[u8], rec: &Record<'_>) {
    assert!(
        rec.frame_len <= buf.len(),
        "frame_len {} > input {}",
        rec.frame_len,
        buf.len()
    );
    assert!(rec.frame_len >= FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN);
    assert_eq!(record::announced_len(buf), Some(rec.frame_len - FRAME_HEADER_LEN));
    assert!(!rec.ops.is_empty(), "a record without ops");
    for op in &rec.ops {
        assert!(!op.key.is_empty(), "an op with an empty key");
        if op.kind == OpKind::Delete {
            assert!(op.value.is_empty(), "a delete with a value");
        }
        let k = op.kv_offset;
        assert_eq!(&buf[k..k + op.key.len()], op.key, "kv_offset does not locate the key");
        let v = k + op.key.len();
        assert_eq!(
            &buf[v..v + op.value.len()],
            op.value,
            "the value does not follow the key"
        );
        assert!(v + op.value.len() <= rec.frame_len);
        assert_eq!(record::kv_checksum(op.key, op.value), op.kv_crc);
    }
    // The frame alone decodes to the same record.
    let again = record::decode(&buf[..rec.frame_len]).expect("the frame alone no longer decodes");
    assert_eq!(&again, rec);
    // Re-encoding gives back the same bytes and the same op locations.
    let ops: Vec<OpRef<'_>> = rec.ops.iter().map(op_ref).collect();
    assert_eq!(record::frame_len(&ops), rec.frame_len);
    let mut out = Vec::new();
    let mut kv = Vec::new();
    record::encode(&mut out, rec.seq, &ops, &mut kv);
    assert_eq!(out, &buf[..rec.frame_len], "re-encoding differs from the decoded frame");
    let locs: Vec<(usize, u32)> = rec.ops.iter().map(|o| (o.kv_offset, o.kv_crc)).collect();
    assert_eq!(kv, locs);
}

fn op_ref<'a>(op: &DecodedOp<'a>) -> OpRef<'a> {
    OpRef {
        kind: op.kind,
        key: op.key,
        value: op.value,
        expires_at: op.expires_at,
    }
}

/// Decodes `buf`, checking the invariants when it succeeds.
fn fuzz_one(buf: &[u8]) -> bool {
    match record::decode(buf) {
        Ok(rec) => {
            check_record(buf, &rec);
            true
        }
        Err(_) => false,
    }
}

/// Rewrites the frame checksum at the start of `buf` to match its bytes, so
/// that the parser behind the checksum sees the input.
/// Gives a frame whose unsalted checksum matches the checksum it would have
/// in a segment with `salt`, so it is valid there exactly when it was valid
/// unsalted.
fn resalt(buf: &mut [u8], salt: record::Salt) {
    if let Some(len) = record::announced_len(buf) {
        let end = FRAME_HEADER_LEN.saturating_add(len);
        if end <= buf.len() && u32::from_le_bytes(buf[..4].try_into().unwrap()) == crc32c::crc32c(&buf[4..end]) {
            let crc = crc32c::crc32c_append(salt.0, &buf[4..end]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

fn fix_crc(buf: &mut [u8]) {
    if let Some(len) = record::announced_len(buf) {
        let end = FRAME_HEADER_LEN.saturating_add(len);
        if end <= buf.len() {
            let crc = crc32c::crc32c(&buf[4..end]);
            buf[..4].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

#[derive(Debug, Clone)]
struct GenOp {
    delete: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    expires_at: u64,
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 1..24),
        prop::collection::vec(any::<u8>(), 0..80),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(|(delete, key, value, expires_at)| GenOp {
            delete,
            key,
            value: if delete { Vec::new() } else { value },
            expires_at: if delete { 0 } else { expires_at },
        })
}

fn encode_ops(seq: u64, ops: &[GenOp]) -> Vec<u8> {
    let refs: Vec<OpRef<'_>> = ops
        .iter()
        .map(|o| OpRef {
            kind: if o.delete { OpKind::Delete } else { OpKind::Put },
            key: &o.key,
            value: &o.value,
            expires_at: o.expires_at,
        })
        .collect();
    let mut out = Vec::new();
    record::encode(&mut out, seq, &refs, &mut Vec::new());
    out
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), prop::collection::vec(gen_op(), 1..5)).prop_map(|(seq, ops)| encode_ops(seq, &ops))
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Splice(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    /// Overwrites the frame length field.
    SetLen(u32),
    /// Adds a small delta to the frame length field.
    NudgeLen(i8),
    /// Overwrites a little-endian u16 or u32 at an offset (op key/value lengths, count).
    SetU16(usize, u16),
    SetU32(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>();
    prop_oneof![
        (idx.clone(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i.index(usize::MAX), b)),
        (idx.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i.index(usize::MAX), b)),
        idx.clone().prop_map(|i| Mutation::Truncate(i.index(usize::MAX))),
        (idx.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Splice(i.index(usize::MAX), b)),
        (idx.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i.index(usize::MAX), b)),
        (idx.clone(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i.index(usize::MAX), n)),
        prop_oneof![
            Just(0u32),
            Just(1),
            Just(11),
            Just(12),
            Just(u32::MAX),
            Just(u32::MAX - 1),
            any::<u32>()
        ]
        .prop_map(Mutation::SetLen),
        any::<i8>().prop_map(Mutation::NudgeLen),
        (
            idx.clone(),
            prop_oneof![Just(0u16), Just(1), Just(u16::MAX), any::<u16>()]
        )
            .prop_map(|(i, v)| Mutation::SetU16(i.index(usize::MAX), v)),
        (idx, prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()])
            .prop_map(|(i, v)| Mutation::SetU32(i.index(usize::MAX), v)),
    ]
}

fn mutate(buf: &mut Vec<u8>, m: &Mutation) {
    let n = buf.len();
    let at = |i: usize| if n == 0 { 0 } else { i % n };
    match m {
        Mutation::FlipBit(i, b) if n > 0 => buf[at(*i)] ^= 1 << b,
        Mutation::SetByte(i, v) if n > 0 => buf[at(*i)] = *v,
        Mutation::Truncate(i) => buf.truncate(if n == 0 { 0 } else { i % (n + 1) }),
        Mutation::Splice(i, bytes) if n > 0 => {
            let s = at(*i);
            let e = (s + bytes.len()).min(n);
            buf[s..e].copy_from_slice(&bytes[..e - s]);
        }
        Mutation::Insert(i, bytes) => {
            let s = if n == 0 { 0 } else { i % (n + 1) };
            buf.splice(s..s, bytes.iter().copied());
        }
        Mutation::Remove(i, len) if n > 0 => {
            let s = at(*i);
            buf.drain(s..(s + len).min(n));
        }
        Mutation::SetLen(len) if n >= 8 => buf[4..8].copy_from_slice(&len.to_le_bytes()),
        Mutation::NudgeLen(d) if n >= 8 => {
            let len = u32::from_le_bytes(buf[4..8].try_into().unwrap()).wrapping_add_signed(*d as i32);
            buf[4..8].copy_from_slice(&len.to_le_bytes());
        }
        Mutation::SetU16(i, v) if n >= 2 => {
            let s = i % (n - 1);
            buf[s..s + 2].copy_from_slice(&v.to_le_bytes());
        }
        Mutation::SetU32(i, v) if n >= 4 => {
            let s = i % (n - 3);
            buf[s..s + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => {}
    }
}

#[test]
fn decode_random_bytes() {
    let mut runner = TestRunner::new(config(cases()));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..600), |bytes| {
            fuzz_one(&bytes);
            Ok(())
        })
        .unwrap();
}

#[test]
fn decode_random_payloads_behind_a_valid_checksum() {
    let mut runner = TestRunner::new(config(cases()));
    let strat = (any::<u64>(), 1u32..6, prop::collection::vec(any::<u8>(), 0..400));
    runner
        .run(&strat, |(seq, count, body)| {
            // A plausible payload header (seq, small count) so the op parser runs.
            let mut buf = vec![0u8; 8];
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&count.to_le_bytes());
            buf.extend_from_slice(&body);
            let len = (buf.len() - 8) as u32;
            buf[4..8].copy_from_slice(&len.to_le_bytes());
            fix_crc(&mut buf);
            fuzz_one(&buf);
            Ok(())
        })
        .unwrap();
}

#[test]
fn decode_mutated_valid_frames() {
    let mut runner = TestRunner::new(config(cases()));
    let strat = (
        frame(),
        prop::collection::vec(mutation(), 1..4),
        any::<bool>(),
        prop::option::of(frame()),
    );
    let decoded = std::cell::Cell::new(0u32);
    runner
        .run(&strat, |(mut buf, muts, fix, tail)| {
            for m in &muts {
                mutate(&mut buf, m);
            }
            if fix {
                fix_crc(&mut buf);
            }
            // Sometimes a whole second frame follows: it must not be taken in.
            if let Some(t) = tail {
                buf.extend_from_slice(&t);
            }
            if fuzz_one(&buf) {
                decoded.set(decoded.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // Mutations that only touch a value behind a fixed checksum stay valid;
    // some must, or the invariants above were never exercised.
    assert!(decoded.get() > 0, "no mutated frame ever decoded");
}

#[test]
fn valid_frames_round_trip_and_every_cut_is_incomplete() {
    let mut runner = TestRunner::new(config(cases() / 4 + 1));
    runner
        .run(&(frame(), frame()), |(a, b)| {
            let mut two = a.clone();
            two.extend_from_slice(&b);
            let rec = record::decode(&two).expect("a valid frame followed by another");
            assert_eq!(rec.frame_len, a.len());
            check_record(&two, &rec);
            for cut in 0..a.len() {
                assert_eq!(
                    record::decode(&a[..cut]),
                    Err(record::FrameError::Incomplete),
                    "cut at {cut}"
                );
            }
            Ok(())
        })
        .unwrap();
}

// ---- recovery over garbage ----

#[derive(Debug, Clone)]
enum Garbage {
    Random(Vec<u8>),
    /// A frame with a newer sequence number, mutated; its checksum may be fixed.
    MutatedFrame(Vec<GenOp>, Vec<Mutation>, bool),
}

fn garbage() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 1..1500).prop_map(Garbage::Random),
        1 => (prop::collection::vec(gen_op(), 1..4), prop::collection::vec(mutation(), 1..3), any::<bool>())
            .prop_map(|(ops, m, fix)| Garbage::MutatedFrame(ops, m, fix)),
    ]
}

#[test]
fn open_with_garbage_after_the_last_record_never_panics() {
    let n = (cases() / 100).max(8);
    let mut runner = TestRunner::new(config(n));
    let strat = (
        prop::collection::vec((1u8..40, prop::collection::vec(any::<u8>(), 0..120)), 1..20),
        garbage(),
    );
    runner
        .run(&strat, |(writes, garbage)| {
            let dir = tempfile::tempdir().unwrap();
            let o = Options {
                sync: SyncPolicy::Never,
                segment_size: 64 << 10,
                ..Options::default()
            };
            let mut model = BTreeMap::new();
            {
                let db = Db::open(dir.path(), o.clone()).unwrap();
                for (k, v) in &writes {
                    let key = format!("key{k}").into_bytes();
                    db.put(&key, v).unwrap();
                    model.insert(key, v.clone());
                }
                db.close().unwrap();
            }
            let id = *segment::list(dir.path()).unwrap().last().unwrap();
            let path = dir.path().join(segment::segment_file_name(id));
            let len = fs::metadata(&path).unwrap().len();
            let bytes = match &garbage {
                Garbage::Random(b) => b.clone(),
                Garbage::MutatedFrame(ops, muts, fix) => {
                    let mut b = encode_ops(1_000_000, ops);
                    for m in muts {
                        mutate(&mut b, m);
                    }
                    if *fix {
                        fix_crc(&mut b);
                    }
                    b
                }
            };
            let mut data = fs::read(&path).unwrap();
            let mut bytes = bytes;
            resalt(&mut bytes, segment::frame_salt(&data));
            data.extend_from_slice(&bytes);
            fs::write(&path, &data).unwrap();

            match (Db::open(dir.path(), o.clone()), &garbage) {
                (Ok(db), _) => {
                    let state: BTreeMap<Vec<u8>, Vec<u8>> = db
                        .scan_prefix(b"")
                        .unwrap()
                        .map(|r| r.map(|(k, v)| (k, v.to_vec())))
                        .collect::<Result<_, _>>()
                        .unwrap();
                    if matches!(garbage, Garbage::Random(_)) || db.recovery_report().records == writes.len() as u64 {
                        // Garbage was cut as a torn tail: exactly the written records remain.
                        assert_eq!(state, model);
                        assert_eq!(fs::metadata(&path).unwrap().len(), len);
                    } else {
                        // A mutation left a valid newer record: it was replayed on
                        // top, and every key it does not name kept its value.
                        let Garbage::MutatedFrame(ops, ..) = &garbage else {
                            unreachable!()
                        };
                        for (k, v) in &model {
                            if ops.iter().all(|o| &o.key != k) {
                                assert_eq!(state.get(k), Some(v));
                            }
                        }
                    }
                    db.close().unwrap();
                    drop(db);
                    // Whatever recovery decided, it decided for good.
                    let again = Db::open(dir.path(), o).unwrap();
                    assert!(again.recovery_report().truncated.is_empty());
                }
                (Err(Error::Corruption { .. }), Garbage::MutatedFrame(..)) => {}
                (Err(e), _) => panic!("open failed on garbage {garbage:?}: {e}"),
            }
            Ok(())
        })
        .unwrap();
}
