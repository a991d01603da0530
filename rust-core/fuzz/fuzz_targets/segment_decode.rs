//! libFuzzer entry point of `segment_decode`; see `src/segment.rs` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mantisdb_core_fuzz::segment::run(data));
