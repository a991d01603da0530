//! libFuzzer entry point of `reopen`; see `src/reopen.rs` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mantisdb_core_fuzz::reopen::run(data));
