//! A global allocator that delays the reuse of small freed blocks.
//!
//! The C ABI recognises a freed handle by its cleared live-tag, which holds
//! only while the memory has not been handed out again (the contract calls
//! it a diagnostic). To exercise that contract deterministically, the fuzz
//! targets run on this allocator: a freed block of up to [`SMALL`] bytes is
//! filled with a poison byte and kept in a ring of [`SLOTS`] blocks; only
//! when the ring wraps is the oldest really returned to the system
//! allocator. A target uses a freed handle only while fewer than
//! `SLOTS / 2` blocks were freed after it ([`held`]), so the block is
//! still mapped, poisoned and unused.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Blocks up to this size are quarantined.
pub const SMALL: usize = 512;
/// Blocks held at once.
pub const SLOTS: usize = 1 << 16;
/// The byte a quarantined block is filled with.
pub const POISON: u8 = 0xA5;

/// The allocator; installed as the global allocator by this crate.
pub struct Quarantine;

static LOCK: AtomicBool = AtomicBool::new(false);
static PTRS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static SIZES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static ALIGNS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static FREED: AtomicU64 = AtomicU64::new(0);

/// Number of blocks quarantined so far: a block quarantined when this read
/// `n` is still held while it reads less than `n + SLOTS`.
pub fn freed() -> u64 {
    FREED.load(Ordering::Acquire)
}

/// True while a block quarantined when [`freed`] read `at` is surely held
/// (with a margin of half the ring).
pub fn held(at: u64) -> bool {
    freed().saturating_sub(at) < (SLOTS / 2) as u64
}

fn lock() {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

fn unlock() {
    LOCK.store(false, Ordering::Release);
}

// SAFETY: every block is allocated and released by `System` with the layout
// it was allocated with; a quarantined block is written only while this
// allocator owns it (the caller gave it up) and released exactly once, when
// its ring slot is reused.
unsafe impl GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() > SMALL {
            // SAFETY: allocated by System with this layout.
            unsafe { System.dealloc(ptr, layout) };
            return;
        }
        // SAFETY: the caller gave up the block's `layout.size()` bytes.
        unsafe { std::ptr::write_bytes(ptr, POISON, layout.size()) };
        lock();
        let n = FREED.load(Ordering::Relaxed);
        let slot = (n % SLOTS as u64) as usize;
        let old = PTRS[slot].swap(ptr as usize, Ordering::Relaxed);
        let old_size = SIZES[slot].swap(layout.size(), Ordering::Relaxed);
        let old_align = ALIGNS[slot].swap(layout.align(), Ordering::Relaxed);
        FREED.store(n + 1, Ordering::Release);
        unlock();
        if old != 0 {
            // SAFETY: the block in the slot was quarantined with this size and
            // alignment (a valid Layout then) and is released once, here.
            unsafe { System.dealloc(old as *mut u8, Layout::from_size_align_unchecked(old_size, old_align)) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() > SMALL && new_size > SMALL {
            // SAFETY: forwarded with the caller's guarantees (never quarantined).
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` makes a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size per the GlobalAlloc contract.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least the smaller size and are distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
