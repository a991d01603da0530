//! What the measuring examples share: CPU clocks (the calling thread's,
//! the whole process's), threads run for a fixed time, the read-path key
//! format, a median and numeric command-line arguments. Each example
//! includes this file as a module and uses a part of it.
#![allow(dead_code)]

use std::io::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// CPU time the calling thread has used.
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes one timespec into the struct we own.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The 16-byte key of `id`: `key:` and twelve digits.
pub fn key(id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    write!(&mut k[..], "key:{id:012}").unwrap();
    k
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time (user + system) of the whole process so far.
pub fn process_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer, which points
    // to a zeroed, properly aligned `rusage` owned by this frame.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: getrusage returned 0, so it filled the struct (it was zeroed before anyway).
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What `run_threads` measured.
pub struct Run {
    /// Operations done, over all threads.
    pub ops: u64,
    /// Wall-clock time from the start until every thread had stopped.
    pub wall: Duration,
    /// CPU time the whole process used meanwhile.
    pub cpu: Duration,
}

/// Runs `threads` threads for `run_for`: thread `t` builds its operation
/// with `worker(t)`, then calls it (with the number of calls it made
/// before) until the time is up.
pub fn run_threads<W, Op>(threads: usize, run_for: Duration, worker: W) -> Run
where
    W: Fn(usize) -> Op + Sync,
    Op: FnMut(u64),
{
    let cpu_before = process_cpu();
    let start = Instant::now();
    let ops = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let worker = &worker;
                s.spawn(move || {
                    let mut op = worker(t);
                    let mut n = 0u64;
                    while start.elapsed() < run_for {
                        op(n);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).sum()
    });
    Run {
        ops,
        wall: start.elapsed(),
        cpu: process_cpu() - cpu_before,
    }
}

/// Command-line argument `n` (1 is the first) as a `T`, or `default` when
/// it is absent; `name` names it when it does not parse.
pub fn arg<T: FromStr>(n: usize, name: &str, default: T) -> T
where
    T::Err: std::fmt::Debug,
{
    std::env::args().nth(n).map_or(default, |a| {
        a.parse().unwrap_or_else(|e| panic!("{name} is a number: {e:?}"))
    })
}
