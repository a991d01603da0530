//! Key metadata: versions and absolute expiries through the public API,
//! across writes, batches, transactions, reopen and compaction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mantisdb_core::{Db, Error, KeyMeta, Options, SyncPolicy, WriteBatch};

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_size: 64 << 10,
        background_compaction: false,
        ..Options::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An hour from now: far enough that no test run reaches it.
fn later() -> u64 {
    now_ms() + 3_600_000
}

fn meta(db: &Db, key: &[u8]) -> Option<(Vec<u8>, KeyMeta)> {
    db.get_with_meta(key).unwrap().map(|(v, m)| (v.to_vec(), m))
}

#[test]
fn version_changes_on_every_write_the_same_value_included() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(meta(&db, b"k"), None);
    db.put(b"k", b"v").unwrap();
    let (v, m1) = meta(&db, b"k").unwrap();
    assert_eq!((v.as_slice(), m1.expires_at_ms), (&b"v"[..], 0));
    assert_eq!(m1.seq, db.stats().last_seq);
    db.put(b"k", b"v").unwrap();
    let (_, m2) = meta(&db, b"k").unwrap();
    assert!(m2.seq > m1.seq, "rewriting the same value must change the version");
    // A write of another key leaves this key's version alone.
    db.put(b"other", b"x").unwrap();
    assert_eq!(meta(&db, b"k").unwrap().1, m2);
    // A batch and a transaction are writes too.
    let mut b = WriteBatch::new();
    b.put(b"k".to_vec(), b"v".to_vec());
    db.write(&b).unwrap();
    let (_, m3) = meta(&db, b"k").unwrap();
    assert!(m3.seq > m2.seq);
    let mut t = db.begin().unwrap();
    t.put(b"k", b"v").unwrap();
    t.commit().unwrap();
    let (_, m4) = meta(&db, b"k").unwrap();
    assert!(m4.seq > m3.seq);
    // Deleted and re-created: a new version again.
    db.delete(b"k").unwrap();
    assert_eq!(meta(&db, b"k"), None);
    db.put(b"k", b"v").unwrap();
    assert!(meta(&db, b"k").unwrap().1.seq > m4.seq);
    // The value read with its metadata is the one `get` reads, for values
    // kept inline and on disk.
    let big = vec![9u8; 10_000];
    db.put(b"big", &big).unwrap();
    assert_eq!(meta(&db, b"big").unwrap().0, big);
}

#[test]
fn ttl_and_absolute_expiries_are_reported_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let at = later();
    let (ttl_expiry, seqs) = {
        let db = Db::open(dir.path(), opts()).unwrap();
        let before = now_ms();
        db.put_with_ttl(b"ttl", b"v", Duration::from_secs(600)).unwrap();
        let after = now_ms();
        let (_, m) = meta(&db, b"ttl").unwrap();
        assert!(
            (before + 600_000..=after + 600_000).contains(&m.expires_at_ms),
            "ttl expiry {} not within the write's clock + ttl",
            m.expires_at_ms
        );
        db.put_with_expiry(b"at", b"v", at).unwrap();
        let mut b = WriteBatch::new();
        b.put_with_expiry(b"batch-at".to_vec(), vec![5u8; 5000], at + 1);
        db.write(&b).unwrap();
        db.put(b"plain", b"v").unwrap();
        assert_eq!(meta(&db, b"at").unwrap().1.expires_at_ms, at);
        assert_eq!(meta(&db, b"batch-at").unwrap().1.expires_at_ms, at + 1);
        let seqs: Vec<u64> = [&b"ttl"[..], b"at", b"batch-at", b"plain"]
            .iter()
            .map(|k| meta(&db, k).unwrap().1.seq)
            .collect();
        db.close().unwrap();
        (m.expires_at_ms, seqs)
    };
    let db = Db::open(dir.path(), opts()).unwrap();
    let got: Vec<KeyMeta> = [&b"ttl"[..], b"at", b"batch-at", b"plain"]
        .iter()
        .map(|k| meta(&db, k).unwrap().1)
        .collect();
    let want: Vec<KeyMeta> = [ttl_expiry, at, at + 1, 0]
        .iter()
        .zip(&seqs)
        .map(|(&expires_at_ms, &seq)| KeyMeta { seq, expires_at_ms })
        .collect();
    assert_eq!(got, want, "versions and expiries after reopen");
    assert_eq!(meta(&db, b"batch-at").unwrap().0, vec![5u8; 5000]);
}

#[test]
fn versions_and_expiries_survive_compaction_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let at = later();
    let before = {
        let db = Db::open(dir.path(), opts()).unwrap();
        db.put(b"kept", b"small").unwrap();
        db.put_with_expiry(b"expiring", &[3u8; 300], at).unwrap();
        // Enough dead data that compaction rewrites every segment holding
        // the two keys above.
        for i in 0..2000u32 {
            db.put(format!("churn{}", i % 50).as_bytes(), &[1u8; 200]).unwrap();
        }
        let before = [meta(&db, b"kept").unwrap(), meta(&db, b"expiring").unwrap()];
        let report = db.compact().unwrap();
        assert!(report.segments_in > 0, "compaction rewrote nothing: {report:?}");
        assert_eq!([meta(&db, b"kept").unwrap(), meta(&db, b"expiring").unwrap()], before);
        db.close().unwrap();
        before
    };
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!([meta(&db, b"kept").unwrap(), meta(&db, b"expiring").unwrap()], before);
    // The next write still gets a newer version than any kept one.
    db.put(b"kept", b"small").unwrap();
    assert!(meta(&db, b"kept").unwrap().1.seq > before[0].1.seq);
}

#[test]
fn a_past_absolute_expiry_removes_the_key() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        db.put(b"a", b"old").unwrap();
        db.put(b"b", b"old").unwrap();
        db.put(b"c", b"old").unwrap();
        let deletes = db.stats().deletes;
        db.put_with_expiry(b"a", b"new", now_ms() - 1000).unwrap();
        let mut batch = WriteBatch::new();
        batch.put_with_expiry(b"b".to_vec(), b"new".to_vec(), 0);
        // Expiring now is expired: the commit's clock is not before now.
        batch.put_with_expiry(b"fresh".to_vec(), b"new".to_vec(), now_ms());
        db.write(&batch).unwrap();
        let mut t = db.begin().unwrap();
        t.put_with_expiry(b"c", b"new", 1).unwrap();
        // The transaction's own read sees the removal coming.
        assert_eq!(t.get(b"c").unwrap(), None);
        assert_eq!(t.get_with_meta(b"c").unwrap(), None);
        t.commit().unwrap();
        for k in [&b"a"[..], b"b", b"c", b"fresh"] {
            assert_eq!(db.get(k).unwrap(), None, "{k:?}");
            assert_eq!(meta(&db, k), None, "{k:?}");
        }
        // Each committed as a delete, not as an expired put.
        let s = db.stats();
        assert_eq!((s.deletes - deletes, s.keys), (4, 0));
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    for k in [&b"a"[..], b"b", b"c", b"fresh"] {
        assert_eq!(db.get(k).unwrap(), None, "{k:?} after reopen");
    }
    assert_eq!(db.stats().keys, 0);
}

#[test]
fn an_expiry_reached_hides_the_key_and_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put_with_expiry(b"soon", b"v", now_ms() + 50).unwrap();
    assert!(meta(&db, b"soon").is_some());
    let snap = db.snapshot().unwrap();
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(meta(&db, b"soon"), None);
    // A snapshot judges expiry at the time it was taken.
    let (v, m) = snap.get_with_meta(b"soon").unwrap().unwrap();
    assert_eq!((&*v, m.seq), (&b"v"[..], snap.seq()));
}

#[test]
fn snapshots_read_the_version_they_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put(b"k", b"one").unwrap();
    let (_, m1) = meta(&db, b"k").unwrap();
    let snap = db.snapshot().unwrap();
    db.put_with_expiry(b"k", b"two", later()).unwrap();
    let (v, m) = snap.get_with_meta(b"k").unwrap().unwrap();
    assert_eq!((&*v, m), (&b"one"[..], m1));
    assert_eq!(snap.get_with_meta(b"missing").unwrap(), None);
    assert!(matches!(snap.get_with_meta(b""), Err(Error::InvalidKey { .. })));
}

#[test]
fn transaction_reads_with_metadata_are_in_the_read_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put(b"watched", b"v").unwrap();
    let (_, m) = meta(&db, b"watched").unwrap();

    // A version read, then the key rewritten with the same value: conflict.
    let mut t = db.begin().unwrap();
    let (_, seen) = t.get_with_meta(b"watched").unwrap().unwrap();
    assert_eq!(seen, m);
    t.put(b"out", b"x").unwrap();
    db.put(b"watched", b"v").unwrap();
    assert!(matches!(t.commit(), Err(Error::Conflict(_))));
    assert_eq!(db.get(b"out").unwrap(), None);

    // A missing key read with metadata is in the read set too.
    let mut t = db.begin().unwrap();
    assert_eq!(t.get_with_meta(b"absent").unwrap(), None);
    t.put(b"out", b"x").unwrap();
    db.put(b"absent", b"now here").unwrap();
    assert!(matches!(t.commit(), Err(Error::Conflict(_))));

    // A past-expiry put is a delete for conflict checks: it conflicts with
    // a transaction that read the key.
    let mut t = db.begin().unwrap();
    t.get_with_meta(b"watched").unwrap();
    t.put(b"out", b"x").unwrap();
    db.put_with_expiry(b"watched", b"v", 1).unwrap();
    assert!(matches!(t.commit(), Err(Error::Conflict(_))));

    // Undisturbed, it commits.
    let mut t = db.begin().unwrap();
    assert_eq!(t.get_with_meta(b"watched").unwrap(), None);
    t.put(b"out", b"x").unwrap();
    t.commit().unwrap();
}

#[test]
fn a_transactions_own_write_has_version_zero_and_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put(b"k", b"base").unwrap();
    let at = later();
    let mut t = db.begin().unwrap();
    t.put_with_expiry(b"k", b"mine", at).unwrap();
    let (v, m) = t.get_with_meta(b"k").unwrap().unwrap();
    assert_eq!(
        (&*v, m),
        (
            &b"mine"[..],
            KeyMeta {
                seq: 0,
                expires_at_ms: at
            }
        )
    );
    t.put(b"plain", b"p").unwrap();
    assert_eq!(t.get_with_meta(b"plain").unwrap().unwrap().1, KeyMeta::default());
    let before = now_ms();
    t.put_with_ttl(b"ttl", b"t", Duration::from_secs(10)).unwrap();
    let m = t.get_with_meta(b"ttl").unwrap().unwrap().1;
    assert!(m.seq == 0 && m.expires_at_ms >= before + 10_000);
    // Own writes with a past expiry are hidden from scans as well.
    t.put_with_expiry(b"kz", b"gone", 1).unwrap();
    let keys: Vec<Vec<u8>> = t.scan_prefix(b"k", 10).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"k".to_vec()]);
    t.commit().unwrap();
    let (v, m) = meta(&db, b"k").unwrap();
    assert_eq!((v.as_slice(), m.expires_at_ms), (&b"mine"[..], at));
    assert!(m.seq > 0);
    assert_eq!(meta(&db, b"kz"), None);
}

#[test]
fn closed_databases_and_bad_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(matches!(db.get_with_meta(b""), Err(Error::InvalidKey { .. })));
    assert!(matches!(
        db.put_with_expiry(b"", b"v", later()),
        Err(Error::InvalidKey { .. })
    ));
    let mut t = db.begin().unwrap();
    assert!(matches!(t.get_with_meta(b""), Err(Error::InvalidKey { .. })));
    assert!(matches!(t.put_with_expiry(b"", b"v", 1), Err(Error::InvalidKey { .. })));
    drop(t);
    db.close().unwrap();
    assert!(matches!(db.get_with_meta(b"k"), Err(Error::Closed)));
    assert!(matches!(db.put_with_expiry(b"k", b"v", later()), Err(Error::Closed)));
}

#[test]
fn a_past_expiry_does_not_make_an_oversized_value_acceptable() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            max_value_len: 16,
            ..opts()
        },
    )
    .unwrap();
    let big = vec![0u8; 17];
    assert!(matches!(
        db.put_with_expiry(b"k", &big, 1),
        Err(Error::ValueTooLarge { .. })
    ));
    let mut b = WriteBatch::new();
    b.put_with_expiry(b"k".to_vec(), big.clone(), 1);
    assert!(matches!(db.write(&b), Err(Error::ValueTooLarge { .. })));
    let mut t = db.begin().unwrap();
    assert!(matches!(
        t.put_with_expiry(b"k", &big, 1),
        Err(Error::ValueTooLarge { .. })
    ));
}
