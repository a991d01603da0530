//! MantisDB storage core: an ordered, durable, concurrent key-value engine.
//!
//! The design is Bitcask with an ordered index: values live in append-only
//! segment files of CRC-framed records, and an in-memory lock-free skiplist
//! maps each key to its newest versions. See `docs/design/architecture.md`
//! and `docs/design/on-disk-format.md` (repository root) for the design and
//! formats, and the crate README for guarantees.
//!
//! ```no_run
//! use mantisdb_core::{Db, Options, WriteBatch};
//! let db = Db::open("/tmp/mantis-example", Options::default())?;
//! db.put(b"user:1", b"ada")?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"user:2".to_vec(), b"grace".to_vec()).delete(b"user:1".to_vec());
//! db.write(&batch)?;
//! for item in db.scan_prefix(b"user:")? {
//!     let (key, value) = item?;
//!     println!("{:?} = {:?}", key, value);
//! }
//! db.close()?;
//! # Ok::<(), mantisdb_core::Error>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

// cbindgen (the C header) reads only `ffi`: every other module is skipped,
// so none of the engine's own public constants or types reach the header.
/// cbindgen:ignore
mod accounting;
/// cbindgen:ignore
mod allocator;
/// cbindgen:ignore
mod background;
/// cbindgen:ignore
mod batch;
/// cbindgen:ignore
pub mod cache;
/// cbindgen:ignore
pub mod check;
/// cbindgen:ignore
mod checkpoint;
/// cbindgen:ignore
mod checksum;
/// cbindgen:ignore
mod compaction;
/// cbindgen:ignore
mod db;
/// cbindgen:ignore
mod dirlock;
/// cbindgen:ignore
mod engine;
/// cbindgen:ignore
mod error;
pub mod ffi;
/// cbindgen:ignore
pub mod index;
/// cbindgen:ignore
mod iter;
/// cbindgen:ignore
mod keymap;
/// cbindgen:ignore
pub mod log;
/// cbindgen:ignore
mod meta;
/// cbindgen:ignore
mod mvcc;
/// cbindgen:ignore
mod options;
/// cbindgen:ignore
mod prefetch;
/// cbindgen:ignore
mod stats;
/// cbindgen:ignore
mod txn;
/// cbindgen:ignore
mod update;
/// cbindgen:ignore
pub mod vfs;

pub use batch::WriteBatch;
pub use checkpoint::CheckpointReport;
pub use compaction::CompactionReport;
pub use db::{Db, Value};
pub use error::{Error, Result};
pub use iter::{prefix_successor, Iter, Snapshot};
pub use log::recovery::{Cut, RecoveryReport};
pub use meta::{Expiry, KeyMeta};
pub use options::{Options, SyncPolicy, DEFAULT_MAX_VALUE_LEN, HARD_MAX_VALUE_LEN, MAX_KEY_LEN};
pub use stats::Stats;
pub use txn::Transaction;
pub use update::{Update, Updated};
