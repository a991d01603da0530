//! Crash test with a real child process killed by SIGKILL.
//!
//! The test binary re-executes itself as a writer (`crash_child`, told where
//! the database is by `MANTIS_CRASH_CHILD_DIR`). The child opens the database
//! with `SyncPolicy::Always` and 64 KiB segments (so segments roll), runs
//! several writer threads doing single puts, single deletes and atomic
//! `WriteBatch`es (five keys `b-..-{i}` with one value, often also deleting an
//! earlier batch's keys), and prints one `ACK` line per call that returned Ok.
//! Each thread's operations come from an RNG seeded by the parent, so the
//! parent regenerates exactly what each acknowledgement stands for, and each
//! key is written by one thread only, so "the last acknowledged op on a key"
//! is well defined. The parent kills the child after a random delay (now and
//! then before it finished opening: a crash during recovery), reopens the
//! database, and proves:
//! - every acknowledged write is there with its value, and every key whose
//!   last acknowledged op was a delete is absent;
//! - each thread's one unacknowledged in-flight op is either wholly applied or
//!   wholly absent: no batch is torn, acknowledged or not (also checked over
//!   every batch key in the database);
//! - nothing else is there: the database equals the model exactly.
//!
//! The next cycle continues on the same directory (recovery after recovery).
//! 20 cycles by default; `MANTIS_CRASH_CYCLES=N` overrides (`make crash-test`
//! runs 300), `MANTIS_CRASH_SEED=S` replays a run. The seed is printed and
//! named in every failure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mantisdb_core::{Db, Options, SyncPolicy, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_DIR_ENV: &str = "MANTIS_CRASH_CHILD_DIR";
const CHILD_SEED_ENV: &str = "MANTIS_CRASH_CHILD_SEED";
const CHILD_CYCLE_ENV: &str = "MANTIS_CRASH_CHILD_CYCLE";
const THREADS: usize = 4;
const BATCH_KEYS: usize = 5;
const SINGLE_KEYS_PER_THREAD: u32 = 40;

fn crash_opts() -> Options {
    Options {
        sync: SyncPolicy::Always,
        segment_size: 64 << 10,
        ..Options::default()
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Del {
        key: Vec<u8>,
    },
    /// Puts `value` under the batch's five keys, and deletes the five keys of
    /// an earlier batch of the same thread if `delete` names one.
    Batch {
        id: String,
        value: Vec<u8>,
        delete: Option<String>,
    },
}

fn batch_keys(id: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..BATCH_KEYS).map(move |i| format!("{id}-{i}").into_bytes())
}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::Put { key, value } => format!("put {} ({} bytes)", String::from_utf8_lossy(key), value.len()),
            Op::Del { key } => format!("delete {}", String::from_utf8_lossy(key)),
            Op::Batch { id, delete, .. } => match delete {
                Some(d) => format!("batch {id} deleting {d}"),
                None => format!("batch {id}"),
            },
        }
    }

    fn run(&self, db: &Db) -> mantisdb_core::Result<()> {
        match self {
            Op::Put { key, value } => db.put(key, value),
            Op::Del { key } => db.delete(key),
            Op::Batch { id, value, delete } => {
                let mut b = WriteBatch::new();
                for k in batch_keys(id) {
                    b.put(k, value.clone());
                }
                if let Some(d) = delete {
                    for k in batch_keys(d) {
                        b.delete(k);
                    }
                }
                db.write(&b)
            }
        }
    }

    fn apply(&self, m: &mut Model) {
        match self {
            Op::Put { key, value } => {
                m.insert(key.clone(), value.clone());
            }
            Op::Del { key } => {
                m.remove(key);
            }
            Op::Batch { id, value, delete } => {
                if let Some(d) = delete {
                    for k in batch_keys(d) {
                        m.remove(&k);
                    }
                }
                for k in batch_keys(id) {
                    m.insert(k, value.clone());
                }
            }
        }
    }

    /// Whether the database state shows this op applied. Panics on a torn batch.
    fn applied_in(&self, actual: &Model, ctx: &str) -> bool {
        match self {
            Op::Put { key, value } => actual.get(key) == Some(value),
            Op::Del { key } => !actual.contains_key(key),
            Op::Batch { id, value, delete } => {
                let present = batch_keys(id).filter(|k| actual.get(k) == Some(value)).count();
                assert!(
                    present == 0 || present == BATCH_KEYS,
                    "{ctx}: in-flight batch {id} is torn: {present} of {BATCH_KEYS} keys present"
                );
                if present == BATCH_KEYS {
                    if let Some(d) = delete {
                        let left = batch_keys(d).filter(|k| actual.contains_key(k)).count();
                        assert_eq!(
                            left, 0,
                            "{ctx}: in-flight batch {id} is applied but {left} keys of {d} it deletes remain"
                        );
                    }
                }
                present == BATCH_KEYS
            }
        }
    }
}

/// The deterministic op stream of one writer thread in one cycle.
struct OpGen {
    rng: StdRng,
    cycle: u64,
    thread: usize,
    next: u64,
    /// Batches of this thread and cycle whose keys have not been deleted.
    live_batches: Vec<String>,
}

impl OpGen {
    fn new(seed: u64, cycle: u64, thread: usize) -> OpGen {
        let s = seed ^ cycle.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((thread as u64 + 1) << 48);
        OpGen {
            rng: StdRng::seed_from_u64(s),
            cycle,
            thread,
            next: 0,
            live_batches: Vec::new(),
        }
    }

    fn value(&mut self, tag: &str) -> Vec<u8> {
        let mut v = tag.as_bytes().to_vec();
        v.push(b'|');
        // Mostly small (inline or one page), now and then large enough that a
        // record spans pages and a kill can land inside its write.
        let len = if self.rng.random_bool(0.03) {
            self.rng.random_range(4096..40_000usize)
        } else {
            self.rng.random_range(0..300usize)
        };
        v.extend((0..len).map(|i| b'a' + (i % 26) as u8));
        v
    }

    fn single_key(&mut self) -> Vec<u8> {
        format!(
            "s-t{}-{:02}",
            self.thread,
            self.rng.random_range(0..SINGLE_KEYS_PER_THREAD)
        )
        .into_bytes()
    }

    fn next_op(&mut self) -> Op {
        let n = self.next;
        self.next += 1;
        let tag = format!("c{}-t{}-o{}", self.cycle, self.thread, n);
        match self.rng.random_range(0..20u32) {
            0..=8 => {
                let key = self.single_key();
                let value = self.value(&tag);
                Op::Put { key, value }
            }
            9..=11 => Op::Del { key: self.single_key() },
            _ => {
                let id = format!("b-c{}-t{}-{}", self.cycle, self.thread, n);
                let value = self.value(&tag);
                let delete = if self.live_batches.len() >= 2 && self.rng.random_bool(0.6) {
                    let i = self.rng.random_range(0..self.live_batches.len());
                    Some(self.live_batches.swap_remove(i))
                } else {
                    None
                };
                self.live_batches.push(id.clone());
                Op::Batch { id, value, delete }
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// The writer process. Does nothing unless the parent set `MANTIS_CRASH_CHILD_DIR`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    // Die with the parent, should it fail before killing us.
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
    }
    let seed = env_u64(CHILD_SEED_ENV).expect("child seed");
    let cycle = env_u64(CHILD_CYCLE_ENV).expect("child cycle");
    let db = match Db::open(&dir, crash_opts()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("child: open failed: {e}");
            std::process::exit(3);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY").unwrap();
        out.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let db = db.clone();
            s.spawn(move || {
                let mut gen = OpGen::new(seed, cycle, t);
                while Instant::now() < deadline {
                    let n = gen.next;
                    let op = gen.next_op();
                    if let Err(e) = op.run(&db) {
                        eprintln!("child: thread {t} op {n} ({}) failed: {e}", op.describe());
                        std::process::exit(4);
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {t} {n} {}", op.describe()).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
    // Never reached in a crash test: the parent kills us long before.
    eprintln!("child: ran to its deadline without being killed");
    std::process::exit(5);
}

struct CycleOutcome {
    acked_ops: u64,
    truncated: usize,
}

/// Reads the database after a crash and checks it against the model, which
/// it then advances to the observed state.
fn verify(
    dir: &Path,
    model: &mut Model,
    child_seed: u64,
    cycle: u64,
    acked: &[u64; THREADS],
    ctx: &str,
) -> CycleOutcome {
    let db = Db::open(dir, crash_opts()).unwrap_or_else(|e| panic!("{ctx}: open after the crash failed: {e}"));
    let truncated = db.recovery_report().truncated.len();
    let actual: Model = db
        .scan_prefix(b"")
        .unwrap()
        .map(|r| r.map(|(k, v)| (k, v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{ctx}: scan failed: {e}"));

    // No batch is torn, whichever cycle wrote it.
    let mut batches: BTreeMap<&[u8], (usize, &[u8])> = BTreeMap::new();
    for (k, v) in actual.iter().filter(|(k, _)| k.starts_with(b"b-")) {
        let id = &k[..k.iter().rposition(|&b| b == b'-').unwrap()];
        let e = batches.entry(id).or_insert((0, v));
        assert_eq!(
            e.1,
            v.as_slice(),
            "{ctx}: batch {} holds two values",
            String::from_utf8_lossy(id)
        );
        e.0 += 1;
    }
    for (id, (n, _)) in &batches {
        assert_eq!(*n, BATCH_KEYS, "{ctx}: batch {} is torn", String::from_utf8_lossy(id));
    }

    // Acknowledged ops, then each thread's in-flight op if the database shows it.
    let mut touched = Vec::new();
    let mut inflight_applied = 0;
    for (t, &n_acked) in acked.iter().enumerate() {
        let mut gen = OpGen::new(child_seed, cycle, t);
        for _ in 0..n_acked {
            let op = gen.next_op();
            op.apply(model);
            touched.push(op);
        }
        let op = gen.next_op();
        if op.applied_in(&actual, &format!("{ctx}, thread {t}")) {
            op.apply(model);
            inflight_applied += 1;
        }
        touched.push(op);
    }

    if &actual != model {
        let missing: Vec<_> = model.keys().filter(|k| !actual.contains_key(*k)).take(10).collect();
        let extra: Vec<_> = actual.keys().filter(|k| !model.contains_key(*k)).take(10).collect();
        let wrong: Vec<_> = model
            .iter()
            .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
            .map(|(k, _)| k)
            .take(10)
            .collect();
        let s = |v: Vec<&Vec<u8>>| {
            v.iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        };
        panic!(
            "{ctx}: database differs from the acknowledged writes (acks per thread {acked:?}, in-flight applied \
             {inflight_applied}): missing {:?}, unexpected {:?}, wrong value {:?}",
            s(missing),
            s(extra),
            s(wrong)
        );
    }
    // Point reads of everything this cycle touched agree too.
    for op in &touched {
        let keys: Vec<Vec<u8>> = match op {
            Op::Put { key, .. } | Op::Del { key } => vec![key.clone()],
            Op::Batch { id, delete, .. } => batch_keys(id)
                .chain(delete.iter().flat_map(|d| batch_keys(d)))
                .collect(),
        };
        for k in keys {
            let got = db.get(&k).unwrap_or_else(|e| panic!("{ctx}: get failed: {e}"));
            assert_eq!(
                got.as_deref(),
                model.get(&k).map(Vec::as_slice),
                "{ctx}: get {}",
                String::from_utf8_lossy(&k)
            );
        }
    }
    db.close().unwrap();
    CycleOutcome {
        acked_ops: acked.iter().sum(),
        truncated,
    }
}

#[test]
fn crash_recovery_cycles() {
    if std::env::var_os(CHILD_DIR_ENV).is_some() {
        return;
    }
    let cycles = env_u64("MANTIS_CRASH_CYCLES").unwrap_or(20);
    let seed = env_u64("MANTIS_CRASH_SEED")
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash test: {cycles} cycles, seed {seed} (MANTIS_CRASH_SEED={seed} replays the schedule)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut model = Model::new();
    let (mut acked_total, mut truncated_total, mut early_kills) = (0u64, 0usize, 0u64);
    let started = Instant::now();

    for cycle in 0..cycles {
        let child_seed: u64 = rng.random();
        // Now and then kill while the child may still be opening (recovering).
        let early = rng.random_bool(0.1);
        let delay = if early {
            Duration::from_millis(rng.random_range(0..40))
        } else {
            Duration::from_millis(rng.random_range(20..=300))
        };
        let ctx = format!("seed {seed}, cycle {cycle} (child seed {child_seed}, kill after {delay:?}, early {early})");

        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_SEED_ENV, child_seed.to_string())
            .env(CHILD_CYCLE_ENV, cycle.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{ctx}: spawning the child failed: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            // A line cut by the kill has no newline and is ignored. Lines are
            // "READY" and "ACK <thread> <op> <what>"; libtest may prefix the first.
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line.ends_with('\n') && tx.send(line.trim_end().to_string()).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });

        let mut lines = Vec::new();
        if !early {
            let until = Instant::now() + Duration::from_secs(120);
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(l) => {
                        let ready = l.ends_with("READY");
                        lines.push(l);
                        if ready {
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {}
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "{ctx}: the child never became ready; stderr:\n{}",
                            err_reader.join().unwrap()
                        );
                    }
                }
            }
        }
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{ctx}: the child exited on its own ({status}); stderr:\n{}",
                err_reader.join().unwrap()
            );
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        {
            use std::os::unix::process::ExitStatusExt;
            if status.signal() != Some(libc::SIGKILL) {
                panic!(
                    "{ctx}: the child ended with {status}, not SIGKILL; stderr:\n{}",
                    err_reader.join().unwrap()
                );
            }
        }
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let _ = err_reader.join();

        // Acknowledgements per thread; each thread acknowledges in order.
        let mut acked = [0u64; THREADS];
        let mut ready = false;
        for l in &lines {
            if l.ends_with("READY") {
                ready = true;
            }
            // The harness may print "test crash_child ... " before our first line.
            let Some(at) = l.find("ACK ") else {
                continue;
            };
            let mut parts = l[at..].splitn(4, ' ');
            if parts.next() != Some("ACK") {
                continue;
            }
            let t: usize = parts.next().and_then(|s| s.parse().ok()).expect("ACK thread");
            let n: u64 = parts.next().and_then(|s| s.parse().ok()).expect("ACK op");
            assert_eq!(n, acked[t], "{ctx}: thread {t} acknowledged op {n} out of order");
            acked[t] += 1;
        }
        if !ready {
            early_kills += 1;
        }

        let out = verify(dir.path(), &mut model, child_seed, cycle, &acked, &ctx);
        acked_total += out.acked_ops;
        truncated_total += out.truncated;
    }
    let summary = format!(
        "crash test: {cycles} cycles ({early_kills} killed before ready), {acked_total} acknowledged writes verified, \
         {truncated_total} torn tails truncated, {} keys at the end, seed {seed}, {:.1?}",
        model.len(),
        started.elapsed()
    );
    println!("{summary}");
    assert!(acked_total > 0 || cycles == 0, "no write was ever acknowledged");
}
