//! Read-modify-writes of one key evaluated inside their own commit: Redis's
//! `INCRBY` family and `APPEND`.
//!
//! A transaction would read the key at its snapshot, buffer the new value
//! and validate at commit that nobody wrote the key meanwhile, retrying on
//! a conflict; concurrent increments of one counter then take turns, each
//! with its own commit and its own wait for a sync. Here the new value is
//! computed while the log's append lock is held, from the newest version
//! every earlier commit left (applied to the index, durable or not), and
//! the put is applied to the index before the lock is let go: the next
//! update of the key, queued on the same lock, reads it at once. Nothing is
//! validated or retried, and a wave of updates from many callers is one
//! group commit.
//!
//! Reading a version that is not durable yet is safe: this commit is
//! numbered after it, durability is a prefix of the sequence order, and
//! nothing is acknowledged before its own commit is durable. If the earlier
//! commit's sync fails, so does this one's.

use crate::db::Db;
use crate::error::Result;

/// A read-modify-write of one key (see [`Db::update`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update<'a> {
    /// Adds to the decimal integer the key holds (Redis `INCRBY`): a
    /// missing or expired key counts as 0; the key keeps its expiry.
    IncrBy(i64),
    /// Appends bytes to the key's value (Redis `APPEND`), creating the key
    /// when missing; the key keeps its expiry. A result longer than
    /// `max_len` bytes is refused.
    Append {
        /// The bytes appended.
        suffix: &'a [u8],
        /// The longest value the result may be.
        max_len: usize,
    },
}

/// What an [`Update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// `IncrBy` committed: the new value.
    Int(i64),
    /// `Append` committed: the new length.
    Len(usize),
    /// Refused, nothing written: the value is not a decimal 64-bit integer
    /// as Redis reads one (no sign but `-`, no leading zero, no spaces).
    NotInteger,
    /// Refused, nothing written: the sum is outside the 64-bit range.
    Overflow,
    /// Refused, nothing written: the result would exceed `max_len`.
    TooLong,
}

/// What evaluating an update against the current value decided.
pub(crate) enum Evaluated {
    /// Write this value (the key keeps its expiry).
    Put(Vec<u8>, Updated),
    /// Write nothing.
    Refuse(Updated),
}

/// Parses a decimal 64-bit integer exactly as Redis's `string2ll`: at most
/// 20 bytes, an optional `-`, no leading zeros, no `-0`, no spaces or `+`.
pub(crate) fn parse_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulated negatively, so that i64::MIN parses.
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if neg {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Evaluates `upd` against the key's current value (`None`: missing or expired).
pub(crate) fn evaluate(upd: &Update<'_>, current: Option<&[u8]>) -> Evaluated {
    match *upd {
        Update::IncrBy(delta) => {
            let cur = match current {
                None => 0,
                Some(v) => match parse_int(v) {
                    Some(n) => n,
                    None => return Evaluated::Refuse(Updated::NotInteger),
                },
            };
            match cur.checked_add(delta) {
                Some(n) => Evaluated::Put(n.to_string().into_bytes(), Updated::Int(n)),
                None => Evaluated::Refuse(Updated::Overflow),
            }
        }
        Update::Append { suffix, max_len } => {
            let cur = current.unwrap_or(&[]);
            let len = cur.len().saturating_add(suffix.len());
            if len > max_len {
                return Evaluated::Refuse(Updated::TooLong);
            }
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(cur);
            v.extend_from_slice(suffix);
            Evaluated::Put(v, Updated::Len(len))
        }
    }
}

impl Db {
    /// Applies `upd` to `key` atomically as one commit, evaluated against
    /// the value every earlier commit left (see the module docs): `INCRBY`
    /// and `APPEND` for any number of concurrent callers, without a
    /// transaction, conflicts or retries. A refused update writes nothing.
    /// Returns once the commit is durable (as the sync policy promises) and
    /// visible.
    pub fn update(&self, key: &[u8], upd: &Update<'_>) -> Result<Updated> {
        let (out, ticket) = self.update_begin(key, upd)?;
        if let Some(ticket) = ticket {
            self.commit_wait(ticket)?;
            self.inner.log.zero_ahead();
        }
        Ok(out)
    }

    /// [`Db::update`] in two halves, as [`Db::put_begin`]: `Some(ticket)`
    /// when the update committed under [`crate::SyncPolicy::Always`] and
    /// is acknowledged only after [`Db::commit_wait`]`(ticket)`.
    #[doc(hidden)]
    pub fn update_begin(&self, key: &[u8], upd: &Update<'_>) -> Result<(Updated, Option<u64>)> {
        let (seq, out) = self.inner.update_begin(key, |cur| evaluate(upd, cur))?;
        match seq {
            Some(seq) if self.inner.opts.sync == crate::options::SyncPolicy::Always => Ok((out, Some(seq))),
            Some(seq) => {
                self.inner.commit_finish(seq)?;
                Ok((out, None))
            }
            None => Ok((out, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_redis_reads_them() {
        for (s, want) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("-0", None),
            ("01", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1a", None),
            ("1.5", None),
            ("000000000000000000001", None),
        ] {
            assert_eq!(parse_int(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn evaluation_refuses_what_redis_refuses() {
        let put = |e: Evaluated| match e {
            Evaluated::Put(v, o) => (String::from_utf8(v).unwrap_or_default(), o),
            Evaluated::Refuse(o) => (String::new(), o),
        };
        assert_eq!(put(evaluate(&Update::IncrBy(5), None)), ("5".into(), Updated::Int(5)));
        assert_eq!(
            put(evaluate(&Update::IncrBy(-7), Some(b"3"))),
            ("-4".into(), Updated::Int(-4))
        );
        assert_eq!(
            put(evaluate(&Update::IncrBy(1), Some(b"9223372036854775807"))),
            (String::new(), Updated::Overflow)
        );
        assert_eq!(
            put(evaluate(&Update::IncrBy(1), Some(b"abc"))),
            (String::new(), Updated::NotInteger)
        );
        let app = |cur: Option<&[u8]>, max| {
            put(evaluate(
                &Update::Append {
                    suffix: b"xy",
                    max_len: max,
                },
                cur,
            ))
        };
        assert_eq!(app(None, 10), ("xy".into(), Updated::Len(2)));
        assert_eq!(app(Some(b"ab"), 4), ("abxy".into(), Updated::Len(4)));
        assert_eq!(app(Some(b"abc"), 4), (String::new(), Updated::TooLong));
    }
}
