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
use crate::vfs::{FileHandle, FileSystem, OpenMode};

/// Magic number at the start of every hint file.
pub const HINT_MAGIC: [u8; 8] = *b"MANTISHT";
/// Hint format version.
pub const HINT_FORMAT_VERSION: u16 = 1;
const HINT_HEADER_LEN: usize = 24;
/// Values up to this size are copied into hints, so they can be inlined on open.
pub const HINT_VALUE_MAX: usize = 4096;

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

/// Size of the buffer a hint body is streamed through on its way to the file.
/// Large enough that a write is a few dozen pages, small enough to stay in
/// the CPU caches and never need fresh (kernel-zeroed) memory once warm.
pub const HINT_WRITE_BUFFER: usize = 128 << 10;

/// Writes the hint of segment `id` atomically (temp file, fsync, rename, dir
/// fsync). On failure the temporary file is removed (when that fails too,
/// the next open removes it).
///
/// The body is serialized straight into the file through one buffer of
/// [`HINT_WRITE_BUFFER`] bytes, with its checksum computed as it goes; the
/// header, which names the body's length and checksum, is written over a
/// placeholder at the end. The bytes are those of serializing the whole body
/// into memory first.
pub fn write(fs: &dyn FileSystem, dir: &Path, id: u32, segment: &[u8], entries: Vec<HintEntry>) -> Result<()> {
    write_buffered(fs, dir, id, segment, entries, HINT_WRITE_BUFFER)
}

/// [`write`], streaming through a buffer of `buf_len` bytes.
fn write_buffered(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    segment: &[u8],
    entries: Vec<HintEntry>,
    buf_len: usize,
) -> Result<()> {
    let body = HintBody {
        segment_id: id,
        segment_len: segment.len() as u64,
        segment_crc: crc32c::crc32c(segment),
        entries,
    };
    let path = hint_path(dir, id);
    let tmp = dir.join(format!("{}.tmp", hint_file_name(id)));
    let written = fs.open(&tmp, OpenMode::Replace).and_then(|f| {
        // Placeholder: a file cut short before the real header is written
        // has no magic, so it is never taken for a hint.
        f.append(&[0u8; HINT_HEADER_LEN])?;
        let (len, crc) = stream_body(&*f, &body, buf_len)?;
        let len = u32::try_from(len).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("hint body of {len} bytes is above the format's 4 GiB"),
            )
        })?;
        f.write_at(&header(len, crc), 0)?;
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

/// The header of a hint whose body is `body_len` bytes with checksum `body_crc`.
fn header(body_len: u32, body_crc: u32) -> [u8; HINT_HEADER_LEN] {
    let mut header = [0u8; HINT_HEADER_LEN];
    header[0..8].copy_from_slice(&HINT_MAGIC);
    header[8..10].copy_from_slice(&HINT_FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&body_len.to_le_bytes());
    header[16..20].copy_from_slice(&body_crc.to_le_bytes());
    header
}

/// Serializes `body` and appends it to `file` through a buffer of `buf_len`
/// bytes; returns the body's length and CRC32C.
fn stream_body(file: &dyn FileHandle, body: &HintBody, buf_len: usize) -> std::io::Result<(usize, u32)> {
    let mut sink = BodySink {
        file,
        buf: Vec::with_capacity(buf_len),
        cap: buf_len.max(1),
        pos: 0,
        crc: 0,
        failed: None,
    };
    if let Err(e) = rkyv::api::high::to_bytes_in::<_, rancor::Error>(body, &mut sink) {
        // A failed write keeps its own error (say, the disk is full).
        return Err(sink
            .failed
            .take()
            .unwrap_or_else(|| std::io::Error::other(format!("encoding the hint body: {e}"))));
    }
    sink.flush()?;
    Ok((sink.pos, sink.crc))
}

/// An rkyv writer that appends what it is given to a file through a bounded
/// buffer, keeping the running length and checksum of everything written.
struct BodySink<'f> {
    file: &'f dyn FileHandle,
    buf: Vec<u8>,
    cap: usize,
    /// Bytes taken so far (rkyv positions are offsets in the body).
    pos: usize,
    /// CRC32C of the bytes already appended to the file.
    crc: u32,
    /// The first write error, returned by [`stream_body`].
    failed: Option<std::io::Error>,
}

impl BodySink<'_> {
    /// Appends the buffered bytes to the file.
    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if !self.buf.is_empty() {
            self.crc = crc32c::crc32c_append(self.crc, &self.buf);
            self.file.append(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.buf.len() + bytes.len() > self.cap {
            self.flush()?;
        }
        if bytes.len() >= self.cap {
            self.crc = crc32c::crc32c_append(self.crc, bytes);
            self.file.append(bytes)?;
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }
}

impl rkyv::ser::Positional for BodySink<'_> {
    fn pos(&self) -> usize {
        self.pos
    }
}

impl rkyv::ser::Writer<rancor::Error> for BodySink<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), rancor::Error> {
        if self.failed.is_some() {
            return Err(<rancor::Error as rancor::Source>::new(std::io::Error::other(
                "an earlier write failed",
            )));
        }
        match self.put(bytes) {
            Ok(()) => {
                self.pos += bytes.len();
                Ok(())
            }
            Err(e) => {
                let err = <rancor::Error as rancor::Source>::new(std::io::Error::new(e.kind(), e.to_string()));
                self.failed = Some(e);
                Err(err)
            }
        }
    }
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

    /// A segment of `n` puts and deletes, with values from empty to above
    /// the inline size, so the hint body is far larger than small buffers.
    fn big_segment(n: u32) -> Vec<u8> {
        let mut seg = segment::encode_header(9, 0, 0).to_vec();
        let mut kv = Vec::new();
        for i in 0..n {
            let key = format!("key-{i:08}");
            let value = vec![(i % 251) as u8; (i as usize * 37) % 300];
            let op = record::OpRef {
                kind: if i % 7 == 3 { OpKind::Delete } else { OpKind::Put },
                key: key.as_bytes(),
                value: if i % 7 == 3 { &[] } else { &value },
                expires_at: if i % 5 == 0 {
                    1_900_000_000_000 + u64::from(i)
                } else {
                    0
                },
            };
            record::encode(&mut seg, u64::from(i) + 1, &[op], &mut kv);
        }
        seg
    }

    /// The hint file as written before streaming: the whole body serialized
    /// into memory, then header and body.
    fn whole_body_hint(id: u32, segment: &[u8], entries: Vec<HintEntry>) -> Vec<u8> {
        let body = HintBody {
            segment_id: id,
            segment_len: segment.len() as u64,
            segment_crc: crc32c::crc32c(segment),
            entries,
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&body).unwrap();
        let mut out = header(bytes.len() as u32, crc32c::crc32c(&bytes)).to_vec();
        out.extend_from_slice(&bytes);
        out
    }

    #[test]
    fn streamed_hint_is_byte_for_byte_the_whole_body_format() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        let seg = big_segment(4000);
        let entries = entries_from_frames(&seg, 256);
        assert_eq!(entries.len(), 4000);
        let expected = whole_body_hint(9, &seg, entries.clone());
        assert!(
            expected.len() > 4 * HINT_WRITE_BUFFER,
            "body of {} bytes is not larger than the buffer",
            expected.len()
        );
        // The default buffer, and sizes that split every kind of write
        // (buffer boundaries inside entries, writes larger than the buffer).
        for buf_len in [HINT_WRITE_BUFFER, 1, 7, 64, 4096, 65_537] {
            write_buffered(&fs, dir.path(), 9, &seg, entries.clone(), buf_len).unwrap();
            let got = std::fs::read(hint_path(dir.path(), 9)).unwrap();
            assert!(got == expected, "buffer of {buf_len} bytes: hint differs");
            let (valid, why) = read(&fs, dir.path(), 9, seg.len() as u64);
            assert!(why.is_none(), "{why:?}");
            assert_eq!(valid.unwrap().body().entries.len(), 4000);
        }
        // An empty segment's hint too.
        let empty = segment::encode_header(9, 0, 0).to_vec();
        write(&fs, dir.path(), 9, &empty, Vec::new()).unwrap();
        let got = std::fs::read(hint_path(dir.path(), 9)).unwrap();
        assert_eq!(got, whole_body_hint(9, &empty, Vec::new()));
    }

    #[test]
    fn a_hint_cut_short_is_refused() {
        // What a crash can leave of a streamed hint: any prefix of the file,
        // including the zeroed placeholder header and part of the body.
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        let seg = big_segment(1500);
        write(&fs, dir.path(), 9, &seg, entries_from_frames(&seg, 256)).unwrap();
        let path = hint_path(dir.path(), 9);
        let full = std::fs::read(&path).unwrap();
        assert!(full.len() > HINT_WRITE_BUFFER);
        let mut placeholder = full.clone();
        placeholder[..HINT_HEADER_LEN].fill(0);
        for cut in [
            0,
            10,
            HINT_HEADER_LEN,
            HINT_HEADER_LEN + 1,
            HINT_WRITE_BUFFER,
            full.len() - 1,
        ] {
            for (what, bytes) in [("written", &full), ("placeholder", &placeholder)] {
                std::fs::write(&path, &bytes[..cut]).unwrap();
                let (valid, why) = read(&fs, dir.path(), 9, seg.len() as u64);
                assert!(
                    valid.is_none() && why.is_some(),
                    "{what} header, cut at {cut}: accepted"
                );
            }
        }
        // The whole body under the placeholder header is not a hint either.
        std::fs::write(&path, &placeholder).unwrap();
        assert!(read(&fs, dir.path(), 9, seg.len() as u64).0.is_none());
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
