//! Random puts without fsync (16-byte keys, 100-byte values, uniform over
//! KEYS keys) into a new database with default options, then waits until
//! every closed segment has its hint file, and prints:
//!
//! - `puts_per_s`: puts over the wall time of the put loop;
//! - `process_cpu_s`: CPU time of the whole process (user + system) from
//!   open to the last hint;
//! - `background_cpu_s`: CPU time of the background thread (hint files and
//!   compaction), from `/proc/self/task/*/stat`;
//! - `minor_faults`: page faults of the process (fresh pages mapped).
//!
//! ```sh
//! cargo run --release --example put_load [DIR [PUTS [KEYS]]]
//! ```

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use mantisdb_core::{Db, Options, SyncPolicy};

fn rusage() -> (Duration, i64) {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_minflt)
}

/// CPU seconds of the threads named `name` (as `/proc` shows it: at most 15 bytes).
fn thread_cpu(name: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0u64;
    for t in fs::read_dir("/proc/self/task").unwrap() {
        let t = t.unwrap().path();
        let comm = fs::read_to_string(t.join("comm")).unwrap_or_default();
        if !name.starts_with(comm.trim()) || comm.trim().is_empty() {
            continue;
        }
        let stat = fs::read_to_string(t.join("stat")).unwrap_or_default();
        // Fields after the parenthesized name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 12 {
            ticks += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    ticks as f64 / hz
}

fn count(dir: &Path, ext: &str) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == ext))
        .count()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tmp;
    let dir = match args.get(1) {
        Some(d) => {
            let _ = fs::remove_dir_all(d);
            Path::new(d).to_path_buf()
        }
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().join("db")
        }
    };
    let puts: u64 = args.get(2).map_or(1_000_000, |s| s.parse().unwrap());
    let keys: u64 = args.get(3).map_or(1_000_000, |s| s.parse().unwrap());
    let (cpu0, flt0) = rusage();
    let db = Db::open(
        &dir,
        Options {
            sync: SyncPolicy::Never,
            ..Options::default()
        },
    )
    .unwrap();
    let value = [7u8; 100];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let start = Instant::now();
    for _ in 0..puts {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let k = x.wrapping_mul(0x2545_f491_4f6c_dd1d) % keys;
        db.put(format!("key{k:013}").as_bytes(), &value).unwrap();
    }
    let wall = start.elapsed();
    // Every segment but the one being written gets a hint.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&dir, "hint") + 1 < count(&dir, "seg") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let bg = thread_cpu("mantisdb-compactor");
    let (cpu1, flt1) = rusage();
    println!(
        "puts_per_s={:.0} process_cpu_s={:.3} background_cpu_s={:.2} minor_faults={} segments={} hints={}",
        puts as f64 / wall.as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64(),
        bg,
        flt1 - flt0,
        count(&dir, "seg"),
        count(&dir, "hint"),
    );
    drop(db);
}
