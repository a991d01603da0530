//! The index version of a value on disk that the index memory tests insert
//! (included by path, so a test that needs only this does not build the
//! test file systems).

use mantisdb_core::index::{ValueRef, Version};

/// Version `i + 1` of a 100-byte value in segment 1, record `i`.
pub fn disk_version(i: u64) -> Version {
    Version {
        seq: i + 1,
        expires_at: 0,
        value: ValueRef::Disk {
            segment: 1,
            offset: 24 + i * 147,
            len: 100,
            crc: i as u32,
        },
        log_bytes: 147,
        segment: 1,
    }
}
