//! `segment_decode`: a whole segment file (header and frames) as recovery
//! reads it.
//!
//! - `segment::check_header` never panics; it accepts a header only if its
//!   magic, checksum, version (1 or 2), id and flags are right, and what it
//!   returns is what the bytes say (re-encoding gives the same bytes but
//!   the version, and the salt follows the version);
//! - the frames after the header are walked as recovery walks them (with
//!   the salt the header gives, none when it is not a valid header), each
//!   decoded frame checked as in `record_decode`; the input is also tried
//!   with the header's and each frame's checksum fixed, so the parsers
//!   behind the checksums see the bytes;
//! - `hint::entries_from_frames` (what a hint file is built from) never
//!   panics and lists exactly the ops of the frames the walk accepted, each
//!   locating its key and value in the file, values inlined up to the limit.

use mantisdb_core::log::hint;
use mantisdb_core::log::record;
use mantisdb_core::log::segment::{self, HEADER_CRC_AT, SEGMENT_HEADER_LEN};

use crate::record::{decode_checked_salted, fix_crc_salted};

const HEADER: usize = SEGMENT_HEADER_LEN as usize;

fn check_header(data: &[u8]) {
    let id = data
        .get(12..16)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if let Ok(h) = segment::check_header(data, id) {
        // The reserved field (bytes 24..28) is covered by the checksum but
        // not read.
        let again = segment::encode_header(id, h.flags, h.base_seq);
        assert_eq!(
            (&again[..8], &again[10..24]),
            (&data[..8], &data[10..24]),
            "an accepted header does not re-encode to its bytes"
        );
        let version = u16::from_le_bytes([data[8], data[9]]);
        let salt = match version {
            segment::SEGMENT_FORMAT_V1 => record::Salt::NONE,
            segment::SEGMENT_FORMAT_VERSION => record::Salt::of_segment(id),
            v => panic!("header of version {v} accepted"),
        };
        assert_eq!(h.salt, salt);
        assert!(segment::check_header(data, id.wrapping_add(1)).is_err());
    }
}

/// Walks the frames after the header, fixing each frame's checksum first
/// when `fix`; returns where the last good frame ends, the ops seen, and the
/// bytes walked.
fn walk(data: &[u8], fix: bool) -> (usize, usize, Vec<u8>) {
    let mut data = data.to_vec();
    let salt = segment::frame_salt(&data);
    let mut at = HEADER;
    let mut ops = 0;
    while at < data.len() {
        if fix {
            fix_crc_salted(&mut data[at..], salt);
        }
        let Some(rec) = decode_checked_salted(&data[at..], salt) else {
            break;
        };
        ops += rec.ops.len();
        at += rec.frame_len;
    }
    (at, ops, data)
}

fn check_entries(data: &[u8], end: usize, ops: usize, inline: usize) {
    let entries = hint::entries_from_frames(&data[..end], inline);
    assert_eq!(entries.len(), ops, "hint entries differ from the ops decoded");
    for e in &entries {
        let k = e.kv_offset as usize;
        assert_eq!(&data[k..k + e.key.len()], &e.key[..]);
        let v = k + e.key.len();
        let value = &data[v..v + e.val_len as usize];
        assert_eq!(record::kv_checksum(&e.key, value), e.kv_crc);
        assert!(!e.delete || e.val_len == 0);
        match &e.value {
            Some(inl) => assert!(!e.delete && inl.len() <= inline && &inl[..] == value),
            None => assert!(e.delete || value.len() > inline),
        }
    }
}

/// The target.
pub fn run(data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let inline = data[0] as usize * 4;
    let data = &data[1..];
    check_header(data);
    if data.len() >= HEADER {
        let mut fixed = data.to_vec();
        let crc = crc32c::crc32c(&fixed[..HEADER_CRC_AT]);
        fixed[HEADER_CRC_AT..HEADER].copy_from_slice(&crc.to_le_bytes());
        check_header(&fixed);
        for fix in [false, true] {
            let (end, ops, walked) = walk(data, fix);
            check_entries(&walked, end, ops, inline);
        }
    }
}
