//! Behaviour of the public API: reads, writes, batches, TTL, scans,
//! snapshots, limits, locking and reopen.

use std::time::Duration;

use mantisdb_core::{Db, Error, Options, SyncPolicy, WriteBatch};

fn opts() -> Options {
    Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

fn collect(it: mantisdb_core::Iter) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| r.map(|(k, v)| (k, v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn put_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7u8; 10_000];
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        db.put(b"small", b"v1").unwrap();
        db.put(b"big", &big).unwrap();
        db.put(b"gone", b"x").unwrap();
        db.delete(b"gone").unwrap();
        db.delete(b"never-existed").unwrap();
        assert_eq!(db.get(b"small").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big[..]));
        assert_eq!(db.get(b"gone").unwrap(), None);
        let s = db.stats();
        assert_eq!((s.keys, s.writes, s.deletes), (2, 3, 2));
        db.close().unwrap();
        assert!(matches!(db.get(b"small"), Err(Error::Closed)));
        assert!(matches!(db.put(b"a", b"b"), Err(Error::Closed)));
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.get(b"small").unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big[..]));
    assert_eq!(db.get(b"gone").unwrap(), None);
    assert_eq!(db.stats().keys, 2);
    assert_eq!(db.recovery_report().records, 5);
}

#[test]
fn values_come_back_from_disk_without_cache() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        cache_bytes: 0,
        inline_threshold: 0,
        write_buffer_bytes: 1 << 20,
        ..opts()
    };
    let db = Db::open(dir.path(), o).unwrap();
    for i in 0..1000u32 {
        db.put(format!("k{i:05}").as_bytes(), format!("value-{i}").as_bytes())
            .unwrap();
    }
    // Some reads come from the unflushed write buffer, then from the file.
    assert_eq!(db.get(b"k00999").unwrap().as_deref(), Some(&b"value-999"[..]));
    db.sync().unwrap();
    for i in (0..1000u32).step_by(37) {
        let v = db.get(format!("k{i:05}").as_bytes()).unwrap().unwrap();
        assert_eq!(&*v, format!("value-{i}").as_bytes());
    }
}

#[test]
fn batches_are_atomic_and_later_op_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put(b"a", b"old").unwrap();
    let mut b = WriteBatch::new();
    b.put(b"x".to_vec(), b"1".to_vec())
        .put(b"x".to_vec(), b"2".to_vec())
        .delete(b"a".to_vec());
    db.write(&b).unwrap();
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get(b"a").unwrap(), None);
    db.write(&WriteBatch::new()).unwrap();
    // An invalid op rejects the whole batch.
    let mut bad = WriteBatch::new();
    bad.put(b"ok".to_vec(), b"1".to_vec()).put(Vec::new(), b"1".to_vec());
    assert!(matches!(db.write(&bad), Err(Error::InvalidKey { len: 0, .. })));
    assert_eq!(db.get(b"ok").unwrap(), None);
}

#[test]
fn limits_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            max_value_len: 100,
            ..opts()
        },
    )
    .unwrap();
    assert!(matches!(db.put(b"", b"v"), Err(Error::InvalidKey { len: 0, .. })));
    let long = vec![b'k'; 65_536];
    assert!(matches!(
        db.put(&long, b"v"),
        Err(Error::InvalidKey {
            len: 65_536,
            max: 65_535
        })
    ));
    assert!(matches!(db.get(&long), Err(Error::InvalidKey { .. })));
    db.put(&long[..65_535], b"v").unwrap();
    assert!(matches!(
        db.put(b"k", &[0u8; 101]),
        Err(Error::ValueTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        db.put_with_ttl(b"k", b"v", Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    assert!(Db::open(
        dir.path().join("x"),
        Options {
            segment_size: 10,
            ..opts()
        }
    )
    .is_err());
}

#[test]
fn second_open_of_a_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    match Db::open(dir.path(), opts()) {
        Err(Error::Locked { dir: d }) => assert_eq!(d, dir.path()),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
    drop(db);
    Db::open(dir.path(), opts()).unwrap();
}

#[test]
fn ttl_hides_expired_keys_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        db.put_with_ttl(b"short", b"v", Duration::from_millis(30)).unwrap();
        db.put_with_ttl(b"long", b"v", Duration::from_secs(3600)).unwrap();
        assert!(db.get(b"short").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(db.get(b"short").unwrap().is_none());
        let keys: Vec<_> = collect(db.scan_prefix(b"").unwrap())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"long".to_vec()]);
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.get(b"short").unwrap().is_none());
    assert!(db.get(b"long").unwrap().is_some());
}

#[test]
fn scans_prefix_range_and_seek() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for i in 0..300u32 {
        db.put(format!("p:{i:04}").as_bytes(), &i.to_le_bytes()).unwrap();
    }
    db.put(b"q", b"other").unwrap();
    db.put(b"o", b"other").unwrap();
    db.delete(b"p:0100").unwrap();
    let all = collect(db.scan_prefix(b"p:").unwrap());
    assert_eq!(all.len(), 299);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let r = collect(db.scan_range(b"p:0010", Some(b"p:0020")).unwrap());
    assert_eq!(r.len(), 10);
    assert_eq!(r[0].0, b"p:0010");
    let mut it = db.scan_prefix(b"p:").unwrap();
    it.seek(b"p:0250");
    assert_eq!(it.next().unwrap().unwrap().0, b"p:0250");
    it.seek(b"a");
    assert_eq!(it.next().unwrap().unwrap().0, b"p:0000");
}

#[test]
fn iterators_and_snapshots_see_one_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    for i in 0..200u32 {
        db.put(format!("k{i:03}").as_bytes(), b"before").unwrap();
    }
    let snap = db.snapshot().unwrap();
    let mut it = db.scan_prefix(b"k").unwrap();
    let first = it.next().unwrap().unwrap();
    for i in 0..200u32 {
        db.put(format!("k{i:03}").as_bytes(), b"after").unwrap();
    }
    db.put(b"k999", b"new").unwrap();
    db.delete(b"k150").unwrap();
    assert_eq!(&*first.1, b"before");
    let rest: Vec<_> = it.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 199);
    assert!(rest.iter().all(|(_, v)| &**v == b"before"));
    assert_eq!(snap.get(b"k150").unwrap().as_deref(), Some(&b"before"[..]));
    assert_eq!(snap.get(b"k999").unwrap(), None);
    assert_eq!(db.get(b"k150").unwrap(), None);
    assert_eq!(
        db.get_many(&[b"k001", b"k150", b"k999"])
            .unwrap()
            .iter()
            .map(|v| v.as_deref().map(<[u8]>::to_vec))
            .collect::<Vec<_>>(),
        vec![Some(b"after".to_vec()), None, Some(b"new".to_vec())]
    );
    assert_eq!(db.stats().open_snapshots, 1);
    drop(snap);
    assert_eq!(db.stats().open_snapshots, 0);
}

#[test]
fn segments_roll_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_size: 8 << 10,
        ..opts()
    };
    {
        let db = Db::open(dir.path(), o.clone()).unwrap();
        for i in 0..2000u32 {
            db.put(format!("key-{i}").as_bytes(), &[i as u8; 100]).unwrap();
        }
        assert!(db.stats().segments > 10, "segments: {}", db.stats().segments);
    }
    let db = Db::open(dir.path(), o).unwrap();
    for i in (0..2000u32).step_by(97) {
        assert_eq!(
            db.get(format!("key-{i}").as_bytes()).unwrap().as_deref(),
            Some(&[i as u8; 100][..])
        );
    }
    assert_eq!(db.stats().keys, 2000);
}

#[test]
fn always_policy_group_commits_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..16 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..20 {
                    db.put(format!("t{t}-{i}").as_bytes(), b"v").unwrap();
                }
            });
        }
    });
    let st = db.stats();
    assert_eq!(st.writes, 320);
    assert_eq!(st.synced_commits, 320);
    assert!(st.syncs < 320, "16 writers never shared a sync: {st:?}");
}

/// `get_with` lends the value (in place when it is inline in the index)
/// and answers as `get` does for inline, on-disk, deleted, expired and
/// missing keys, before and after compaction and reopen.
#[test]
fn get_with_lends_what_get_returns() {
    let dir = tempfile::tempdir().unwrap();
    let o = || Options {
        inline_threshold: 64,
        cache_bytes: 0,
        ..opts()
    };
    let db = Db::open(dir.path(), o()).unwrap();
    db.put(b"small", &[1u8; 10]).unwrap();
    db.put(b"large", &[2u8; 1000]).unwrap();
    db.put(b"gone", b"x").unwrap();
    db.delete(b"gone").unwrap();
    db.put_with_ttl(b"brief", b"y", Duration::from_millis(1)).unwrap();
    db.put_with_ttl(b"lasting", b"z", Duration::from_secs(3600)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let check = |db: &Db| {
        for k in [&b"small"[..], b"large", b"gone", b"brief", b"lasting", b"never"] {
            let want = db.get(k).unwrap().map(|v| v.to_vec());
            assert_eq!(db.get_with(k, |v| v.to_vec()).unwrap(), want, "{k:?}");
        }
        assert_eq!(db.get_with(b"small", <[u8]>::len).unwrap(), Some(10));
        assert_eq!(db.get_with(b"large", <[u8]>::len).unwrap(), Some(1000));
        assert_eq!(db.get_with(b"gone", <[u8]>::len).unwrap(), None);
        assert_eq!(db.get_with(b"brief", <[u8]>::len).unwrap(), None);
        assert_eq!(db.get_with(b"lasting", <[u8]>::len).unwrap(), Some(1));
    };
    check(&db);
    db.compact().unwrap();
    check(&db);
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), o()).unwrap();
    check(&db);
    assert!(matches!(db.get_with(b"", |_| ()), Err(Error::InvalidKey { .. })));
}
