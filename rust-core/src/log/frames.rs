//! Reading a segment's frames through a window: a bounded buffer the caller
//! keeps and hands in again for the next segment, so reading a closed
//! segment never needs a buffer of its size.
//!
//! [`FrameReader`] reads a file from its start in reads of at most the
//! window's size, keeping the frame at its cursor whole in the buffer: the
//! bytes of a frame that straddles the window's end are moved to the
//! buffer's start before the next read, and a single frame larger than the
//! window grows the buffer to that frame (the caller's buffer keeps that
//! capacity; it may shrink it afterwards). A frame is handed out exactly as
//! [`record::decode_salted`] decodes it from the file's bytes read whole: a
//! frame cut short by the end of the file is [`FrameError::Incomplete`],
//! one that fails its checksum is [`FrameError::Checksum`], and so on, at
//! the same offset. What a bad frame means is the caller's rule (compaction
//! refuses it as corruption; the hint builder ends the segment's entries
//! there, as the whole-file path does); the reader never skips one.
//!
//! The buffer is filled without being zeroed first (the reads write into
//! its spare capacity), and it is reused: once it reached its size, reading
//! another segment touches no fresh memory. The reads go to the file,
//! never through a segment's memory map ([`Segment::read_file_uninit_at`]):
//! a pass over a whole segment through the map would leave all of it
//! mapped and counted in the resident set while the segment lives.

use super::record::{self, FrameError, Record, Salt, FRAME_HEADER_LEN, MAX_PAYLOAD_LEN};
use super::segment::{self, Segment, SEGMENT_HEADER_LEN};
use crate::checksum;
use crate::error::Result;

/// The window compaction and the hint builder read closed segments through.
pub const WINDOW: usize = 1 << 20;

/// A frame's file offset, and the frame decoded or why it does not decode.
pub type Decoded<'r> = (u64, std::result::Result<Record<'r>, FrameError>);

/// Where the bytes come from.
enum Source<'a> {
    /// A segment file, read through `buf` in reads of at most `window`
    /// bytes (or one frame, when a frame is larger).
    File {
        seg: &'a Segment,
        buf: &'a mut Vec<u8>,
        window: usize,
    },
    /// A whole segment already in memory (compaction's output).
    Memory(&'a [u8]),
}

/// Reads the frames of one segment in file order; see the module documentation.
pub struct FrameReader<'a> {
    src: Source<'a>,
    /// Length of the file when the reader was opened: bytes past it are not read.
    len: u64,
    /// File offset of the buffer's first byte.
    base: u64,
    /// Buffer offset of the frame at the cursor.
    at: usize,
    /// The salt of the segment's frames.
    salt: Salt,
    /// CRC32C of every byte read so far from the file's start, when asked for.
    crc: Option<u32>,
}

impl<'a> FrameReader<'a> {
    /// Opens a reader over `seg` through `buf` (emptied first; its capacity
    /// is kept and reused) in reads of at most `window` bytes. With `crc`,
    /// the reader keeps the CRC32C of the file's bytes as it reads them
    /// ([`FrameReader::finish`]).
    pub fn open(seg: &'a Segment, buf: &'a mut Vec<u8>, window: usize, crc: bool) -> Result<FrameReader<'a>> {
        buf.clear();
        let len = seg.file_len()?;
        let mut r = FrameReader {
            src: Source::File {
                seg,
                buf,
                window: window.max(FRAME_HEADER_LEN),
            },
            len,
            base: 0,
            at: 0,
            salt: Salt::NONE,
            crc: crc.then_some(0),
        };
        r.start()?;
        Ok(r)
    }

    /// A reader over the segment file whose bytes are `data`, all in memory.
    pub fn memory(data: &'a [u8]) -> FrameReader<'a> {
        let mut r = FrameReader {
            src: Source::Memory(data),
            len: data.len() as u64,
            base: 0,
            at: 0,
            salt: Salt::NONE,
            crc: None,
        };
        // Nothing is read from a file: this cannot fail.
        r.start().expect("a reader over memory does no I/O");
        r
    }

    /// Reads the header (for the salt) and puts the cursor on the first frame.
    fn start(&mut self) -> Result<()> {
        self.ensure(SEGMENT_HEADER_LEN as usize)?;
        let (salt, len) = (segment::frame_salt(self.data()), self.data().len());
        self.salt = salt;
        self.at = (SEGMENT_HEADER_LEN as usize).min(len);
        Ok(())
    }

    /// Puts the cursor back on the first frame, to read the segment again
    /// (from the file, for a file; the CRC is no longer kept).
    pub fn rewind(&mut self) -> Result<()> {
        self.crc = None;
        if let Source::File { buf, .. } = &mut self.src {
            buf.clear();
            self.base = 0;
        }
        self.at = 0;
        self.start()
    }

    /// Puts the cursor on the frame at file offset `offset` (one this
    /// reader found before), dropping what the buffer holds; the CRC is no
    /// longer kept.
    pub fn seek(&mut self, offset: u64) {
        self.crc = None;
        match &mut self.src {
            Source::File { buf, .. } => {
                buf.clear();
                self.base = offset;
                self.at = 0;
            }
            Source::Memory(_) => self.at = usize::try_from(offset).unwrap_or(usize::MAX),
        }
    }

    /// Length of the file (as it was when the reader was opened).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a file of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes read and kept, from file offset `base`.
    fn data(&self) -> &[u8] {
        match &self.src {
            Source::File { buf, .. } => buf,
            Source::Memory(d) => d,
        }
    }

    /// Makes `need` bytes from the cursor available (or as many as the
    /// file has), reading more of the file if they are not yet.
    fn ensure(&mut self, need: usize) -> Result<()> {
        let Source::File { seg, buf, window } = &mut self.src else {
            return Ok(());
        };
        let cursor = self.base + self.at as u64;
        let need = need.min(usize::try_from(self.len.saturating_sub(cursor)).unwrap_or(usize::MAX));
        if buf.len() - self.at >= need {
            return Ok(());
        }
        // Keep only the bytes from the cursor on (part of the frame there).
        buf.drain(..self.at);
        self.base = cursor;
        self.at = 0;
        // A window, or the frame at the cursor if it is larger; never more
        // than the rest of the file (a small segment gets a small buffer).
        let unread = usize::try_from(self.len - (self.base + buf.len() as u64)).unwrap_or(usize::MAX);
        let limit = need.max(*window).min(buf.len().saturating_add(unread));
        if buf.capacity() < limit {
            buf.reserve_exact(limit - buf.len());
        }
        let read_from = self.base + buf.len() as u64;
        let room = limit - buf.len();
        let n = room.min(usize::try_from(self.len - read_from).unwrap_or(usize::MAX));
        let old = buf.len();
        seg.read_file_uninit_at(read_from, &mut buf.spare_capacity_mut()[..n])?;
        // SAFETY: `read_uninit_at` returned Ok, which means it initialized
        // all `n` bytes of the spare capacity it was given, right after the
        // buffer's `old` initialized bytes.
        unsafe { buf.set_len(old + n) };
        if let Some(crc) = &mut self.crc {
            *crc = checksum::crc32c_append(*crc, &buf[old..]);
        }
        Ok(())
    }

    /// Makes the whole frame at the cursor available (as far as the file
    /// goes) and returns its file offset; `None` at the end of the file.
    fn locate(&mut self) -> Result<Option<u64>> {
        let offset = self.base + self.at as u64;
        if offset >= self.len {
            return Ok(None);
        }
        self.ensure(FRAME_HEADER_LEN)?;
        // A length the decoder refuses on its own terms needs no more bytes.
        if let Some(len) = record::announced_len(&self.data()[self.at..]).filter(|&l| l <= MAX_PAYLOAD_LEN) {
            self.ensure(FRAME_HEADER_LEN + len)?;
        }
        Ok(Some(offset))
    }

    /// Moves to the next frame and decodes it: its file offset and the
    /// frame, or why it does not decode (then the cursor stays on it);
    /// `None` once the file is read to its end. `Err` is a failed read.
    pub fn next_frame(&mut self) -> Result<Option<Decoded<'_>>> {
        let Some(offset) = self.locate()? else {
            return Ok(None);
        };
        let data: &[u8] = match &self.src {
            Source::File { buf, .. } => buf,
            Source::Memory(d) => d,
        };
        let decoded = record::decode_salted(&data[self.at..], self.salt);
        if let Ok(rec) = &decoded {
            self.at += rec.frame_len;
        }
        Ok(Some((offset, decoded)))
    }

    /// The sequence number the frame at the cursor announces (its header
    /// read without checking its checksum), once [`FrameReader::peek`] found
    /// one; for ordering frames of several segments before decoding them.
    fn peek_seq(&self) -> Option<u64> {
        record::peek_seq(&self.data()[self.at..])
    }

    /// Moves to the frame at the cursor without decoding it: its file
    /// offset and the sequence number its header announces (`None` when
    /// the header is cut short or announces more bytes than the file
    /// has: the frame does not decode), or `None` at the end of the file.
    pub fn peek(&mut self) -> Result<Option<(u64, Option<u64>)>> {
        Ok(self.locate()?.map(|offset| (offset, self.peek_seq())))
    }

    /// Decodes the frame at the cursor (after [`FrameReader::peek`] found
    /// one) without moving: its file offset and the frame.
    pub fn current(&self) -> Decoded<'_> {
        (
            self.base + self.at as u64,
            record::decode_salted(&self.data()[self.at..], self.salt),
        )
    }

    /// Moves past the frame at the cursor, `frame_len` bytes long (as
    /// [`FrameReader::current`] decoded it).
    pub fn skip(&mut self, frame_len: usize) {
        self.at += frame_len;
    }

    /// Reads the rest of the file and returns its length and the CRC32C of
    /// all its bytes (of a reader opened with `crc`; a reader over memory
    /// computes it from the bytes).
    pub fn finish(&mut self) -> Result<(u64, u32)> {
        if let Source::Memory(d) = self.src {
            return Ok((self.len, checksum::crc32c(d)));
        }
        // Read on in windows, each kept only until the next.
        loop {
            let end = self.base + self.data().len() as u64;
            if end >= self.len {
                break;
            }
            self.at = self.data().len();
            self.ensure(1)?;
        }
        Ok((self.len, self.crc.unwrap_or(0)))
    }
}

/// Ensures `pool` holds at least `n` buffers, for that many readers at once.
pub fn buffers(pool: &mut Vec<Vec<u8>>, n: usize) -> &mut [Vec<u8>] {
    if pool.len() < n {
        pool.resize_with(n, Vec::new);
    }
    &mut pool[..n]
}

/// After a pass: keeps at most `keep` buffers, each at most `window`
/// bytes (one grown for a large frame goes back to the window's size).
pub fn trim_buffers(pool: &mut Vec<Vec<u8>>, keep: usize, window: usize) {
    pool.truncate(keep);
    for b in pool.iter_mut() {
        b.clear();
        if b.capacity() > window {
            *b = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::log::record::{OpKind, OpRef};
    use crate::vfs::FileHandle;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A file in memory that records its largest read.
    #[derive(Debug)]
    struct MemFile {
        data: Vec<u8>,
        largest: Arc<AtomicUsize>,
    }

    impl FileHandle for MemFile {
        fn append(&self, _: &[u8]) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        fn preallocate(&self, _: u64) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.largest.fetch_max(buf.len(), Ordering::Relaxed);
            let at = offset as usize;
            let src = self
                .data
                .get(at..at + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        fn size(&self) -> io::Result<u64> {
            Ok(self.data.len() as u64)
        }
    }

    fn segment_of(data: &[u8]) -> (Segment, Arc<AtomicUsize>) {
        let largest = Arc::new(AtomicUsize::new(0));
        let file = MemFile {
            data: data.to_vec(),
            largest: Arc::clone(&largest),
        };
        (
            Segment::with_handle(5, "/mem/0000000005.seg".into(), true, Box::new(file)),
            largest,
        )
    }

    /// Each frame's offset and what it decodes to (sequence, length, and
    /// each op's key, value and offset), or the error that ended the reading.
    type Seen = Vec<(u64, std::result::Result<(u64, usize, Vec<Vec<u8>>), FrameError>)>;

    /// A segment of `frames` records of random sizes (some far larger than
    /// the small windows the tests read through).
    fn random_segment(rng: &mut StdRng, frames: usize) -> Vec<u8> {
        let mut data = segment::encode_header(5, 0, 0).to_vec();
        let salt = Salt::of_segment(5);
        let mut kv = Vec::new();
        for seq in 1..=frames as u64 {
            let n = 1 + rng.random_range(0u64..3) as usize;
            let owned: Vec<(Vec<u8>, Vec<u8>, bool, u64)> = (0..n)
                .map(|i| {
                    let key = format!("key-{seq}-{i}-{}", rng.random_range(0u64..1000)).into_bytes();
                    let vlen = match rng.random_range(0u64..10) {
                        0 => 300 + rng.random_range(0u64..700) as usize,
                        1 => 0,
                        _ => rng.random_range(0u64..60) as usize,
                    };
                    let value = (0..vlen).map(|j| (j as u64 ^ seq) as u8).collect();
                    (
                        key,
                        value,
                        rng.random_range(0u64..5) == 0,
                        if rng.random_range(0u64..4) == 0 { 1 + seq } else { 0 },
                    )
                })
                .collect();
            let ops: Vec<OpRef<'_>> = owned
                .iter()
                .map(|(k, v, del, exp)| OpRef {
                    kind: if *del { OpKind::Delete } else { OpKind::Put },
                    key: k,
                    value: if *del { &[] } else { v },
                    expires_at: if *del { 0 } else { *exp },
                })
                .collect();
            record::encode_salted(&mut data, seq, &ops, &mut kv, salt);
        }
        data
    }

    /// What the whole-buffer path sees: every frame's offset and what it
    /// decodes to, up to the end or the first bad frame (its error).
    fn whole(data: &[u8]) -> Seen {
        let salt = segment::frame_salt(data);
        let mut out = Vec::new();
        let mut at = SEGMENT_HEADER_LEN as usize;
        while at < data.len() {
            match record::decode_salted(&data[at..], salt) {
                Ok(rec) => {
                    out.push((at as u64, Ok(summary(&rec))));
                    at += rec.frame_len;
                }
                Err(e) => {
                    out.push((at as u64, Err(e)));
                    break;
                }
            }
        }
        out
    }

    fn summary(rec: &Record<'_>) -> (u64, usize, Vec<Vec<u8>>) {
        (
            rec.seq,
            rec.frame_len,
            rec.ops
                .iter()
                .map(|op| [op.key, op.value, &op.kv_offset.to_le_bytes()].concat())
                .collect(),
        )
    }

    fn windowed(reader: &mut FrameReader<'_>) -> Seen {
        let mut out = Vec::new();
        while let Some((offset, rec)) = reader.next_frame().unwrap() {
            match rec {
                Ok(rec) => out.push((offset, Ok(summary(&rec)))),
                Err(e) => {
                    out.push((offset, Err(e)));
                    break;
                }
            }
        }
        out
    }

    /// Also through `peek`, `current` and `skip`, as compaction reads.
    fn peeked(reader: &mut FrameReader<'_>) -> Seen {
        let mut out = Vec::new();
        while let Some((offset, seq)) = reader.peek().unwrap() {
            let (at, rec) = reader.current();
            assert_eq!(at, offset);
            match rec {
                Ok(rec) => {
                    assert_eq!(seq, Some(rec.seq));
                    let len = rec.frame_len;
                    out.push((offset, Ok(summary(&rec))));
                    reader.skip(len);
                }
                Err(e) => {
                    out.push((offset, Err(e)));
                    break;
                }
            }
        }
        out
    }

    fn check(data: &[u8], windows: &[usize], buf: &mut Vec<u8>) {
        let expected = whole(data);
        let (len, crc) = (data.len() as u64, checksum::crc32c(data));
        let (seg, largest) = segment_of(data);
        let largest_frame = expected
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.1))
            .max()
            .unwrap_or(0);
        for &window in windows {
            largest.store(0, Ordering::Relaxed);
            let mut r = FrameReader::open(&seg, buf, window, true).unwrap();
            assert_eq!(windowed(&mut r), expected, "window {window}");
            assert_eq!(r.finish().unwrap(), (len, crc), "window {window}");
            // No read is larger than the window, unless one frame is (a
            // damaged length may announce more: the read is then bounded by
            // the file, as the whole-buffer read was).
            let all_whole = expected.iter().all(|(_, r)| r.is_ok());
            assert!(
                !all_whole
                    || largest.load(Ordering::Relaxed) <= window.max(largest_frame).max(SEGMENT_HEADER_LEN as usize),
                "window {window}: a read of {} bytes",
                largest.load(Ordering::Relaxed)
            );
            r.rewind().unwrap();
            assert_eq!(peeked(&mut r), expected, "window {window}, peeked");
        }
        let mut m = FrameReader::memory(data);
        assert_eq!(windowed(&mut m), expected);
        assert_eq!(m.finish().unwrap(), (len, crc));
    }

    #[test]
    fn windows_of_every_size_read_what_the_whole_buffer_holds() {
        let mut rng = StdRng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        let mut buf = Vec::new();
        for _ in 0..4 {
            let data = random_segment(&mut rng, 60);
            // Every window from one byte to past the longest frame, so some
            // frame straddles the window's end at every offset within it.
            let windows: Vec<usize> = (1..=160).chain([200, 333, 512, 1000, 4096, 1 << 20]).collect();
            check(&data, &windows, &mut buf);
        }
    }

    #[test]
    fn torn_tails_and_damaged_bytes_fail_where_the_whole_buffer_fails() {
        let mut rng = StdRng::seed_from_u64(42);
        let data = random_segment(&mut rng, 25);
        let mut buf = Vec::new();
        let windows = [1, 7, 31, 64, 100, 257, 4096];
        // Cut at every length: a torn tail at every position of every frame.
        for cut in 0..data.len() {
            check(&data[..cut], &windows, &mut buf);
        }
        // Damage: each byte in turn (header, lengths, checksums, payloads).
        for i in (SEGMENT_HEADER_LEN as usize..data.len()).step_by(3) {
            let mut bad = data.clone();
            bad[i] ^= 1 << (i % 8);
            check(&bad, &windows, &mut buf);
        }
        // A zeroed tail, and old records of another salt behind (a recycled file).
        let mut zeros = data.clone();
        zeros.extend_from_slice(&[0u8; 500]);
        check(&zeros, &windows, &mut buf);
        let other = random_segment(&mut StdRng::seed_from_u64(7), 10);
        let mut recycled = data.clone();
        recycled.extend_from_slice(&other[SEGMENT_HEADER_LEN as usize..]);
        check(&recycled, &windows, &mut buf);
        // A header that announces a length past the file's end.
        let mut long = data.clone();
        long.extend_from_slice(&[1, 2, 3, 4, 0xff, 0xff, 0xff, 0x0f, 9, 9]);
        check(&long, &windows, &mut buf);
        // Shorter than a header, and a header alone.
        check(&data[..10], &windows, &mut buf);
        check(&data[..SEGMENT_HEADER_LEN as usize], &windows, &mut buf);
    }

    #[test]
    fn a_frame_larger_than_the_window_grows_the_buffer_once_and_trim_gives_it_back() {
        let mut data = segment::encode_header(5, 0, 0).to_vec();
        let big = vec![7u8; 10_000];
        let ops = [OpRef {
            kind: OpKind::Put,
            key: b"big",
            value: &big,
            expires_at: 0,
        }];
        record::encode_salted(&mut data, 1, &ops, &mut Vec::new(), Salt::of_segment(5));
        let (seg, largest) = segment_of(&data);
        let mut pool = Vec::new();
        let buf = &mut buffers(&mut pool, 1)[0];
        let mut r = FrameReader::open(&seg, buf, 256, false).unwrap();
        let (_, rec) = r.next_frame().unwrap().unwrap();
        assert_eq!(rec.unwrap().ops[0].value, &big[..]);
        assert!(r.next_frame().unwrap().is_none());
        assert!(largest.load(Ordering::Relaxed) <= 10_100);
        assert!(pool[0].capacity() >= 10_000);
        buffers(&mut pool, 3);
        trim_buffers(&mut pool, 2, 256);
        assert_eq!(pool.len(), 2);
        assert!(pool.iter().all(|b| b.capacity() <= 256));
    }
}
