//! Crash during compaction loses nothing: a child process overwrites and
//! deletes keys under `Always` while compaction runs constantly (background
//! and by hand, small segments), and is SIGKILLed at a random moment. After
//! reopening, each key holds its last acknowledged value (or, if a write to
//! it was in flight, possibly that one), deleted keys stay deleted, and
//! nothing else appears.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options, SyncPolicy};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "MANTIS_COMPACTION_CRASH_DIR";
const THREADS: u32 = 3;
const KEYS_PER_THREAD: u32 = 40;

fn options() -> Options {
    Options {
        sync: SyncPolicy::Always,
        segment_size: 8 << 10,
        compaction_threshold: 0.2,
        compaction_interval: Duration::from_millis(3),
        ..Options::default()
    }
}

#[test]
fn compaction_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Db::open(&dir, options()).unwrap();
    let out = Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut o = out.lock().unwrap();
        writeln!(o, "{line}").unwrap();
        o.flush().unwrap();
    };
    say("\nready".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::scope(|s| {
        s.spawn(|| {
            while Instant::now() < deadline {
                let r = db.compact().unwrap();
                if r.segments_in > 0 {
                    say(format!("C {}", r.segments_in));
                }
            }
        });
        for t in 0..THREADS {
            let (db, say) = (db.clone(), &say);
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64 ^ std::process::id() as u64);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let key = format!("t{t}-k{}", rng.random_range(0..KEYS_PER_THREAD));
                    n += 1;
                    if rng.random_range(0..5) == 0 {
                        say(format!("I {t} {key} -"));
                        db.delete(key.as_bytes()).unwrap();
                    } else {
                        let v = format!("{t}-{n}-{}", "x".repeat(rng.random_range(10..300)));
                        say(format!("I {t} {key} {v}"));
                        db.put(key.as_bytes(), v.as_bytes()).unwrap();
                    }
                    say(format!("A {t}"));
                }
            });
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill_during_compaction() {
    let cycles: u32 = std::env::var("MANTIS_COMPACTION_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // Per key: the last acknowledged state (None = deleted or never written).
    let mut acked: HashMap<String, Option<String>> = HashMap::new();
    let mut total_acks = 0u64;
    let mut compactions = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "compaction_crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, acked_once) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut out: Vec<String> = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("A ") && !out.iter().any(|l| l.starts_with("A ")) {
                    let _ = first_ack.send(());
                }
                out.push(line);
            }
            out
        });
        // The kill comes at a random moment after the first acknowledged
        // write, however slow the machine is to start the child.
        let _ = acked_once.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(lines.iter().any(|l| l == "ready"), "cycle {cycle}: child never started");
        // Replay the child's log: intents become acknowledged when their "A" arrives.
        let mut in_flight: HashMap<u32, (String, Option<String>)> = HashMap::new();
        for line in &lines {
            let mut parts = line.splitn(4, ' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("I"), Some(t), Some(k), Some(v)) => {
                    let v = (v != "-").then(|| v.to_string());
                    in_flight.insert(t.parse().unwrap(), (k.to_string(), v));
                }
                (Some("A"), Some(t), None, None) => {
                    let (k, v) = in_flight
                        .remove(&t.parse::<u32>().unwrap())
                        .expect("ack without intent");
                    acked.insert(k, v);
                    total_acks += 1;
                }
                _ => {}
            }
        }
        let db = Db::open(dir.path(), options()).unwrap();
        for t in 0..THREADS {
            for k in 0..KEYS_PER_THREAD {
                let key = format!("t{t}-k{k}");
                let got = db
                    .get(key.as_bytes())
                    .unwrap()
                    .map(|v| String::from_utf8(v.to_vec()).unwrap());
                let want = acked.get(&key).cloned().flatten();
                let pending = in_flight.values().find(|(pk, _)| *pk == key).map(|(_, v)| v.clone());
                if got != want && Some(got.clone()) != pending {
                    // Keep the evidence: the directory and the child's log.
                    let kept = dir.keep();
                    std::fs::write(kept.join("child-log.txt"), lines.join("\n")).unwrap();
                    panic!(
                        "cycle {cycle}: {key} is {got:?}, acknowledged {want:?}, in flight {pending:?} (directory kept at {})",
                        kept.display()
                    );
                }
                // An in-flight write that did land is the new truth.
                if got != want {
                    acked.insert(key, got);
                }
            }
        }
        assert_eq!(
            db.scan_prefix(b"").unwrap().count(),
            acked.values().filter(|v| v.is_some()).count(),
            "cycle {cycle}: keys appeared that were never written"
        );
        compactions += lines.iter().filter(|l| l.starts_with("C ")).count() as u64;
        drop(db);
    }
    assert!(total_acks > 100, "the child acknowledged only {total_acks} writes");
    assert!(compactions > 0, "no compaction ran while the child wrote");
    println!(
        "compaction crash: {cycles} SIGKILL cycles, {total_acks} acknowledged ops verified, {compactions} compactions"
    );
}
