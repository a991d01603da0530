//! libFuzzer entry point of `record_decode`; see `src/record.rs` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mantisdb_core_fuzz::record::run(data));
