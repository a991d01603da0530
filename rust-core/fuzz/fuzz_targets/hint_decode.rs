//! libFuzzer entry point of `hint_decode`; see `src/hint.rs` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mantisdb_core_fuzz::hint::run(data));
