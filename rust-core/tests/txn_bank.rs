//! The bank test: threads move money between accounts in transactions,
//! retrying on conflict. Serializability means the total never changes: it
//! is checked in every snapshot scan taken during the run, after a clean
//! reopen, and after SIGKILL of a writer process at a random moment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Error, Options, SyncPolicy};
use rand::{Rng, SeedableRng};

const ACCOUNTS: u32 = 16;
const OPENING: u64 = 1_000;
const CHILD_ENV: &str = "MANTIS_BANK_CHILD_DIR";

fn account(i: u32) -> Vec<u8> {
    format!("acct:{i:03}").into_bytes()
}

fn decode(v: &[u8]) -> u64 {
    u64::from_le_bytes(v.try_into().expect("balance is 8 bytes"))
}

fn open(dir: &std::path::Path, sync: SyncPolicy) -> Db {
    Db::open(
        dir,
        Options {
            sync,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Opens `dir` again after this process closed it. The directory's lock
/// is released with the last descriptor of its file, and a child process
/// forked by another test of this binary (the crash test below) holds a
/// copy of every descriptor until it executes: for that moment the lock
/// stays held, and an open fails with `Locked`.
fn reopen(dir: &std::path::Path, sync: SyncPolicy) -> Db {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opts = Options {
            sync,
            ..Options::default()
        };
        match Db::open(dir, opts) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
}

/// Opens every account with the opening balance, once.
fn seed(db: &Db) {
    let mut t = db.begin().unwrap();
    if t.get(&account(0)).unwrap().is_some() {
        return;
    }
    for i in 0..ACCOUNTS {
        t.put(&account(i), &OPENING.to_le_bytes()).unwrap();
    }
    t.commit().unwrap();
}

fn total(db: &Db) -> u64 {
    let mut sum = 0;
    let mut n = 0;
    for item in db.scan_prefix(b"acct:").unwrap() {
        sum += decode(&item.unwrap().1);
        n += 1;
    }
    assert_eq!(n, ACCOUNTS, "an account went missing");
    sum
}

/// One transfer, retried until it commits. Returns the conflicts it met.
fn transfer(db: &Db, rng: &mut impl Rng) -> u64 {
    let mut conflicts = 0;
    loop {
        let from = rng.random_range(0..ACCOUNTS);
        let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
        let mut t = db.begin().unwrap();
        let a = decode(&t.get(&account(from)).unwrap().unwrap());
        let b = decode(&t.get(&account(to)).unwrap().unwrap());
        let amount = rng.random_range(0..=a.min(50));
        t.put(&account(from), &(a - amount).to_le_bytes()).unwrap();
        t.put(&account(to), &(b + amount).to_le_bytes()).unwrap();
        match t.commit() {
            Ok(()) => return conflicts,
            Err(Error::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("transfer failed: {e}"),
        }
    }
}

#[test]
fn total_is_constant_under_concurrent_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), SyncPolicy::Never);
    seed(&db);
    let expected = OPENING * ACCOUNTS as u64;
    let stop = Arc::new(AtomicBool::new(false));
    // The workers start once the checker has: on a busy machine the
    // checker's thread could otherwise first run after every transfer.
    let checking = Arc::new(AtomicBool::new(false));
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut scans = 0u64;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..4u64)
            .map(|seed| {
                let (db, conflicts, checking) = (db.clone(), Arc::clone(&conflicts), Arc::clone(&checking));
                s.spawn(move || {
                    while !checking.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                    for _ in 0..500 {
                        conflicts.fetch_add(transfer(&db, &mut rng), Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let checker = {
            let (db, stop, checking) = (db.clone(), Arc::clone(&stop), Arc::clone(&checking));
            s.spawn(move || {
                let mut n = 0u64;
                loop {
                    checking.store(true, Ordering::Release);
                    assert_eq!(total(&db), expected, "a snapshot scan saw money appear or vanish");
                    n += 1;
                    if stop.load(Ordering::Acquire) || n >= 100_000 {
                        break n;
                    }
                }
            })
        };
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        scans = checker.join().unwrap();
    });
    assert!(scans > 0);
    assert_eq!(total(&db), expected);
    println!(
        "bank: 2000 transfers, {} conflicts retried, {scans} consistent scans",
        conflicts.load(Ordering::Relaxed)
    );
    db.close().unwrap();
    drop(db);
    let db = reopen(dir.path(), SyncPolicy::Never);
    assert_eq!(total(&db), expected);
}

/// The writer process of the crash variant: transfers forever under `Always`.
#[test]
fn bank_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = open(std::path::Path::new(&dir), SyncPolicy::Always);
    seed(&db);
    println!("ready");
    std::thread::scope(|s| {
        for seed in 0..4u64 {
            let db = db.clone();
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ std::process::id() as u64);
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    transfer(&db, &mut rng);
                    // The parent waits for a first committed transfer before
                    // it picks the moment to kill.
                    println!("committed");
                }
            });
        }
    });
}

#[test]
fn total_survives_sigkill_during_transfers() {
    let cycles: u32 = std::env::var("MANTIS_BANK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut last_seq = 0;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "bank_crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("committed") => break,
                Some(_) => continue,
                None => panic!("child exited before it committed a transfer"),
            }
        }
        // Keep the pipe drained so the child never blocks on its output.
        let drain = std::thread::spawn(move || lines.count());
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        child.kill().unwrap();
        child.wait().unwrap();
        drain.join().unwrap();
        let db = open(dir.path(), SyncPolicy::Always);
        assert_eq!(
            total(&db),
            OPENING * ACCOUNTS as u64,
            "cycle {cycle}: total changed after a crash"
        );
        let seq = db.stats().last_seq;
        assert!(seq > last_seq, "cycle {cycle}: an acknowledged transfer is missing");
        last_seq = seq;
    }
    println!("bank crash: {cycles} SIGKILL cycles, {last_seq} commits recovered, total constant");
}
