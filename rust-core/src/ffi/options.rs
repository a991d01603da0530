//! The options of `mantis_open` and their sync-policy codes.

use std::time::Duration;

use super::boundary::{fail, Fail};
use super::types::MantisStatus;
use crate::{Options, SyncPolicy};

/// `MantisOptions.sync`: every commit is durable before it returns (group
/// commit shares one fdatasync between concurrent commits).
pub const MANTIS_SYNC_ALWAYS: u32 = 0;
/// `MantisOptions.sync`: commits are written at once and synced every
/// `sync_interval_ms`; a crash loses at most that window.
pub const MANTIS_SYNC_INTERVAL: u32 = 1;
/// `MantisOptions.sync`: the operating system decides when data reaches the
/// disk; records wait in the write buffer up to `flush_interval_ms`.
pub const MANTIS_SYNC_NEVER: u32 = 2;

/// Options of `mantis_open`. Get the defaults with `mantis_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MantisOptions {
    /// `MANTIS_SYNC_ALWAYS`, `MANTIS_SYNC_INTERVAL` or `MANTIS_SYNC_NEVER`.
    pub sync: u32,
    /// Period of the interval policy, in ms.
    pub sync_interval_ms: u64,
    /// Segment size in bytes.
    pub segment_size: u64,
    /// Value cache budget in bytes (0 disables it).
    pub cache_bytes: u64,
    /// Values up to this size are kept in the index.
    pub inline_threshold: u64,
    /// Largest value accepted, in bytes.
    pub max_value_len: u64,
    /// Write buffer size for the interval and never policies.
    pub write_buffer_bytes: u64,
    /// Longest a record waits in the write buffer under never, in ms.
    pub flush_interval_ms: u64,
    /// Salvage readable records past corruption on open.
    pub repair: bool,
    /// Check segments against their hint files' checksums on open.
    pub verify_segments_on_open: bool,
    /// Compact in the background.
    pub background_compaction: bool,
    /// Dead fraction that triggers compaction of a segment.
    pub compaction_threshold: f64,
    /// Period of the background thread, in ms.
    pub compaction_interval_ms: u64,
    /// Read values of closed segments through read-only memory maps (an
    /// I/O error under a mapped page then raises SIGBUS instead of failing
    /// the read); false reads every value with pread.
    pub map_reads: bool,
}

impl MantisOptions {
    /// The engine's options these stand for.
    pub(super) fn to_options(self) -> Result<Options, Fail> {
        let o = &self;
        let sync = match o.sync {
            MANTIS_SYNC_ALWAYS => SyncPolicy::Always,
            MANTIS_SYNC_INTERVAL => SyncPolicy::Interval(Duration::from_millis(o.sync_interval_ms)),
            MANTIS_SYNC_NEVER => SyncPolicy::Never,
            s => {
                return Err(fail(
                    MantisStatus::MantisInvalidArgument,
                    format!(
                        "sync policy {s} is not {MANTIS_SYNC_ALWAYS}, {MANTIS_SYNC_INTERVAL} or {MANTIS_SYNC_NEVER}"
                    ),
                ))
            }
        };
        let usize_of = |v: u64, what: &str| {
            usize::try_from(v)
                .map_err(|_| fail(MantisStatus::MantisInvalidArgument, format!("{what} {v} is too large")))
        };
        Ok(Options {
            sync,
            segment_size: o.segment_size,
            cache_bytes: o.cache_bytes,
            inline_threshold: usize_of(o.inline_threshold, "inline_threshold")?,
            max_key_len: crate::MAX_KEY_LEN,
            max_value_len: usize_of(o.max_value_len, "max_value_len")?,
            write_buffer_bytes: usize_of(o.write_buffer_bytes, "write_buffer_bytes")?,
            flush_interval: Duration::from_millis(o.flush_interval_ms),
            repair: o.repair,
            verify_segments_on_open: o.verify_segments_on_open,
            // Not a C option: always on behind the C ABI.
            preallocate: true,
            // Not a C option: the default.
            recycle_segments: Options::default().recycle_segments,
            compaction_threshold: o.compaction_threshold,
            compaction_interval: Duration::from_millis(o.compaction_interval_ms),
            background_compaction: o.background_compaction,
            // Not a C option: one thread per core, at most 8.
            recovery_threads: 0,
            map_reads: o.map_reads,
            file_system: None,
        })
    }
}

/// The default options. Returns a plain struct; nothing to free.
#[no_mangle]
pub extern "C" fn mantis_options_default() -> MantisOptions {
    let d = Options::default();
    MantisOptions {
        sync: MANTIS_SYNC_ALWAYS,
        sync_interval_ms: 100,
        segment_size: d.segment_size,
        cache_bytes: d.cache_bytes,
        inline_threshold: d.inline_threshold as u64,
        max_value_len: d.max_value_len as u64,
        write_buffer_bytes: d.write_buffer_bytes as u64,
        flush_interval_ms: d.flush_interval.as_millis() as u64,
        repair: d.repair,
        verify_segments_on_open: d.verify_segments_on_open,
        background_compaction: d.background_compaction,
        compaction_threshold: d.compaction_threshold,
        compaction_interval_ms: d.compaction_interval.as_millis() as u64,
        map_reads: d.map_reads,
    }
}
