//! Options accepted by [`crate::Db::open`].

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::vfs::FileSystem;

/// The largest key the engine accepts, in bytes.
pub const MAX_KEY_LEN: usize = 65_535;

/// The default largest value, in bytes (64 MiB).
pub const DEFAULT_MAX_VALUE_LEN: usize = 64 << 20;

/// The largest value the on-disk format can frame, in bytes (1 GiB).
pub const HARD_MAX_VALUE_LEN: usize = 1 << 30;

/// When a write is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// A write returns only after its record is on disk (fdatasync).
    /// Concurrent writers share one sync (group commit). A commit becomes
    /// visible to readers only once it is durable.
    Always,
    /// Records reach the OS at once when the write buffer fills and at least
    /// every interval, and the log is synced every interval. A crash of the
    /// machine may lose up to one interval of acknowledged writes.
    Interval(Duration),
    /// The log is never synced by the engine; records reach the OS when the
    /// write buffer fills and at least every [`Options::flush_interval`].
    /// A process crash may lose that much; a machine crash may lose more.
    Never,
}

/// Tunables of an open database. `Options::default()` is a sound start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Durability of writes. Default: [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// A segment file is closed and a new one started past this size. Default 64 MiB.
    pub segment_size: u64,
    /// Byte budget of the value cache. 0 disables it. Default 64 MiB.
    pub cache_bytes: u64,
    /// Values up to this size live in the index itself and never need a disk
    /// read or cache slot; a scan hands them out straight from the index.
    /// They stay in RAM as long as their key exists (the value, plus 16 bytes
    /// of reference counts, rounded up to the allocator's size class).
    /// Default 128 bytes.
    pub inline_threshold: usize,
    /// Largest key accepted (at most [`MAX_KEY_LEN`]).
    pub max_key_len: usize,
    /// Largest value accepted (at most [`HARD_MAX_VALUE_LEN`]). Default 64 MiB.
    pub max_value_len: usize,
    /// Size of the in-memory log buffer under `Never` and `Interval`: when it
    /// fills, its records are written to the OS. Default 256 KiB.
    pub write_buffer_bytes: usize,
    /// Under `Never`, the longest an acknowledged record waits in the log
    /// buffer before it is handed to the OS. Default 10 ms.
    pub flush_interval: Duration,
    /// On open, when a record in the middle of the log is corrupt, keep every
    /// readable record and drop the rest of that segment instead of refusing to
    /// open. Off by default: corruption is an error.
    pub repair: bool,
    /// On open, check every closed segment against the whole-file checksum
    /// its hint file records before using the hint, so corruption anywhere
    /// is found at open. Off: open reads only hint files (fastest restart) and
    /// damaged values are still caught by their checksum when read. Default on.
    pub verify_segments_on_open: bool,
    /// Under [`SyncPolicy::Always`], extend the segment being written with
    /// zeroed, allocated space ahead of its records (1 MiB at a time, kept
    /// up to 2 MiB ahead by a writer whose commit is done, off the commit
    /// path), so a sync after a commit flushes data only instead of also
    /// committing a grown file length; the space is cut off when the segment
    /// is closed. Off, and under the other policies (which sync rarely or
    /// never, so zeros would only double the bytes written): every write
    /// appends to the end of the file. Default on.
    pub preallocate: bool,
    /// With [`Options::preallocate`] in effect: how many files of segments
    /// that compaction retired are kept (renamed `{id}.free`) for the writer
    /// to start later segments in, instead of being removed. Records are
    /// then written over blocks written before, so a sync flushes data
    /// only and no zeros are written first; the old records in such a file
    /// carry another salt in their checksums and are never read as records
    /// (see [`crate::log::segment`]). Only files of half a segment to two
    /// segments with no other name (a checkpoint's hard link) are kept, and
    /// only while no snapshot or iterator is open. Each kept
    /// file holds its disk space until it is reused. 0: retired files are
    /// removed, and files kept earlier are removed at open. Default 2.
    pub recycle_segments: usize,
    /// A closed segment whose dead fraction reaches this is rewritten by
    /// background compaction. Default 0.5.
    pub compaction_threshold: f64,
    /// How often the background thread looks for work (hint files for closed
    /// segments, compaction). Default 1 s.
    pub compaction_interval: Duration,
    /// Run compaction in the background. [`crate::Db::compact`] works either way. Default on.
    pub background_compaction: bool,
    /// Threads that read hint files and build the index from them on open
    /// (segments without a usable hint are decoded by the opening thread).
    /// 0 (the default): one per available core, at most 8; at most 64.
    pub recovery_threads: usize,
    /// Read values of closed segments (those the writer will not append
    /// to again, and those compaction wrote) through a read-only memory map
    /// of each file, made on the first read: a value is copied once out of
    /// the page cache, with no system call per read. The segment being
    /// written is always read with `pread`. The trade-off: an I/O error of
    /// the disk under a mapped page (a bad sector, a lost network disk)
    /// arrives as `SIGBUS`, which ends the process, instead of an error
    /// the read returns; and a file cut by another program while mapped
    /// does the same. Off: every read goes through `pread` and reports such
    /// errors. Address space: one map per closed segment (64 MiB by
    /// default), so a 1 TB data directory maps 1 TB of the 128 TiB a 64-bit
    /// process has. A file system that does not map
    /// ([`crate::vfs::FileHandle::map_fd`]) is read through the file
    /// either way. Default on. Open also maps hint files, and closed
    /// segments while it checks their checksum, for as long as it reads
    /// them, with their pages read in at once (`MADV_POPULATE_READ`), so a
    /// read error there is handled as without maps (an unreadable hint is
    /// skipped and its segment decoded), not raised as a signal; off, they
    /// are read with `pread`.
    pub map_reads: bool,
    /// The file layer every file operation goes through. `None` (the
    /// default): the operating system's, [`crate::vfs::OsFileSystem`]. For
    /// testing and instrumentation (fault injection, simulated power cuts,
    /// counting I/O); see [`crate::vfs`]. Not available through the C ABI.
    pub file_system: Option<Arc<dyn FileSystem>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncPolicy::Always,
            segment_size: 64 << 20,
            cache_bytes: 64 << 20,
            inline_threshold: 128,
            max_key_len: MAX_KEY_LEN,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            write_buffer_bytes: 256 << 10,
            flush_interval: Duration::from_millis(10),
            repair: false,
            verify_segments_on_open: true,
            preallocate: true,
            recycle_segments: 2,
            compaction_threshold: 0.5,
            compaction_interval: Duration::from_secs(1),
            background_compaction: true,
            recovery_threads: 0,
            map_reads: true,
            file_system: None,
        }
    }
}

impl Options {
    /// The threads open uses to apply hint files ([`Options::recovery_threads`], 0 resolved).
    pub(crate) fn open_threads(&self) -> usize {
        match self.recovery_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            n => n.min(64),
        }
    }

    /// These options with `fs` as the file layer (see [`Options::file_system`]).
    pub fn with_file_system(mut self, fs: Arc<dyn FileSystem>) -> Options {
        self.file_system = Some(fs);
        self
    }

    /// Checks every field and returns a clear error for the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument(msg));
        if self.segment_size < 4096 {
            return bad(format!("segment_size {} is below 4096 bytes", self.segment_size));
        }
        if self.segment_size > 1 << 40 {
            return bad(format!("segment_size {} is above 1 TiB", self.segment_size));
        }
        if self.max_key_len == 0 || self.max_key_len > MAX_KEY_LEN {
            return bad(format!("max_key_len {} is outside 1..={MAX_KEY_LEN}", self.max_key_len));
        }
        if self.max_value_len > HARD_MAX_VALUE_LEN {
            return bad(format!(
                "max_value_len {} is above the format limit {HARD_MAX_VALUE_LEN}",
                self.max_value_len
            ));
        }
        if self.inline_threshold > 4096 {
            return bad(format!(
                "inline_threshold {} is above 4096 bytes",
                self.inline_threshold
            ));
        }
        if let SyncPolicy::Interval(d) = self.sync {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return bad(format!("sync interval {d:?} is outside 1 ms..=1 h"));
            }
        }
        if self.flush_interval.is_zero() || self.flush_interval > Duration::from_secs(60) {
            return bad(format!("flush_interval {:?} is outside (0, 60 s]", self.flush_interval));
        }
        if !(self.compaction_threshold > 0.0 && self.compaction_threshold <= 1.0) {
            return bad(format!(
                "compaction_threshold {} is outside (0, 1]",
                self.compaction_threshold
            ));
        }
        if self.compaction_interval.is_zero() {
            return bad("compaction_interval must be positive".into());
        }
        Ok(())
    }
}
