//! Recovery: replays segments into the index on open.
//!
//! Rules, in order:
//! - Segments are read in id order; every frame is decoded and checked
//!   (frame CRC, op checksums, strictly increasing sequence numbers).
//! - In the newest segment, a frame that is cut short or fails its checksum
//!   is a torn tail if no valid frame follows it: the file is truncated to the
//!   last whole record. A newest segment too short to hold its header was cut
//!   during creation and is removed.
//! - Any other bad frame is corruption: open fails naming the file and offset.
//!   With `repair`, the segment is truncated at the bad frame instead and
//!   everything readable is kept; the loss is reported in [`Recovered::repairs`].

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::record::{self, FrameError, Record};
use super::segment::{self, SEGMENT_HEADER_LEN};
use crate::error::{Error, Result};

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Ids of the segments kept, ascending.
    pub segments: Vec<u32>,
    /// Sequence number of the last record replayed (0 when the log is empty).
    pub last_seq: u64,
    /// Length of the newest segment after any truncation.
    pub newest_end: Option<u64>,
    /// Torn tails cut: (file, offset cut at, bytes dropped).
    pub truncated: Vec<(String, u64, u64)>,
    /// Corrupt regions dropped because `repair` was set: (file, offset, bytes dropped).
    pub repairs: Vec<(String, u64, u64)>,
}

/// Replays every segment in `dir`, calling `apply(segment_id, frame_offset, record)`
/// for each whole record in log order.
pub fn replay(dir: &Path, repair: bool, mut apply: impl FnMut(u32, u64, &Record<'_>)) -> Result<Recovered> {
    let mut ids = segment::list(dir)?;
    let mut out = Recovered::default();
    // A newest segment shorter than its header was cut during creation.
    if let Some(&last) = ids.last() {
        let path = dir.join(segment::segment_file_name(last));
        let len = fs::metadata(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len();
        if len < SEGMENT_HEADER_LEN {
            fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            segment::sync_dir(dir)?;
            out.truncated.push((path.display().to_string(), 0, len));
            ids.pop();
        }
    }
    let count = ids.len();
    for (i, id) in ids.into_iter().enumerate() {
        let newest = i + 1 == count;
        let path = dir.join(segment::segment_file_name(id));
        let data = fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if let Err(reason) = segment::check_header(&data, id) {
            return Err(Error::corruption(&path, 0, reason));
        }
        let mut at = SEGMENT_HEADER_LEN as usize;
        let mut end = data.len() as u64;
        while at < data.len() {
            match record::decode(&data[at..]) {
                Ok(rec) => {
                    if rec.seq <= out.last_seq {
                        let reason = format!(
                            "sequence {} does not follow {} (records out of order)",
                            rec.seq, out.last_seq
                        );
                        if !repair {
                            return Err(Error::corruption(&path, at as u64, reason));
                        }
                        cut(&path, at as u64, data.len() as u64, &mut out.repairs)?;
                        end = at as u64;
                        break;
                    }
                    out.last_seq = rec.seq;
                    apply(id, at as u64, &rec);
                    at += rec.frame_len;
                }
                Err(err) => {
                    let torn = newest && !valid_frame_after(&data, at, out.last_seq);
                    if torn {
                        cut(&path, at as u64, data.len() as u64, &mut out.truncated)?;
                    } else if repair {
                        cut(&path, at as u64, data.len() as u64, &mut out.repairs)?;
                    } else {
                        let reason = match err {
                            FrameError::Incomplete => "record cut short before later records".to_string(),
                            FrameError::Checksum => "record checksum mismatch".to_string(),
                            FrameError::Malformed(m) => format!("malformed record: {m}"),
                        };
                        return Err(Error::corruption(&path, at as u64, reason));
                    }
                    end = at as u64;
                    break;
                }
            }
        }
        if newest {
            out.newest_end = Some(end);
        }
        out.segments.push(id);
    }
    Ok(out)
}

/// True when a whole, checksummed frame with a newer sequence number starts
/// anywhere after `at`: then the bad bytes at `at` are not a torn tail.
fn valid_frame_after(data: &[u8], at: usize, last_seq: u64) -> bool {
    (at + 1..data.len()).any(|pos| matches!(record::decode(&data[pos..]), Ok(rec) if rec.seq > last_seq))
}

fn cut(path: &Path, at: u64, len: u64, log: &mut Vec<(String, u64, u64)>) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {} to truncate", path.display()), e))?;
    file.set_len(at)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("truncating {} at {at}", path.display()), e))?;
    log.push((path.display().to_string(), at, len - at));
    Ok(())
}
