//! Hints that ask the CPU to start loading memory a loop will soon read,
//! so that the cache misses of several independent reads overlap instead
//! of following one another. A hint changes nothing a read returns.

/// Asks the CPU to load the cache line holding `p` (a hint: it reads
/// nothing into the program and never faults, whatever the address).
#[inline(always)]
pub(crate) fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch dereferences nothing and never faults, whatever
    // the address; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the CPU to load the first `max_lines` cache lines of `bytes` (the
/// hardware streams the rest of a long slice once it is read in order).
#[inline]
pub(crate) fn lines(bytes: &[u8], max_lines: usize) {
    for chunk in bytes.chunks(64).take(max_lines) {
        line(chunk.as_ptr());
    }
}
