//! The process's allocator, and giving its free memory back to the OS.
//!
//! With the `mimalloc` feature (the default) every Rust allocation of the
//! process goes to mimalloc, built without transparent huge pages
//! (`no_thp`; see `tests/huge_pages.rs`). Memory a thread frees stays in
//! mimalloc's heaps for reuse, and the heaps of threads that have exited
//! are kept until some thread takes them over. After work that allocates
//! much and once (an open, whose loader threads exit), that memory would
//! stay resident for nothing: [`release_free_memory`] returns it.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the allocator's free memory, including the heaps of threads
/// that have exited, to the operating system now. Costs well under a
/// millisecond after an open of 1M keys; meant for after one-off work,
/// not for a hot path (the next allocations fault their pages in again).
pub(crate) fn release_free_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: `mi_collect` takes no pointer and may run on any thread at
    // any time, beside other threads' allocations: it frees only pages no
    // allocation lives in.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };
}
