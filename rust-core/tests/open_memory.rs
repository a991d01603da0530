//! Memory an open keeps: a fresh process opens N keys written by an earlier
//! one, and the growth of its resident set, divided by N, may not pass
//! `OPEN_BUDGET`: the index and little else. What the open allocated and
//! freed (hint entries, the sort buffers of the loader threads, which exit)
//! must not stay resident in the allocator's heaps.
//!
//! Keys are 16 bytes, values 200 bytes (above the inline threshold, so on
//! disk). `MANTIS_MEMORY_KEYS` (default 300,000) changes N; the figure is
//! printed with `--nocapture`:
//!
//! ```sh
//! cargo test --release --test open_memory -- --nocapture
//! ```

use std::process::Command;

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};

#[path = "support/rss.rs"]
mod rss;
use rss::rss_bytes;

/// Bytes per key an open may keep resident: measured 156.8-157.6 at
/// 300,000 keys (the index, see `tests/index_memory.rs`, and the segment
/// set beside it; 152.8 before an open filled the hash map shard by shard,
/// whose lists leave about 4 bytes per key with the allocator), and
/// 197.1-198.7 when the memory the open freed stays in the allocator's
/// heaps.
const OPEN_BUDGET: f64 = 168.0;

/// Set in the child process: the database directory to open.
const CHILD_DIR: &str = "MANTIS_OPEN_MEMORY_DIR";

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:012}").into_bytes()
}

#[test]
fn an_open_keeps_little_beyond_its_index() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        // The child: only the open is measured.
        drop(std::hint::black_box(vec![0u8; 1 << 20]));
        let before = rss_bytes();
        let db = Db::open(&dir, Options::default()).expect("opening the database");
        let after = rss_bytes();
        println!("open-growth {}", after as i64 - before as i64);
        assert_eq!(db.get(&key(7)).unwrap().as_deref(), Some(&[b'v'; 200][..]));
        return;
    }
    let n: u64 = std::env::var("MANTIS_MEMORY_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let opts = Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts).unwrap();
        let value = vec![b'v'; 200];
        for chunk in 0..n.div_ceil(1000) {
            let mut batch = WriteBatch::new();
            for i in chunk * 1000..((chunk + 1) * 1000).min(n) {
                batch.put(key(i), value.clone());
            }
            db.write(&batch).unwrap();
        }
        // Closed segments with hint files: the usual restart.
        db.compact().unwrap();
        db.close().unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "an_open_keeps_little_beyond_its_index", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .output()
        .expect("running the child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let growth: i64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("open-growth "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure in the child's output: {stdout}"));
    let per_key = growth as f64 / n as f64;
    println!("an open of {n} keys (16-byte keys, 200-byte values on disk) keeps {per_key:.1} bytes per key");
    assert!(
        per_key <= OPEN_BUDGET,
        "an open keeps {per_key:.1} bytes per key resident, above its budget of {OPEN_BUDGET}"
    );
}
