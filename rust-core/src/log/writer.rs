//! The log writer: appends records to the active segment, rolls segments,
//! and makes records durable with group commit.
//!
//! Appends are serialised by one mutex that assigns the sequence number and
//! copies the encoded frame into an in-memory buffer, so the log order is the
//! sequence order. What happens next depends on the sync policy:
//!
//! - `Always`: the appender waits until its record is synced. If no sync is
//!   running it becomes the leader: it takes the whole buffer, releases the
//!   mutex, writes and fdatasyncs it, then wakes every follower whose record
//!   was in that group. Writers arriving meanwhile fill the next group, so N
//!   concurrent writers share one fdatasync. A woken follower reads the
//!   durable point from an atomic and returns without taking the mutex
//!   again (64 followers re-taking it one after another cost one lock
//!   hand-off, a context switch, each).
//!
//!   A writer may also wait outside the library (the Go engine does):
//!   it appends, asks for a sync with [`LogWriter::request_sync`] (which
//!   never blocks) and learns that the durable point moved from an eventfd
//!   ([`LogWriter::notifier`]). The syncs are then led by the log's syncer
//!   thread ([`LogWriter::relay`]), which also takes over whenever a sync
//!   ends with records appended during it and no writer parked to lead the
//!   next one, so the disk never waits for a writer to be scheduled; it
//!   wakes a zeroing thread to prepare log space beside the next sync.
//! - `Interval` / `Never`: the appender returns at once; the buffer is written
//!   to the OS when it fills or when the background flusher runs, which under
//!   `Interval` also syncs.
//!
//! The frame of a commit (key and value copies, their checksums) is encoded
//! before the append lock is taken; under it the writer only stamps the
//! sequence number, checksums the frame and copies it into the buffer.
//!
//! Under `Always` the active segment is preallocated: the file is extended
//! with zeroed, allocated space ahead of the records, which then overwrite
//! it. An fdatasync after such a write flushes data only: the file's length
//! changed once per step, not once per commit (with a growing file every
//! sync also commits the new length through the file system's journal).
//! The zeros are written ahead, off the commit path: once a group is
//! durable and its writers woken, a writer whose commit is done (the sync
//! leader, in a busy log) extends the space [`PREALLOCATE_STEP`] at a time
//! up to [`ZERO_AHEAD`] past the records and syncs the zeros and the new
//! length itself, so the next group's fdatasync neither writes zeros nor
//! commits a length. Only a writer that outruns that space zeroes a step
//! inline. A zeroed tail of the active segment is thus normal and recovery
//! reads it as the end of the log. When the segment is closed (a roll) or
//! the database is closed, the file is cut back to its last record and that
//! length is synced, so every closed segment ends exactly where its records
//! end. `Interval` and `Never` do not preallocate: they sync rarely or never,
//! and zeros would only double the bytes written.
//!
//! Zeros are still bytes written: on a disk whose bandwidth is the limit
//! (many writers of large values) they cost as much as the records. So
//! when compaction has kept a retired segment's file for reuse
//! ([`super::segment::recycle`], [`Options::recycle_segments`]), a roll
//! starts the next segment in it instead of a new file: its blocks are
//! allocated and written already, so the records overwrite them with no
//! zeros first and no metadata change, and zeroing ahead starts only past
//! the file's old length. Every frame's checksum is seeded with the salt of
//! the segment it is written in (see [`record::Salt`]), so the old records
//! past the new ones never pass for records.
//!
//! Any failed write or sync poisons the writer: the bytes on disk past the
//! last good sync are unknown (a short write may have left part of a record;
//! after a failed fdatasync the kernel may have dropped the dirty pages and
//! a retry could report success for lost data), so the writer never retries.
//! Every caller whose commit was in the failed write or sync gets the I/O
//! error ([`Error::Io`], with the operating system's error), never an
//! acknowledgement; every later append fails with [`Error::Poisoned`] until
//! the database is reopened (recovery then keeps exactly the whole records).
//! Reads go on meanwhile. The one sync whose failure stops nothing is the
//! zeroer's, and it goes through a file description of its own: Linux
//! reports a failed write-back once per description, so a sync through the
//! writer's description still sees every error (see `Space::zero_file`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::record::{self, OpRef, Salt};
use super::segment::{self, Segment, SEGMENT_HEADER_LEN};
use super::SegmentSet;
use crate::error::{Error, Result};
use crate::options::{Options, SyncPolicy};
use crate::vfs::{FileHandle, FileSystem, OpenMode};

/// How far the active segment is extended at a time: one length change
/// (and one journal commit) per this many bytes of log.
pub const PREALLOCATE_STEP: u64 = 1 << 20;

/// How far ahead of the records the zeros are kept, once the records come
/// within [`PREALLOCATE_STEP`] of their end.
pub const ZERO_AHEAD: u64 = 2 * PREALLOCATE_STEP;

thread_local! {
    /// Where a writer encodes its frame before taking the append lock.
    static FRAME: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frames up to this size keep their thread's encoding buffer allocated.
const FRAME_KEEP: usize = 1 << 20;

/// What the `compute` step of [`LogWriter::append_computed`] decided.
pub enum Computed<T> {
    /// Append a put of the key with this value and absolute expiry (0:
    /// none), and return `out`.
    Put {
        /// The new value.
        value: Vec<u8>,
        /// Its absolute expiry in Unix ms, 0 for none.
        expires_at: u64,
        /// What the caller gets back.
        out: T,
    },
    /// Append nothing (say, the update was refused) and return this.
    Done(T),
    /// Let go of the lock for a moment and compute again: a commit that
    /// the computation must see is not applied yet.
    Yield,
    /// Wait until the running group sync ends and compute again: a value
    /// the computation needs is in the buffer that sync is writing.
    AfterSync,
}

/// Log bytes not yet handed to the OS, readable while the append lock is
/// held (see [`LogWriter::append_computed`]).
pub struct Pending<'a> {
    st: &'a State,
}

/// Where [`Pending::read`] found bytes of the log.
pub enum PendingRead {
    /// In the write buffer: a copy.
    Buffered(Vec<u8>),
    /// Handed to the OS: read the segment file.
    InFile,
    /// In the buffer a group sync is writing right now.
    Syncing,
}

impl Pending<'_> {
    /// Finds `len` bytes at `offset` of `segment`.
    pub fn read(&self, segment: u32, offset: u64, len: usize) -> PendingRead {
        let st = self.st;
        if segment != st.active_id || offset + len as u64 <= st.flushed_end {
            return PendingRead::InFile;
        }
        // The buffer holds the last bytes appended; a running sync leader
        // holds those between the flushed end and the buffer's start.
        let buf_start = st.logical_end - st.buf.len() as u64;
        if offset < buf_start {
            return if st.sync_in_progress {
                PendingRead::Syncing
            } else {
                PendingRead::InFile
            };
        }
        let start = (offset - buf_start) as usize;
        match st.buf.get(start..start + len) {
            Some(b) => PendingRead::Buffered(b.to_vec()),
            None => PendingRead::InFile,
        }
    }
}

/// Ops per commit whose [`Appended::kv`] entries need no allocation.
pub const KV_INLINE: usize = 16;

/// [`Appended::kv`].
pub type KvOffsets = smallvec::SmallVec<[(usize, u32); KV_INLINE]>;

/// Where an appended record landed.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The commit sequence number.
    pub seq: u64,
    /// Segment holding the record.
    pub segment: Arc<Segment>,
    /// Offset of the frame in that segment.
    pub frame_offset: u64,
    /// Per op: offset of its key from the frame start, and its kv checksum
    /// (inline up to [`KV_INLINE`] ops: a single put allocates nothing here).
    pub kv: KvOffsets,
}

struct State {
    file: Arc<dyn FileHandle>,
    /// The segment being written (for its usage counters).
    active: Arc<Segment>,
    active_id: u32,
    /// The salt of the active segment's frames.
    salt: Salt,
    /// End of the last appended record (written or buffered).
    logical_end: u64,
    /// End of what has been handed to the OS.
    flushed_end: u64,
    /// Frames in `[flushed_end, logical_end)`, unless a sync leader holds them.
    buf: Vec<u8>,
    spare: Vec<u8>,
    next_seq: u64,
    /// Every seq up to this one is synced.
    durable_seq: u64,
    sync_in_progress: bool,
    /// Generation of the current or last sync led by an appender.
    sync_gen: u64,
    /// The last sequence number the running sync covers.
    syncing_upto: u64,
    poisoned: Option<Poison>,
    closed: bool,
}

/// Why the writer stopped taking appends.
struct Poison {
    /// What failed, e.g. "writing or syncing segment 7".
    context: String,
    /// The failure, kept to hand a copy to every caller it concerns.
    kind: std::io::ErrorKind,
    os_error: Option<i32>,
    message: String,
    /// Commits up to this sequence number were in the failed write or sync:
    /// their callers get the I/O error itself, later ones [`Error::Poisoned`].
    failed_upto: u64,
}

impl Poison {
    fn new(context: String, e: &std::io::Error, failed_upto: u64) -> Poison {
        Poison {
            context,
            kind: e.kind(),
            os_error: e.raw_os_error(),
            message: e.to_string(),
            failed_upto,
        }
    }

    /// The error of a commit that was part of the failed write or sync.
    fn io_error(&self) -> Error {
        let source = match self.os_error {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(self.kind, self.message.clone()),
        };
        Error::io(
            format!("{} (the database refuses writes until it is reopened)", self.context),
            source,
        )
    }

    /// The error of a write made after the failure.
    fn refusal(&self) -> Error {
        Error::Poisoned(self.reason())
    }

    fn reason(&self) -> String {
        format!("{}: {}", self.context, self.message)
    }

    /// The error for a commit numbered `seq`.
    fn error_for(&self, seq: u64) -> Error {
        if seq <= self.failed_upto {
            self.io_error()
        } else {
            self.refusal()
        }
    }
}

/// Counters kept by the writer.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// fdatasync calls on segment files.
    pub syncs: AtomicU64,
    /// Commits made durable by those syncs.
    pub synced_commits: AtomicU64,
    /// Bytes handed to the OS.
    pub bytes_written: AtomicU64,
    /// Preallocation steps zeroed ahead of the records, off the commit path.
    pub zeroed_ahead: AtomicU64,
    /// Preallocation steps a sync leader had to zero itself (the records
    /// outran the space zeroed ahead).
    pub zeroed_inline: AtomicU64,
    /// Segments started in a retired segment's file rather than a new one.
    pub recycled_segments: AtomicU64,
}

/// The active segment's file and its length (records, then zeros), shared
/// by the sync leader, the writer that zeroes ahead, and the roll or close
/// that cuts the zeros off. Extending and cutting happen under its lock.
struct Space {
    /// The segment's id, to open [`Space::zero_file`] by name.
    id: u32,
    /// The writer's own handle, the one group syncs go through.
    file: Arc<dyn FileHandle>,
    /// A second open file description of the same file, opened on the first
    /// zero-ahead: the zeroing thread extends and syncs through it only.
    /// Linux reports a failed write-back once per open file description, to
    /// the first sync through it that follows; were the zeroer to sync
    /// through `file`, its sync (whose result it cannot act on without a
    /// race) could take the error that the next group sync must see, and
    /// that sync would then report records durable whose pages were lost.
    /// Through its own description every error still reaches `file`.
    zero_file: Option<Arc<dyn FileHandle>>,
    /// Length of the file.
    len: u64,
    /// No zeroing ahead on this file: it was cut to its records (closed),
    /// or a zero-ahead failed (say, the disk is full; the inline step then
    /// reports the error to the commits it concerns).
    no_ahead: bool,
}

/// The single writer of the log.
pub struct LogWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    policy: SyncPolicy,
    segment_size: u64,
    preallocate: bool,
    write_buffer_bytes: usize,
    segments: Arc<SegmentSet>,
    state: Mutex<State>,
    /// Wakes rolls, flushes and closes waiting for a running sync to end.
    synced: Condvar,
    /// Writers waiting for their group commit park on the address of one of
    /// these, by sync generation parity (see [`LogWriter::wait_group`]).
    group_keys: [u64; 2],
    /// Mirrors `State::durable_seq`, read by woken followers without the lock.
    durable: AtomicU64,
    /// Mirrors `(State::sync_gen << 1) | State::sync_in_progress`.
    sync_word: AtomicU64,
    /// Set with `State::poisoned`.
    poison_flag: std::sync::atomic::AtomicBool,
    /// Mirrors `State::active_id` / `flushed_end` for lock-free read checks.
    active_id: AtomicU32,
    flushed_end: AtomicU64,
    /// Preallocated space of the active segment (under `Always` only).
    space: Mutex<Space>,
    /// Mirrors `Space::len` for a lock-free check on the commit path.
    allocated: AtomicU64,
    /// Set while one writer zeroes ahead.
    zeroing: std::sync::atomic::AtomicBool,
    /// Under `Always`, the thread that leads the next group sync when one
    /// ends with records waiting and no writer parked to lead it (see
    /// [`LogWriter::relay`]).
    relay: std::sync::OnceLock<std::thread::Thread>,
    /// Called with the new durable point each time it moves (see
    /// [`LogWriter::on_durable`]).
    durable_hook: std::sync::OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
    /// The thread the relay wakes to zero ahead (see [`LogWriter::relay`]).
    zeroer: std::sync::OnceLock<std::thread::Thread>,
    /// An eventfd signalled whenever the durable point moves or the writer
    /// stops, for waiters outside the library (see [`LogWriter::notifier`]);
    /// -1 until one is asked for. Closed when the writer is dropped.
    notify_fd: std::sync::atomic::AtomicI32,
    pub(crate) counters: WriterCounters,
}

/// Where a log writer starts appending.
#[derive(Debug, Clone, Copy)]
pub enum WriterStart {
    /// At `end` of the existing active segment (already open for reading).
    Resume {
        /// Length of the segment's whole records.
        end: u64,
    },
    /// In a new active segment, created after writer segment `prev_writer`
    /// (0 for none).
    Create {
        /// The writer segment the new one follows.
        prev_writer: u32,
    },
}

impl LogWriter {
    /// Starts writing in segment `active_id` as `start` says.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        opts: &Options,
        segments: Arc<SegmentSet>,
        active_id: u32,
        start: WriterStart,
        next_seq: u64,
    ) -> Result<LogWriter> {
        let preallocate = opts.preallocate && opts.sync == SyncPolicy::Always;
        let counters = WriterCounters::default();
        let (file, logical_end, salt) = match start {
            WriterStart::Resume { end } => {
                let path = dir.join(segment::segment_file_name(active_id));
                let file = fs
                    .open(&path, OpenMode::Write)
                    .map_err(|e| Error::io(format!("opening {} for writing", path.display()), e))?;
                // Appends continue in the segment's own format (a version 1
                // segment of an older build gets unsalted frames).
                let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
                file.read_exact_at(&mut header, 0)
                    .map_err(|e| Error::io(format!("reading the header of {}", path.display()), e))?;
                (file, end, segment::frame_salt(&header))
            }
            WriterStart::Create { prev_writer } => {
                let file = new_segment_file(&*fs, dir, &segments, preallocate, active_id, next_seq - 1, prev_writer)
                    .map(|(file, recycled)| {
                        if recycled {
                            counters.recycled_segments.fetch_add(1, Ordering::Relaxed);
                        }
                        file
                    })?;
                segments.insert(Arc::new(Segment::open(&*fs, dir, active_id, false)?));
                (file, SEGMENT_HEADER_LEN, Salt::of_segment(active_id))
            }
        };
        // Recovery cut any zeroed tail, so the file ends at `logical_end`;
        // its size is read anyway rather than assumed.
        let allocated_end = file
            .size()
            .map_err(|e| Error::io(format!("reading the size of segment {active_id}"), e))?
            .max(logical_end);
        let file: Arc<dyn FileHandle> = Arc::from(file);
        let active = segments
            .get(active_id)
            .ok_or_else(|| Error::Internal(format!("active segment {active_id} is not open")))?;
        Ok(LogWriter {
            fs,
            dir: dir.to_path_buf(),
            policy: opts.sync,
            segment_size: opts.segment_size,
            preallocate,
            write_buffer_bytes: opts.write_buffer_bytes,
            segments,
            state: Mutex::new(State {
                file: Arc::clone(&file),
                active,
                active_id,
                salt,
                logical_end,
                flushed_end: logical_end,
                buf: Vec::with_capacity(opts.write_buffer_bytes.min(1 << 20)),
                spare: Vec::new(),
                next_seq,
                durable_seq: next_seq - 1,
                sync_in_progress: false,
                sync_gen: 0,
                syncing_upto: 0,
                poisoned: None,
                closed: false,
            }),
            synced: Condvar::new(),
            group_keys: [0; 2],
            durable: AtomicU64::new(next_seq - 1),
            sync_word: AtomicU64::new(0),
            poison_flag: std::sync::atomic::AtomicBool::new(false),
            active_id: AtomicU32::new(active_id),
            flushed_end: AtomicU64::new(logical_end),
            space: Mutex::new(Space {
                id: active_id,
                file,
                zero_file: None,
                len: allocated_end,
                no_ahead: false,
            }),
            allocated: AtomicU64::new(allocated_end),
            zeroing: std::sync::atomic::AtomicBool::new(false),
            relay: std::sync::OnceLock::new(),
            zeroer: std::sync::OnceLock::new(),
            durable_hook: std::sync::OnceLock::new(),
            notify_fd: std::sync::atomic::AtomicI32::new(-1),
            counters,
        })
    }

    /// The sequence number the next commit will get.
    pub fn next_seq(&self) -> u64 {
        self.state.lock().next_seq
    }

    /// Runs `f` with the next sequence number while holding the append lock,
    /// so no commit can be assigned a sequence number meanwhile.
    pub fn with_append_lock<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let st = self.state.lock();
        f(st.next_seq)
    }

    /// The error that stopped the writer, if any.
    pub fn poisoned(&self) -> Option<String> {
        self.state.lock().poisoned.as_ref().map(Poison::reason)
    }

    /// Appends one record holding `ops` and returns at once: under `Always`
    /// the commit is not durable before [`LogWriter::wait_durable`] says so.
    /// `on_assigned` runs under the append lock with the new sequence number,
    /// before any later commit can get one (transactions validate there).
    pub fn append(&self, ops: &[OpRef<'_>], on_assigned: impl FnOnce(u64) -> Result<()>) -> Result<Appended> {
        let len = record::frame_len(ops) as u64;
        if len - record::FRAME_HEADER_LEN as u64 > record::MAX_PAYLOAD_LEN as u64 {
            return Err(Error::InvalidArgument(format!(
                "commit of {len} bytes exceeds the record limit of {} bytes",
                record::MAX_PAYLOAD_LEN
            )));
        }
        FRAME.with(|cell| {
            let mut frame = cell.borrow_mut();
            frame.clear();
            let mut kv = KvOffsets::with_capacity(ops.len());
            record::encode_unsealed_with(&mut frame, ops, |at| kv.push(at));
            let res = self.append_frame(&mut frame, kv, on_assigned);
            if frame.capacity() > FRAME_KEEP {
                *frame = Vec::new();
            }
            res
        })
    }

    /// Appends an encoded, unsealed frame (see [`record::encode_unsealed`]).
    fn append_frame(
        &self,
        frame: &mut [u8],
        kv: KvOffsets,
        on_assigned: impl FnOnce(u64) -> Result<()>,
    ) -> Result<Appended> {
        let len = frame.len() as u64;
        let mut st = self.state.lock();
        Self::check_writable(&st)?;
        if st.logical_end > SEGMENT_HEADER_LEN && st.logical_end + len > self.segment_size {
            self.roll(&mut st)?;
        }
        let seq = st.next_seq;
        on_assigned(seq)?;
        st.next_seq += 1;
        let frame_offset = st.logical_end;
        record::seal(frame, seq, st.salt);
        st.buf.extend_from_slice(frame);
        st.logical_end += len;
        st.active.usage.note_seq(seq);
        let appended = Appended {
            seq,
            segment: Arc::clone(&st.active),
            frame_offset,
            kv,
        };
        if self.policy != SyncPolicy::Always && st.buf.len() >= self.write_buffer_bytes {
            self.flush_locked(&mut st)?;
        }
        Ok(appended)
    }

    /// Appends a commit of one put of `key` whose value is computed under
    /// the append lock, from the state every earlier commit left: the
    /// read-modify-write of a counter or a string evaluated in place, so
    /// concurrent updates of one key need no transaction and share group
    /// commits. `compute` runs with the lock held and reads values still in
    /// the write buffer through [`Pending`]; it may ask to run again after
    /// the lock was let go briefly ([`Computed::Yield`], [`Computed::AfterSync`]).
    /// `on_assigned` runs as in [`LogWriter::append`]; `applied` runs under
    /// the lock once the record is buffered, so the next update of the key
    /// finds this one in the index. Returns the commit's sequence number
    /// (`None` when `compute` appended nothing) and what `compute` returned.
    pub fn append_computed<T>(
        &self,
        key: &[u8],
        mut compute: impl FnMut(&Pending<'_>) -> Result<Computed<T>>,
        on_assigned: impl FnOnce(u64, &[OpRef<'_>]) -> Result<()>,
        applied: impl FnOnce(&Appended, &[OpRef<'_>]),
    ) -> Result<(Option<u64>, T)> {
        let mut st = self.state.lock();
        loop {
            Self::check_writable(&st)?;
            let (value, expires_at, out) = match compute(&Pending { st: &st })? {
                Computed::Done(out) => return Ok((None, out)),
                Computed::Yield => {
                    // A commit in flight on the key is still entering the
                    // index: let its writer (and others) run.
                    MutexGuard::unlocked_fair(&mut st, std::thread::yield_now);
                    continue;
                }
                Computed::AfterSync => {
                    while st.sync_in_progress {
                        self.synced.wait(&mut st);
                    }
                    continue;
                }
                Computed::Put { value, expires_at, out } => (value, expires_at, out),
            };
            let ops = [OpRef {
                kind: record::OpKind::Put,
                key,
                value: &value,
                expires_at,
            }];
            let len = record::frame_len(&ops) as u64;
            if len - record::FRAME_HEADER_LEN as u64 > record::MAX_PAYLOAD_LEN as u64 {
                return Err(Error::InvalidArgument(format!(
                    "commit of {len} bytes exceeds the record limit of {} bytes",
                    record::MAX_PAYLOAD_LEN
                )));
            }
            if st.logical_end > SEGMENT_HEADER_LEN && st.logical_end + len > self.segment_size {
                // A roll may let go of the lock while a sync ends: compute again after it.
                self.roll(&mut st)?;
                continue;
            }
            let seq = st.next_seq;
            on_assigned(seq, &ops)?;
            st.next_seq += 1;
            let frame_offset = st.logical_end;
            let start = st.buf.len();
            let mut kv = KvOffsets::new();
            record::encode_unsealed_with(&mut st.buf, &ops, |at| kv.push(at));
            let salt = st.salt;
            record::seal(&mut st.buf[start..], seq, salt);
            st.logical_end += len;
            st.active.usage.note_seq(seq);
            let appended = Appended {
                seq,
                segment: Arc::clone(&st.active),
                frame_offset,
                kv,
            };
            applied(&appended, &ops);
            if self.policy != SyncPolicy::Always && st.buf.len() >= self.write_buffer_bytes {
                self.flush_locked(&mut st)?;
            }
            return Ok((Some(seq), out));
        }
    }

    /// Under `Always`, returns once commit `seq` (appended by this writer)
    /// is durable, leading a group sync or waiting for the one that covers
    /// it, with the durable point then (at least `seq`); a failed write or
    /// sync of its group is its error. Under the other policies: `None` at once.
    pub fn wait_durable(&self, seq: u64) -> Result<Option<u64>> {
        if self.policy != SyncPolicy::Always {
            return Ok(None);
        }
        let durable = self.durable.load(Ordering::Acquire);
        if durable >= seq {
            return Ok(Some(durable));
        }
        self.wait_group(self.state.lock(), seq)?;
        Ok(Some(self.durable.load(Ordering::Acquire)))
    }

    fn check_writable(st: &State) -> Result<()> {
        if st.closed {
            return Err(Error::Closed);
        }
        if let Some(p) = &st.poisoned {
            return Err(p.refusal());
        }
        Ok(())
    }

    /// Group commit: lead a sync or wait for the one that covers `seq`.
    ///
    /// Waiters park on one of two keys by sync generation: those covered by
    /// the running sync (generation G) on `group_keys[G % 2]`, the rest on
    /// `group_keys[(G + 1) % 2]`. When G ends, its leader wakes all of G's
    /// waiters and one of the next ones to lead G + 1, so a sync wakes only
    /// the writers it made durable instead of every writer in the queue. A
    /// waiter parks only while the sync it saw running still runs (checked
    /// atomically with parking), so the wake-up of a leader that ends
    /// meanwhile is never missed: the waiter finds the sync over and looks
    /// again under the lock. Woken, a covered writer finds its commit
    /// durable in [`LogWriter::durable`] and returns without the lock.
    fn wait_group<'a>(&'a self, mut st: MutexGuard<'a, State>, seq: u64) -> Result<()> {
        loop {
            if st.durable_seq >= seq {
                return Ok(());
            }
            if let Some(p) = &st.poisoned {
                // Nobody will lead another sync: let every waiter see the
                // failure. The commits of the failed group get its I/O error.
                self.wake_all();
                return Err(p.error_for(seq));
            }
            if st.sync_in_progress {
                let gen = if seq <= st.syncing_upto {
                    st.sync_gen
                } else {
                    st.sync_gen + 1
                };
                let running = (st.sync_gen << 1) | 1;
                drop(st);
                self.park(gen, seq, running);
                if self.durable.load(Ordering::Acquire) >= seq {
                    return Ok(());
                }
                st = self.state.lock();
                continue;
            }
            if self.lead_sync(&mut st) {
                self.wake_relay();
            }
        }
    }

    /// Sets the thread [`LogWriter::wake_relay`] unparks: it runs
    /// [`LogWriter::relay`] after each wake-up.
    pub fn set_relay(&self, thread: std::thread::Thread) {
        let _ = self.relay.set(thread);
    }

    /// Sets what runs, with the new durable point, each time it moves
    /// (before waiters are woken or notified): the engine lets the commits
    /// become visible there. Set once, at open.
    pub fn on_durable(&self, hook: Box<dyn Fn(u64) + Send + Sync>) {
        let _ = self.durable_hook.set(hook);
    }

    /// Sets the thread the relay wakes to run [`LogWriter::zero_ahead`].
    pub fn set_zeroer(&self, thread: std::thread::Thread) {
        let _ = self.zeroer.set(thread);
    }

    fn wake_relay(&self) {
        if let Some(t) = self.relay.get() {
            t.unpark();
        }
    }

    /// Leads group syncs back to back while records wait for one and no
    /// other sync runs; called by the relay thread when a sync ended with
    /// records appended after it began and no writer parked to lead the
    /// next one.
    ///
    /// That is the usual case when the writers wait elsewhere (the Go
    /// engine parks its goroutines on its side and sends one of them into
    /// [`LogWriter::wait_durable`] at a time): the one writer leading a sync
    /// has to return, and be scheduled again, before it could lead the next
    /// one, and the disk would sit idle meanwhile. The relay keeps the log
    /// syncing as long as commits arrive; a writer that comes to wait finds
    /// the relay's sync running and parks, as it would behind any leader.
    pub fn relay(&self) {
        loop {
            let mut st = self.state.lock();
            let more = !st.sync_in_progress
                && !st.closed
                && st.poisoned.is_none()
                && st.durable_seq < st.next_seq - 1
                && self.lead_sync(&mut st);
            drop(st);
            // The syncs' writers are acknowledged (or woken to be): log
            // space for the next ones is prepared by the zeroing thread,
            // beside the next sync rather than before it.
            if self.zero_wanted() {
                match self.zeroer.get() {
                    Some(t) => t.unpark(),
                    None => self.zero_ahead(),
                }
            }
            if !more {
                return;
            }
        }
    }

    /// A new descriptor (the caller's to close) of an eventfd that the
    /// writer signals whenever the durable point moves or the writer stops:
    /// a waiter outside the library (the Go engine's poller) waits for it
    /// without a thread of its own, then reads the durable point
    /// ([`LogWriter::request_sync`]). Linux only.
    pub fn notifier(&self) -> std::io::Result<i32> {
        #[cfg(target_os = "linux")]
        {
            let mut fd = self.notify_fd.load(Ordering::Acquire);
            if fd < 0 {
                // SAFETY: eventfd takes no pointers; the result is checked.
                let new = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                if new < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                match self
                    .notify_fd
                    .compare_exchange(-1, new, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => fd = new,
                    Err(current) => {
                        // SAFETY: `new` was created above and never shared.
                        unsafe { libc::close(new) };
                        fd = current;
                    }
                }
            }
            // SAFETY: `fd` is the writer's open eventfd (closed only when the
            // writer drops, which cannot happen during this call).
            let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if dup < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(dup)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
        }
    }

    /// Signals the notifier, if any.
    fn notify(&self) {
        #[cfg(target_os = "linux")]
        {
            let fd = self.notify_fd.load(Ordering::Acquire);
            if fd >= 0 {
                let one: u64 = 1;
                // SAFETY: `fd` is the writer's open, non-blocking eventfd;
                // the buffer is a live u64 of the 8 bytes written. An eventfd
                // write fails only when its counter would overflow, which
                // a reader draining it rules out; the signal is then
                // pending anyway.
                unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
            }
        }
    }

    /// For a waiter outside the library (see [`LogWriter::notifier`]):
    /// makes sure a sync will cover commit `seq`, without waiting for it.
    /// When no sync runs, the syncer thread is woken to lead one; a running
    /// sync covers the commit or, when it ends, finds it waiting and hands
    /// it on (see [`LogWriter::relay`]). Returns the durable point, or the
    /// error that stopped the writer.
    pub fn request_sync(&self, seq: u64) -> Result<u64> {
        if self.poison_flag.load(Ordering::SeqCst) {
            if let Some(p) = &self.state.lock().poisoned {
                return Err(p.refusal());
            }
        }
        let durable = self.durable.load(Ordering::SeqCst);
        if self.policy == SyncPolicy::Always && durable < seq && self.sync_word.load(Ordering::SeqCst) & 1 == 0 {
            // The record was appended before this load: a sync that started
            // since took it, and one that ended since did so before the
            // append (its end stored `sync_word` first) and left it waiting
            // for the syncer woken here.
            self.wake_relay();
        }
        Ok(durable)
    }

    /// The parking key of sync generation `gen`.
    fn group_key(&self, gen: u64) -> usize {
        &self.group_keys[(gen % 2) as usize] as *const u64 as usize
    }

    /// Parks until woken, unless `seq` is durable, the sync `running`
    /// (its `sync_word`) is over, or the writer is poisoned.
    fn park(&self, gen: u64, seq: u64, running: u64) {
        // SAFETY: the key is the address of a field of this writer, which
        // nothing else parks on; the validate closure only reads atomics and
        // cannot panic; the callbacks do nothing. The leader changes
        // `sync_word` and `durable` (SeqCst) before it unparks, and
        // `validate` runs under the queue's lock, so a waiter either sees
        // the change and does not sleep, or is queued before the unpark.
        unsafe {
            parking_lot_core::park(
                self.group_key(gen),
                || {
                    self.durable.load(Ordering::SeqCst) < seq
                        && self.sync_word.load(Ordering::SeqCst) == running
                        && !self.poison_flag.load(Ordering::SeqCst)
                },
                || {},
                |_, _| {},
                parking_lot_core::DEFAULT_PARK_TOKEN,
                None,
            );
        }
    }

    /// Wakes every writer waiting on a durability change (rare paths: a
    /// roll, an explicit sync, a failure).
    fn wake_all(&self) {
        for gen in 0..2 {
            // SAFETY: a key of this writer (see `park`); no callback runs.
            unsafe {
                parking_lot_core::unpark_all(self.group_key(gen), parking_lot_core::DEFAULT_UNPARK_TOKEN);
            }
        }
        self.synced.notify_all();
    }

    /// Records that commits up to `seq` are durable.
    fn set_durable(&self, st: &mut State, seq: u64) {
        st.durable_seq = seq;
        self.durable.store(seq, Ordering::SeqCst);
        if let Some(hook) = self.durable_hook.get() {
            hook(seq);
        }
        self.notify();
    }

    /// Stops the writer with `p` and wakes every waiter to see it.
    fn poison(&self, st: &mut State, p: Poison) {
        st.poisoned = Some(p);
        self.poison_flag.store(true, Ordering::SeqCst);
        self.wake_all();
        self.notify();
    }

    /// Takes the buffer, writes and syncs it without holding the lock, then
    /// publishes the new durable point (or the poison) and wakes waiters.
    /// Returns whether records appended meanwhile wait for a sync that no
    /// parked writer was woken to lead (the caller hands it to the relay).
    fn lead_sync(&self, st: &mut MutexGuard<'_, State>) -> bool {
        st.sync_in_progress = true;
        st.sync_gen += 1;
        let gen = st.sync_gen;
        self.sync_word.store((gen << 1) | 1, Ordering::SeqCst);
        let spare = std::mem::take(&mut st.spare);
        let mut buf = std::mem::replace(&mut st.buf, spare);
        let target = st.next_seq - 1;
        st.syncing_upto = target;
        let file = Arc::clone(&st.file);
        let offset = st.flushed_end;
        let res = MutexGuard::unlocked(st, || {
            self.write_out(&*file, &buf, offset)?;
            file.sync_data()
        });
        st.sync_in_progress = false;
        self.sync_word.store(gen << 1, Ordering::SeqCst);
        match res {
            Ok(()) => {
                st.flushed_end += buf.len() as u64;
                self.flushed_end.store(st.flushed_end, Ordering::Release);
                self.counters
                    .bytes_written
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .synced_commits
                    .fetch_add(target - st.durable_seq, Ordering::Relaxed);
                self.set_durable(st, target);
                buf.clear();
                st.spare = buf;
            }
            Err(e) => {
                // Whatever part of `buf` reached the file is unknown, and
                // after a failed fdatasync the kernel may have dropped the
                // dirty pages while marking them clean, so a retried sync
                // could report success for data that is gone: the writer
                // stops here, and reopening (recovery) finds what is whole.
                let context = format!("writing or syncing segment {}", st.active_id);
                self.poison(st, Poison::new(context, &e, target));
                return false;
            }
        }
        // This generation's writers are durable; one writer queued behind it
        // (if any) leads the next sync; rolls and flushes waiting for the
        // sync to end may go on.
        // SAFETY: keys of this writer (see `park`); no callback runs.
        let mut unled = false;
        unsafe {
            parking_lot_core::unpark_all(self.group_key(gen), parking_lot_core::DEFAULT_UNPARK_TOKEN);
            if st.next_seq - 1 > target {
                let r =
                    parking_lot_core::unpark_one(self.group_key(gen + 1), |_| parking_lot_core::DEFAULT_UNPARK_TOKEN);
                unled = r.unparked_threads == 0;
            }
        }
        self.synced.notify_all();
        unled
    }

    /// Writes the buffer to the OS. Not used while a sync leader is running
    /// (only `Always` has leaders, and it never calls this).
    fn flush_locked(&self, st: &mut State) -> Result<()> {
        if st.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.write_out(&*st.file, &st.buf, st.flushed_end) {
            let p = Poison::new(format!("writing segment {}", st.active_id), &e, st.next_seq - 1);
            let err = p.io_error();
            self.poison(st, p);
            return Err(err);
        }
        st.flushed_end += st.buf.len() as u64;
        self.flushed_end.store(st.flushed_end, Ordering::Release);
        self.counters
            .bytes_written
            .fetch_add(st.buf.len() as u64, Ordering::Relaxed);
        st.buf.clear();
        Ok(())
    }

    /// Writes `buf` at `offset` of the active segment `file`, first
    /// extending the preallocated space if it does not reach that far.
    fn write_out(&self, file: &dyn FileHandle, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if self.preallocate && end > self.allocated.load(Ordering::Acquire) {
            let mut space = self.space.lock();
            if end > space.len {
                // A step at a time, not past the segment size (a record larger
                // than the rest of the segment only gets what it needs).
                let to = end.max((space.len + PREALLOCATE_STEP).min(self.segment_size));
                space.file.preallocate(to)?;
                space.len = to;
                self.allocated.store(to, Ordering::Release);
                self.counters.zeroed_inline.fetch_add(1, Ordering::Relaxed);
            }
        }
        file.write_at(buf, offset)
    }

    /// Zeroes the active segment ahead of its records, when they come within
    /// [`PREALLOCATE_STEP`] of the zeros' end, and syncs the zeros and the
    /// new length: called by a writer whose commit is durable, outside the
    /// append lock, so neither the commit path nor the next group's sync
    /// carries that work. One writer at a time; a roll or close waits for it
    /// (the cut takes the space lock). A failure here is not a commit's
    /// failure: it is left to the inline step, which reports it. Cheap when
    /// there is nothing to do (two atomic loads).
    pub fn zero_ahead(&self) {
        if !self.zero_wanted() {
            return;
        }
        if self.zeroing.swap(true, Ordering::AcqRel) {
            return;
        }
        let file = {
            let mut space = self.space.lock();
            let flushed = self.flushed_end.load(Ordering::Acquire);
            let to = (flushed + ZERO_AHEAD).min(self.segment_size);
            if space.no_ahead || space.len >= to || space.len >= flushed + PREALLOCATE_STEP {
                None
            } else {
                match self.zero_file(&mut space) {
                    Some(file) if file.preallocate(to).is_ok() => {
                        space.len = to;
                        self.allocated.store(to, Ordering::Release);
                        self.counters.zeroed_ahead.fetch_add(1, Ordering::Relaxed);
                        Some(file)
                    }
                    _ => {
                        space.no_ahead = true;
                        None
                    }
                }
            }
        };
        // Synced outside the space lock: a leader that needs the new space
        // may write into it meanwhile (its own sync then covers the zeros).
        // Not counted in `syncs`, which counts the syncs commits wait for.
        // Its result is not needed: it goes through the zeroer's own file
        // description (see `Space::zero_file`), so a write-back error it
        // meets is reported again to the next group sync, which stops the
        // writer.
        if let Some(file) = file {
            let _ = file.sync_data();
        }
        self.zeroing.store(false, Ordering::Release);
    }

    /// The zeroer's own description of the active segment's file (see
    /// [`Space::zero_file`]), opened on first use; `None` if it cannot be
    /// opened, and then there is no zeroing ahead on this segment.
    fn zero_file(&self, space: &mut Space) -> Option<Arc<dyn FileHandle>> {
        if space.zero_file.is_none() {
            let path = self.dir.join(segment::segment_file_name(space.id));
            let file = self.fs.open(&path, OpenMode::Write).ok()?;
            space.zero_file = Some(Arc::from(file));
        }
        space.zero_file.clone()
    }

    /// Whether [`LogWriter::zero_ahead`] has work: the records came within
    /// [`PREALLOCATE_STEP`] of the zeros' end (two atomic loads).
    fn zero_wanted(&self) -> bool {
        if !self.preallocate {
            return false;
        }
        let allocated = self.allocated.load(Ordering::Acquire);
        let flushed = self.flushed_end.load(Ordering::Acquire);
        allocated < self.segment_size && allocated < flushed + PREALLOCATE_STEP
    }

    /// Cuts the active segment's zeroed tail, so the file ends at its last
    /// record, and makes that length durable (with the data before it).
    fn trim(&self, st: &mut State) -> Result<()> {
        let mut space = self.space.lock();
        // Nothing may extend the file again once it is cut.
        space.no_ahead = true;
        if !self.preallocate || space.len == st.flushed_end {
            return Ok(());
        }
        let end = st.flushed_end;
        if let Err(e) = st.file.set_len(end).and_then(|_| st.file.sync_all()) {
            drop(space);
            let p = Poison::new(
                format!("cutting segment {} to its records", st.active_id),
                &e,
                st.next_seq - 1,
            );
            let err = p.io_error();
            self.poison(st, p);
            return Err(err);
        }
        space.len = end;
        self.allocated.store(end, Ordering::Release);
        Ok(())
    }

    /// Syncs the active file. With `release`, the append lock is let go
    /// during the fdatasync (appends may continue into the buffer); a roll
    /// must hold it, since it switches files right after.
    fn sync_locked(&self, st: &mut MutexGuard<'_, State>, release: bool) -> Result<()> {
        let target = st.next_seq - 1;
        if target == st.durable_seq {
            return Ok(());
        }
        let file = Arc::clone(&st.file);
        let res = if release {
            MutexGuard::unlocked(st, || file.sync_data())
        } else {
            file.sync_data()
        };
        if let Err(e) = res {
            let p = Poison::new(format!("syncing segment {}", st.active_id), &e, target);
            let err = p.io_error();
            self.poison(st, p);
            return Err(err);
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        if target > st.durable_seq {
            self.counters
                .synced_commits
                .fetch_add(target - st.durable_seq, Ordering::Relaxed);
            self.set_durable(st, target);
            // Appenders waiting for a group leader are covered by this sync too.
            self.wake_all();
        }
        Ok(())
    }

    /// Closes the active segment and starts the next one. Everything in the
    /// old segment is written and (unless `Never`) synced first, so durability
    /// stays a prefix of the sequence order.
    fn roll(&self, st: &mut MutexGuard<'_, State>) -> Result<()> {
        while st.sync_in_progress {
            self.synced.wait(st);
        }
        Self::check_writable(st)?;
        self.flush_locked(st)?;
        if self.policy != SyncPolicy::Never {
            self.sync_locked(st, false)?;
        }
        // Sealed before its successor exists: recovery takes a closed
        // segment that does not end at its last record for damage.
        self.trim(st)?;
        let next_id = self.segments.allocate_id()?;
        let created = new_segment_file(
            &*self.fs,
            &self.dir,
            &self.segments,
            self.preallocate,
            next_id,
            st.next_seq - 1,
            st.active_id,
        )
        .and_then(|(file, recycled)| Ok((file, recycled, Segment::open(&*self.fs, &self.dir, next_id, false)?)));
        let (file, seg) = match created {
            Ok((file, recycled, seg)) => {
                if recycled {
                    self.counters.recycled_segments.fetch_add(1, Ordering::Relaxed);
                }
                (file, seg)
            }
            Err(e) => {
                // The new file may exist in any state: no more appends.
                let (kind, message) = match &e {
                    Error::Io { source, .. } => (source.kind(), source.to_string()),
                    other => (std::io::ErrorKind::Other, other.to_string()),
                };
                let os_error = match &e {
                    Error::Io { source, .. } => source.raw_os_error(),
                    _ => None,
                };
                let p = Poison {
                    context: format!("starting segment {next_id}"),
                    kind,
                    os_error,
                    message,
                    failed_upto: st.next_seq - 1,
                };
                self.poison(st, p);
                return Err(e);
            }
        };
        let seg = Arc::new(seg);
        self.segments.insert(Arc::clone(&seg));
        self.segments.closed(st.active_id);
        // A recycled file is as long as it was in its previous life: the
        // records go over those bytes first.
        let len = file.size().unwrap_or(SEGMENT_HEADER_LEN).max(SEGMENT_HEADER_LEN);
        let file: Arc<dyn FileHandle> = Arc::from(file);
        {
            let mut space = self.space.lock();
            *space = Space {
                id: next_id,
                file: Arc::clone(&file),
                zero_file: None,
                len,
                no_ahead: false,
            };
            self.allocated.store(len, Ordering::Release);
        }
        st.file = file;
        st.active = seg;
        st.active_id = next_id;
        st.salt = Salt::of_segment(next_id);
        st.logical_end = SEGMENT_HEADER_LEN;
        st.flushed_end = SEGMENT_HEADER_LEN;
        // A reader seeing the new id with the old flushed_end takes the slow
        // path and re-checks under the lock, so the order of these is free.
        self.flushed_end.store(SEGMENT_HEADER_LEN, Ordering::Release);
        self.active_id.store(next_id, Ordering::Release);
        Ok(())
    }

    /// Hands buffered records to the OS and returns the active segment, the
    /// length up to which its records are whole in the file, and the
    /// sequence number of the last record before that point.
    pub fn position(&self) -> Result<(u32, u64, u64)> {
        let mut st = self.state.lock();
        while st.sync_in_progress {
            self.synced.wait(&mut st);
        }
        Self::check_writable(&st)?;
        self.flush_locked(&mut st)?;
        Ok((st.active_id, st.flushed_end, st.next_seq - 1))
    }

    /// Closes the active segment now, if it holds any record.
    pub fn roll_now(&self) -> Result<()> {
        let mut st = self.state.lock();
        Self::check_writable(&st)?;
        if st.logical_end > SEGMENT_HEADER_LEN {
            self.roll(&mut st)?;
        }
        Ok(())
    }

    /// Copies `len` bytes at `offset` of `segment` if they are still in the
    /// write buffer; `None` means they are in the file.
    pub fn read_buffered(&self, segment: u32, offset: u64, len: usize) -> Option<Vec<u8>> {
        if segment != self.active_id.load(Ordering::Acquire)
            || offset + len as u64 <= self.flushed_end.load(Ordering::Acquire)
        {
            return None;
        }
        let st = self.state.lock();
        if segment != st.active_id || offset < st.flushed_end {
            return None;
        }
        let start = (offset - st.flushed_end) as usize;
        st.buf.get(start..start + len).map(|b| b.to_vec())
    }

    /// Hands buffered records to the OS and, when `sync` is set, syncs them.
    /// Used by the background flusher, `Db::sync` and close.
    pub fn flush(&self, sync: bool) -> Result<()> {
        let mut st = self.state.lock();
        while st.sync_in_progress {
            self.synced.wait(&mut st);
        }
        Self::check_writable(&st)?;
        self.flush_locked(&mut st)?;
        if sync {
            self.sync_locked(&mut st, true)?;
        }
        Ok(())
    }

    /// Flushes and syncs everything, cuts the active segment's zeroed tail,
    /// then refuses further appends.
    pub fn close(&self) -> Result<()> {
        let res = self.flush(true).and_then(|_| {
            let mut st = self.state.lock();
            self.trim(&mut st)
        });
        let mut st = self.state.lock();
        st.closed = true;
        self.wake_all();
        match res {
            Err(Error::Closed) => Ok(()),
            other => other,
        }
    }

    /// Id of the segment being written.
    pub fn active_segment(&self) -> u32 {
        self.active_id.load(Ordering::Acquire)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let fd = *self.notify_fd.get_mut();
        if fd >= 0 {
            // SAFETY: the writer's own eventfd, closed once, here; callers
            // of `notifier` hold duplicates of their own.
            unsafe { libc::close(fd) };
        }
    }
}

/// Creates writer segment `id` (see [`segment::create`]), in a file from
/// the pool of retired ones when `recycle` is set and the pool has one
/// (see [`segment::recycle`]); says whether it did.
fn new_segment_file(
    fs: &dyn FileSystem,
    dir: &Path,
    segments: &SegmentSet,
    recycle: bool,
    id: u32,
    base_seq: u64,
    prev_writer: u32,
) -> Result<(Box<dyn FileHandle>, bool)> {
    if recycle {
        if let Some(old) = segments.take_free() {
            if let Some(file) = segment::recycle(fs, dir, old, id, base_seq, prev_writer)? {
                return Ok((file, true));
            }
        }
    }
    segment::create(fs, dir, id, base_seq, prev_writer).map(|f| (f, false))
}
