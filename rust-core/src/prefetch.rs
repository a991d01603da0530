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

/// For a loop over `items` that is at item `i`: runs `hint` (which asks
/// for the memory an item will need) on the item `distance` places ahead,
/// and at the first step on the first `distance` items too, so that every
/// item is asked for `distance` steps before the loop reaches it.
#[inline]
pub(crate) fn ahead<T>(items: &[T], i: usize, distance: usize, mut hint: impl FnMut(&T)) {
    if i == 0 {
        items.iter().take(distance).for_each(&mut hint);
    }
    if let Some(item) = items.get(i + distance) {
        hint(item);
    }
}

#[cfg(test)]
mod tests {
    use super::ahead;

    /// Every item is hinted once, `distance` steps before the loop gets to
    /// it (or at the first step, for the first `distance`).
    #[test]
    fn each_item_is_hinted_once_before_its_step() {
        for len in 0..12 {
            for distance in 0..6 {
                let items: Vec<usize> = (0..len).collect();
                let mut hinted_at = vec![None; len];
                for i in 0..len {
                    ahead(&items, i, distance, |&x| {
                        assert!(
                            hinted_at[x].is_none(),
                            "item {x} hinted twice (len {len}, distance {distance})"
                        );
                        hinted_at[x] = Some(i);
                    });
                }
                for (x, at) in hinted_at.iter().enumerate() {
                    let want = x.saturating_sub(distance);
                    assert_eq!(*at, Some(want), "item {x} (len {len}, distance {distance})");
                }
            }
        }
    }
}
