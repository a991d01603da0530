//! libFuzzer entry point of `abi_calls`; see `src/abi.rs` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mantisdb_core_fuzz::abi::run(data));
