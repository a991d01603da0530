//! The on-disk format, byte for byte, as `docs/design/on-disk-format.md`
//! shows it.
//!
//! A database is opened, one key is put and the log is rolled, so the real
//! write path produces a writer segment holding one frame and compaction's
//! hint writer produces its hint file. Each file is rendered as an annotated
//! dump and the page must contain that dump verbatim: a change to the
//! record, segment header or hint layout (including a new rkyv archive
//! layout for the hint body) fails here until the page, and the format
//! version, follow it.

use std::fmt::Write as _;
use std::path::Path;

use mantisdb_core::log::hint::{self, HINT_FORMAT_VERSION, HINT_MAGIC};
use mantisdb_core::log::record::{self, OpKind};
use mantisdb_core::log::segment::{self, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use mantisdb_core::{Db, Options};

/// The page holding the dumps, relative to the crate.
const FORMAT_PAGE: &str = "../docs/design/on-disk-format.md";

/// Renders `bytes` as one line per field: offset, the field's bytes (16 per
/// line) and its label. The fields must cover the bytes exactly.
fn render(bytes: &[u8], fields: &[(usize, &str)]) -> String {
    let covered: usize = fields.iter().map(|(len, _)| len).sum();
    assert_eq!(covered, bytes.len(), "the annotated fields do not cover the file");
    let mut out = String::from("offset  bytes                                            field\n");
    let mut at = 0;
    for &(len, label) in fields {
        for (i, chunk) in bytes[at..at + len].chunks(16).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let label = if i == 0 { label } else { "" };
            let line = format!("{:>6}  {:<47}  {label}", at + i * 16, hex.join(" "));
            writeln!(out, "{}", line.trim_end()).expect("writing to a String");
        }
        at += len;
    }
    writeln!(out, "{at:>6}  (end of file)").expect("writing to a String");
    out
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Fails unless the format page holds `dump` verbatim, printing the dump to
/// paste when it does not.
fn assert_documented(what: &str, dump: &str) {
    let page_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FORMAT_PAGE);
    let page = std::fs::read_to_string(&page_path).expect("reading docs/design/on-disk-format.md");
    assert!(
        page.contains(dump),
        "{} does not show the {what} the code writes; the code writes:\n\n{dump}",
        page_path.display()
    );
}

#[test]
fn one_put_segment_and_its_hint_match_the_format_page() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            background_compaction: false,
            ..Options::default()
        },
    )
    .unwrap();
    db.put(b"user:1", b"ada").unwrap();
    // Closes segment 1 (a new writer segment 2 takes over) and writes the
    // hint of segment 1; nothing is dead, so nothing is rewritten.
    db.compact().unwrap();
    db.close().unwrap();

    let seg = std::fs::read(dir.path().join(segment::segment_file_name(1))).unwrap();
    // The labels below state checksums and lengths; hold the bytes to them.
    assert_eq!(&seg[0..8], &SEGMENT_MAGIC);
    assert_eq!(SEGMENT_FORMAT_VERSION, 2);
    assert_eq!(le32(&seg, 28), crc32c::crc32c(&seg[0..28]));
    let salt = record::Salt::of_segment(1);
    assert_eq!(salt.0, crc32c::crc32c(b"mantisdb segment\x01\x00\x00\x00"));
    assert_eq!(le32(&seg, 32), crc32c::crc32c_append(salt.0, &seg[36..]));
    assert_eq!(le32(&seg, 59), record::kv_checksum(b"user:1", b"ada"));
    let rec = record::decode_salted(&seg[SEGMENT_HEADER_LEN as usize..], salt).unwrap();
    assert_eq!((rec.seq, rec.ops.len(), rec.ops[0].kind), (1, 1, OpKind::Put));
    assert_eq!(rec.frame_len, seg.len() - SEGMENT_HEADER_LEN as usize);
    let segment_dump = render(
        &seg,
        &[
            (8, "segment header: magic \"MANTISSG\""),
            (2, "format version 2"),
            (2, "flags 0: a writer segment"),
            (4, "segment id 1"),
            (8, "base_seq 0: the first record is seq 1"),
            (4, "prev_writer 0: none"),
            (4, "header crc: CRC32C of bytes 0..28"),
            (4, "frame: crc, CRC32C of bytes 36..72 (len and payload) from salt 1"),
            (4, "len 32: the payload's bytes"),
            (8, "payload: seq 1"),
            (4, "count 1"),
            (1, "op: flags 0x01, a put without expiry"),
            (2, "key_len 6"),
            (4, "val_len 3"),
            (4, "kv_crc: CRC32C of key and value"),
            (6, "key \"user:1\""),
            (3, "value \"ada\""),
        ],
    );
    assert_documented("one-put segment", &segment_dump);

    let hint_file = std::fs::read(hint::hint_path(dir.path(), 1)).unwrap();
    assert_eq!(&hint_file[0..8], &HINT_MAGIC);
    assert_eq!(HINT_FORMAT_VERSION, 1);
    let body_len = le32(&hint_file, 12) as usize;
    assert_eq!(body_len, hint_file.len() - 24);
    assert_eq!(body_len, 112);
    assert_eq!(le32(&hint_file, 16), crc32c::crc32c(&hint_file[24..]));
    let valid = hint::validate(&hint_file, 1, seg.len() as u64).unwrap();
    let body = valid.body();
    assert_eq!(body.segment_crc.to_native(), crc32c::crc32c(&seg));
    assert_eq!(body.entries.len(), 1);
    assert_eq!(body.entries[0].kv_offset.to_native(), 63);
    let hint_dump = render(
        &hint_file,
        &[
            (8, "hint header: magic \"MANTISHT\""),
            (2, "format version 1"),
            (2, "flags 0"),
            (4, "body_len 112"),
            (4, "body_crc: CRC32C of the body"),
            (4, "reserved, 0"),
            (6, "body: the key's bytes \"user:1\""),
            (3, "the value's bytes \"ada\""),
            (7, "padding"),
            (8, "HintEntry: key, relative pointer -16 (to 24), length 6"),
            (8, "seq 1"),
            (8, "delete false, padding"),
            (8, "expires_at 0"),
            (8, "kv_offset 63"),
            (4, "val_len 3"),
            (4, "kv_crc"),
            (4, "value: Some, padding"),
            (8, "relative pointer -62 (to 30), length 3"),
            (4, "padding"),
            (4, "HintBody, the root: segment_id 1"),
            (4, "padding"),
            (8, "segment_len 72"),
            (4, "segment_crc: CRC32C of the whole segment file"),
            (8, "entries: relative pointer -84 (to 40), length 1"),
            (4, "padding"),
        ],
    );
    assert_documented("hint file of that segment", &hint_dump);
}
