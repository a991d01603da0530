//! What the read-path examples (`get_disk`, `read_path`) share: the
//! calling thread's CPU time, their key format and a median.

use std::io::Write as _;
use std::time::Duration;

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes one timespec into the struct we own.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The 16-byte key of `id`: `key:` and twelve digits.
pub fn key(id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    write!(&mut k[..], "key:{id:012}").unwrap();
    k
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
