//! `abi_calls`: sequences of C ABI calls decoded from the input, checked
//! against a model.
//!
//! Each input is a program: every step picks a function of `ffi` and its
//! arguments. Arguments are drawn from what the contract allows and from
//! what it promises to refuse:
//! - `(pointer, length)` pairs: valid; NULL with a nonzero length
//!   (`MANTIS_NULL_PARAMETER`); a dangling non-NULL pointer with length 0
//!   (an empty slice); a length over `isize::MAX` (`MANTIS_INVALID_ARGUMENT`,
//!   never read);
//! - out-parameters: valid or NULL (`MANTIS_NULL_PARAMETER`); the error
//!   out-parameter NULL or not;
//! - handles: live; NULL (`MANTIS_NULL_PARAMETER`); freed
//!   (`MANTIS_INVALID_ARGUMENT`, and a second `_free` does nothing); a live
//!   handle of another kind (`MANTIS_INVALID_ARGUMENT`); a closed database
//!   (`MANTIS_CLOSED`); a finished transaction (`MANTIS_INVALID_ARGUMENT`);
//! - keys and values: small keys that collide, empty and oversized keys
//!   (`MANTIS_INVALID_KEY`), values over the limit (`MANTIS_VALUE_TOO_LARGE`),
//!   well-formed and malformed batch and key buffers.
//!
//! Checks: no call panics (`MANTIS_PANIC` fails the target) or crashes; a
//! call with a bad argument answers one of the statuses its bad arguments
//! call for and changes nothing; an error object is written exactly when the
//! status is an error, with that status and a NUL-terminated UTF-8 message;
//! every valid call agrees with a model: the database's contents (gets,
//! get-into, multi-gets), snapshots (a copy at creation), iterators (the
//! range at creation, paged and sought), and transactions (read-your-writes
//! over the state at begin; a commit conflicts exactly when a key it read or
//! wrote was committed by another writer after it began, and a read-only
//! one never does), and key metadata (a key's version changes exactly when a
//! commit writes the key: two reads agree on the version when the model has
//! no write of the key between them and order them as the model does; its
//! expiry is the one written, within the clock readings around a TTL put;
//! a put with a past absolute expiry removes the key).
//!
//! Freed handles: the library recognises one by its cleared live-tag only
//! while its memory is not reused (the contract says so); the quarantine
//! allocator of this crate keeps freed handles unused, and a freed handle is
//! passed only while [`crate::quarantine::held`] says it still is.

use std::collections::{BTreeMap, BTreeSet};
use std::ptr::{self, null_mut, NonNull};

use mantisdb_core::ffi::*;
use mantisdb_core::MAX_KEY_LEN;

use crate::input::Input;
use crate::quarantine;

use MantisStatus::*;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
/// A key and its new value (None: deleted).
type Write = (Vec<u8>, Option<Vec<u8>>);
/// The absolute expiry (Unix ms) a key must report, as an inclusive range:
/// a TTL put is resolved against a clock read between two readings here.
type Exp = (u64, u64);
/// No expiry.
const NEVER: Exp = (0, 0);
/// Any expiry (a damaged batch that still parsed).
const ANY: Exp = (0, u64::MAX);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The expiry range of a TTL put made between clock readings `before` and
/// `after`, as the library resolves it.
fn ttl_range(before: u64, after: u64, ttl_ms: u64) -> Exp {
    (
        before.saturating_add(ttl_ms).max(1),
        after.saturating_add(ttl_ms).max(1),
    )
}

/// An absolute expiry for a put: in the past (the put removes the key), or
/// an hour or more ahead, up to the largest the ABI can carry.
fn expiry_at(inp: &mut Input<'_>) -> u64 {
    match inp.below(4) {
        0 => inp.below(1000) as u64,
        1 => u64::MAX - inp.u8() as u64,
        _ => now_ms() + (3_600_000u64 << inp.below(16)),
    }
}

/// True when an absolute expiry `at` is surely past at commit time.
fn past(at: u64) -> bool {
    at < 1000
}

const MAX_VALUE: usize = 300;
const MAX_STEPS: usize = 96;
const MAX_OPENS: usize = 4;

/// One database directory: its contents and the keys of each commit.
#[derive(Default)]
struct Dir {
    data: Map,
    /// Keys of every commit, in order; `commits.len()` is the version.
    commits: Vec<Vec<Vec<u8>>>,
    /// Per present key: the index in `commits` of its last write, and its expiry.
    meta: BTreeMap<Vec<u8>, (usize, Exp)>,
    /// Versions the library reported, per key: model write index -> seq.
    seen: BTreeMap<Vec<u8>, BTreeMap<usize, u64>>,
}

impl Dir {
    /// Checks a version `seq` reported for `key` whose last write is the
    /// model's commit `write`: the same write always reports the same seq,
    /// and seqs order as the writes do.
    fn check_version(&mut self, key: &[u8], write: usize, seq: u64) {
        let seen = self.seen.entry(key.to_vec()).or_default();
        if let Some(&s) = seen.get(&write) {
            assert_eq!(seq, s, "version changed without a write of the key");
        }
        if let Some((_, &s)) = seen.range(..write).next_back() {
            assert!(seq > s, "a later write of the key has an older version");
        }
        if let Some((_, &s)) = seen.range(write + 1..).next() {
            assert!(seq < s, "an earlier write of the key has a newer version");
        }
        seen.insert(write, seq);
    }
}

/// Checks an expiry reported through an `int64_t` against its range.
fn check_expiry(got: i64, (lo, hi): Exp, what: &str) {
    let clamp = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    assert!(
        (clamp(lo)..=clamp(hi)).contains(&got),
        "{what}: expiry {got} outside {lo}..={hi}"
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// Freed when the quarantine counter read this.
    Freed(u64),
}

struct DbSlot {
    ptr: *mut MantisDb,
    dir: usize,
    closed: bool,
    state: State,
}

struct IterSlot {
    ptr: *mut MantisIter,
    db: usize,
    /// Every pair of the range at creation.
    all: Vec<(Vec<u8>, Vec<u8>)>,
    lower: Vec<u8>,
    pos: usize,
    /// An error was returned: it only reports its end from then on.
    failed: bool,
    state: State,
}

struct SnapSlot {
    ptr: *mut MantisSnapshot,
    db: usize,
    view: Map,
    state: State,
}

struct TxnSlot {
    ptr: *mut MantisTxn,
    db: usize,
    base: Map,
    base_meta: BTreeMap<Vec<u8>, (usize, Exp)>,
    begin: usize,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Expiry of each buffered put.
    expiries: BTreeMap<Vec<u8>, Exp>,
    reads: BTreeSet<Vec<u8>>,
    finished: bool,
    state: State,
}

/// A handle argument and what the call must answer because of it.
struct Handle<T> {
    ptr: *mut T,
    /// Index of the live slot, when it is one.
    slot: Option<usize>,
    refusal: Option<MantisStatus>,
}

/// A `(pointer, length)` argument.
struct Bytes {
    ptr: *const u8,
    len: usize,
    /// The bytes the library must see, or the status it must answer.
    expect: Result<Vec<u8>, MantisStatus>,
    _keep: Vec<u8>,
}

fn bytes_arg(inp: &mut Input<'_>, data: Vec<u8>) -> Bytes {
    match inp.below(24) {
        0 if !data.is_empty() => Bytes {
            ptr: ptr::null(),
            len: data.len(),
            expect: Err(MantisNullParameter),
            _keep: data,
        },
        1 => Bytes {
            ptr: NonNull::<u8>::dangling().as_ptr(),
            len: 0,
            expect: Ok(Vec::new()),
            _keep: data,
        },
        2 => Bytes {
            ptr: ptr::null(),
            len: 0,
            expect: Ok(Vec::new()),
            _keep: data,
        },
        3 => {
            let keep = vec![0u8; 1];
            Bytes {
                ptr: keep.as_ptr(),
                len: usize::MAX - inp.below(4),
                expect: Err(MantisInvalidArgument),
                _keep: keep,
            }
        }
        _ => Bytes {
            ptr: if data.is_empty() { ptr::null() } else { data.as_ptr() },
            len: data.len(),
            expect: Ok(data.clone()),
            _keep: data,
        },
    }
}

/// A key argument: a key drawn from the input, passed as `bytes_arg` decides.
fn key_arg(inp: &mut Input<'_>) -> Bytes {
    let d = key(inp);
    bytes_arg(inp, d)
}

fn key(inp: &mut Input<'_>) -> Vec<u8> {
    match inp.u8() {
        0 => Vec::new(),
        1 => vec![b'k'; MAX_KEY_LEN + 1],
        2 => vec![0xff; MAX_KEY_LEN],
        b => {
            let len = 1 + (b as usize % 3);
            (0..len).map(|_| b"ab\x00\xff"[inp.below(4)]).collect()
        }
    }
}

/// A caller's output buffer for a call: `buf`'s pointer, or NULL one time in
/// `odds`, which the call refuses (`MantisNullParameter`) unless the buffer
/// has no room to write into.
fn out_buffer_arg(inp: &mut Input<'_>, odds: usize, buf: &mut [u8], r: &mut Refusals) -> *mut u8 {
    if inp.below(odds) == 0 {
        if !buf.is_empty() {
            r.add(Some(MantisNullParameter));
        }
        null_mut()
    } else {
        buf.as_mut_ptr()
    }
}

/// Up to five keys in the key list of `mantis_multi_get` and
/// `mantis_get_many_into`, sometimes malformed (a count one past the keys,
/// a stray byte after them): the keys, the buffer argument, the count to
/// pass, and the refusals of the call's handle and of the list.
fn key_list_arg(inp: &mut Input<'_>, handle: Option<MantisStatus>) -> (Vec<Vec<u8>>, Bytes, usize, Refusals) {
    let n = inp.below(6);
    let keys: Vec<Vec<u8>> = (0..n).map(|_| key(inp)).collect();
    let mut buf = Vec::new();
    for k in &keys {
        buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
        buf.extend_from_slice(k);
    }
    let mut count = n;
    let malformed = match inp.below(10) {
        0 => {
            count += 1;
            true
        }
        1 => {
            buf.push(7);
            true
        }
        _ => false,
    };
    let kb = bytes_arg(inp, buf);
    let mut r = Refusals::of(handle);
    if r.bytes(&kb).is_some_and(|b| b.len() != kb._keep.len()) {
        // An empty slice stood in for the buffer.
        if count > 0 {
            r.add(Some(MantisInvalidArgument));
        }
    } else if malformed {
        r.add(Some(MantisInvalidArgument));
    }
    (keys, kb, count, r)
}

fn value(inp: &mut Input<'_>) -> Vec<u8> {
    let len = match inp.u8() {
        0 => MAX_VALUE + 1 + inp.below(8),
        b => b as usize % 40,
    };
    let fill = inp.u8();
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn key_ok(k: &[u8]) -> Result<(), MantisStatus> {
    if k.is_empty() || k.len() > MAX_KEY_LEN {
        return Err(MantisInvalidKey);
    }
    Ok(())
}

fn value_ok(v: &[u8]) -> Result<(), MantisStatus> {
    if v.len() > MAX_VALUE {
        return Err(MantisValueTooLarge);
    }
    Ok(())
}

/// The statuses the call's bad arguments allow; empty when all are good.
#[derive(Default)]
struct Refusals(Vec<MantisStatus>);

impl Refusals {
    /// Starts from the refusal of the call's handle, if any.
    fn of(handle: Option<MantisStatus>) -> Refusals {
        let mut r = Refusals::default();
        r.add(handle);
        r
    }
    /// The key passed as `b`, if its pointer and length are good; a key of
    /// a bad length adds `MANTIS_INVALID_KEY`.
    fn key(&mut self, b: &Bytes) -> Option<Vec<u8>> {
        let k = self.bytes(b);
        if let Some(k) = &k {
            self.add(key_ok(k).err());
        }
        k
    }
    fn add(&mut self, s: Option<MantisStatus>) {
        if let Some(s) = s {
            self.0.push(s);
        }
    }
    fn bytes(&mut self, b: &Bytes) -> Option<Vec<u8>> {
        match &b.expect {
            Ok(v) => Some(v.clone()),
            Err(s) => {
                self.0.push(*s);
                None
            }
        }
    }
    fn out<T>(&mut self, p: *mut T) {
        if p.is_null() {
            self.0.push(MantisNullParameter);
        }
    }
    fn any(&self) -> bool {
        !self.0.is_empty()
    }
    fn check(&self, got: MantisStatus, what: &str) {
        assert!(
            self.0.contains(&got),
            "{what}: status {got:?}, expected one of {:?}",
            self.0
        );
    }
}

/// The error out-parameter of one call.
struct Err {
    slot: *mut MantisError,
    pass: bool,
}

impl Err {
    fn new(inp: &mut Input<'_>) -> Self {
        Err {
            slot: null_mut(),
            pass: !inp.u8().is_multiple_of(8),
        }
    }
    fn ptr(&mut self) -> *mut *mut MantisError {
        if self.pass {
            &mut self.slot
        } else {
            null_mut()
        }
    }
    /// Checks the error object against the status, then frees it.
    fn check(self, status: MantisStatus, what: &str) {
        assert_ne!(status, MantisPanic, "{what}: the library panicked");
        let is_error = !matches!(status, MantisOk | MantisNotFound | MantisBufferTooSmall);
        if !self.pass {
            return;
        }
        if !is_error {
            assert!(self.slot.is_null(), "{what}: error object written with {status:?}");
            return;
        }
        assert!(!self.slot.is_null(), "{what}: no error object for {status:?}");
        // SAFETY: the library wrote a valid error object (checked non-null).
        unsafe {
            let e = &*self.slot;
            assert_eq!(e.status, status, "{what}: error object status");
            assert!(!e.message.is_null() && e.message_len > 0, "{what}: empty message");
            let msg = std::slice::from_raw_parts(e.message as *const u8, e.message_len + 1);
            assert_eq!(msg[e.message_len], 0, "{what}: message not NUL-terminated");
            assert!(!msg[..e.message_len].contains(&0));
            let text = std::str::from_utf8(&msg[..e.message_len]).expect("message is not UTF-8");
            LAST_ERROR.with(|l| *l.borrow_mut() = format!("{what}: {status:?}: {text}"));
            mantis_error_free(self.slot);
        }
    }
}

thread_local! {
    /// The last error message the library returned, printed when a check fails.
    static LAST_ERROR: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Takes a library buffer's bytes and frees it.
fn take(buf: &mut MantisBuf) -> Vec<u8> {
    let v = if buf.len == 0 {
        Vec::new()
    } else {
        // SAFETY: the library filled `buf` with `len` readable bytes.
        unsafe { std::slice::from_raw_parts(buf.data, buf.len) }.to_vec()
    };
    // SAFETY: a buffer the library filled, freed once.
    unsafe { mantis_buf_free(buf) };
    assert!(
        buf.data.is_null() && buf.len == 0 && buf.cap == 0,
        "buf_free did not clear the struct"
    );
    v
}

fn empty_buf() -> MantisBuf {
    MantisBuf {
        data: null_mut(),
        len: 0,
        cap: 0,
    }
}

struct World {
    dirs: Vec<Dir>,
    paths: Vec<std::path::PathBuf>,
    dbs: Vec<DbSlot>,
    iters: Vec<IterSlot>,
    snaps: Vec<SnapSlot>,
    txns: Vec<TxnSlot>,
    opens: usize,
}

fn usable(s: State) -> bool {
    match s {
        State::Live => true,
        State::Freed(at) => quarantine::held(at),
    }
}

/// Picks a handle argument from `slots` (with state and pointer given by
/// `get`), or NULL, or a live handle of another kind from `others`.
fn pick<T, S>(inp: &mut Input<'_>, slots: &[S], get: impl Fn(&S) -> (State, *mut T), others: &[*mut u8]) -> Handle<T> {
    let live: Vec<usize> = (0..slots.len()).filter(|&i| get(&slots[i]).0 == State::Live).collect();
    let freed: Vec<usize> = (0..slots.len())
        .filter(|&i| matches!(get(&slots[i]).0, State::Freed(_)) && usable(get(&slots[i]).0))
        .collect();
    let null = Handle {
        ptr: null_mut(),
        slot: None,
        refusal: Some(MantisNullParameter),
    };
    match inp.below(16) {
        0 => null,
        1 if !freed.is_empty() => Handle {
            ptr: get(&slots[freed[inp.below(freed.len())]]).1,
            slot: None,
            refusal: Some(MantisInvalidArgument),
        },
        2 if !others.is_empty() => Handle {
            ptr: others[inp.below(others.len())] as *mut T,
            slot: None,
            refusal: Some(MantisInvalidArgument),
        },
        _ if !live.is_empty() => {
            let i = live[inp.below(live.len())];
            Handle {
                ptr: get(&slots[i]).1,
                slot: Some(i),
                refusal: None,
            }
        }
        _ => null,
    }
}

impl World {
    fn live_ptrs(&self, except: usize) -> Vec<*mut u8> {
        let mut v = Vec::new();
        if except != 0 {
            v.extend(
                self.dbs
                    .iter()
                    .filter(|s| s.state == State::Live)
                    .map(|s| s.ptr as *mut u8),
            );
        }
        if except != 1 {
            v.extend(
                self.iters
                    .iter()
                    .filter(|s| s.state == State::Live)
                    .map(|s| s.ptr as *mut u8),
            );
        }
        if except != 2 {
            v.extend(
                self.snaps
                    .iter()
                    .filter(|s| s.state == State::Live)
                    .map(|s| s.ptr as *mut u8),
            );
        }
        if except != 3 {
            v.extend(
                self.txns
                    .iter()
                    .filter(|s| s.state == State::Live)
                    .map(|s| s.ptr as *mut u8),
            );
        }
        v
    }

    fn db(&self, inp: &mut Input<'_>) -> Handle<MantisDb> {
        let others = self.live_ptrs(0);
        let mut h = pick(inp, &self.dbs, |s| (s.state, s.ptr), &others);
        if let Some(i) = h.slot {
            if self.dbs[i].closed {
                h.refusal = Some(MantisClosed);
            }
        }
        h
    }

    /// True when database slot `i` is open (derived handles may still work
    /// after it closes, or answer `MANTIS_CLOSED`).
    fn open(&self, i: usize) -> bool {
        self.dbs[i].state == State::Live && !self.dbs[i].closed
    }

    /// Records a commit of `keys` with their new values, none expiring.
    fn commit(&mut self, dir: usize, ops: Vec<Write>) {
        self.commit_meta(dir, ops.into_iter().map(|w| (w, NEVER)).collect())
    }

    /// Records a commit of `keys` with their new values and expiries.
    fn commit_meta(&mut self, dir: usize, ops: Vec<(Write, Exp)>) {
        let d = &mut self.dirs[dir];
        let at = d.commits.len();
        d.commits.push(ops.iter().map(|((k, _), _)| k.clone()).collect());
        for ((k, v), exp) in ops {
            match v {
                Some(v) => {
                    d.meta.insert(k.clone(), (at, exp));
                    d.data.insert(k, v)
                }
                None => {
                    d.meta.remove(&k);
                    d.data.remove(&k)
                }
            };
        }
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        let op = inp.below(30);
        if std::env::var_os("MANTIS_FUZZ_TRACE").is_some() {
            eprintln!("step {op}");
        }
        match op {
            0 => self.open_db(inp),
            1 => self.close(inp),
            2 => self.db_free(inp),
            3 | 4 => self.put(inp),
            5 => self.delete(inp),
            6 => self.get(inp),
            7 => self.get_into(inp),
            8 => self.write_batch(inp),
            9 => {
                if inp.below(2) == 0 {
                    self.multi_get(inp)
                } else {
                    self.get_many_into(inp)
                }
            }
            10 => self.iter_new(inp),
            11 | 12 => self.iter_next(inp),
            13 => self.iter_seek(inp),
            14 => self.iter_free(inp),
            15 => self.snapshot_new(inp),
            16 => self.snapshot_get(inp),
            17 => self.snapshot_free(inp),
            18 => self.txn_begin(inp),
            19 => self.txn_put(inp),
            20 => self.txn_delete(inp),
            21 => self.txn_get(inp),
            22 => self.txn_commit(inp),
            23 => self.txn_rollback(inp),
            24 => self.txn_free(inp),
            25 => self.maintenance(inp),
            26 => self.frees_of_nothing(inp),
            27 => self.get_meta(inp),
            28 => self.txn_get_meta(inp),
            _ => self.txn_put_expiry(inp),
        }
    }

    fn open_db(&mut self, inp: &mut Input<'_>) {
        if self.opens >= MAX_OPENS {
            return;
        }
        self.opens += 1;
        let dir = inp.below(self.paths.len());
        let mut path = self.paths[dir].as_os_str().as_encoded_bytes().to_vec();
        let mut r = Refusals::default();
        match inp.below(12) {
            0 => path.clear(),
            1 => path.push(0),
            _ => {}
        }
        let path = bytes_arg(inp, path);
        if let Some(p) = r.bytes(&path) {
            if p.is_empty() || p.contains(&0) {
                r.add(Some(MantisInvalidArgument));
            }
        }
        let mut opts = mantis_options_default();
        opts.sync = MANTIS_SYNC_NEVER;
        opts.segment_size = 4096 << inp.below(2);
        opts.max_value_len = MAX_VALUE as u64;
        opts.inline_threshold = [0, 8, 64][inp.below(3)];
        opts.background_compaction = false;
        let bad_opts = inp.below(16) == 0;
        if bad_opts {
            opts.sync = MANTIS_SYNC_NEVER + 1 + inp.u8() as u32;
            r.add(Some(MantisInvalidArgument));
        }
        let mut out: *mut MantisDb = null_mut();
        let out_p: *mut *mut MantisDb = if inp.below(16) == 0 {
            r.add(Some(MantisNullParameter));
            null_mut()
        } else {
            &mut out
        };
        // Another live, open handle on the directory holds its lock.
        let locked = self
            .dbs
            .iter()
            .any(|s| s.dir == dir && s.state == State::Live && !s.closed);
        let mut err = Err::new(inp);
        // SAFETY: every pointer is valid for its length, NULL, or refused
        // before use (lengths over isize::MAX); `opts` and `out` are locals.
        let st = unsafe { mantis_open(path.ptr, path.len, &opts, out_p, err.ptr()) };
        err.check(st, "open");
        if r.any() {
            r.check(st, "open");
            return;
        }
        if locked {
            assert_eq!(st, MantisLocked, "open of a directory open elsewhere");
            return;
        }
        // A closed or freed handle holds the lock until it and every
        // iterator, snapshot and transaction made from it are freed.
        if st == MantisLocked && self.dbs.iter().any(|s| s.dir == dir) {
            return;
        }
        assert_eq!(st, MantisOk, "open");
        assert!(!out.is_null());
        self.dbs.push(DbSlot {
            ptr: out,
            dir,
            closed: false,
            state: State::Live,
        });
    }

    fn close(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let mut err = Err::new(inp);
        // SAFETY: a live handle, NULL, a freed handle still quarantined, or
        // a live handle of another kind.
        let st = unsafe { mantis_close(h.ptr, err.ptr()) };
        err.check(st, "close");
        match (h.slot, h.refusal) {
            // Closing twice succeeds.
            (Some(i), _) => {
                assert_eq!(st, MantisOk, "close");
                self.dbs[i].closed = true;
            }
            (None, Some(s)) => assert_eq!(st, s, "close of a bad handle"),
            (None, None) => unreachable!(),
        }
    }

    fn db_free(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        // SAFETY: as in `close`; a bad handle must be left alone.
        unsafe { mantis_db_free(h.ptr) };
        if let Some(i) = h.slot {
            self.dbs[i].closed = true;
            self.dbs[i].state = State::Freed(quarantine::freed());
        }
    }

    fn put(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let k = key(inp);
        let v = value(inp);
        let ttl = inp.u8();
        let (kb, vb) = (bytes_arg(inp, k), bytes_arg(inp, v));
        let mut r = Refusals::of(h.refusal);
        let k = r.bytes(&kb);
        let v = r.bytes(&vb);
        if let (Some(k), Some(v)) = (&k, &v) {
            r.add(key_ok(k).err());
            r.add(value_ok(v).err());
        }
        let mut err = Err::new(inp);
        let ttl_ms = match ttl % 4 {
            1 => Some(u64::MAX - ttl as u64),
            2 => Some(3_600_000 << (ttl % 16)),
            _ => None,
        };
        let before = now_ms();
        // SAFETY: see `bytes_arg` and `pick`.
        let st = unsafe {
            match ttl % 4 {
                0 => {
                    r.add(Some(MantisInvalidArgument));
                    mantis_put_ttl(h.ptr, kb.ptr, kb.len, vb.ptr, vb.len, 0, err.ptr())
                }
                1 => mantis_put_ttl(h.ptr, kb.ptr, kb.len, vb.ptr, vb.len, u64::MAX - ttl as u64, err.ptr()),
                2 => mantis_put_ttl(
                    h.ptr,
                    kb.ptr,
                    kb.len,
                    vb.ptr,
                    vb.len,
                    3_600_000 << (ttl % 16),
                    err.ptr(),
                ),
                _ => mantis_put(h.ptr, kb.ptr, kb.len, vb.ptr, vb.len, err.ptr()),
            }
        };
        let exp = ttl_ms.map_or(NEVER, |t| ttl_range(before, now_ms(), t));
        err.check(st, "put");
        if r.any() {
            r.check(st, "put");
            return;
        }
        assert_eq!(st, MantisOk, "put");
        let dir = self.dbs[h.slot.unwrap()].dir;
        self.commit_meta(dir, vec![((k.unwrap(), v), exp)]);
    }

    fn delete(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`.
        let st = unsafe { mantis_delete(h.ptr, kb.ptr, kb.len, err.ptr()) };
        err.check(st, "delete");
        if r.any() {
            r.check(st, "delete");
            return;
        }
        assert_eq!(st, MantisOk, "delete");
        let dir = self.dbs[h.slot.unwrap()].dir;
        self.commit(dir, vec![(k.unwrap(), None)]);
    }

    fn get(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let mut out = empty_buf();
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`; `out_p` is NULL or a local.
        let st = unsafe { mantis_get(h.ptr, kb.ptr, kb.len, out_p, err.ptr()) };
        err.check(st, "get");
        if r.any() {
            r.check(st, "get");
            assert!(out.data.is_null(), "get wrote its output on failure");
            return;
        }
        let want = self.dirs[self.dbs[h.slot.unwrap()].dir].data.get(&k.unwrap()).cloned();
        match want {
            None => {
                assert_eq!(st, MantisNotFound, "get of an absent key");
                assert!(out.data.is_null() && out.len == 0, "NOT_FOUND wrote the output");
            }
            Some(v) => {
                assert_eq!(st, MantisOk, "get");
                assert_eq!(take(&mut out), v, "get: wrong value");
            }
        }
    }

    fn get_into(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let cap = inp.below(48);
        let mut dst = vec![0xEEu8; cap];
        let dst_null = inp.below(8) == 0;
        let dst_p = if dst_null { null_mut() } else { dst.as_mut_ptr() };
        let mut len = usize::MAX;
        let len_p: *mut usize = if inp.below(16) == 0 { null_mut() } else { &mut len };
        r.out(len_p);
        let mut err = Err::new(inp);
        // SAFETY: `dst_p` is NULL or `cap` writable bytes; the rest as in `get`.
        let st = unsafe { mantis_get_into(h.ptr, kb.ptr, kb.len, dst_p, cap, len_p, err.ptr()) };
        err.check(st, "get_into");
        if r.any() {
            r.check(st, "get_into");
            return;
        }
        let want = self.dirs[self.dbs[h.slot.unwrap()].dir].data.get(&k.unwrap()).cloned();
        match want {
            None => assert_eq!(st, MantisNotFound, "get_into of an absent key"),
            Some(v) => {
                assert_eq!(len, v.len(), "get_into: value length");
                if v.len() > cap {
                    assert_eq!(st, MantisBufferTooSmall, "get_into into a small buffer");
                    assert!(dst.iter().all(|&b| b == 0xEE), "get_into wrote into a small buffer");
                } else if !v.is_empty() && dst_null {
                    assert_eq!(st, MantisNullParameter, "get_into into NULL");
                } else {
                    assert_eq!(st, MantisOk, "get_into");
                    assert_eq!(&dst[..v.len()], &v[..], "get_into: wrong value");
                    assert!(
                        dst[v.len()..].iter().all(|&b| b == 0xEE),
                        "get_into wrote past the value"
                    );
                }
            }
        }
    }

    fn write_batch(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let n = inp.below(6);
        let mut buf = Vec::new();
        let mut ops = Vec::new();
        // The refusals of the bad ops: any one of them may answer (the
        // library need not check the ops in order: it may see a later
        // value too large before an earlier key that is invalid).
        let mut bad: Vec<MantisStatus> = Vec::new();
        // Absolute expiries are for TTL puts' clock readings: taken first.
        let before = now_ms();
        for _ in 0..n {
            let k = key(inp);
            let kind = match inp.below(6) {
                0 | 1 => MANTIS_BATCH_DELETE,
                2 => MANTIS_BATCH_PUT_AT,
                _ => MANTIS_BATCH_PUT,
            };
            let del = kind == MANTIS_BATCH_DELETE;
            let v = if del { Vec::new() } else { value(inp) };
            let when: u64 = match kind {
                MANTIS_BATCH_PUT_AT => expiry_at(inp),
                _ if inp.below(4) == 0 => 3_600_000,
                _ => 0,
            };
            buf.extend_from_slice(&batch_op_header(kind, k.len(), v.len(), when));
            buf.extend_from_slice(&k);
            buf.extend_from_slice(&v);
            bad.extend(key_ok(&k).err());
            bad.extend(value_ok(&v).err());
            // The TTL range's upper end is filled in after the call.
            let exp = match kind {
                MANTIS_BATCH_DELETE => NEVER,
                MANTIS_BATCH_PUT_AT => (when, when),
                _ if when == 0 => NEVER,
                _ => (when, when),
            };
            let removes = del || (kind == MANTIS_BATCH_PUT_AT && past(when));
            ops.push(((k, (!removes).then_some(v)), exp, kind == MANTIS_BATCH_PUT && when > 0));
        }
        let mut count = n;
        let mut malformed = false;
        match inp.below(12) {
            0 => {
                count += 1 + inp.below(3);
                malformed = true;
            }
            1 if !buf.is_empty() => {
                let at = inp.u8() as usize % buf.len();
                buf.truncate(at);
                malformed = true;
            }
            2 => {
                buf.push(inp.u8());
                malformed = true;
            }
            3 if !buf.is_empty() => {
                // Overwrite a kind or a length field of the first op.
                let at = inp.below(MANTIS_BATCH_TTL_OFFSET);
                buf[at] = inp.u8();
                malformed = true;
            }
            _ => {}
        }
        let bb = bytes_arg(inp, buf.clone());
        let mut r = Refusals::of(h.refusal);
        let seen = r.bytes(&bb);
        if h.refusal == Some(MantisClosed) {
            // The buffer is parsed before the database is asked.
            r.add(Some(MantisInvalidArgument));
            for s in &bad {
                r.add(Some(*s));
            }
        }
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`.
        let st = unsafe { mantis_write_batch(h.ptr, bb.ptr, bb.len, count, err.ptr()) };
        let after = now_ms();
        let ops: Vec<(Write, Exp)> = ops
            .into_iter()
            .map(|(w, exp, ttl)| (w, if ttl { ttl_range(before, after, exp.0) } else { exp }))
            .collect();
        err.check(st, "write_batch");
        if r.any() {
            r.check(st, "write_batch");
            return;
        }
        let seen = seen.unwrap();
        if malformed || seen != buf {
            // Whatever the damage, it is refused as malformed or for what
            // the parsed ops hold; or, if it still parses, it is applied.
            if st != MantisOk {
                assert!(
                    matches!(st, MantisInvalidArgument | MantisInvalidKey | MantisValueTooLarge),
                    "write_batch of a damaged buffer: {st:?}"
                );
                return;
            }
            // A damaged buffer that still parsed: learn what it held from
            // the database itself is not possible here; damage that parses
            // only ever moves bytes between keys and values, so mark every
            // key it may touch unknown by reparsing it.
            let parsed = parse_batch(&seen, count).expect("a batch the library accepted must parse");
            let dir = self.dbs[h.slot.unwrap()].dir;
            self.commit_meta(dir, parsed);
            return;
        }
        if !bad.is_empty() {
            assert!(
                bad.contains(&st),
                "write_batch with a bad op: status {st:?}, expected one of {bad:?}"
            );
            return;
        }
        assert_eq!(st, MantisOk, "write_batch");
        let dir = self.dbs[h.slot.unwrap()].dir;
        if !ops.is_empty() {
            self.commit_meta(dir, ops);
        }
    }

    fn multi_get(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let (keys, kb, count, mut r) = key_list_arg(inp, h.refusal);
        let mut out = empty_buf();
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `get`.
        let st = unsafe { mantis_multi_get(h.ptr, kb.ptr, kb.len, count, out_p, err.ptr()) };
        err.check(st, "multi_get");
        if r.any() {
            r.check(st, "multi_get");
            return;
        }
        if keys.iter().any(|k| key_ok(k).is_err()) {
            // An invalid key may be refused, or read as absent.
            if st == MantisInvalidKey {
                return;
            }
        }
        if count == 0 && kb.len == 0 {
            assert_eq!(st, MantisOk, "multi_get of nothing");
            assert!(take(&mut out).is_empty());
            return;
        }
        assert_eq!(st, MantisOk, "multi_get");
        let data = &self.dirs[self.dbs[h.slot.unwrap()].dir].data;
        let mut want = Vec::new();
        for k in &keys {
            let v = data.get(k);
            want.push(v.is_some() as u8);
            let v: &[u8] = v.map_or(&[], |v| v);
            want.extend_from_slice(&(v.len() as u32).to_le_bytes());
            want.extend_from_slice(v);
        }
        assert_eq!(take(&mut out), want, "multi_get: wrong answer");
    }

    fn get_many_into(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let (keys, kb, count, mut r) = key_list_arg(inp, h.refusal);
        let n = keys.len();
        let cap = inp.below(64);
        let mut dst = vec![0xEEu8; cap];
        let dst_p = out_buffer_arg(inp, 8, &mut dst, &mut r);
        let mut lens = vec![0u8; 8 * count];
        let lens_p = out_buffer_arg(inp, 16, &mut lens, &mut r);
        let mut done = usize::MAX;
        let done_p: *mut usize = if inp.below(16) == 0 { null_mut() } else { &mut done };
        r.out(done_p);
        let mut err = Err::new(inp);
        // SAFETY: `dst_p` is NULL or `cap` writable bytes, `lens_p` NULL or
        // `8 * count`, `done_p` NULL or a local; the rest as in `multi_get`.
        let st = unsafe { mantis_get_many_into(h.ptr, kb.ptr, kb.len, count, dst_p, cap, lens_p, done_p, err.ptr()) };
        err.check(st, "get_many_into");
        if r.any() {
            r.check(st, "get_many_into");
            return;
        }
        // The keys in order, as the call reads them.
        let data = &self.dirs[self.dbs[h.slot.unwrap()].dir].data;
        let mut at = 0;
        for (i, k) in keys.iter().enumerate() {
            let len = u64::from_le_bytes(lens[8 * i..8 * i + 8].try_into().unwrap());
            if key_ok(k).is_err() && st == MantisInvalidKey {
                assert_eq!(done, i, "get_many_into: keys answered before an invalid one");
                return;
            }
            match data.get(k) {
                None => assert_eq!(len, MANTIS_VALUE_ABSENT, "get_many_into: absent key {i}"),
                Some(v) => {
                    assert_eq!(len, v.len() as u64, "get_many_into: length of key {i}");
                    if v.len() > cap - at {
                        assert_eq!(st, MantisBufferTooSmall, "get_many_into past the room");
                        assert_eq!(done, i, "get_many_into: keys answered before the one that did not fit");
                        return;
                    }
                    assert_eq!(&dst[at..at + v.len()], &v[..], "get_many_into: value of key {i}");
                    at += v.len();
                }
            }
        }
        assert_eq!(st, MantisOk, "get_many_into");
        assert_eq!(done, n, "get_many_into: keys answered");
        assert!(
            dst[at..].iter().all(|&b| b == 0xEE),
            "get_many_into wrote past its values"
        );
    }

    fn iter_new(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let prefix_mode = inp.u8() & 1 == 1;
        let sb = {
            let d: Vec<u8> = key(inp).into_iter().take(2).collect();
            bytes_arg(inp, d)
        };
        let eb = {
            let d = if inp.below(3) == 0 { Vec::new() } else { key(inp) };
            bytes_arg(inp, d)
        };
        let mut r = Refusals::of(h.refusal);
        let s = r.bytes(&sb);
        let e = r.bytes(&eb);
        let mut out: *mut MantisIter = null_mut();
        let out_p: *mut *mut MantisIter = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`; `out_p` is NULL or a local.
        let st = unsafe { mantis_iter_new(h.ptr, sb.ptr, sb.len, eb.ptr, eb.len, prefix_mode, out_p, err.ptr()) };
        err.check(st, "iter_new");
        if r.any() {
            r.check(st, "iter_new");
            assert!(out.is_null());
            return;
        }
        assert_eq!(st, MantisOk, "iter_new");
        let (s, e) = (s.unwrap(), e.unwrap());
        let db = h.slot.unwrap();
        let all = self.dirs[self.dbs[db].dir]
            .data
            .iter()
            .filter(|(k, _)| {
                if prefix_mode {
                    k.starts_with(&s)
                } else {
                    **k >= s && (e.is_empty() || **k < e)
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.iters.push(IterSlot {
            ptr: out,
            db,
            all,
            lower: s,
            pos: 0,
            failed: false,
            state: State::Live,
        });
    }

    fn iter(&self, inp: &mut Input<'_>) -> Handle<MantisIter> {
        let others = self.live_ptrs(1);
        pick(inp, &self.iters, |s| (s.state, s.ptr), &others)
    }

    fn iter_next(&mut self, inp: &mut Input<'_>) {
        let h = self.iter(inp);
        let max_items = inp.below(5);
        let max_bytes = [0, 1, 16, 4096][inp.below(4)];
        // Either call: a batch copied into a buffer of ours, or a view of
        // the iterator's own buffer (read before the next call on it).
        let borrowed = inp.below(2) == 0;
        let mut out = empty_buf();
        let mut view: *const u8 = ptr::dangling();
        let mut view_len = usize::MAX;
        let mut count = usize::MAX;
        let mut r = Refusals::of(h.refusal);
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        let view_p: *mut *const u8 = if inp.below(16) == 0 { null_mut() } else { &mut view };
        let view_len_p: *mut usize = if inp.below(16) == 0 { null_mut() } else { &mut view_len };
        let count_p: *mut usize = if inp.below(16) == 0 { null_mut() } else { &mut count };
        if borrowed {
            r.out(view_p);
            r.out(view_len_p);
        } else {
            r.out(out_p);
        }
        r.out(count_p);
        let mut err = Err::new(inp);
        let st = if borrowed {
            // SAFETY: see `pick`; the out-parameters are NULL or locals.
            unsafe { mantis_iter_next_view(h.ptr, max_items, max_bytes, view_p, view_len_p, count_p, err.ptr()) }
        } else {
            // SAFETY: see `pick`; the out-parameters are NULL or locals.
            unsafe { mantis_iter_next_batch(h.ptr, max_items, max_bytes, out_p, count_p, err.ptr()) }
        };
        err.check(st, "iter_next_batch");
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.iters[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "iter_next_batch");
            return;
        }
        let open = self.open(self.iters[h.slot.unwrap()].db);
        let it = &mut self.iters[h.slot.unwrap()];
        if st == MantisClosed && !open {
            // After an error the iterator reports its end (Iter is fused on errors).
            it.pos = it.all.len();
            it.failed = true;
            return;
        }
        assert_eq!(st, MantisOk, "iter_next_batch");
        let got = if !borrowed {
            take(&mut out)
        } else if count == 0 {
            assert!(view.is_null() && view_len == 0, "iterator: an empty view with data");
            Vec::new()
        } else {
            assert!(!view.is_null(), "iterator: a NULL view of {count} pairs");
            // SAFETY: the library lent `view_len` bytes at `view`, valid
            // until the next call on this iterator; they are copied now.
            unsafe { std::slice::from_raw_parts(view, view_len) }.to_vec()
        };
        let mut at = 0;
        let mut size = 0;
        for n in 0..count {
            let (k, v) = it
                .all
                .get(it.pos + n)
                .expect("iterator returned more pairs than the range holds");
            let kl = u32_at(&got, at).expect("iterator: key length") as usize;
            let vl = u32_at(&got, at + 4).expect("iterator: value length") as usize;
            at += MANTIS_ITER_PAIR_HEADER_LEN;
            assert_eq!(&got[at..at + kl], &k[..], "iterator: wrong key");
            at += kl;
            assert_eq!(&got[at..at + vl], &v[..], "iterator: wrong value");
            at += vl;
            size = at;
        }
        assert_eq!(at, got.len(), "iterator: bytes after the last pair");
        let left = it.all.len() - it.pos;
        assert!(
            count <= max_items.max(1),
            "iterator: {count} pairs over max_items {max_items}"
        );
        if count < max_items.max(1).min(left) {
            assert!(
                count >= 1 && size >= max_bytes,
                "iterator stopped early: {count} of {left} pairs, {size} bytes"
            );
        }
        it.pos += count;
    }

    fn iter_seek(&mut self, inp: &mut Input<'_>) {
        let h = self.iter(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.bytes(&kb);
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`.
        let st = unsafe { mantis_iter_seek(h.ptr, kb.ptr, kb.len, err.ptr()) };
        err.check(st, "iter_seek");
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.iters[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "iter_seek");
            return;
        }
        assert_eq!(st, MantisOk, "iter_seek");
        let it = &mut self.iters[h.slot.unwrap()];
        if !it.failed {
            let target = k.unwrap().max(it.lower.clone());
            it.pos = it.all.partition_point(|(k, _)| *k < target);
        }
    }

    fn iter_free(&mut self, inp: &mut Input<'_>) {
        let h = self.iter(inp);
        // SAFETY: see `pick`; a bad handle must be left alone.
        unsafe { mantis_iter_free(h.ptr) };
        if let Some(i) = h.slot {
            self.iters[i].state = State::Freed(quarantine::freed());
        }
    }

    fn snapshot_new(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let mut r = Refusals::of(h.refusal);
        let mut out: *mut MantisSnapshot = null_mut();
        let out_p: *mut *mut MantisSnapshot = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `pick`; `out_p` is NULL or a local.
        let st = unsafe { mantis_snapshot_new(h.ptr, out_p, err.ptr()) };
        err.check(st, "snapshot_new");
        if r.any() {
            r.check(st, "snapshot_new");
            return;
        }
        assert_eq!(st, MantisOk, "snapshot_new");
        let db = h.slot.unwrap();
        let view = self.dirs[self.dbs[db].dir].data.clone();
        self.snaps.push(SnapSlot {
            ptr: out,
            db,
            view,
            state: State::Live,
        });
    }

    fn snapshot_get(&mut self, inp: &mut Input<'_>) {
        let others = self.live_ptrs(2);
        let h = pick(inp, &self.snaps, |s| (s.state, s.ptr), &others);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let mut out = empty_buf();
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `get`.
        let st = unsafe { mantis_snapshot_get(h.ptr, kb.ptr, kb.len, out_p, err.ptr()) };
        err.check(st, "snapshot_get");
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.snaps[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "snapshot_get");
            return;
        }
        let s = &self.snaps[h.slot.unwrap()];
        if st == MantisClosed && !self.open(s.db) {
            return;
        }
        match s.view.get(&k.unwrap()) {
            None => assert_eq!(st, MantisNotFound, "snapshot_get of an absent key"),
            Some(v) => {
                assert_eq!(st, MantisOk, "snapshot_get");
                assert_eq!(&take(&mut out), v, "snapshot_get: wrong value");
            }
        }
    }

    fn snapshot_free(&mut self, inp: &mut Input<'_>) {
        let others = self.live_ptrs(2);
        let h = pick(inp, &self.snaps, |s| (s.state, s.ptr), &others);
        // SAFETY: see `pick`; a bad handle must be left alone.
        unsafe { mantis_snapshot_free(h.ptr) };
        if let Some(i) = h.slot {
            self.snaps[i].state = State::Freed(quarantine::freed());
        }
    }

    fn txn(&self, inp: &mut Input<'_>) -> Handle<MantisTxn> {
        let others = self.live_ptrs(3);
        let mut h = pick(inp, &self.txns, |s| (s.state, s.ptr), &others);
        if let Some(i) = h.slot {
            if self.txns[i].finished {
                h.refusal = Some(MantisInvalidArgument);
            }
        }
        h
    }

    fn txn_begin(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let mut r = Refusals::of(h.refusal);
        let mut out: *mut MantisTxn = null_mut();
        let out_p: *mut *mut MantisTxn = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `pick`; `out_p` is NULL or a local.
        let st = unsafe { mantis_txn_begin(h.ptr, out_p, err.ptr()) };
        err.check(st, "txn_begin");
        if r.any() {
            r.check(st, "txn_begin");
            return;
        }
        assert_eq!(st, MantisOk, "txn_begin");
        let db = h.slot.unwrap();
        let d = &self.dirs[self.dbs[db].dir];
        self.txns.push(TxnSlot {
            ptr: out,
            db,
            base: d.data.clone(),
            base_meta: d.meta.clone(),
            begin: d.commits.len(),
            writes: BTreeMap::new(),
            expiries: BTreeMap::new(),
            reads: BTreeSet::new(),
            finished: false,
            state: State::Live,
        });
    }

    fn txn_write(&mut self, inp: &mut Input<'_>, delete: bool) {
        let h = self.txn(inp);
        let kb = key_arg(inp);
        let vb = {
            let d = if delete { Vec::new() } else { value(inp) };
            bytes_arg(inp, d)
        };
        let mut r = Refusals::of(h.refusal);
        let k = r.bytes(&kb);
        let v = if delete { Some(Vec::new()) } else { r.bytes(&vb) };
        if let (Some(k), Some(v)) = (&k, &v) {
            r.add(key_ok(k).err());
            r.add(value_ok(v).err());
        }
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`.
        let st = unsafe {
            if delete {
                mantis_txn_delete(h.ptr, kb.ptr, kb.len, err.ptr())
            } else {
                mantis_txn_put(h.ptr, kb.ptr, kb.len, vb.ptr, vb.len, err.ptr())
            }
        };
        err.check(st, "txn write");
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.txns[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "txn write");
            return;
        }
        let t = &mut self.txns[h.slot.unwrap()];
        if st == MantisClosed && !self.dbs[t.db].closed {
            panic!("txn write answered CLOSED on an open database");
        }
        if st == MantisClosed {
            return;
        }
        assert_eq!(st, MantisOk, "txn write");
        let k = k.unwrap();
        t.expiries.insert(k.clone(), NEVER);
        t.writes.insert(k, (!delete).then(|| v.unwrap()));
    }

    fn txn_put(&mut self, inp: &mut Input<'_>) {
        self.txn_write(inp, false)
    }

    fn txn_delete(&mut self, inp: &mut Input<'_>) {
        self.txn_write(inp, true)
    }

    fn txn_get(&mut self, inp: &mut Input<'_>) {
        let h = self.txn(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let mut out = empty_buf();
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        r.out(out_p);
        let mut err = Err::new(inp);
        // SAFETY: see `get`.
        let st = unsafe { mantis_txn_get(h.ptr, kb.ptr, kb.len, out_p, err.ptr()) };
        err.check(st, "txn_get");
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.txns[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "txn_get");
            return;
        }
        let closed = !self.open(self.txns[h.slot.unwrap()].db);
        let t = &mut self.txns[h.slot.unwrap()];
        if st == MantisClosed && closed {
            return;
        }
        let k = k.unwrap();
        let want = match t.writes.get(&k) {
            Some(w) => w.clone(),
            None => t.base.get(&k).cloned(),
        };
        t.reads.insert(k);
        match want {
            None => assert_eq!(st, MantisNotFound, "txn_get of an absent key"),
            Some(v) => {
                assert_eq!(st, MantisOk, "txn_get");
                assert_eq!(take(&mut out), v, "txn_get: wrong value");
            }
        }
    }

    fn get_meta(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let mut out = empty_buf();
        let (mut seq, mut exp) = (u64::MAX, i64::MIN);
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        let seq_p: *mut u64 = if inp.below(16) == 0 { null_mut() } else { &mut seq };
        let exp_p: *mut i64 = if inp.below(16) == 0 { null_mut() } else { &mut exp };
        r.out(out_p);
        r.out(seq_p);
        r.out(exp_p);
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`; the out-parameters are NULL or locals.
        let st = unsafe { mantis_get_meta(h.ptr, kb.ptr, kb.len, out_p, seq_p, exp_p, err.ptr()) };
        err.check(st, "get_meta");
        let untouched = out.data.is_null() && seq == u64::MAX && exp == i64::MIN;
        if r.any() {
            r.check(st, "get_meta");
            assert!(untouched, "get_meta wrote its outputs on failure");
            return;
        }
        let d = &mut self.dirs[self.dbs[h.slot.unwrap()].dir];
        let k = k.unwrap();
        match d.data.get(&k).cloned() {
            None => {
                assert_eq!(st, MantisNotFound, "get_meta of an absent key");
                assert!(untouched, "NOT_FOUND wrote the outputs");
            }
            Some(v) => {
                assert_eq!(st, MantisOk, "get_meta");
                assert_eq!(take(&mut out), v, "get_meta: wrong value");
                let (write, want) = d.meta[&k];
                check_expiry(exp, want, "get_meta");
                d.check_version(&k, write, seq);
            }
        }
    }

    fn txn_get_meta(&mut self, inp: &mut Input<'_>) {
        let h = self.txn(inp);
        let kb = key_arg(inp);
        let mut r = Refusals::of(h.refusal);
        let k = r.key(&kb);
        let mut out = empty_buf();
        let (mut seq, mut exp) = (u64::MAX, i64::MIN);
        let out_p: *mut MantisBuf = if inp.below(16) == 0 { null_mut() } else { &mut out };
        let seq_p: *mut u64 = if inp.below(16) == 0 { null_mut() } else { &mut seq };
        let exp_p: *mut i64 = if inp.below(16) == 0 { null_mut() } else { &mut exp };
        r.out(out_p);
        r.out(seq_p);
        r.out(exp_p);
        let mut err = Err::new(inp);
        // SAFETY: see `get_meta`.
        let st = unsafe { mantis_txn_get_meta(h.ptr, kb.ptr, kb.len, out_p, seq_p, exp_p, err.ptr()) };
        err.check(st, "txn_get_meta");
        let untouched = out.data.is_null() && seq == u64::MAX && exp == i64::MIN;
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.txns[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "txn_get_meta");
            assert!(untouched, "txn_get_meta wrote its outputs on failure");
            return;
        }
        let db = self.txns[h.slot.unwrap()].db;
        if st == MantisClosed && !self.open(db) {
            return;
        }
        let dir = self.dbs[db].dir;
        let t = &mut self.txns[h.slot.unwrap()];
        let k = k.unwrap();
        if let Some(w) = t.writes.get(&k) {
            match w {
                None => assert_eq!(st, MantisNotFound, "txn_get_meta of an own delete"),
                Some(v) => {
                    assert_eq!(st, MantisOk, "txn_get_meta of an own write");
                    assert_eq!(take(&mut out), *v, "txn_get_meta: wrong own value");
                    assert_eq!(seq, 0, "an own write has version 0");
                    check_expiry(exp, t.expiries.get(&k).copied().unwrap_or(NEVER), "txn_get_meta");
                }
            }
            return;
        }
        t.reads.insert(k.clone());
        match t.base.get(&k).cloned() {
            None => {
                assert_eq!(st, MantisNotFound, "txn_get_meta of an absent key");
                assert!(untouched, "NOT_FOUND wrote the outputs");
            }
            Some(v) => {
                assert_eq!(st, MantisOk, "txn_get_meta");
                assert_eq!(take(&mut out), v, "txn_get_meta: wrong value");
                let (write, want) = t.base_meta[&k];
                check_expiry(exp, want, "txn_get_meta");
                self.dirs[dir].check_version(&k, write, seq);
            }
        }
    }

    fn txn_put_expiry(&mut self, inp: &mut Input<'_>) {
        let h = self.txn(inp);
        let kb = key_arg(inp);
        let vb = {
            let v = value(inp);
            bytes_arg(inp, v)
        };
        let at: i64 = match inp.below(5) {
            0 => -(inp.u32() as i64),
            1 => i64::MAX - inp.u8() as i64,
            _ => i64::try_from(expiry_at(inp)).unwrap_or(i64::MAX),
        };
        let mut r = Refusals::of(h.refusal);
        let k = r.bytes(&kb);
        let v = r.bytes(&vb);
        if let (Some(k), Some(v)) = (&k, &v) {
            r.add(key_ok(k).err());
            r.add(value_ok(v).err());
        }
        let mut err = Err::new(inp);
        // SAFETY: see `bytes_arg` and `pick`.
        let st = unsafe { mantis_txn_put_expiry(h.ptr, kb.ptr, kb.len, vb.ptr, vb.len, at, err.ptr()) };
        err.check(st, "txn_put_expiry");
        if let Some(i) = h.slot {
            if r.any() && !self.open(self.txns[i].db) {
                r.add(Some(MantisClosed));
            }
        }
        if r.any() {
            r.check(st, "txn_put_expiry");
            return;
        }
        let db = self.txns[h.slot.unwrap()].db;
        if st == MantisClosed && !self.dbs[db].closed {
            panic!("txn_put_expiry answered CLOSED on an open database");
        }
        if st == MantisClosed {
            return;
        }
        assert_eq!(st, MantisOk, "txn_put_expiry");
        let t = &mut self.txns[h.slot.unwrap()];
        let k = k.unwrap();
        // A time at or before the commit's clock makes the put a delete.
        let at = u64::try_from(at).unwrap_or(0);
        if past(at) {
            t.expiries.insert(k.clone(), NEVER);
            t.writes.insert(k, None);
        } else {
            t.expiries.insert(k.clone(), (at, at));
            t.writes.insert(k, v);
        }
    }

    fn txn_commit(&mut self, inp: &mut Input<'_>) {
        let h = self.txn(inp);
        let mut err = Err::new(inp);
        // SAFETY: see `pick`.
        let st = unsafe { mantis_txn_commit(h.ptr, err.ptr()) };
        err.check(st, "txn_commit");
        let Some(i) = h.slot else {
            assert_eq!(Some(st), h.refusal, "txn_commit of a bad handle");
            return;
        };
        if let Some(s) = h.refusal {
            assert_eq!(st, s, "txn_commit of a finished transaction");
            return;
        }
        let db = self.txns[i].db;
        let open = self.open(db);
        let t = &mut self.txns[i];
        t.finished = true;
        if t.writes.is_empty() {
            assert!(
                st == MantisOk || (st == MantisClosed && !open),
                "read-only commit: {st:?}"
            );
            return;
        }
        if !open {
            assert_eq!(st, MantisClosed, "commit on a closed database");
            return;
        }
        let dir = self.dbs[db].dir;
        let later = &self.dirs[dir].commits[t.begin..];
        let conflict = later
            .iter()
            .flatten()
            .any(|k| t.reads.contains(k) || t.writes.contains_key(k));
        if conflict {
            assert_eq!(st, MantisConflict, "commit after a conflicting write");
            return;
        }
        assert_eq!(st, MantisOk, "commit without a conflict");
        let expiries = std::mem::take(&mut t.expiries);
        let ops: Vec<_> = std::mem::take(&mut t.writes)
            .into_iter()
            .map(|(k, v)| {
                let exp = expiries.get(&k).copied().unwrap_or(NEVER);
                ((k, v), exp)
            })
            .collect();
        self.commit_meta(dir, ops);
    }

    fn txn_rollback(&mut self, inp: &mut Input<'_>) {
        let others = self.live_ptrs(3);
        let h = pick(inp, &self.txns, |s| (s.state, s.ptr), &others);
        let mut err = Err::new(inp);
        // SAFETY: see `pick`.
        let st = unsafe { mantis_txn_rollback(h.ptr, err.ptr()) };
        err.check(st, "txn_rollback");
        match h.slot {
            // Rolling back a finished transaction succeeds.
            Some(i) => {
                assert_eq!(st, MantisOk, "txn_rollback");
                self.txns[i].finished = true;
            }
            None => assert_eq!(Some(st), h.refusal, "txn_rollback of a bad handle"),
        }
    }

    fn txn_free(&mut self, inp: &mut Input<'_>) {
        let others = self.live_ptrs(3);
        let h = pick(inp, &self.txns, |s| (s.state, s.ptr), &others);
        // SAFETY: see `pick`; a bad handle must be left alone.
        unsafe { mantis_txn_free(h.ptr) };
        if let Some(i) = h.slot {
            self.txns[i].state = State::Freed(quarantine::freed());
        }
    }

    fn maintenance(&mut self, inp: &mut Input<'_>) {
        let h = self.db(inp);
        let mut err = Err::new(inp);
        let which = inp.below(4);
        let mut stats = MantisStats::default();
        let stats_p: *mut MantisStats = if inp.below(8) == 0 { null_mut() } else { &mut stats };
        // SAFETY: see `pick`; `stats_p` is NULL or a local.
        let st = unsafe {
            match which {
                0 => mantis_sync(h.ptr, err.ptr()),
                1 => mantis_compact(h.ptr, err.ptr()),
                _ => mantis_stats(h.ptr, stats_p, err.ptr()),
            }
        };
        err.check(st, "sync/compact/stats");
        let mut r = Refusals::default();
        if which >= 2 {
            r.out(stats_p);
        }
        r.add(h.refusal);
        if r.any() {
            r.check(st, "sync/compact/stats");
            return;
        }
        assert_eq!(st, MantisOk, "sync/compact/stats");
        if which >= 2 {
            let keys = self.dirs[self.dbs[h.slot.unwrap()].dir].data.len() as u64;
            assert_eq!(stats.keys, keys, "stats: live keys");
        }
    }

    fn frees_of_nothing(&mut self, inp: &mut Input<'_>) {
        // SAFETY: NULL and empty buffers are accepted by the contract.
        unsafe {
            match inp.below(6) {
                0 => mantis_error_free(null_mut()),
                1 => mantis_buf_free(null_mut()),
                2 => mantis_buf_free(&mut empty_buf()),
                3 => mantis_iter_free(null_mut()),
                4 => mantis_snapshot_free(null_mut()),
                _ => mantis_txn_free(null_mut()),
            }
        }
    }

    /// Frees every handle still live (children before databases).
    fn finish(&mut self) {
        // SAFETY: each pointer is a live handle of its kind, freed once.
        unsafe {
            for s in self.iters.iter().filter(|s| s.state == State::Live) {
                mantis_iter_free(s.ptr);
            }
            for s in self.snaps.iter().filter(|s| s.state == State::Live) {
                mantis_snapshot_free(s.ptr);
            }
            for s in self.txns.iter().filter(|s| s.state == State::Live) {
                mantis_txn_free(s.ptr);
            }
            for s in self.dbs.iter().filter(|s| s.state == State::Live) {
                mantis_db_free(s.ptr);
            }
        }
    }
}

/// The little-endian `u32` at `at`, if the buffer holds it.
fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// The header of one op of a batch buffer, in the format of
/// `mantis_write_batch` (the `MANTIS_BATCH_*` constants).
fn batch_op_header(kind: u8, key_len: usize, value_len: usize, when_ms: u64) -> [u8; MANTIS_BATCH_OP_HEADER_LEN] {
    let mut h = [0u8; MANTIS_BATCH_OP_HEADER_LEN];
    h[0] = kind;
    h[MANTIS_BATCH_KEY_LEN_OFFSET..][..4].copy_from_slice(&(key_len as u32).to_le_bytes());
    h[MANTIS_BATCH_VALUE_LEN_OFFSET..][..4].copy_from_slice(&(value_len as u32).to_le_bytes());
    h[MANTIS_BATCH_TTL_OFFSET..][..8].copy_from_slice(&when_ms.to_le_bytes());
    h
}

/// Parses a batch buffer as `mantis_write_batch` documents it (for damaged
/// buffers the library accepted). A TTL put's expiry is any: its field may
/// be any bytes the damage moved there.
fn parse_batch(buf: &[u8], count: usize) -> Option<Vec<(Write, Exp)>> {
    let mut at = 0;
    let mut ops = Vec::new();
    for _ in 0..count {
        let head = buf.get(at..at + MANTIS_BATCH_OP_HEADER_LEN)?;
        let kl = u32_at(head, MANTIS_BATCH_KEY_LEN_OFFSET)? as usize;
        let vl = u32_at(head, MANTIS_BATCH_VALUE_LEN_OFFSET)? as usize;
        at += MANTIS_BATCH_OP_HEADER_LEN;
        let k = buf.get(at..at + kl)?.to_vec();
        let v = buf.get(at + kl..at + kl + vl)?.to_vec();
        at += kl + vl;
        let when = u64::from_le_bytes(head[MANTIS_BATCH_TTL_OFFSET..][..8].try_into().ok()?);
        ops.push(match head[0] {
            MANTIS_BATCH_PUT if when == 0 => ((k, Some(v)), NEVER),
            MANTIS_BATCH_PUT => ((k, Some(v)), ANY),
            MANTIS_BATCH_PUT_AT if when > now_ms() => ((k, Some(v)), (when, when)),
            _ => ((k, None), NEVER),
        });
    }
    (at == buf.len()).then_some(ops)
}

/// A world with two database directories and one database open in the
/// one `first_byte & 1` picks, so most programs get past opening.
fn world(tmp: &std::path::Path, first_byte: u8) -> World {
    let paths = vec![tmp.join("a"), tmp.join("b")];
    let mut w = World {
        dirs: vec![Dir::default(), Dir::default()],
        paths,
        dbs: Vec::new(),
        iters: Vec::new(),
        snaps: Vec::new(),
        txns: Vec::new(),
        opens: 0,
    };
    // The choices of `open_db`, in its order: the directory; the path, its
    // argument, the segment size and the inline threshold as given; valid
    // options; an out-parameter; an error out-parameter.
    let first = [first_byte & 1, 5, 5, 5, 2, 5, 5, 5];
    w.open_db(&mut Input::new(&first));
    assert!(
        w.dbs.first().is_some_and(|d| d.state == State::Live && !d.closed),
        "the first open failed"
    );
    w
}

/// The target.
pub fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut w = world(tmp.path(), inp.u8());
    let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..MAX_STEPS {
            if inp.is_empty() {
                break;
            }
            w.step(&mut inp);
        }
    }));
    if let Err(p) = steps {
        LAST_ERROR.with(|l| eprintln!("last error object: {}", l.borrow()));
        std::panic::resume_unwind(p);
    }
    w.finish();
}

/// A program that makes exactly the calls `steps` name, for seeds: each
/// step is a function byte (as `World::step` reads it) and the bytes its
/// arguments draw from. Each step runs as the program is built and keeps
/// only the bytes it read (zeros for reads past its bytes), so replaying
/// the program makes the same calls instead of reading one step's unused
/// bytes as the next step's.
pub fn program(first_byte: u8, steps: &[(u8, Vec<u8>)]) -> Vec<u8> {
    assert!(steps.len() <= MAX_STEPS, "a program runs at most {MAX_STEPS} steps");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut w = world(tmp.path(), first_byte);
    let mut p = vec![first_byte];
    for (f, args) in steps {
        let mut bytes = vec![*f];
        bytes.extend_from_slice(args);
        let mut inp = Input::new(&bytes);
        w.step(&mut inp);
        let used = inp.consumed();
        bytes.resize(used, 0);
        p.extend_from_slice(&bytes);
    }
    w.finish();
    p
}
