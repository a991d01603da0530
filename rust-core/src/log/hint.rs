//! Hint files: the index entries of a closed segment, for fast restart.
//!
//! Beside a closed segment `{id:010}.seg`, `{id:010}.hint` lists every op in
//! it (key, sequence, kind, location, expiry, checksum, and small values) so
//! open rebuilds the index without reading the segment's data.
//!
//! ```text
//! header := magic:"MANTISHT"  version:u16  flags:u16  body_len:u32  body_crc:u32  reserved:u32   (24 bytes)
//! body   := rkyv archive of HintBody, validated (bytecheck) before use
//! ```
//!
//! A hint is trusted only if its magic, version, checksum and archive are
//! valid and it names the segment and the segment's exact length; anything
//! else makes recovery fall back to reading the segment (and rewrite the hint).

use std::path::{Path, PathBuf};

use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::record::{self, OpKind};
use super::segment;
use crate::error::{Error, Result};
use crate::vfs::{FileSystem, OpenMode};

/// Magic number at the start of every hint file.
pub const HINT_MAGIC: [u8; 8] = *b"MANTISHT";
/// Hint format version.
pub const HINT_FORMAT_VERSION: u16 = 1;
const HINT_HEADER_LEN: usize = 24;
/// Values up to this size are copied into hints, so they can be inlined on open.
pub const HINT_VALUE_MAX: usize = 4096;

/// Bytes an archived [`HintEntry`] takes besides its key and value (its
/// fixed fields, relative pointers and padding; a slight overestimate).
const HINT_ENTRY_ARCHIVED: usize = 72;

/// One op of the segment.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct HintEntry {
    /// The key.
    pub key: Vec<u8>,
    /// Commit sequence number.
    pub seq: u64,
    /// True for a delete.
    pub delete: bool,
    /// Absolute expiry (ms since the Unix epoch), 0 for none.
    pub expires_at: u64,
    /// Offset of the key in the segment.
    pub kv_offset: u64,
    /// Value length.
    pub val_len: u32,
    /// CRC32C of key || value.
    pub kv_crc: u32,
    /// The value, when it is at most the inline size given to [`entries_from_frames`].
    pub value: Option<Vec<u8>>,
}

/// The archived content of a hint file.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct HintBody {
    /// The segment this hint describes.
    pub segment_id: u32,
    /// The segment's length when the hint was written.
    pub segment_len: u64,
    /// CRC32C of the whole segment file, so open can check the segment
    /// against its hint without decoding it.
    pub segment_crc: u32,
    /// Every op in the segment, in file order.
    pub entries: Vec<HintEntry>,
}

/// File name of the hint of segment `id`.
pub fn hint_file_name(id: u32) -> String {
    format!("{id:010}.hint")
}

/// Path of the hint of segment `id`.
pub fn hint_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(hint_file_name(id))
}

/// Hint entries for every op in `data` (a whole segment file), keeping values up to `inline_max`.
pub fn entries_from_frames(data: &[u8], inline_max: usize) -> Vec<HintEntry> {
    let mut out = Vec::new();
    let mut at = segment::SEGMENT_HEADER_LEN as usize;
    while let Some(Ok(rec)) = data.get(at..).map(record::decode) {
        for op in &rec.ops {
            out.push(HintEntry {
                key: op.key.to_vec(),
                seq: rec.seq,
                delete: op.kind == OpKind::Delete,
                expires_at: op.expires_at,
                kv_offset: (at + op.kv_offset) as u64,
                val_len: op.value.len() as u32,
                kv_crc: op.kv_crc,
                value: (op.kind == OpKind::Put && op.value.len() <= inline_max).then(|| op.value.to_vec()),
            });
        }
        at += rec.frame_len;
    }
    out
}

/// Writes the hint of segment `id` atomically (temp file, fsync, rename, dir
/// fsync). On failure the temporary file is removed (when that fails too,
/// the next open removes it).
pub fn write(fs: &dyn FileSystem, dir: &Path, id: u32, segment: &[u8], entries: Vec<HintEntry>) -> Result<()> {
    let body = HintBody {
        segment_id: id,
        segment_len: segment.len() as u64,
        segment_crc: crc32c::crc32c(segment),
        entries,
    };
    // Sized up front: growing from empty by doubling copied the archive
    // again at every step and faulted in fresh, zeroed pages each time
    // (the compaction thread's largest cost under a write load).
    let estimate = 64
        + body
            .entries
            .iter()
            .map(|e| HINT_ENTRY_ARCHIVED + e.key.len() + e.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
    let bytes = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&body, AlignedVec::<16>::with_capacity(estimate))
        .map_err(|e| Error::Internal(format!("encoding hint of segment {id}: {e}")))?;
    let mut header = [0u8; HINT_HEADER_LEN];
    header[0..8].copy_from_slice(&HINT_MAGIC);
    header[8..10].copy_from_slice(&HINT_FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    header[16..20].copy_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    let path = hint_path(dir, id);
    let tmp = dir.join(format!("{}.tmp", hint_file_name(id)));
    let written = fs.open(&tmp, OpenMode::Replace).and_then(|f| {
        f.append(&header)?;
        f.append(&bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io(format!("writing {}", tmp.display()), e));
    }
    if let Err(e) = fs.rename(&tmp, &path) {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io(format!("renaming {} into place", tmp.display()), e));
    }
    segment::sync_dir(fs, dir)
}

/// Reads and validates the hint of segment `id` for a segment of `segment_len`
/// bytes. `Ok(None)`: no usable hint (missing, stale or damaged); the reason
/// is returned beside it for the recovery report.
pub fn read(fs: &dyn FileSystem, dir: &Path, id: u32, segment_len: u64) -> (Option<ValidHint>, Option<String>) {
    let path = hint_path(dir, id);
    let (header, body) = match read_parts(fs, &path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (None, None),
        Err(e) => return (None, Some(format!("{}: {e}", path.display()))),
    };
    match check_header(&header, body.len()).and_then(|crc| check_body(body, crc, id, segment_len)) {
        Ok(body) => (Some(body), None),
        Err(reason) => (None, Some(format!("{}: {reason}", path.display()))),
    }
}

/// The header of the hint file at `path` (shorter than a header if the file
/// is) and its body, read straight into the aligned buffer rkyv reads from.
fn read_parts(fs: &dyn FileSystem, path: &Path) -> std::io::Result<(Vec<u8>, AlignedVec)> {
    let f = fs.open(path, OpenMode::Read)?;
    let len = usize::try_from(f.size()?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "file too large"))?;
    let mut header = vec![0u8; len.min(HINT_HEADER_LEN)];
    f.read_exact_at(&mut header, 0)?;
    let mut body = AlignedVec::<16>::new();
    if len > HINT_HEADER_LEN {
        body.resize(len - HINT_HEADER_LEN, 0);
        f.read_exact_at(body.as_mut_slice(), HINT_HEADER_LEN as u64)?;
    }
    Ok((header, body))
}

/// Checks the bytes of a hint file as [`read`] does; `Err` carries the reason.
/// Public for the fuzz targets.
#[doc(hidden)]
pub fn validate(data: &[u8], id: u32, segment_len: u64) -> std::result::Result<ValidHint, String> {
    let body = data.get(HINT_HEADER_LEN..).unwrap_or_default();
    let crc = check_header(data, body.len())?;
    // rkyv reads in place from an aligned buffer.
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    check_body(aligned, crc, id, segment_len)
}

/// Checks a hint file's header (magic, version, the body length it names
/// against `body_len`); returns the body checksum it names.
fn check_header(header: &[u8], body_len: usize) -> std::result::Result<u32, String> {
    if header.len() < HINT_HEADER_LEN || header[0..8] != HINT_MAGIC {
        return Err("not a hint file (bad magic or too short)".into());
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != HINT_FORMAT_VERSION {
        return Err(format!("hint format version {version} is not supported"));
    }
    let len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
    if body_len != len {
        return Err(format!("body is {body_len} bytes, header says {len}"));
    }
    Ok(u32::from_le_bytes([header[16], header[17], header[18], header[19]]))
}

/// Checks a hint body against its checksum `crc`, as an archive, and against
/// the segment it must describe.
fn check_body(body: AlignedVec, crc: u32, id: u32, segment_len: u64) -> std::result::Result<ValidHint, String> {
    if crc32c::crc32c(&body) != crc {
        return Err("checksum mismatch".into());
    }
    let archived =
        rkyv::access::<ArchivedHintBody, rancor::Error>(&body).map_err(|e| format!("invalid archive: {e}"))?;
    if archived.segment_id.to_native() != id {
        return Err(format!(
            "describes segment {}, not {id}",
            archived.segment_id.to_native()
        ));
    }
    if archived.segment_len.to_native() != segment_len {
        return Err(format!(
            "describes {} bytes of the segment, which has {segment_len}",
            archived.segment_len.to_native()
        ));
    }
    Ok(ValidHint(body))
}

/// A hint file body that passed validation; only [`check_body`] makes one.
#[derive(Debug)]
pub struct ValidHint(AlignedVec);

impl ValidHint {
    /// Size of the archived body in bytes (what holding it costs).
    pub fn size(&self) -> usize {
        self.0.len()
    }

    /// The archived body, read in place.
    pub fn body(&self) -> &ArchivedHintBody {
        // SAFETY: a ValidHint is only built by `check_body`, right after
        // `rkyv::access` (bytecheck) accepted these exact bytes as an
        // `ArchivedHintBody`; the buffer is private and never mutated.
        unsafe { rkyv::access_unchecked::<ArchivedHintBody>(&self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<HintEntry> {
        vec![
            HintEntry {
                key: b"a".to_vec(),
                seq: 1,
                delete: false,
                expires_at: 0,
                kv_offset: 40,
                val_len: 3,
                kv_crc: 7,
                value: Some(b"abc".to_vec()),
            },
            HintEntry {
                key: b"b".to_vec(),
                seq: 2,
                delete: true,
                expires_at: 0,
                kv_offset: 80,
                val_len: 0,
                kv_crc: 9,
                value: None,
            },
        ]
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        write(&fs, dir.path(), 4, &[1u8; 1000], sample()).unwrap();
        let (buf, why) = read(&fs, dir.path(), 4, 1000);
        assert!(why.is_none());
        assert_eq!(
            buf.as_ref().unwrap().body().segment_crc.to_native(),
            crc32c::crc32c(&[1u8; 1000])
        );
        let hint = buf.unwrap();
        let body = hint.body();
        assert_eq!(body.entries.len(), 2);
        assert_eq!(body.entries[0].key.as_slice(), b"a");
        assert!(body.entries[1].delete);
    }

    #[test]
    fn stale_damaged_or_missing_hints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        let (buf, why) = read(&fs, dir.path(), 4, 1000);
        assert!(buf.is_none() && why.is_none());
        write(&fs, dir.path(), 4, &[0u8; 1000], sample()).unwrap();
        assert!(read(&fs, dir.path(), 4, 999)
            .1
            .unwrap()
            .contains("describes 1000 bytes"));
        let path = hint_path(dir.path(), 4);
        let mut data = std::fs::read(&path).unwrap();
        for i in [0, 9, 13, 17, HINT_HEADER_LEN + 3, data.len() - 1] {
            let mut bad = data.clone();
            bad[i] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            let (buf, why) = read(&fs, dir.path(), 4, 1000);
            assert!(buf.is_none() && why.is_some(), "flip at {i} accepted");
        }
        data.truncate(30);
        std::fs::write(&path, &data).unwrap();
        assert!(read(&fs, dir.path(), 4, 1000).0.is_none());
    }
}
