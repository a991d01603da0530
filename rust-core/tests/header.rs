//! The checked-in C header `include/mantisdb.h` matches what cbindgen (the
//! pinned version) generates from `src/ffi/`. `MANTIS_WRITE_HEADER=1`
//! (used by `make header`) rewrites it instead.

#[test]
fn c_header_is_fresh() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("reading cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("generating the header")
        .write(&mut generated);
    let path = format!("{dir}/include/mantisdb.h");
    if std::env::var_os("MANTIS_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("writing the header");
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{path} is stale: run `make header` and commit the result"
    );
}
