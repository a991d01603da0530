//! Fuzz targets of the MantisDB storage core. Each module is one target:
//! a `run(&[u8])` that panics when a property fails. The libFuzzer entry
//! points in `fuzz_targets/` call them; `tests/replay.rs` replays the seed
//! corpora and saved regressions through them and mutates the seeds for a
//! few seconds.

pub mod abi;
pub mod hint;
pub mod input;
pub mod quarantine;
pub mod record;
pub mod reopen;
pub mod segment;

/// A target: panics when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name, as the corpus and regression folders name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("record_decode", record::run),
    ("segment_decode", segment::run),
    ("hint_decode", hint::run),
    ("reopen", reopen::run),
    ("abi_calls", abi::run),
];

#[global_allocator]
static ALLOC: quarantine::Quarantine = quarantine::Quarantine;
