//! Errors returned by the engine.
//!
//! Every failure a caller can cause or observe is a variant here with enough
//! context to act on: which file and offset for corruption, which limit for an
//! oversized key or value. The library never panics on user input.

use std::io;
use std::path::PathBuf;

/// The result type of every fallible engine call.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error during {context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Data on disk failed validation (checksum, framing or format).
    #[error("corruption in {} at offset {offset}: {reason}", file.display())]
    Corruption {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Byte offset of the first bad record in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },

    /// The key is empty or longer than the limit.
    #[error("invalid key: length {len} is outside 1..={max}")]
    InvalidKey {
        /// The length given.
        len: usize,
        /// The largest key allowed.
        max: usize,
    },

    /// The value is longer than the configured limit.
    #[error("value too large: {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// The length given.
        len: usize,
        /// The configured limit.
        max: usize,
    },

    /// An option or argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Another process (or another handle in this one) holds the directory.
    #[error("database directory {} is locked by another open database", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },

    /// The database was closed, or refused writes after an unrecoverable I/O failure.
    #[error("database is closed")]
    Closed,

    /// A previous write or sync failed; the engine refuses writes until reopened.
    #[error("database refuses writes after an earlier I/O failure ({0}); reopen it")]
    Poisoned(String),

    /// An optimistic transaction lost a race with another writer.
    #[error("transaction conflict: {0}")]
    Conflict(String),

    /// The engine broke one of its own invariants or ran out of an internal
    /// resource (a bug or a limit, not the caller's input); the message
    /// says which.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with what the engine was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds a corruption error.
    pub(crate) fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}
