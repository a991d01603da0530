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

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use rkyv::munge::munge;
use rkyv::rancor::{self, Fallible};
use rkyv::ser::{Allocator, Positional, Writer, WriterExt};
use rkyv::util::AlignedVec;
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::Place;

use super::frames::{self, FrameReader};
use super::record::{self, OpKind};
use super::segment::{self, Segment};
use crate::checksum;
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
    let salt = segment::frame_salt(data);
    while let Some(Ok(rec)) = data.get(at..).map(|d| record::decode_salted(d, salt)) {
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
        segment_crc: checksum::crc32c(segment),
        entries,
    };
    write_body(fs, dir, id, &body, buf_len)
}

/// Writes the hint of segment `id` (a whole segment file, `segment`) as
/// [`write`] does with the entries of [`entries_from_frames`], without
/// building them: each entry is serialized from the segment's frames as it
/// is reached, borrowing its key and value, so the only memory used beyond
/// the segment is the write buffer. The bytes are those [`write`] writes.
pub fn write_from_frames(fs: &dyn FileSystem, dir: &Path, id: u32, segment: &[u8], inline_max: usize) -> Result<()> {
    write_from_frames_buffered(fs, dir, id, segment, inline_max, HINT_WRITE_BUFFER)
}

fn write_from_frames_buffered(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    segment: &[u8],
    inline_max: usize,
    buf_len: usize,
) -> Result<()> {
    let body = HintBodyRef::new(id, FrameReader::memory(segment), None, inline_max);
    body.write(fs, dir, buf_len)
}

/// Writes the hint of the closed segment `seg` as [`write_from_frames`]
/// does from its bytes, reading the file through `window` (a buffer the
/// caller keeps for the next segment, see [`frames`]) in reads of at most
/// [`frames::WINDOW`] bytes: no buffer of the segment's size is allocated.
/// rkyv places the fixed part of each entry after all the keys and values,
/// so the entries are listed twice: the first pass reads the frames for
/// the keys and values (and the file's checksum), and keeps the fixed
/// fields of up to [`SCRATCH_ENTRIES`] entries in `scratch` (also kept by
/// the caller); the second writes those, and reads again only the frames
/// past them. The bytes are those [`write_from_frames`] writes from the
/// whole file.
pub fn write_from_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seg: &Segment,
    inline_max: usize,
    window: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Result<()> {
    write_from_segment_through(
        fs,
        dir,
        seg,
        inline_max,
        (window, frames::WINDOW),
        Some(scratch),
        HINT_WRITE_BUFFER,
    )
}

fn write_from_segment_through(
    fs: &dyn FileSystem,
    dir: &Path,
    seg: &Segment,
    inline_max: usize,
    (window, window_len): (&mut Vec<u8>, usize),
    scratch: Option<&mut Scratch>,
    buf_len: usize,
) -> Result<()> {
    let reader = FrameReader::open(seg, window, window_len, true)?;
    let body = HintBodyRef::new(seg.id, reader, scratch, inline_max);
    body.write(fs, dir, buf_len)
}

/// Streams `body` into the hint file of segment `id`, atomically.
fn write_body<B>(fs: &dyn FileSystem, dir: &Path, id: u32, body: &B, buf_len: usize) -> Result<()>
where
    B: for<'a, 'w, 'f> rkyv::Serialize<Sink<'a, 'w, 'f>>,
{
    let path = hint_path(dir, id);
    let tmp = dir.join(format!("{}.tmp", hint_file_name(id)));
    let written = fs.open(&tmp, OpenMode::Replace).and_then(|f| {
        // Placeholder: a file cut short before the real header is written
        // has no magic, so it is never taken for a hint.
        f.append(&[0u8; HINT_HEADER_LEN])?;
        let (len, crc) = stream_body(&*f, body, buf_len)?;
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

/// The serializer a hint body is streamed through.
type Sink<'a, 'w, 'f> =
    rkyv::api::high::HighSerializer<&'w mut BodySink<'f>, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>;

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
fn stream_body<B>(file: &dyn FileHandle, body: &B, buf_len: usize) -> std::io::Result<(usize, u32)>
where
    B: for<'a, 'w, 'f> rkyv::Serialize<Sink<'a, 'w, 'f>>,
{
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

/// A hint body serialized from a segment's frames, read by a
/// [`FrameReader`]: archives as [`HintBody`] with the entries
/// [`entries_from_frames`] lists (every op up to the end of the file or
/// the first frame that does not decode).
///
/// rkyv lays a `Vec` out as its elements' out-of-line data (here each
/// entry's key and inline value, in entry order) followed by the elements
/// themselves, so the frames are read twice: the first pass writes the
/// keys and values and counts the entries, the second writes the entries,
/// each pointing at its key and value by position. Positions are not
/// kept per entry: a byte vector is written at the position it is reached
/// (alignment 1), so they are recomputed from the lengths in the second
/// pass. The segment's length and checksum, which the body holds, are
/// known once the first pass read the file to its end.
struct HintBodyRef<'r> {
    segment_id: u32,
    inline_max: usize,
    reader: RefCell<FrameReader<'r>>,
    /// Where the first pass keeps the fixed fields of the entries (up to
    /// [`SCRATCH_ENTRIES`]) for the second; `None`: the second pass reads
    /// every frame again.
    scratch: RefCell<Option<&'r mut Scratch>>,
    /// Set by the first pass: entries, segment length and checksum.
    entries: Cell<usize>,
    segment_len: Cell<u64>,
    segment_crc: Cell<u32>,
    /// A read that failed while serializing.
    failed: RefCell<Option<Error>>,
}

impl<'r> HintBodyRef<'r> {
    fn new(
        segment_id: u32,
        reader: FrameReader<'r>,
        scratch: Option<&'r mut Scratch>,
        inline_max: usize,
    ) -> HintBodyRef<'r> {
        HintBodyRef {
            segment_id,
            inline_max,
            reader: RefCell::new(reader),
            scratch: RefCell::new(scratch),
            entries: Cell::new(0),
            segment_len: Cell::new(0),
            segment_crc: Cell::new(0),
            failed: RefCell::new(None),
        }
    }

    /// Writes this body as the hint of its segment, atomically.
    fn write(&self, fs: &dyn FileSystem, dir: &Path, buf_len: usize) -> Result<()> {
        let written = write_body(fs, dir, self.segment_id, self, buf_len);
        // A failed read of the segment is reported as itself.
        match self.failed.borrow_mut().take() {
            Some(e) => Err(e),
            None => written,
        }
    }

    /// The value an op's entry carries inline, if any.
    fn inline<'v>(&self, op: &record::DecodedOp<'v>) -> Option<&'v [u8]> {
        (op.kind == OpKind::Put && op.value.len() <= self.inline_max).then_some(op.value)
    }

    /// The fixed fields of the entry of `op`, of record `seq` at `frame_at`.
    fn fields(&self, frame_at: u64, seq: u64, op: &record::DecodedOp<'_>) -> EntryFields {
        EntryFields {
            seq,
            expires_at: op.expires_at,
            kv_offset: frame_at + op.kv_offset as u64,
            val_len: op.value.len() as u32,
            kv_crc: op.kv_crc,
            key_len: op.key.len() as u16,
            delete: op.kind == OpKind::Delete,
            inline: self.inline(op).is_some(),
        }
    }

    /// Keeps a failed read and returns the serializer's error for it.
    fn fail<E: rancor::Source>(&self, e: Error) -> E {
        let err = E::new(std::io::Error::other(e.to_string()));
        *self.failed.borrow_mut() = Some(e);
        err
    }
}

/// The fixed part of a [`HintEntry`], with the lengths of its key and
/// inline value (written before the entries): archives as a `HintEntry`
/// whose key and value were serialized at the positions given to `resolve`.
#[derive(Debug, Clone, Copy)]
pub struct EntryFields {
    seq: u64,
    expires_at: u64,
    kv_offset: u64,
    val_len: u32,
    kv_crc: u32,
    key_len: u16,
    delete: bool,
    /// The value is in the entry (`val_len` bytes).
    inline: bool,
}

/// Scratch memory the hint builder keeps from one segment to the next.
#[derive(Debug)]
pub struct Scratch {
    /// The fixed fields of the entries of the segment being written, so
    /// the second pass need not read the frames again; at most `cap`
    /// (the frames after those are read again).
    entries: Vec<EntryFields>,
    cap: usize,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            entries: Vec::new(),
            cap: SCRATCH_ENTRIES,
        }
    }
}

/// Entries whose fixed fields the hint builder keeps between its two
/// passes: 4 MiB of them (a 64 MiB segment of values of about 600 bytes or
/// more fits whole; with smaller values the frames past them are read
/// again).
pub const SCRATCH_ENTRIES: usize = (4 << 20) / std::mem::size_of::<EntryFields>();

impl Scratch {
    /// Gives back memory above what its cap needs.
    pub fn trim(&mut self) {
        self.entries.clear();
        if self.entries.capacity() > self.cap {
            self.entries = Vec::new();
        }
    }
}

/// A length archived as the `Vec<u8>` of that length whose bytes were
/// serialized already.
struct Len(usize);

impl rkyv::Archive for Len {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<ArchivedVec<u8>>) {
        ArchivedVec::resolve_from_len(self.0, resolver, out);
    }
}

/// Bytes borrowed from a segment: archive as the `Vec<u8>` holding them would.
struct Bytes<'a>(&'a [u8]);

impl rkyv::Archive for Bytes<'_> {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<ArchivedVec<u8>>) {
        ArchivedVec::resolve_from_len(self.0.len(), resolver, out);
    }
}

impl<S: Fallible + Allocator + Writer + ?Sized> rkyv::Serialize<S> for Bytes<'_> {
    fn serialize(&self, serializer: &mut S) -> std::result::Result<VecResolver, S::Error> {
        ArchivedVec::<u8>::serialize_from_slice(self.0, serializer)
    }
}

impl rkyv::Archive for EntryFields {
    type Archived = ArchivedHintEntry;
    type Resolver = (VecResolver, Option<VecResolver>);

    fn resolve(&self, (key_r, value_r): Self::Resolver, out: Place<ArchivedHintEntry>) {
        munge!(let ArchivedHintEntry { key, seq, delete, expires_at, kv_offset, val_len, kv_crc, value } = out);
        Len(usize::from(self.key_len)).resolve(key_r, key);
        self.seq.resolve((), seq);
        self.delete.resolve((), delete);
        self.expires_at.resolve((), expires_at);
        self.kv_offset.resolve((), kv_offset);
        self.val_len.resolve((), val_len);
        self.kv_crc.resolve((), kv_crc);
        self.inline
            .then_some(Len(self.val_len as usize))
            .resolve(value_r, value);
    }
}

impl rkyv::Archive for HintBodyRef<'_> {
    type Archived = ArchivedHintBody;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<ArchivedHintBody>) {
        munge!(let ArchivedHintBody { segment_id, segment_len, segment_crc, entries } = out);
        self.segment_id.resolve((), segment_id);
        self.segment_len.get().resolve((), segment_len);
        self.segment_crc.get().resolve((), segment_crc);
        ArchivedVec::resolve_from_len(self.entries.get(), resolver, entries);
    }
}

impl<S> rkyv::Serialize<S> for HintBodyRef<'_>
where
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: rancor::Source,
{
    // What `ArchivedVec::serialize_from_iter` does over the entries (each
    // entry's key, then its value if inline; then the entries, aligned),
    // with the entries read from the frames once per pass.
    fn serialize(&self, serializer: &mut S) -> std::result::Result<VecResolver, S::Error> {
        let mut reader = self.reader.borrow_mut();
        let mut scratch = self.scratch.borrow_mut();
        if let Some(kept) = scratch.as_deref_mut() {
            kept.entries.clear();
            // Room for the cap at once (untouched capacity is never faulted
            // in): grown by doubling, the list would pass its cap and be
            // given back after every segment.
            kept.entries.reserve_exact(kept.cap);
        }
        let start = serializer.pos();
        let mut count = 0usize;
        // The first frame whose entries' fields are not kept.
        let mut resume = None;
        loop {
            let (frame_at, rec) = match reader.next_frame() {
                Ok(Some((frame_at, Ok(rec)))) => (frame_at, rec),
                // The entries end at the file's end or its first bad frame.
                Ok(None | Some((_, Err(_)))) => break,
                Err(e) => return Err(self.fail(e)),
            };
            let keep = match scratch.as_deref_mut() {
                Some(kept) if resume.is_none() && kept.entries.len() + rec.ops.len() <= kept.cap => {
                    Some(&mut kept.entries)
                }
                _ => {
                    resume.get_or_insert(frame_at);
                    None
                }
            };
            for op in &rec.ops {
                Bytes(op.key).serialize(serializer)?;
                if let Some(v) = self.inline(op) {
                    Bytes(v).serialize(serializer)?;
                }
                count += 1;
            }
            if let Some(kept) = keep {
                kept.extend(rec.ops.iter().map(|op| self.fields(frame_at, rec.seq, op)));
            }
        }
        let (len, crc) = reader.finish().map_err(|e| self.fail(e))?;
        self.segment_len.set(len);
        self.segment_crc.set(crc);
        self.entries.set(count);
        let pos = serializer.align_for::<ArchivedHintEntry>()?;
        // Each key, then its inline value, was written where the previous
        // one ended (byte vectors need no alignment): their positions
        // follow from the lengths.
        let mut at = start;
        let mut resolve = |serializer: &mut S, f: &EntryFields| {
            let key_r = VecResolver::from_pos(at);
            at += usize::from(f.key_len);
            let value_r = f.inline.then(|| {
                let r = VecResolver::from_pos(at);
                at += f.val_len as usize;
                r
            });
            // SAFETY: the serializer was aligned for `ArchivedHintEntry`
            // by `align_for` above, and each entry written since is a whole
            // `ArchivedHintEntry`, whose size is a multiple of its
            // alignment, so it stays aligned for the next.
            unsafe { serializer.resolve_aligned(f, (key_r, value_r)) }
        };
        let kept = scratch.as_deref().map_or(&[][..], |k| &k.entries[..]);
        for f in kept {
            resolve(serializer, f)?;
        }
        let mut left = count - kept.len();
        if let (Some(offset), true) = (resume, left > 0) {
            reader.seek(offset);
        }
        while left > 0 {
            let (frame_at, rec) = match reader.next_frame() {
                Ok(Some((frame_at, Ok(rec)))) => (frame_at, rec),
                Ok(_) => {
                    return Err(self.fail(Error::Internal(format!(
                        "segment {} changed while its hint was written",
                        self.segment_id
                    ))))
                }
                Err(e) => return Err(self.fail(e)),
            };
            for op in rec.ops.iter().take(left) {
                resolve(serializer, &self.fields(frame_at, rec.seq, op))?;
                left -= 1;
            }
        }
        Ok(VecResolver::from_pos(pos))
    }
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
            self.crc = checksum::crc32c_append(self.crc, &self.buf);
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
            self.crc = checksum::crc32c_append(self.crc, bytes);
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
///
/// The file is mapped read-only when the file system maps
/// ([`FileHandle::map_fd`]) and its pages can be read in at once (see
/// [`FileMap`]): the entries are then read where the page cache holds them,
/// with no copy and no fresh memory for the body. Otherwise (or when the
/// mapped body is not aligned for reading in place) it is read into memory.
pub fn read(fs: &dyn FileSystem, dir: &Path, id: u32, segment_len: u64) -> (Option<ValidHint>, Option<String>) {
    read_with(fs, dir, id, segment_len, true)
}

/// [`read`], mapping the file only when `map` is set (else it is read into
/// memory; [`crate::Options::map_reads`] off).
pub fn read_with(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    segment_len: u64,
    map: bool,
) -> (Option<ValidHint>, Option<String>) {
    let path = hint_path(dir, id);
    let body = match open_body(fs, &path, map) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (None, None),
        Err(e) => return (None, Some(format!("{}: {e}", path.display()))),
    };
    match check_header(body.header(), body.bytes().len()).and_then(|crc| check_body(body, crc, id, segment_len)) {
        Ok(body) => (Some(body), None),
        Err(reason) => (None, Some(format!("{}: {reason}", path.display()))),
    }
}

/// The hint file at `path`, mapped when `map` is set and it can be (and
/// its body is aligned for rkyv), else read into an aligned buffer.
fn open_body(fs: &dyn FileSystem, path: &Path, map: bool) -> std::io::Result<HintBytes> {
    let f = fs.open(path, OpenMode::Read)?;
    let len = usize::try_from(f.size()?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "file too large"))?;
    if map && len > HINT_HEADER_LEN {
        if let Some(map) = FileMap::new(&*f, len) {
            let body = &map.bytes()[HINT_HEADER_LEN..];
            if (body.as_ptr() as usize).is_multiple_of(BODY_ALIGN) {
                return Ok(HintBytes::Mapped(map));
            }
        }
    }
    let mut header = vec![0u8; len.min(HINT_HEADER_LEN)];
    f.read_exact_at(&mut header, 0)?;
    let mut body = AlignedVec::<16>::new();
    if len > HINT_HEADER_LEN {
        body.resize(len - HINT_HEADER_LEN, 0);
        f.read_exact_at(body.as_mut_slice(), HINT_HEADER_LEN as u64)?;
    }
    Ok(HintBytes::Read { header, body })
}

/// Alignment a hint body needs to be read in place: the largest alignment
/// of the archived types (their `u64` fields).
const BODY_ALIGN: usize = std::mem::align_of::<ArchivedHintEntry>();

/// Checks the bytes of a hint file as [`read`] does; `Err` carries the reason.
/// Public for the fuzz targets.
#[doc(hidden)]
pub fn validate(data: &[u8], id: u32, segment_len: u64) -> std::result::Result<ValidHint, String> {
    let body = data.get(HINT_HEADER_LEN..).unwrap_or_default();
    let crc = check_header(data, body.len())?;
    // rkyv reads in place from an aligned buffer.
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    let header = data[..HINT_HEADER_LEN].to_vec();
    check_body(HintBytes::Read { header, body: aligned }, crc, id, segment_len)
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
fn check_body(body: HintBytes, crc: u32, id: u32, segment_len: u64) -> std::result::Result<ValidHint, String> {
    let bytes = body.bytes();
    if checksum::crc32c(bytes) != crc {
        return Err("checksum mismatch".into());
    }
    let archived =
        rkyv::access::<ArchivedHintBody, rancor::Error>(bytes).map_err(|e| format!("invalid archive: {e}"))?;
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

/// The bytes of a hint file: mapped, or read into memory.
#[derive(Debug)]
enum HintBytes {
    /// The whole file, mapped; the body starts after the header.
    Mapped(FileMap),
    /// The header (shorter when the file is) and the body, in a buffer
    /// aligned for rkyv.
    Read { header: Vec<u8>, body: AlignedVec },
}

impl HintBytes {
    fn header(&self) -> &[u8] {
        match self {
            HintBytes::Mapped(m) => &m.bytes()[..HINT_HEADER_LEN],
            HintBytes::Read { header, .. } => header,
        }
    }

    /// The body.
    fn bytes(&self) -> &[u8] {
        match self {
            HintBytes::Mapped(m) => &m.bytes()[HINT_HEADER_LEN..],
            HintBytes::Read { body, .. } => body,
        }
    }
}

/// A hint file body that passed validation; only [`check_body`] makes one.
#[derive(Debug)]
pub struct ValidHint(HintBytes);

impl ValidHint {
    /// Size of the archived body in bytes (what holding it costs: memory,
    /// or page cache and address space when mapped).
    pub fn size(&self) -> usize {
        self.0.bytes().len()
    }

    /// True when the body is read in place from a map of the file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, HintBytes::Mapped(_))
    }

    /// The archived body, read in place.
    pub fn body(&self) -> &ArchivedHintBody {
        // SAFETY: a ValidHint is only built by `check_body`, right after
        // `rkyv::access` (bytecheck) accepted these exact bytes as an
        // `ArchivedHintBody`; the bytes are private and never change: a
        // buffer is never mutated, and a mapped hint file is never written
        // in place (see `FileMap`).
        unsafe { rkyv::access_unchecked::<ArchivedHintBody>(self.0.bytes()) }
    }
}

/// A whole file mapped read-only into memory, its pages read in when the
/// map is made.
///
/// Only files the engine never writes, cuts or reuses in place while the
/// map lives are mapped: hint files (replaced only by renaming a new file
/// over them, which leaves a map of the old one intact) and, while their
/// checksum is computed at open, closed segments. The data directory is
/// locked against a second open; another program cutting a mapped file
/// is outside the engine's contract (a read past the new end would raise
/// `SIGBUS`).
///
/// The pages are read in by `madvise(MADV_POPULATE_READ)`, which reports a
/// failure to read them (an I/O error) as an error instead of a signal:
/// the map is then dropped and the file read through the file system,
/// whose error the caller handles as for any unreadable file.
#[derive(Debug)]
pub(crate) struct FileMap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the map is read-only memory owned by this value; shared reads
// from any thread are sound, and unmapping happens once, in `drop`.
unsafe impl Send for FileMap {}
// SAFETY: as above: `&FileMap` only lends `&[u8]` of read-only memory.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps the first `len` bytes (the whole file) of `file` and reads its
    /// pages in; `None` when the file system does not map, `len` is 0, or
    /// mapping or reading in fails.
    pub(crate) fn new(file: &dyn FileHandle, len: usize) -> Option<FileMap> {
        use std::os::fd::AsRawFd;
        let fd = file.map_fd()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh shared, read-only mapping of `len` bytes of a
        // descriptor we borrow for the call; the kernel picks the address.
        // Nothing is dereferenced here.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let map = FileMap {
            ptr: std::ptr::NonNull::new(ptr.cast())?,
            len,
        };
        // SAFETY: `ptr..ptr + len` is the mapping made above, owned by `map`.
        let populated = unsafe { libc::madvise(ptr, len, libc::MADV_POPULATE_READ) };
        // Dropping `map` unmaps it.
        (populated == 0).then_some(map)
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until
        // `drop`, and the file under it is not written while it lives (see
        // the type's documentation).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made, once; no slice of
        // it outlives `self` (`bytes` borrows `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
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
        let keys: Vec<String> = (0..n).map(|i| format!("key-{i:08}")).collect();
        let values: Vec<Vec<u8>> = (0..n).map(|i| vec![(i % 251) as u8; (i as usize * 37) % 300]).collect();
        // Records of one to three ops.
        let mut i = 0;
        while i < n {
            let ops: Vec<record::OpRef<'_>> = (i..n.min(i + 1 + i % 3))
                .map(|j| record::OpRef {
                    kind: if j % 7 == 3 { OpKind::Delete } else { OpKind::Put },
                    key: keys[j as usize].as_bytes(),
                    value: if j % 7 == 3 { &[] } else { &values[j as usize] },
                    expires_at: if j % 5 == 0 {
                        1_900_000_000_000 + u64::from(j)
                    } else {
                        0
                    },
                })
                .collect();
            record::encode_salted(&mut seg, u64::from(i) + 1, &ops, &mut kv, record::Salt::of_segment(9));
            i += ops.len() as u32;
        }
        seg
    }

    /// The hint file as written before streaming: the whole body serialized
    /// into memory, then header and body.
    fn whole_body_hint(id: u32, segment: &[u8], entries: Vec<HintEntry>) -> Vec<u8> {
        let body = HintBody {
            segment_id: id,
            segment_len: segment.len() as u64,
            segment_crc: checksum::crc32c(segment),
            entries,
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&body).unwrap();
        let mut out = header(bytes.len() as u32, checksum::crc32c(&bytes)).to_vec();
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
    fn hint_streamed_from_frames_is_byte_for_byte_the_whole_body_format() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        let full = big_segment(4000);
        // The whole segment; one cut inside its last frame (a torn tail:
        // the entries stop at the last whole frame); no frame at all.
        let cases = [
            full.clone(),
            full[..full.len() - 5].to_vec(),
            segment::encode_header(9, 0, 0).to_vec(),
        ];
        for seg in &cases {
            for inline in [64, 256] {
                let entries = entries_from_frames(seg, inline);
                let expected = whole_body_hint(9, seg, entries);
                for buf_len in [HINT_WRITE_BUFFER, 1, 7, 4096] {
                    write_from_frames_buffered(&fs, dir.path(), 9, seg, inline, buf_len).unwrap();
                    let got = std::fs::read(hint_path(dir.path(), 9)).unwrap();
                    assert!(
                        got == expected,
                        "segment of {} bytes, inline {inline}, buffer {buf_len}: hint differs",
                        seg.len()
                    );
                }
            }
        }
        let entries = entries_from_frames(&full, 256);
        assert_eq!(entries.len(), 4000);
        assert!(whole_body_hint(9, &full, entries).len() > 4 * HINT_WRITE_BUFFER);
        assert_eq!(entries_from_frames(&cases[1], 256).len(), 3999);
    }

    #[test]
    fn hint_read_through_a_window_is_byte_for_byte_the_hint_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        let full = big_segment(4000);
        let mut damaged = full.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 0x10;
        // Whole; a torn tail; a damaged frame midway (the entries end
        // there, the checksum covers the whole file); no frame at all.
        let cases = [
            full.clone(),
            full[..full.len() - 5].to_vec(),
            damaged,
            segment::encode_header(9, 0, 0).to_vec(),
        ];
        let mut window = Vec::new();
        // Fields of every entry kept between the passes, of some (the
        // frames past them read again), of none (every frame read again).
        let mut scratches = [
            Some(Scratch::default()),
            Some(Scratch {
                entries: Vec::new(),
                cap: 1000,
            }),
            Some(Scratch {
                entries: Vec::new(),
                cap: 0,
            }),
            None,
        ];
        for data in &cases {
            std::fs::write(dir.path().join(segment::segment_file_name(9)), data).unwrap();
            let seg = Segment::open(&fs, dir.path(), 9, false).unwrap();
            for inline in [64, 256] {
                write_from_frames(&fs, dir.path(), 9, data, inline).unwrap();
                let expected = std::fs::read(hint_path(dir.path(), 9)).unwrap();
                for (window_len, buf_len) in [
                    (frames::WINDOW, HINT_WRITE_BUFFER),
                    (1, 7),
                    (100, 4096),
                    (4096, 1),
                    (65_536, HINT_WRITE_BUFFER),
                ] {
                    for scratch in scratches.iter_mut() {
                        write_from_segment_through(
                            &fs,
                            dir.path(),
                            &seg,
                            inline,
                            (&mut window, window_len),
                            scratch.as_mut(),
                            buf_len,
                        )
                        .unwrap();
                        let got = std::fs::read(hint_path(dir.path(), 9)).unwrap();
                        assert!(
                            got == expected,
                            "segment of {} bytes, inline {inline}, window {window_len}, buffer {buf_len}, \
                             scratch {:?}: hint differs",
                            data.len(),
                            scratch.as_ref().map(|s| s.cap)
                        );
                    }
                }
            }
        }
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
            checksum::crc32c(&[1u8; 1000])
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

    #[test]
    fn a_mapped_hint_reads_as_the_same_archive_and_is_checked_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::vfs::OsFileSystem;
        let seg = big_segment(3000);
        write(&fs, dir.path(), 9, &seg, entries_from_frames(&seg, 256)).unwrap();
        let path = hint_path(dir.path(), 9);
        let bytes = std::fs::read(&path).unwrap();
        let (mapped, why) = read(&fs, dir.path(), 9, seg.len() as u64);
        assert!(why.is_none(), "{why:?}");
        let mapped = mapped.unwrap();
        assert!(mapped.is_mapped(), "the OS file system maps hint files");
        let copied = validate(&bytes, 9, seg.len() as u64).unwrap();
        assert!(!copied.is_mapped());
        let (read_in, _) = read_with(&fs, dir.path(), 9, seg.len() as u64, false);
        assert!(!read_in.unwrap().is_mapped(), "maps turned off");
        assert_eq!(mapped.size(), copied.size());
        let (m, c) = (mapped.body(), copied.body());
        assert_eq!(m.segment_crc, c.segment_crc);
        assert_eq!(m.entries.len(), 3000);
        for (a, b) in m.entries.iter().zip(c.entries.iter()) {
            assert_eq!(a.key.as_slice(), b.key.as_slice());
            assert_eq!(a.seq, b.seq);
            assert_eq!(
                a.value.as_ref().map(|v| v.as_slice()),
                b.value.as_ref().map(|v| v.as_slice())
            );
        }
        drop(mapped);
        // Damage anywhere is refused through the map as through a copy.
        for at in [3, 13, HINT_HEADER_LEN + 5, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let (valid, why) = read(&fs, dir.path(), 9, seg.len() as u64);
            assert!(valid.is_none() && why.is_some(), "flip at {at} accepted");
            assert!(validate(&bad, 9, seg.len() as u64).is_err());
        }
        // A file of only a header, or less.
        for cut in [HINT_HEADER_LEN, 5, 0] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(read(&fs, dir.path(), 9, seg.len() as u64).0.is_none(), "cut at {cut}");
        }
    }
}
