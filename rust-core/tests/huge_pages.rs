//! The engine's allocator does not ask the kernel for transparent huge pages.
//!
//! mimalloc, left to itself, advises its regions `MADV_HUGEPAGE`. Where the
//! kernel's THP mode is `madvise` (the default of Debian and Ubuntu), every
//! first touch of such a region then faults in and zeroes a whole 2 MiB page,
//! and each time the allocator returns freed memory and reuses it the next
//! touch zeroes 2 MiB again. Under a write load that churns index nodes this
//! cost a fifth of the process's CPU and 70-150 MiB of resident memory
//! (docs/performance/benchmark-mode.md). The crate builds mimalloc with its
//! `no_thp` feature, so it never advises huge pages; this test fails if that
//! setting is lost.
//!
//! Where the mode is `always` the kernel backs any aligned anonymous region
//! with huge pages whatever the process asks, and where it is `never` there
//! are none: the test checks only under `madvise`, and says so otherwise.

use mantisdb_core::index::Index;

#[path = "support/disk_version.rs"]
mod disk_version;
use disk_version::disk_version;

/// The kernel's THP mode: the bracketed word of the sysfs setting.
fn thp_mode() -> Option<String> {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(s[start..end].to_string())
}

/// Sum of `AnonHugePages` over the process's mappings, in kB.
fn anon_huge_kb() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("reading /proc/self/smaps");
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("AnonHugePages:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .expect("AnonHugePages in kB")
        })
        .sum()
}

#[test]
fn the_index_allocator_takes_no_transparent_huge_pages() {
    let mode = thp_mode();
    if mode.as_deref() != Some("madvise") {
        eprintln!("skipped: the kernel's THP mode is {mode:?}; only `madvise` lets the process decide");
        return;
    }
    // Enough index nodes for mimalloc to map and touch many regions of
    // 2 MiB or more (about 40 MiB of nodes, keys and versions).
    let index = Index::new();
    for i in 0..300_000u64 {
        let key = format!("key:{i:012}");
        index.insert(key.as_bytes(), disk_version(i), i + 1);
    }
    let huge = anon_huge_kb();
    assert_eq!(
        huge, 0,
        "{huge} kB of the process's anonymous memory is in transparent huge pages: \
         the allocator advised MADV_HUGEPAGE (is mimalloc built without its no_thp feature?)"
    );
    drop(index);
}
