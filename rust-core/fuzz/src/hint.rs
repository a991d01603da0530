//! `hint_decode`: hint files as recovery reads them (`hint::validate`).
//!
//! The first input byte picks the mode:
//! - raw: the bytes are a hint file; they are validated as they are, and
//!   again with the header's length and checksum rewritten to match the
//!   body, so rkyv's validation (bytecheck) sees arbitrary bytes;
//! - structured: a valid hint body is built from the input (entries with
//!   keys, values, flags), archived, then bytes of the archive are
//!   overwritten with input bytes before the checksum is fixed, so the
//!   validator sees near-valid archives.
//!
//! Checks: nothing panics; `hint::validate` accepts a body exactly when
//! rkyv's own validation accepts it and its segment id and length match;
//! every field of every entry of an accepted body can be read (its `Vec`s
//! lie inside the buffer: walking them under the fuzzer's checks would
//! catch an out-of-bounds read as a crash); an unmodified archive is
//! accepted and reads back the entries it was built from.

use mantisdb_core::log::hint::{self, ArchivedHintBody, HintBody, HintEntry, HINT_FORMAT_VERSION, HINT_MAGIC};
use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::input::Input;

const HEADER: usize = 24;

/// Header + body with the length and checksum fields matching the body.
fn file(body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; HEADER];
    f[0..8].copy_from_slice(&HINT_MAGIC);
    f[8..10].copy_from_slice(&HINT_FORMAT_VERSION.to_le_bytes());
    f[12..16].copy_from_slice(&(body.len() as u32).to_le_bytes());
    f[16..20].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// Reads every field of an accepted body; returns a digest of them.
fn walk(b: &ArchivedHintBody) -> u64 {
    let mut sum = b.segment_crc.to_native() as u64;
    for e in b.entries.iter() {
        sum = sum
            .wrapping_add(e.key.iter().map(|&x| x as u64).sum::<u64>())
            .wrapping_add(e.seq.to_native())
            .wrapping_add(e.expires_at.to_native())
            .wrapping_add(e.kv_offset.to_native())
            .wrapping_add(e.val_len.to_native() as u64)
            .wrapping_add(e.kv_crc.to_native() as u64)
            .wrapping_add(e.delete as u64);
        if let Some(v) = e.value.as_ref() {
            sum = sum.wrapping_add(v.iter().map(|&x| x as u64).sum::<u64>());
        }
    }
    sum
}

/// Validates `f` (a whole hint file) against rkyv's own verdict.
fn check_file(f: &[u8]) {
    let _ = hint::validate(f, 0, 0);
    if f.len() < HEADER || f[0..8] != HINT_MAGIC {
        assert!(hint::validate(f, 0, 0).is_err());
        return;
    }
    let body = &f[HEADER..];
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    let framed_ok = f[8..10] == HINT_FORMAT_VERSION.to_le_bytes()
        && u32::from_le_bytes([f[12], f[13], f[14], f[15]]) as usize == body.len()
        && u32::from_le_bytes([f[16], f[17], f[18], f[19]]) == crc32c::crc32c(body);
    match rkyv::access::<ArchivedHintBody, rancor::Error>(&aligned) {
        Ok(archived) if framed_ok => {
            let (id, len) = (archived.segment_id.to_native(), archived.segment_len.to_native());
            let valid = hint::validate(f, id, len).expect("rkyv accepts the body but validate refuses it");
            assert_eq!(walk(valid.body()), walk(archived));
            assert!(hint::validate(f, id.wrapping_add(1), len).is_err());
            assert!(hint::validate(f, id, len.wrapping_add(1)).is_err());
        }
        Ok(_) => assert!(hint::validate(f, 0, 0).is_err()),
        Err(_) => {
            let e = hint::validate(f, 0, 0).expect_err("validate accepts what rkyv refuses");
            assert!(!framed_ok || e.contains("invalid archive"), "{e}");
        }
    }
}

fn entries(inp: &mut Input<'_>) -> Vec<HintEntry> {
    let n = inp.below(8);
    (0..n)
        .map(|_| {
            let kl = 1 + inp_len(inp, 16);
            let key = inp.bytes(kl).to_vec();
            let delete = inp.u8() & 1 == 1;
            let value = (!delete && inp.u8() & 1 == 1).then(|| {
                let l = inp_len(inp, 32);
                inp.bytes(l).to_vec()
            });
            HintEntry {
                key,
                seq: inp.u64(),
                delete,
                expires_at: inp.u64(),
                kv_offset: inp.u64(),
                val_len: inp.u32(),
                kv_crc: inp.u32(),
                value,
            }
        })
        .collect()
}

fn inp_len(inp: &mut Input<'_>, max: usize) -> usize {
    inp.below(max + 1)
}

/// The target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    if inp.u8() & 1 == 0 {
        let raw = inp.rest();
        check_file(raw);
        if raw.len() >= HEADER {
            let mut fixed = file(&raw[HEADER..]);
            fixed[..HEADER.min(raw.len())][10..12].copy_from_slice(&raw[10..12]);
            check_file(&fixed);
        }
        return;
    }
    let body = HintBody {
        segment_id: inp.u32(),
        segment_len: inp.u64(),
        segment_crc: inp.u32(),
        entries: entries(&mut inp),
    };
    let bytes = rkyv::to_bytes::<rancor::Error>(&body).expect("archiving a hint body");
    let (id, len) = (body.segment_id, body.segment_len);
    let intact = file(&bytes);
    let valid = hint::validate(&intact, id, len).expect("an unmodified archive is refused");
    let got = &valid.body().entries;
    assert_eq!(got.len(), body.entries.len());
    for (a, b) in got.iter().zip(&body.entries) {
        assert_eq!(a.key.as_slice(), &b.key[..]);
        assert_eq!(a.seq.to_native(), b.seq);
        assert_eq!(a.value.as_ref().map(|v| v.as_slice()), b.value.as_deref());
    }
    // Overwrite some bytes of the archive, then fix the framing.
    let mut body_bytes = bytes.to_vec();
    let edits = inp.below(6);
    for _ in 0..edits {
        if body_bytes.is_empty() {
            break;
        }
        let at = inp.u16() as usize % body_bytes.len();
        body_bytes[at] = inp.u8();
    }
    if inp.u8() & 1 == 1 {
        let cut = inp.u16() as usize % (body_bytes.len() + 1);
        body_bytes.truncate(cut);
    }
    check_file(&file(&body_bytes));
}
