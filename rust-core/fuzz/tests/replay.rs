//! Every fuzz target, without libFuzzer: the checked-in seed corpus
//! (`corpus/<target>/`), the saved regressions (`regressions/<target>/`,
//! inputs that once failed), then inputs mutated from those for a few
//! seconds (`MANTIS_FUZZ_SECS`, default 2; `MANTIS_FUZZ_SEED` repeats a
//! run). A failing input is written to `target/fuzz-failures/` and its
//! path printed, ready to be kept under `regressions/`.
//!
//! `cargo test -- --ignored write_seeds` regenerates the seed corpora.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mantisdb_core_fuzz::TARGETS;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = fs::read(&p).expect("read input");
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// xorshift64*: a small deterministic generator for the mutator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four byte-level mutations, or a splice with another seed.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len();
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                b[i] = rng.next() as u8;
            }
            2 if n > 0 => {
                let i = rng.below(n);
                b[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)];
            }
            3 => {
                let i = rng.below(n + 1);
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, extra);
            }
            4 if n > 0 => {
                let i = rng.below(n);
                let e = (i + 1 + rng.below(16)).min(n);
                b.drain(i..e);
            }
            5 => b.truncate(rng.below(n + 1)),
            6 if !other.is_empty() => {
                let i = rng.below(n + 1);
                let j = rng.below(other.len());
                let e = (j + 1 + rng.below(64)).min(other.len());
                b.truncate(i);
                b.extend_from_slice(&other[j..e]);
            }
            _ if n >= 4 => {
                let i = rng.below(n - 3);
                let v = [0u32, 1, u32::MAX, 0x8000_0000, rng.next() as u32][rng.below(5)];
                b[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => b.push(rng.next() as u8),
        }
    }
    b
}

fn run_one(name: &str, run: fn(&[u8]), data: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| run(data))).is_err() {
        let dir = root().join("target").join("fuzz-failures").join(name);
        fs::create_dir_all(&dir).expect("create failure dir");
        let path = dir.join(format!(
            "crash-{:016x}",
            crc32c::crc32c(data) as u64 | (data.len() as u64) << 32
        ));
        fs::write(&path, data).expect("write failing input");
        panic!("{name}: {what} failed; input saved to {}", path.display());
    }
}

fn replay(name: &str) {
    let run = TARGETS.iter().find(|(n, _)| *n == name).expect("target").1;
    let mut seeds = inputs(&root().join("corpus").join(name));
    assert!(!seeds.is_empty(), "{name}: no seed corpus");
    seeds.extend(inputs(&root().join("regressions").join(name)));
    for (p, b) in &seeds {
        run_one(name, run, b, &format!("{}", p.display()));
    }
    let secs: f64 = std::env::var("MANTIS_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("MANTIS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
        });
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    // Bounded in time and in count.
    while Instant::now() < deadline && n < 1_000_000 {
        let a = &seeds[rng.below(seeds.len())].1;
        let b = &seeds[rng.below(seeds.len())].1;
        let input = mutate(&mut rng, a, b);
        run_one(
            name,
            run,
            &input,
            &format!("mutated input {n} (MANTIS_FUZZ_SEED={seed})"),
        );
        n += 1;
    }
    println!(
        "{name}: {} seeds, {n} mutated inputs in {secs} s (MANTIS_FUZZ_SEED={seed})",
        seeds.len()
    );
}

#[test]
fn record_decode() {
    replay("record_decode");
}

#[test]
fn segment_decode() {
    replay("segment_decode");
}

#[test]
fn hint_decode() {
    replay("hint_decode");
}

#[test]
fn reopen() {
    replay("reopen");
}

#[test]
fn abi_calls() {
    replay("abi_calls");
}

// ---- seed corpora ----

fn write_seed(name: &str, file: &str, data: &[u8]) {
    let dir = root().join("corpus").join(name);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(file), data).expect("write seed");
}

#[test]
#[ignore = "writes the seed corpora into corpus/; run by hand"]
fn write_seeds() {
    use mantisdb_core::log::record::{self, OpKind, OpRef};
    use mantisdb_core::{Db, Options, SyncPolicy};

    let op = |kind, key: &'static [u8], value: &'static [u8], expires_at| OpRef {
        kind,
        key,
        value,
        expires_at,
    };
    let frames = [
        vec![op(OpKind::Put, b"k", b"v", 0)],
        vec![op(OpKind::Delete, b"key", b"", 0)],
        vec![
            op(OpKind::Put, b"a", b"1", 0),
            op(OpKind::Put, b"b", b"", 1_000),
            op(OpKind::Delete, b"c", b"", 0),
        ],
    ];
    for (i, ops) in frames.iter().enumerate() {
        let mut out = Vec::new();
        record::encode(&mut out, i as u64 + 1, ops, &mut Vec::new());
        write_seed("record_decode", &format!("frame-{i}"), &out);
    }

    // Real segment and hint files.
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        sync: SyncPolicy::Never,
        segment_size: 4096,
        background_compaction: false,
        ..Options::default()
    };
    {
        let db = Db::open(dir.path(), opts.clone()).expect("open");
        for i in 0..24u32 {
            let k = format!("key{}", i % 7);
            if i % 5 == 4 {
                db.delete(k.as_bytes()).expect("delete");
            } else {
                db.put(k.as_bytes(), &vec![i as u8; (i as usize * 131) % 900])
                    .expect("put");
            }
        }
        db.compact().expect("compact");
        db.close().expect("close");
    }
    Db::open(dir.path(), opts).and_then(|db| db.close()).expect("reopen");
    let mut segs = 0;
    let mut hints = 0;
    for (p, b) in inputs(dir.path()) {
        match p.extension().and_then(|x| x.to_str()) {
            Some("seg") if segs < 3 => {
                let mut s = vec![16u8];
                s.extend_from_slice(&b);
                write_seed("segment_decode", &format!("segment-{segs}"), &s);
                segs += 1;
            }
            Some("hint") if hints < 3 => {
                let mut h = vec![0u8];
                h.extend_from_slice(&b);
                write_seed("hint_decode", &format!("hint-{hints}"), &h);
                hints += 1;
            }
            _ => {}
        }
    }
    assert!(segs > 0 && hints > 0, "the seed database has no closed segment");
    let mut rng = Rng(0x5EED);
    for i in 0..3 {
        let s: Vec<u8> = (0..48 + 40 * i).map(|_| rng.next() as u8).collect();
        let mut h = vec![1u8];
        h.extend_from_slice(&s);
        write_seed("hint_decode", &format!("structured-{i}"), &h);
        write_seed("reopen", &format!("history-{i}"), &s);
    }
    // One program per ABI function (the first byte of a step picks it),
    // then a few mixed ones.
    for f in 0..30u8 {
        let mut p = vec![1u8];
        for _ in 0..3 {
            p.push(f);
            p.extend((0..12).map(|_| 3 + rng.next() as u8 % 250));
        }
        write_seed("abi_calls", &format!("call-{f:02}"), &p);
    }
    for i in 0..4 {
        let p: Vec<u8> = (0..400).map(|_| rng.next() as u8).collect();
        write_seed("abi_calls", &format!("mixed-{i}"), &p);
    }
    // Key metadata: writes with TTLs and absolute expiries (puts, batches,
    // transactions) interleaved with reads of versions and expiries, built
    // step by step so each call is the one named. A step's arguments are
    // one byte repeated: the same few keys come back (so reads find what
    // was written), and each fill picks a kind of write (14: absolute
    // expiries ahead, 8: in the past, 20: TTLs).
    let calls = [
        3u8, 8, 27, 27, 18, 29, 28, 19, 28, 22, 8, 27, 21, 18, 28, 3, 22, 27, 29, 28,
    ];
    let fills = [14u8, 8, 20, 4, 5, 26, 32, 38];
    for i in 0..4usize {
        let steps: Vec<(u8, Vec<u8>)> = (0..90)
            .map(|j| {
                let fill = fills[(i + j * (i + 1)) % fills.len()];
                (calls[(j + i) % calls.len()], vec![fill; 64])
            })
            .collect();
        write_seed(
            "abi_calls",
            &format!("keymeta-{i}"),
            &mantisdb_core_fuzz::abi::program(0, &steps),
        );
    }
}

// ---- reproducers of damage open does not detect (see docs/operations/fuzzing.md) ----

/// A database with several closed segments, each with its hint; returns the
/// values written by key.
fn closed_segments(dir: &Path, small: bool) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    use mantisdb_core::{Db, Options, SyncPolicy};
    let opts = Options {
        sync: SyncPolicy::Never,
        segment_size: 4096,
        background_compaction: false,
        ..Options::default()
    };
    let mut model = std::collections::BTreeMap::new();
    let db = Db::open(dir, opts.clone()).expect("open");
    for i in 0..if small { 300u32 } else { 40 } {
        let k = format!("key{i:03}").into_bytes();
        let v = if small {
            format!("VALUE{i:03}").into_bytes()
        } else {
            vec![i as u8; 300]
        };
        db.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    db.close().expect("close");
    drop(db);
    Db::open(dir, opts).and_then(|db| db.close()).expect("reopen");
    model
}

fn first_file(dir: &Path, ext: &str) -> PathBuf {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v.remove(0)
}

/// A closed segment cut at a record boundary (its hint then no longer
/// matches its length and is ignored) must not open with the records cut
/// off silently gone: the next writer segment's header says where the
/// closed one ended.
#[test]
fn closed_segment_cut_at_a_record_is_detected() {
    use mantisdb_core::log::record;
    use mantisdb_core::{Db, Error, Options};
    let dir = tempfile::tempdir().expect("tempdir");
    let model = closed_segments(dir.path(), false);
    let seg = first_file(dir.path(), "seg");
    let bytes = fs::read(&seg).expect("read segment");
    let salt = mantisdb_core::log::segment::frame_salt(&bytes);
    let first = record::decode_salted(&bytes[32..], salt)
        .expect("first record")
        .frame_len;
    fs::write(&seg, &bytes[..32 + first]).expect("cut segment");
    match Db::open(dir.path(), Options::default()) {
        Err(Error::Corruption { .. }) => {}
        Err(e) => panic!("open: {e}"),
        Ok(db) => {
            for (k, v) in &model {
                let got = db.get(k).expect("get");
                assert_eq!(
                    got.as_deref(),
                    Some(&v[..]),
                    "key {:?} lost silently",
                    String::from_utf8_lossy(k)
                );
            }
        }
    }
}
