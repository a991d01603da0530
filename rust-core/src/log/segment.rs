//! Segment files: naming, the file header, positioned reads, directory sync.
//!
//! ```text
//! header := magic:"MANTISSG"  version:u16  flags:u16  segment_id:u32  base_seq:u64
//!           prev_writer:u32  crc:u32                                (32 bytes)
//!           crc = CRC32C of the 28 bytes before it
//!           base_seq: the sequence number just before the segment's first
//!           record; records of a writer's segment continue it without gaps
//!           prev_writer: the writer segment this one follows (0: none, or
//!           written before the field existed); while that segment exists,
//!           its last record is base_seq, so a cut at a record boundary in a
//!           closed segment is found
//!           flags bit 0 (SEALED): written whole by compaction, synced, then
//!           renamed into place, so it can never have a torn tail
//!           version: 2; frame checksums start from the salt of segment_id
//!           (`record::Salt::of_segment`). Version 1 (no salt) is still read.
//! body   := frame*            (see `record`)
//! ```
//!
//! A segment is named `{id:010}.seg`. Ids only grow. Within a segment,
//! sequence numbers strictly increase; a sealed segment holds records
//! copied from older segments, so across segments recovery orders versions
//! by sequence number, not by file.
//!
//! Recycled files: compaction may keep a retired segment's file, renamed to
//! `{id:010}.free`, instead of removing it; the writer then starts its next
//! segment in it ([`recycle`]): a new header at offset 0, synced, then the
//! file renamed to the new segment's name, and its records written over the
//! old ones. The blocks are allocated and written already, so a write into
//! them changes no file metadata and a sync flushes data only, without the
//! zeros a fresh file needs first. The old records left past the new ones
//! carry the salt of the old id, so their checksums fail in the new life:
//! recovery reads them as the end of the log. A `.free` file is never read
//! for records.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use memmap2::{Mmap, MmapOptions};

use super::record::Salt;
use crate::checksum;
use crate::error::{Error, Result};
use crate::vfs::{self, FileHandle, FileSystem, OpenMode};

/// Magic number at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"MANTISSG";
/// Version of the segment format this build writes (it also reads
/// [`SEGMENT_FORMAT_V1`]).
pub const SEGMENT_FORMAT_VERSION: u16 = 2;
/// The first segment format: frame checksums without a salt. Segments of
/// this version are read and compacted as they are; the writer starts
/// every new segment in [`SEGMENT_FORMAT_VERSION`].
pub const SEGMENT_FORMAT_V1: u16 = 1;
/// Header flag: the segment was written whole by compaction.
pub const FLAG_SEALED: u16 = 1;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: u64 = 32;
/// Offset of the header checksum (it covers every byte before it).
pub const HEADER_CRC_AT: usize = 28;

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Flags (see [`FLAG_SEALED`]).
    pub flags: u16,
    /// The sequence number before the first record (0 for sealed segments).
    pub base_seq: u64,
    /// The writer segment this one follows (0 if none or unknown).
    pub prev_writer: u32,
    /// What the segment's frame checksums start from (by format version).
    pub salt: Salt,
}

impl Header {
    /// True for a segment written whole by compaction.
    pub fn sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }
}

/// File name of segment `id`.
pub fn segment_file_name(id: u32) -> String {
    format!("{id:010}.seg")
}

/// File name of the retired file of segment `id` kept for reuse.
pub fn free_file_name(id: u32) -> String {
    format!("{id:010}.free")
}

/// Parses the name of a file kept for reuse back into its old segment id.
pub fn parse_free_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".free")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The salt of the frames of a segment file whose bytes start with `data`
/// (from its header's version and id; [`Salt::NONE`] when the header is
/// missing or of version 1). For callers that read frames of a file whose
/// header was checked already.
pub fn frame_salt(data: &[u8]) -> Salt {
    if data.len() < SEGMENT_HEADER_LEN as usize {
        return Salt::NONE;
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    let id = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
    salt_of(version, id)
}

fn salt_of(version: u16, id: u32) -> Salt {
    if version == SEGMENT_FORMAT_V1 {
        Salt::NONE
    } else {
        Salt::of_segment(id)
    }
}

/// Parses a segment file name back into its id.
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes the header of segment `id`, following no known writer segment.
pub fn encode_header(id: u32, flags: u16, base_seq: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    encode_writer_header(id, flags, base_seq, 0)
}

/// Encodes the header of segment `id`, which follows writer segment `prev_writer`.
pub fn encode_writer_header(id: u32, flags: u16, base_seq: u64, prev_writer: u32) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&flags.to_le_bytes());
    h[12..16].copy_from_slice(&id.to_le_bytes());
    h[16..24].copy_from_slice(&base_seq.to_le_bytes());
    h[24..28].copy_from_slice(&prev_writer.to_le_bytes());
    let crc = checksum::crc32c(&h[0..HEADER_CRC_AT]);
    h[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header; `Err` carries the reason.
pub fn check_header(h: &[u8], id: u32) -> std::result::Result<Header, String> {
    if h.len() < SEGMENT_HEADER_LEN as usize {
        return Err(format!("header is {} bytes, expected {SEGMENT_HEADER_LEN}", h.len()));
    }
    if h[0..8] != SEGMENT_MAGIC {
        return Err("bad magic number: not a MantisDB segment".into());
    }
    let crc = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if checksum::crc32c(&h[0..HEADER_CRC_AT]) != crc {
        return Err("header checksum mismatch".into());
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    let flags = u16::from_le_bytes([h[10], h[11]]);
    if version != SEGMENT_FORMAT_VERSION && version != SEGMENT_FORMAT_V1 {
        return Err(format!(
            "format version {version} is not supported (this build reads {SEGMENT_FORMAT_V1} and \
             {SEGMENT_FORMAT_VERSION})"
        ));
    }
    let stored = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if stored != id {
        return Err(format!("header names segment {stored}, file name says {id}"));
    }
    if flags & !FLAG_SEALED != 0 {
        return Err(format!("unknown header flags {flags:#x}"));
    }
    let base_seq = u64::from_le_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]);
    let prev_writer = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    Ok(Header {
        flags,
        base_seq,
        prev_writer,
        salt: salt_of(version, id),
    })
}

/// Live and dead bytes of a segment, and the sequence range it holds.
#[derive(Debug, Default)]
pub struct Usage {
    /// Log bytes of ops that are the newest version of their key.
    pub live: AtomicU64,
    /// Log bytes of superseded, deleted or expired ops.
    pub dead: AtomicU64,
    /// Smallest sequence number in the segment (u64::MAX when empty).
    pub min_seq: AtomicU64,
    /// Largest sequence number in the segment.
    pub max_seq: AtomicU64,
    /// Some op in the segment carries an expiry (compaction may reclaim it).
    pub has_expiry: AtomicBool,
}

impl Usage {
    /// The usage of a segment that holds nothing yet.
    pub fn empty() -> Usage {
        let usage = Usage::default();
        usage.min_seq.store(u64::MAX, Ordering::Relaxed);
        usage
    }

    /// Records that `seq` is in the segment.
    pub fn note_seq(&self, seq: u64) {
        self.min_seq.fetch_min(seq, Ordering::Relaxed);
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Moves `bytes` from live to dead.
    pub fn kill(&self, bytes: u64) {
        // Saturating: a relocation racing a supersede may count a version dead twice.
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(l.saturating_sub(bytes)));
        self.dead.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Dead bytes over all accounted bytes.
    pub fn dead_fraction(&self) -> f64 {
        let live = self.live.load(Ordering::Relaxed) as f64;
        let dead = self.dead.load(Ordering::Relaxed) as f64;
        if live + dead == 0.0 {
            0.0
        } else {
            dead / (live + dead)
        }
    }
}

/// A key read back from a segment: on the stack unless longer than 64 bytes.
pub type KeyBuf = smallvec::SmallVec<[u8; 64]>;

/// An open segment, shared by readers through an `Arc`. Once compaction
/// has replaced it, the file is unlinked, and the last `Arc` closes it, so a
/// reader still holding one reads on safely.
///
/// Reads of a closed segment (one the writer will never append to again,
/// or one compaction wrote whole) go through a read-only memory map of the
/// file, made by the first such read and kept until the last `Arc` is
/// dropped: a value is copied once, out of the page cache, with no system
/// call and no page lookup per read (see [`Segment::mapped`]). Reads of
/// the segment being written, and every read when the file system does
/// not map ([`FileHandle::map_fd`]) or maps are turned off
/// ([`crate::Options::map_reads`]), go through the file (`pread`).
#[derive(Debug)]
pub struct Segment {
    /// Segment id.
    pub id: u32,
    /// Full path of the file.
    pub path: PathBuf,
    /// Written whole by compaction.
    pub sealed: bool,
    /// Set once the writer will never append to it again; only closed
    /// segments may be compacted.
    pub closed: AtomicBool,
    /// Live and dead bytes.
    pub usage: Usage,
    file: Box<dyn FileHandle>,
    /// The map of the whole file once the first read of the closed segment
    /// made it; `Some(None)`: this segment is read through `file` for good.
    map: OnceLock<Option<Mmap>>,
}

impl Segment {
    /// Opens an existing segment for reading.
    pub fn open(fs: &dyn FileSystem, dir: &Path, id: u32, sealed: bool) -> Result<Segment> {
        let path = dir.join(segment_file_name(id));
        let file = fs
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Segment::with_handle(id, path, sealed, file))
    }

    /// A segment read through `file`, an open handle of the file named `path`.
    pub fn with_handle(id: u32, path: PathBuf, sealed: bool, file: Box<dyn FileHandle>) -> Segment {
        Segment {
            id,
            path,
            sealed,
            closed: AtomicBool::new(sealed),
            usage: Usage::empty(),
            file,
            map: OnceLock::new(),
        }
    }

    /// Makes every later read of this segment go through the file, never a
    /// map (maps turned off). A map made already stays in use.
    pub fn never_map(&self) {
        let _ = self.map.set(None);
    }

    /// The whole file through a read-only memory map, once the segment is
    /// closed; `None` while it is being written, when the file system does
    /// not map, maps are off, or mapping failed (reads then go through the
    /// file). The first call on a closed segment maps it; the map lives as
    /// long as the segment.
    ///
    /// An I/O error of the disk under a mapped page arrives as `SIGBUS`
    /// when the page is touched, not as an error of the read (the trade-off
    /// [`crate::Options::map_reads`] turns off).
    #[inline]
    pub fn mapped(&self) -> Option<&[u8]> {
        if let Some(map) = self.map.get() {
            return map.as_deref();
        }
        if !self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.map.get_or_init(|| self.map_file()).as_deref()
    }

    /// True when reads of this segment go through its map (made already).
    pub fn is_mapped(&self) -> bool {
        matches!(self.map.get(), Some(Some(_)))
    }

    fn map_file(&self) -> Option<Mmap> {
        let fd = self.file.map_fd()?;
        // SAFETY: a map is only sound while nothing writes or cuts the
        // mapped file: the slice `mapped` lends must not change under a
        // reader, and a page past a cut end would raise SIGBUS. This file
        // is neither written nor cut while the map lives:
        // - `mapped` maps a segment only once it is `closed`. A writer
        //   segment is closed (`SegmentSet::closed`, with Release) after the
        //   writer cut it to its last record and synced that length
        //   (`LogWriter::roll` via `trim`); the writer never writes or cuts
        //   it again. At open, every segment but the one the writer resumes
        //   is closed; recovery cut any torn tail before the segment was
        //   opened (`recovery::rebuild_index` opens after the scan). A
        //   segment compaction wrote (`sealed`) was written whole and
        //   synced under a temporary name before it became a `Segment`.
        // - The only write the engine makes into an existing segment's file
        //   is `recycle`, into a retired file renamed `.free`, which happens
        //   only after the segment left the `SegmentSet` and the last `Arc`
        //   of this `Segment` (which owns the map) was dropped:
        //   `SegmentSet::take_free` hands out no file whose old segment is
        //   still held, so the map is gone before the new life's first byte
        //   is written. A file with a second name (a checkpoint's hard
        //   link) is never recycled (`compaction::keep_for_reuse`).
        // - The data directory is locked against a second open
        //   (`DirLock`); programs other than the engine writing into its
        //   files are outside the engine's contract (documented with
        //   `Options::map_reads`).
        // The map is read-only (PROT_READ), so nothing in this process
        // writes through it either.
        let map = unsafe { MmapOptions::new().map(&fd) }.ok()?;
        Some(map)
    }

    /// The `len` bytes at `offset` of the map, if the segment is mapped
    /// and holds them.
    #[inline]
    pub(crate) fn mapped_range(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let map = self.mapped()?;
        let start = usize::try_from(offset).ok()?;
        map.get(start..start.checked_add(len)?)
    }

    /// Length of the file now.
    pub fn file_len(&self) -> Result<u64> {
        self.file
            .size()
            .map_err(|e| Error::io(format!("reading the size of {}", self.path.display()), e))
    }

    /// How many names the file has (see [`FileHandle::links`]).
    pub fn links(&self) -> Result<u64> {
        self.file
            .links()
            .map_err(|e| Error::io(format!("reading the link count of {}", self.path.display()), e))
    }

    /// The whole file.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        vfs::read_all(&*self.file).map_err(|e| Error::io(format!("reading {}", self.path.display()), e))
    }

    /// Reads a record's key (`key_len` bytes at `offset`) and the value of
    /// `val_len` bytes after it: copied out of the map of a closed segment,
    /// else in one positioned read, the value straight into its final
    /// shared buffer.
    pub fn read_kv(&self, offset: u64, key_len: usize, val_len: usize) -> Result<(KeyBuf, Arc<[u8]>)> {
        if let Some(bytes) = self.mapped_range(offset, key_len + val_len) {
            let (key, value) = bytes.split_at(key_len);
            return Ok((KeyBuf::from_slice(key), Arc::from(value)));
        }
        let mut key = KeyBuf::from_elem(0, key_len);
        let mut value = Arc::<[u8]>::new_uninit_slice(val_len);
        let tail = Arc::get_mut(&mut value).expect("a new Arc has no other owner");
        self.file
            .read_split_at(&mut key, tail, offset)
            .map_err(|e| Error::io(format!("reading {} at offset {offset}", self.path.display()), e))?;
        // SAFETY: `read_split_at` returned Ok, which means it initialized
        // every byte of `tail`, the whole of `value`.
        let value = unsafe { value.assume_init() };
        Ok((key, value))
    }

    /// Fills `buf` with the bytes at `offset` (from the map, or in one positioned read),
    /// without zeroing it first (a scan reads runs of records into the
    /// spare capacity of a buffer it keeps). On `Ok`, every byte of `buf`
    /// is initialized.
    pub fn read_uninit_at(&self, offset: u64, buf: &mut [MaybeUninit<u8>]) -> Result<()> {
        if let Some(bytes) = self.mapped_range(offset, buf.len()) {
            // SAFETY: `bytes` and `buf` are both `buf.len()` bytes long;
            // they cannot overlap (`buf` is exclusively borrowed memory of
            // the caller, `bytes` a read-only map); writing initialized
            // `u8`s into `MaybeUninit<u8>` is always valid.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.as_mut_ptr().cast::<u8>(), buf.len());
            }
            return Ok(());
        }
        self.file
            .read_split_at(&mut [], buf, offset)
            .map_err(|e| Error::io(format!("reading {} at offset {offset}", self.path.display()), e))
    }

    /// Fills `buf` with the bytes at `offset` in one positioned read of the
    /// file, never through the map, without zeroing it first. For a pass
    /// over a whole closed segment (a hint, a compaction input) that copies
    /// it through a buffer of its own: through the map it would leave
    /// every page of the segment mapped, and counted in the process's
    /// resident set, for as long as the segment lives. On `Ok`, every byte
    /// of `buf` is initialized.
    pub fn read_file_uninit_at(&self, offset: u64, buf: &mut [MaybeUninit<u8>]) -> Result<()> {
        self.file
            .read_split_at(&mut [], buf, offset)
            .map_err(|e| Error::io(format!("reading {} at offset {offset}", self.path.display()), e))
    }

    /// Reads exactly `len` bytes at `offset`.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if let Some(bytes) = self.mapped_range(offset, len) {
            return Ok(bytes.to_vec());
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(format!("reading {} at offset {offset}", self.path.display()), e))?;
        Ok(buf)
    }
}

/// Creates writer segment `id` (its first record will be `base_seq + 1`;
/// it follows writer segment `prev_writer`, 0 for none) with its header,
/// owner-only permissions, and syncs the directory so the new name survives
/// a crash. Returns the file opened for writing at offsets
/// ([`OpenMode::Write`]).
pub fn create(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    base_seq: u64,
    prev_writer: u32,
) -> Result<Box<dyn FileHandle>> {
    let path = dir.join(segment_file_name(id));
    let file = fs
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.append(&encode_writer_header(id, 0, base_seq, prev_writer))
        .and_then(|_| file.sync_data())
        .map_err(|e| Error::io(format!("writing header of {}", path.display()), e))?;
    sync_dir(fs, dir)?;
    drop(file);
    fs.open(&path, OpenMode::Write)
        .map_err(|e| Error::io(format!("opening {} for writing", path.display()), e))
}

/// Starts writer segment `id` (as [`create`] does) in the retired file of
/// segment `old`, kept as `{old:010}.free`: writes the new header over the
/// old one and syncs it, renames the file to the new segment's name and
/// syncs the directory. Until the rename the file is no segment; from it on
/// the header names `id`, and every old record past the header fails its
/// checksum under the new salt. The rest of the file is left as it is, its
/// length included: the writer writes over it. Returns the file opened for
/// writing at offsets ([`OpenMode::Write`]), or `None` when the file could
/// not be taken (missing, or a write, sync or rename failed): it is then no
/// segment (removed if possible), and the caller creates a new file instead.
/// An error is a failed directory sync after the rename, which leaves the
/// name of segment `id` in doubt.
pub fn recycle(
    fs: &dyn FileSystem,
    dir: &Path,
    old: u32,
    id: u32,
    base_seq: u64,
    prev_writer: u32,
) -> Result<Option<Box<dyn FileHandle>>> {
    let free = dir.join(free_file_name(old));
    let path = dir.join(segment_file_name(id));
    let taken = fs.open(&free, OpenMode::Write).and_then(|file| {
        file.write_at(&encode_writer_header(id, 0, base_seq, prev_writer), 0)?;
        file.sync_data()?;
        fs.rename(&free, &path)?;
        Ok(file)
    });
    match taken {
        Ok(file) => {
            sync_dir(fs, dir)?;
            Ok(Some(file))
        }
        Err(_) => {
            // Never a segment: its name is still `.free` (a rename either
            // happened or not). Not reused again; open removes it if this fails.
            let _ = fs.remove_file(&free);
            Ok(None)
        }
    }
}

/// Makes directory entries (new or removed names) durable.
pub fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Lists segment ids in `dir`, ascending (through the operating system's file system).
pub fn list(dir: &Path) -> Result<Vec<u32>> {
    list_in(&vfs::OsFileSystem, dir)
}

/// Lists the old ids of the files kept for reuse in `dir` of `fs`, ascending.
pub fn list_free_in(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u32>> {
    list_ids_in(fs, dir, parse_free_file_name)
}

/// Lists segment ids in `dir` of `fs`, ascending.
pub fn list_in(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u32>> {
    list_ids_in(fs, dir, parse_segment_file_name)
}

/// The ids `parse` finds in the names in `dir` of `fs`, ascending.
fn list_ids_in(fs: &dyn FileSystem, dir: &Path, parse: fn(&str) -> Option<u32>) -> Result<Vec<u32>> {
    let names = fs
        .read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut ids: Vec<u32> = names.iter().filter_map(|n| n.to_str().and_then(parse)).collect();
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(7), "0000000007.seg");
        assert_eq!(parse_segment_file_name("0000000007.seg"), Some(7));
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("000000000x.seg"), None);
        assert_eq!(parse_segment_file_name("0000000007.hint"), None);
        assert_eq!(free_file_name(7), "0000000007.free");
        assert_eq!(parse_free_file_name("0000000007.free"), Some(7));
        assert_eq!(parse_free_file_name("0000000007.seg"), None);
        assert_eq!(parse_segment_file_name("0000000007.free"), None);
    }

    #[test]
    fn header_checks() {
        let h = encode_header(3, 0, 41);
        assert_eq!(
            check_header(&h, 3),
            Ok(Header {
                flags: 0,
                base_seq: 41,
                prev_writer: 0,
                salt: Salt::of_segment(3),
            })
        );
        // A version 1 header is read, without a salt.
        let mut v1 = h;
        v1[8..10].copy_from_slice(&SEGMENT_FORMAT_V1.to_le_bytes());
        let crc = checksum::crc32c(&v1[..HEADER_CRC_AT]);
        v1[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(check_header(&v1, 3).unwrap().salt, Salt::NONE);
        assert_eq!(frame_salt(&v1), Salt::NONE);
        assert_eq!(frame_salt(&h), Salt::of_segment(3));
        assert_eq!(
            check_header(&encode_writer_header(4, 0, 41, 3), 4).unwrap().prev_writer,
            3
        );
        assert!(check_header(&encode_header(3, FLAG_SEALED, 0), 3).unwrap().sealed());
        assert!(check_header(&h, 4).unwrap_err().contains("names segment 3"));
        assert!(check_header(&h[..10], 3).is_err());
        let mut bad = h;
        bad[0] = b'X';
        assert!(check_header(&bad, 3).unwrap_err().contains("magic"));
        let mut bad = h;
        bad[9] ^= 1;
        assert!(check_header(&bad, 3).unwrap_err().contains("checksum"));
    }
}
