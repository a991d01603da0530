//! Offline verification and statistics of a database directory.
//!
//! [`check_dir`] reads a directory the way recovery does, with recovery's
//! rules (see [`crate::log::recovery`]), but opens nothing for writing: no
//! lock file is created, no torn tail is cut, no hint is written, no
//! temporary file is removed. It reports what an open would do instead.
//!
//! What it verifies:
//! - every segment's header (magic, version, checksum, id);
//! - every record of every segment: frame checksum, op checksums, framing,
//!   and sequence numbers (contiguous in a writer's segment, increasing in
//!   a sealed one);
//! - the links between writer segments: a closed writer segment ends at the
//!   sequence number the next one, which names it, starts from;
//! - every hint file against its segment: header, checksum, archive, the
//!   segment's length and whole-file checksum, and each entry against the
//!   record it describes.
//!
//! Damage is everything open would refuse (or, for hint files, distrust),
//! listed in file order with the file and byte offset. A torn tail of the
//! active segment is not damage, as for recovery: it is reported as the cut
//! open will make. The same pass gathers the statistics `stats` shows:
//! keys, live and dead bytes, the sequence range, hints, and an estimate
//! of the memory the index will take.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::accounting::op_log_bytes;
use crate::checksum;
use crate::engine::now_ms;
use crate::error::{Error, Result};
use crate::index::{Version, SMALL_VALUE_MAX};
use crate::log::hint::{self, HintEntry, HINT_VALUE_MAX};
use crate::log::record::{self, FrameError, OpKind};
use crate::log::recovery::{valid_frame_after, zeroed_tail};
use crate::log::segment::{self, Header, SEGMENT_HEADER_LEN};
use crate::options::Options;
use crate::vfs::{self, FileSystem};

/// Bytes the index spends on a key beyond the key itself and an inline
/// value: its version entry, the per-key lock and version list, and the
/// skiplist node (pointers of an average tower, reference count, length),
/// rounded as the allocator does. Used only for the estimate in
/// [`DirReport::index_estimate_bytes`].
const INDEX_NODE_OVERHEAD: usize = 96;
/// Header of an inline value's shared allocation (two reference counts).
const INLINE_VALUE_HEADER: usize = 16;

/// One finding that makes the directory unfit to open as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The damaged file.
    pub file: PathBuf,
    /// Byte offset of the first bad byte, record or field in that file.
    pub offset: u64,
    /// What check failed.
    pub reason: String,
}

/// The state of a segment's hint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HintState {
    /// The active segment: it gets a hint once it is closed.
    NotYet,
    /// A closed segment without a hint: open reads the segment and writes one.
    Missing,
    /// A hint that matches its segment entry for entry.
    Valid,
    /// A hint open would not trust (it is in the damage list too).
    Invalid,
}

/// What check found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Segment id.
    pub id: u32,
    /// File name.
    pub file: String,
    /// File length in bytes.
    pub len: u64,
    /// Written whole by compaction.
    pub sealed: bool,
    /// The segment the writer appends to (the newest unsealed one).
    pub active: bool,
    /// Sequence number before the first record (from the header).
    pub base_seq: u64,
    /// The writer segment this one follows (0: none).
    pub prev_writer: u32,
    /// Whole records read.
    pub records: u64,
    /// Operations in those records.
    pub ops: u64,
    /// Lowest and highest sequence numbers of its records (0, 0 when none).
    pub seq_range: (u64, u64),
    /// Log bytes of the newest, unexpired version of a key.
    pub live_bytes: u64,
    /// Log bytes of every other op.
    pub dead_bytes: u64,
    /// The hint file's state.
    pub hint: HintState,
    /// A torn tail open will cut: (offset, bytes).
    pub torn_tail: Option<(u64, u64)>,
}

/// What [`check_dir`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirReport {
    /// The directory checked.
    pub dir: PathBuf,
    /// Every segment, ascending by id.
    pub segments: Vec<SegmentReport>,
    /// Damage, in the order found (segments by id, offsets ascending).
    pub damage: Vec<Damage>,
    /// What open would change that is not damage (a torn tail to cut,
    /// temporary files to remove, hints to write), and whether a process
    /// has the directory open.
    pub notes: Vec<String>,
    /// Another process holds the directory's lock (a server has it open):
    /// its newest segment may be mid-write, so a torn tail there is expected.
    pub in_use: bool,
    /// Keys whose newest version is a put that has not expired.
    pub keys: u64,
    /// Keys whose newest version is a put that has expired (reclaimed by compaction).
    pub expired_keys: u64,
    /// Keys whose newest version is a delete still in the log.
    pub deleted_keys: u64,
    /// Keys that carry an expiry and have not expired.
    pub keys_with_expiry: u64,
    /// Records read.
    pub records: u64,
    /// Operations read.
    pub ops: u64,
    /// Log bytes of live versions (see [`SegmentReport::live_bytes`]).
    pub live_bytes: u64,
    /// Log bytes of everything else: overwritten, deleted or expired versions.
    pub dead_bytes: u64,
    /// Bytes of every segment file.
    pub segment_bytes: u64,
    /// Lowest sequence number of any record (0 when the log is empty).
    pub min_seq: u64,
    /// The sequence number the next commit follows, as open computes it.
    pub last_seq: u64,
    /// Hint files present and valid.
    pub hints_valid: u64,
    /// Closed segments without a hint file.
    pub hints_missing: u64,
    /// Hint files open would not trust.
    pub hints_invalid: u64,
    /// Estimated bytes of memory the index takes once open: per live key,
    /// the key, a fixed node overhead, and the value when it is small
    /// enough to be kept inline (the default inline threshold).
    pub index_estimate_bytes: u64,
}

impl DirReport {
    /// The first damage found, if any.
    pub fn first_damage(&self) -> Option<&Damage> {
        self.damage.first()
    }
}

/// The newest version of a key seen so far.
struct Newest {
    seq: u64,
    put: bool,
    expires_at: u64,
    log_bytes: u64,
    segment: u32,
    val_len: u32,
}

/// Verifies the database directory `dir` without writing to it, and
/// gathers its statistics. Damage is reported in the answer; `Err` means
/// the check itself could not be done (the directory or a file could not
/// be read).
pub fn check_dir(dir: &Path) -> Result<DirReport> {
    let fs = vfs::os();
    check_dir_in(&*fs, dir)
}

/// [`check_dir`] through the file layer `fs`.
pub fn check_dir_in(fs: &dyn FileSystem, dir: &Path) -> Result<DirReport> {
    match fs.stat(dir) {
        Ok(st) if st.is_dir => {}
        Ok(_) => return Err(Error::InvalidArgument(format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    }
    let mut rep = DirReport {
        dir: dir.to_path_buf(),
        in_use: lock_held(dir),
        ..DirReport::default()
    };
    if rep.in_use {
        rep.notes.push(format!(
            "{} is open in another process: its newest segment may be mid-write, so \
             a torn tail there is expected; stop the server for an exact check",
            dir.display()
        ));
    }
    note_leftovers(fs, dir, &mut rep)?;
    let ids = segment::list_in(fs, dir)?;
    let headers = read_headers(fs, dir, &ids, &mut rep)?;
    let active = ids
        .iter()
        .rev()
        .find(|id| headers.get(id).is_some_and(|h| !h.sealed()))
        .copied();
    // Writer segment -> (the writer segment created after it, its base).
    let successors: HashMap<u32, (u32, u64)> = headers
        .iter()
        .filter(|(_, h)| !h.sealed() && h.prev_writer != 0)
        .map(|(&id, h)| (h.prev_writer, (id, h.base_seq)))
        .collect();
    let mut newest: HashMap<Box<[u8]>, Newest> = HashMap::new();
    let mut seg_bytes: HashMap<u32, u64> = HashMap::new();
    let mut min_seq = u64::MAX;
    for &id in &ids {
        let Some(&header) = headers.get(&id) else { continue };
        let path = dir.join(segment::segment_file_name(id));
        let data = match vfs::read_file(fs, &path) {
            Ok(data) => data,
            Err(e) if retired(&e, &path, &mut rep) => continue,
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let is_active = Some(id) == active;
        let mut seg = SegmentReport {
            id,
            file: segment::segment_file_name(id),
            len: data.len() as u64,
            sealed: header.sealed(),
            active: is_active,
            base_seq: header.base_seq,
            prev_writer: header.prev_writer,
            records: 0,
            ops: 0,
            seq_range: (0, 0),
            live_bytes: 0,
            dead_bytes: 0,
            hint: HintState::NotYet,
            torn_tail: None,
        };
        rep.last_seq = rep.last_seq.max(header.base_seq);
        rep.segment_bytes += seg.len;
        let walk = walk_segment(&path, header, &data, is_active, &mut seg, &mut rep, |seq, op| {
            let log_bytes = u64::from(op_log_bytes(op.key.len(), op.value.len(), op.expires_at));
            *seg_bytes.entry(id).or_default() += log_bytes;
            min_seq = min_seq.min(seq);
            let v = Newest {
                seq,
                put: op.kind == OpKind::Put,
                expires_at: op.expires_at,
                log_bytes,
                segment: id,
                val_len: op.value.len() as u32,
            };
            match newest.get_mut(op.key) {
                Some(cur) if cur.seq >= seq => {}
                Some(cur) => *cur = v,
                None => {
                    newest.insert(Box::from(op.key), v);
                }
            }
        });
        if let (Some(end), Some(&(next, next_base))) = (walk, successors.get(&id).filter(|_| !header.sealed())) {
            let last = if seg.records == 0 {
                header.base_seq
            } else {
                seg.seq_range.1
            };
            if last != next_base {
                rep.damage.push(Damage {
                    file: path.clone(),
                    offset: end,
                    reason: format!(
                        "the segment ends at sequence {last} but segment {next}, created after it, continues \
                         from sequence {next_base}: records are missing (the file was cut or damaged)"
                    ),
                });
            }
        }
        if !is_active {
            seg.hint = check_hint(fs, dir, id, &data, walk, &mut rep);
        }
        rep.segments.push(seg);
    }
    tally(&mut rep, &newest, &seg_bytes);
    rep.min_seq = if min_seq == u64::MAX { 0 } else { min_seq };
    Ok(rep)
}

/// True when another open file description holds `dir/LOCK` (a server
/// has the database open). Opens the lock file read-only, never creating it.
fn lock_held(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(dir.join(crate::dirlock::LOCK_FILE)) else {
        return false;
    };
    // SAFETY: flock only reads the descriptor number, which `file` keeps
    // open for the duration of both calls; a shared lock taken here is
    // released by the second call (and by closing the file regardless).
    unsafe {
        if libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 {
            return std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK);
        }
        libc::flock(file.as_raw_fd(), libc::LOCK_UN);
    }
    false
}

/// True, with a note, when `path` could not be read because a running
/// server's compaction retired it after the directory was listed; any
/// other failure to read is an error of the check.
fn retired(e: &std::io::Error, path: &Path, rep: &mut DirReport) -> bool {
    if e.kind() != std::io::ErrorKind::NotFound || !rep.in_use {
        return false;
    }
    rep.notes.push(format!(
        "{}: removed by the running server (compaction) while it was being read",
        path.display()
    ));
    true
}

/// Notes temporary files open would remove.
fn note_leftovers(fs: &dyn FileSystem, dir: &Path, rep: &mut DirReport) -> Result<()> {
    let names = fs
        .read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut tmp: Vec<String> = names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| n.ends_with(".tmp"))
        .map(str::to_string)
        .collect();
    tmp.sort();
    for name in tmp {
        rep.notes.push(format!(
            "{name}: a file compaction was writing when the process stopped; open removes it"
        ));
    }
    Ok(())
}

/// Reads every segment header; a bad one is damage at offset 0. A file too
/// short for its header is, as for recovery, the newest writer segment cut
/// while it was created (noted: open removes it), unless a writer segment
/// with a higher id exists: then it was whole once, and that is damage.
fn read_headers(fs: &dyn FileSystem, dir: &Path, ids: &[u32], rep: &mut DirReport) -> Result<HashMap<u32, Header>> {
    let mut headers = HashMap::new();
    let mut short = Vec::new();
    for &id in ids {
        let path = dir.join(segment::segment_file_name(id));
        let h = fs.open(&path, vfs::OpenMode::Read).and_then(|f| {
            let len = f.size()?.min(SEGMENT_HEADER_LEN) as usize;
            let mut h = vec![0u8; len];
            f.read_exact_at(&mut h, 0)?;
            Ok(h)
        });
        let h = match h {
            Ok(h) => h,
            Err(e) if retired(&e, &path, rep) => continue,
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        if h.len() < SEGMENT_HEADER_LEN as usize {
            short.push((id, path, h.len()));
            continue;
        }
        match segment::check_header(&h, id) {
            Ok(header) => {
                headers.insert(id, header);
            }
            Err(reason) => rep.damage.push(Damage {
                file: path,
                offset: 0,
                reason,
            }),
        }
    }
    let newest_writer = headers.iter().filter(|(_, h)| !h.sealed()).map(|(&id, _)| id).max();
    for (id, path, len) in short {
        match newest_writer.filter(|&w| w > id) {
            None => rep.notes.push(format!(
                "{}: {len} bytes, shorter than a segment header: the newest segment, cut while it was \
                 created; it holds no record and open removes it",
                path.display()
            )),
            Some(later) => rep.damage.push(Damage {
                file: path,
                offset: 0,
                reason: format!(
                    "the file holds {len} bytes, less than its {SEGMENT_HEADER_LEN}-byte header, but writer \
                     segment {later} was created after it: its records are missing"
                ),
            }),
        }
    }
    Ok(headers)
}

/// Walks the frames of one segment with recovery's rules, calling `on_op`
/// for each op of each whole record. Returns where the valid records end,
/// or `None` when the segment is damaged (the damage is recorded).
fn walk_segment(
    path: &Path,
    header: Header,
    data: &[u8],
    is_active: bool,
    seg: &mut SegmentReport,
    rep: &mut DirReport,
    mut on_op: impl FnMut(u64, &record::DecodedOp<'_>),
) -> Option<u64> {
    let mut at = SEGMENT_HEADER_LEN as usize;
    let contiguous = !header.sealed();
    let mut prev_seq = header.base_seq;
    while at < data.len() {
        let reason = match record::decode_salted(&data[at..], header.salt) {
            Ok(rec) if (contiguous && rec.seq == prev_seq + 1) || (!contiguous && rec.seq > prev_seq) => {
                prev_seq = rec.seq;
                if seg.records == 0 {
                    seg.seq_range.0 = rec.seq;
                }
                seg.seq_range.1 = rec.seq;
                seg.records += 1;
                seg.ops += rec.ops.len() as u64;
                rep.records += 1;
                rep.ops += rec.ops.len() as u64;
                rep.last_seq = rep.last_seq.max(rec.seq);
                for op in &rec.ops {
                    on_op(rec.seq, op);
                }
                at += rec.frame_len;
                continue;
            }
            Ok(rec) if contiguous => format!(
                "sequence {} where {} was expected (a record is missing or out of order)",
                rec.seq,
                prev_seq + 1
            ),
            Ok(rec) => format!("sequence {} does not follow {prev_seq} (records out of order)", rec.seq),
            Err(FrameError::Incomplete) => "record cut short before later records".to_string(),
            Err(FrameError::Checksum) => "record checksum mismatch".to_string(),
            Err(FrameError::Malformed(m)) => format!("malformed record: {m}"),
        };
        if is_active && zeroed_tail(&data[at..]) {
            // Preallocated space the writer had not reached: the end of the
            // log, as recovery reads it, and nothing to report.
            return Some(at as u64);
        }
        if is_active && !valid_frame_after(data, at, prev_seq, header.salt) {
            let dropped = (data.len() - at) as u64;
            seg.torn_tail = Some((at as u64, dropped));
            rep.notes.push(format!(
                "{}: torn tail at offset {at} ({dropped} bytes, {reason}): the last write was cut by a \
                 crash and never completed, or, in a recycled segment file, records of its earlier life \
                 follow the last record; open cuts it",
                path.display()
            ));
            return Some(at as u64);
        }
        rep.damage.push(Damage {
            file: path.to_path_buf(),
            offset: at as u64,
            reason,
        });
        return None;
    }
    Some(data.len() as u64)
}

/// Checks the hint of closed segment `id` against the segment's bytes;
/// `end` is where its valid records end (`None`: the segment is damaged,
/// and its hint cannot be compared entry by entry).
fn check_hint(
    fs: &dyn FileSystem,
    dir: &Path,
    id: u32,
    data: &[u8],
    end: Option<u64>,
    rep: &mut DirReport,
) -> HintState {
    let path = hint::hint_path(dir, id);
    let (valid, why) = hint::read(fs, dir, id, data.len() as u64);
    let bad = |rep: &mut DirReport, reason: String| {
        rep.hints_invalid += 1;
        rep.damage.push(Damage {
            file: path.clone(),
            offset: 0,
            reason: format!("{reason} (no data is lost: open reads the segment instead and rewrites the hint)"),
        });
        HintState::Invalid
    };
    let Some(h) = valid else {
        return match why {
            None => {
                rep.hints_missing += 1;
                rep.notes.push(format!(
                    "{}: closed segment without a hint file; open reads the segment and writes one",
                    segment::segment_file_name(id)
                ));
                HintState::Missing
            }
            Some(why) => {
                // `why` starts with the hint's path; keep only the reason.
                let reason = why.split_once(": ").map_or(why.as_str(), |(_, r)| r).to_string();
                bad(rep, reason)
            }
        };
    };
    let body = h.body();
    if body.segment_crc.to_native() != checksum::crc32c(data) {
        return bad(
            rep,
            "the segment's checksum differs from the one its hint records".into(),
        );
    }
    let Some(end) = end else {
        return bad(rep, "describes a segment that is damaged".into());
    };
    let frames: Vec<HintEntry> = hint::entries_from_frames(&data[..end as usize], HINT_VALUE_MAX);
    if frames.len() != body.entries.len() {
        return bad(
            rep,
            format!(
                "lists {} entries, the segment holds {}",
                body.entries.len(),
                frames.len()
            ),
        );
    }
    for (i, (f, e)) in frames.iter().zip(body.entries.iter()).enumerate() {
        let mismatch = if e.key.as_slice() != f.key.as_slice() {
            Some("key")
        } else if e.seq.to_native() != f.seq {
            Some("sequence")
        } else if e.delete != f.delete {
            Some("kind")
        } else if e.expires_at.to_native() != f.expires_at {
            Some("expiry")
        } else if e.kv_offset.to_native() != f.kv_offset {
            Some("offset")
        } else if e.val_len.to_native() != f.val_len || e.kv_crc.to_native() != f.kv_crc {
            Some("value length or checksum")
        } else if e
            .value
            .as_ref()
            .is_some_and(|v| Some(v.as_slice()) != f.value.as_deref())
        {
            Some("inline value")
        } else {
            None
        };
        if let Some(field) = mismatch {
            return bad(
                rep,
                format!(
                    "entry {i} differs from the record at offset {} of {}: {field}",
                    f.kv_offset,
                    segment::segment_file_name(id)
                ),
            );
        }
    }
    rep.hints_valid += 1;
    HintState::Valid
}

/// Counts keys and live bytes from the newest version of every key.
fn tally(rep: &mut DirReport, newest: &HashMap<Box<[u8]>, Newest>, seg_bytes: &HashMap<u32, u64>) {
    let now = now_ms();
    let inline = Options::default().inline_threshold;
    let mut live_by_seg: HashMap<u32, u64> = HashMap::new();
    for (key, v) in newest {
        if !v.put {
            rep.deleted_keys += 1;
            continue;
        }
        if v.expires_at != 0 && v.expires_at <= now {
            rep.expired_keys += 1;
            continue;
        }
        rep.keys += 1;
        rep.keys_with_expiry += u64::from(v.expires_at != 0);
        *live_by_seg.entry(v.segment).or_default() += v.log_bytes;
        // A small value lives in the version; a longer inline one in an
        // allocation of its own.
        let value = if (v.val_len as usize) <= inline && v.val_len as usize > SMALL_VALUE_MAX {
            v.val_len as usize + INLINE_VALUE_HEADER
        } else {
            0
        };
        rep.index_estimate_bytes += (key.len() + INDEX_NODE_OVERHEAD + std::mem::size_of::<Version>() + value) as u64;
    }
    for seg in &mut rep.segments {
        let total = seg_bytes.get(&seg.id).copied().unwrap_or(0);
        seg.live_bytes = live_by_seg.get(&seg.id).copied().unwrap_or(0);
        seg.dead_bytes = total - seg.live_bytes;
        rep.live_bytes += seg.live_bytes;
        rep.dead_bytes += seg.dead_bytes;
    }
}

impl DirReport {
    /// The report as one JSON object (the C ABI's wire format for it).
    /// Paths that are not UTF-8 are written lossily.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(1024 + 256 * self.segments.len());
        s.push('{');
        json_field(&mut s, "dir", &self.dir.to_string_lossy());
        let _ = write!(
            s,
            ",\"in_use\":{},\"keys\":{},\"expired_keys\":{},\"deleted_keys\":{},\"keys_with_expiry\":{},\
             \"records\":{},\"ops\":{},\"live_bytes\":{},\"dead_bytes\":{},\"segment_bytes\":{},\
             \"min_seq\":{},\"last_seq\":{},\"hints_valid\":{},\"hints_missing\":{},\"hints_invalid\":{},\
             \"index_estimate_bytes\":{}",
            self.in_use,
            self.keys,
            self.expired_keys,
            self.deleted_keys,
            self.keys_with_expiry,
            self.records,
            self.ops,
            self.live_bytes,
            self.dead_bytes,
            self.segment_bytes,
            self.min_seq,
            self.last_seq,
            self.hints_valid,
            self.hints_missing,
            self.hints_invalid,
            self.index_estimate_bytes
        );
        s.push_str(",\"damage\":[");
        for (i, d) in self.damage.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push('{');
            json_field(&mut s, "file", &d.file.to_string_lossy());
            let _ = write!(s, ",\"offset\":{},", d.offset);
            json_field(&mut s, "reason", &d.reason);
            s.push('}');
        }
        s.push_str("],\"notes\":[");
        for (i, n) in self.notes.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_string(&mut s, n);
        }
        s.push_str("],\"segments\":[");
        for (i, g) in self.segments.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let hint = match g.hint {
                HintState::NotYet => "not_yet",
                HintState::Missing => "missing",
                HintState::Valid => "valid",
                HintState::Invalid => "invalid",
            };
            let _ = write!(
                s,
                "{{\"id\":{},\"file\":\"{}\",\"len\":{},\"sealed\":{},\"active\":{},\"base_seq\":{},\
                 \"prev_writer\":{},\"records\":{},\"ops\":{},\"first_seq\":{},\"last_seq\":{},\
                 \"live_bytes\":{},\"dead_bytes\":{},\"hint\":\"{hint}\"",
                g.id,
                g.file,
                g.len,
                g.sealed,
                g.active,
                g.base_seq,
                g.prev_writer,
                g.records,
                g.ops,
                g.seq_range.0,
                g.seq_range.1,
                g.live_bytes,
                g.dead_bytes
            );
            if let Some((offset, bytes)) = g.torn_tail {
                let _ = write!(s, ",\"torn_tail\":{{\"offset\":{offset},\"bytes\":{bytes}}}");
            }
            s.push('}');
        }
        s.push_str("]}");
        s
    }
}

fn json_field(s: &mut String, name: &str, value: &str) {
    let _ = write!(s, "\"{name}\":");
    json_string(s, value);
}

fn json_string(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}
