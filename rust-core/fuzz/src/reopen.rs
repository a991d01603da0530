//! `reopen`: opening a database whose segment or hint file was damaged.
//!
//! The input drives a short history (puts and deletes of a dozen keys, small
//! segments so several close and get hint files, sometimes a compaction),
//! the database is closed and reopened once so every closed segment has its
//! hint, then one file is damaged as the input says: bits flipped, bytes
//! overwritten, the file cut short, or garbage appended. Then it is opened
//! again, with or without `verify_segments_on_open`.
//!
//! Open must return a database or `Error::Corruption`, never panic nor fail
//! otherwise. An opened database must answer, for every key, exactly the
//! value of the model (or `Error::Corruption` when a damaged value is
//! read); the one allowed loss is the tail of the writer's newest segment:
//! a torn tail that recovery reports (a damaged last record cannot be told
//! from a write cut by a crash), or that segment cut short at a record
//! boundary (which is exactly what a crash before the tail reached the disk
//! leaves, and opens without a report): then each key may also hold any
//! value it had before.
//!
//! A damaged hint whose checksum was rewritten to match ("forged") is not
//! damage a checksum can catch; for it only the absence of panics and of
//! failures other than corruption is checked (see docs/operations/fuzzing.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use mantisdb_core::{Db, Error, Options, SyncPolicy};

use crate::input::Input;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn options(inp: &mut Input<'_>) -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 4096 + 4096 * inp.below(3) as u64,
        inline_threshold: [0, 16, 64, 256][inp.below(4)],
        background_compaction: false,
        ..Options::default()
    }
}

/// Every live key and value, or the first error.
fn state(db: &Db, keys: &BTreeSet<Vec<u8>>) -> Result<(Model, Model), Error> {
    let mut by_get = Model::new();
    for k in keys {
        if let Some(v) = db.get(k)? {
            by_get.insert(k.clone(), v.to_vec());
        }
    }
    let mut by_scan = Model::new();
    for item in db.scan_prefix(b"")? {
        let (k, v) = item?;
        by_scan.insert(k, v.to_vec());
    }
    Ok((by_get, by_scan))
}

/// The target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(&mut inp);
    let mut model = Model::new();
    let mut history: BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    {
        let db = Db::open(dir.path(), opts.clone()).expect("open a new database");
        let n = 4 + inp.below(48);
        for i in 0..n {
            let key = format!("k{:02}", inp.below(12)).into_bytes();
            keys.insert(key.clone());
            let was = model.get(&key).cloned();
            history.entry(key.clone()).or_default().push(was);
            match inp.below(16) {
                0..=2 => {
                    db.delete(&key).expect("delete");
                    model.remove(&key);
                }
                3 => {
                    db.compact().expect("compact");
                    history.get_mut(&key).map(Vec::pop);
                }
                _ => {
                    let len = inp.u8() as usize * [1, 2, 8][i % 3];
                    let fill = inp.u8();
                    let value: Vec<u8> = (0..len).map(|j| fill.wrapping_add(j as u8)).collect();
                    db.put(&key, &value).expect("put");
                    model.insert(key, value);
                }
            }
        }
        db.close().expect("close");
    }
    // A second open writes the hints of segments closed without one.
    Db::open(dir.path(), opts.clone())
        .and_then(|db| db.close())
        .expect("clean reopen");

    let mut files: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg" || x == "hint"))
        .collect();
    files.sort();
    if files.is_empty() {
        return;
    }
    let path = &files[inp.below(files.len())];
    let is_hint = path.extension().is_some_and(|x| x == "hint");
    let mut bytes = fs::read(path).expect("read");
    let original = bytes.clone();
    // The writer's newest segment: a cut there at a record boundary is what a
    // crash before the tail reached the disk leaves, and reads as such.
    let newest_writer = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "seg"))
        .rfind(|f| fs::read(f).is_ok_and(|b| b.len() >= 12 && u16::from_le_bytes([b[10], b[11]]) & 1 == 0))
        .cloned();
    let damage = inp.below(4);
    let tail_cut = damage == 2 && newest_writer.as_ref() == Some(path);
    match damage {
        0 => {
            for _ in 0..1 + inp.below(4) {
                if !bytes.is_empty() {
                    let at = inp.u16() as usize % bytes.len();
                    bytes[at] ^= 1 << (inp.u8() % 8);
                }
            }
        }
        1 => {
            for _ in 0..1 + inp.below(8) {
                if !bytes.is_empty() {
                    let at = inp.u16() as usize % bytes.len();
                    bytes[at] = inp.u8();
                }
            }
        }
        2 => {
            let cut = inp.u16() as usize % (bytes.len() + 1);
            bytes.truncate(cut);
        }
        _ => {
            let n = inp.below(64) + 1;
            bytes.extend_from_slice(inp.bytes(n));
        }
    }
    let mut forged = false;
    if is_hint && bytes.len() >= 24 && inp.u8() & 1 == 1 {
        let body_len = (bytes.len() - 24) as u32;
        let crc = crc32c::crc32c(&bytes[24..]);
        bytes[12..16].copy_from_slice(&body_len.to_le_bytes());
        bytes[16..20].copy_from_slice(&crc.to_le_bytes());
        forged = bytes != original;
    }
    fs::write(path, &bytes).expect("write");
    let verify = inp.u8() & 1 == 1;
    let o = Options {
        verify_segments_on_open: verify,
        ..opts
    };
    let db = match Db::open(dir.path(), o) {
        Ok(db) => db,
        Err(Error::Corruption { .. }) => return,
        Err(_) if forged => return,
        Err(e) => panic!(
            "open after damaging {} failed with a non-corruption error: {e}",
            path.display()
        ),
    };
    let torn = !db.recovery_report().truncated.is_empty() || tail_cut;
    match state(&db, &keys) {
        Err(Error::Corruption { .. }) => {}
        Err(_) if forged => {}
        Err(e) => panic!("reading after damaging {}: {e}", path.display()),
        Ok(_) if forged => {}
        Ok((by_get, by_scan)) => {
            assert_eq!(
                by_get,
                by_scan,
                "get and scan disagree after damaging {}",
                path.display()
            );
            if !torn {
                assert_eq!(by_get, model, "wrong data after damaging {}", path.display());
            } else {
                for k in &keys {
                    let got = by_get.get(k);
                    let ok = got == model.get(k) || history[k].iter().any(|old| old.as_ref() == got);
                    assert!(
                        ok,
                        "key {k:?}: {got:?} was never its value (damaged {})",
                        path.display()
                    );
                }
            }
        }
    }
    let _ = db.close();
}
