//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import (
	"context"
	"os"
	"sync"
)

// Waiting for group commit on the Go side.
//
// Under the `always` sync policy a write is acknowledged only once its log
// record is synced. The core lets a write happen in two halves: a
// `mantis_*_begin` call logs and applies it (not yet durable or visible)
// and returns a ticket at once; `mantis_commit_wait(ticket)` returns once
// that commit is durable and visible, and one such call for the newest
// ticket leads one fdatasync covering every earlier ticket.
//
// commitWaiter turns that into group commit in which only one goroutine at a
// time is inside the library waiting for a sync (holding an OS thread): the
// leader. Every other writer parks on a channel (a goroutine, not a thread).
// When the leader's call returns, it wakes every writer its sync covered and
// hands the lead to one writer that came too late for it, whose call then
// covers all who queued meanwhile. Writers that arrive while no sync runs
// lead one at once, so a lone writer pays one extra cgo call (two when the
// log's preallocated space needs extending), nothing more.

// Signals sent to a parked writer.
const (
	waitCovered uint8 = iota // its commit is durable and visible
	waitLead                 // it leads the next sync
	waitAlone                // a sync failed: ask the library for its own outcome
)

type ticketWaiter struct {
	ticket uint64
	ch     chan uint8
}

type commitWaiter struct {
	mu sync.Mutex
	// done: every ticket up to it is durable and visible.
	done    uint64
	leading bool
	waiting []ticketWaiter
	// notes is the library's commit notifier (see startCommitPoller): set,
	// writers wait for the poller instead of leading syncs themselves.
	notes *os.File
	// crowd: the last settle of the poller's waiters woke more than one
	// writer, or left some waiting; until one wakes at most one, a writer
	// that finds none waiting still waits for the poller (see leadAlone).
	crowd bool
	// ledAlone counts the waits leadAlone took (for tests).
	ledAlone uint64
}

// Waiting with the poller (Linux, sync always).
//
// A leader waiting inside the library still holds an OS thread and, until
// the runtime's monitor takes it back, its P: with GOMAXPROCS at 2, half
// of the Go side. When the library gives a notifier (an eventfd it signals
// whenever the durable point moves), no goroutine waits inside it at all:
// a writer registers its ticket, asks the library to make sure a sync will
// cover it (mantis_commit_request: wakes the log's syncer thread if no sync
// runs; the syncer then leads syncs back to back while commits arrive) and
// parks on its channel. One poller goroutine reads the eventfd through the
// runtime's network poller (parked, holding neither a thread nor a P),
// reads the durable point, makes the covered tickets visible with one
// mantis_commit_wait that does not wait for a sync, and wakes their
// writers. A writer alone (none waiting, none leading, and the last group
// woken was a single writer) skips all of that and leads its own sync as
// above (leadAlone): for one synced writer the hand-offs cost more than
// the thread it holds.

// startCommitPoller switches w to the poller when the library offers a
// notifier; otherwise writers keep leading syncs. Called by Init.
func (w *commitWaiter) startCommitPoller(db *C.MantisDb) {
	var fd C.int
	var cerr *C.MantisError
	if st := C.mantis_commit_notifier(db, &fd, &cerr); st != C.MANTIS_OK {
		if cerr != nil {
			C.mantis_error_free(cerr)
		}
		return
	}
	// The eventfd is non-blocking, so os.NewFile reads it through the
	// runtime's poller.
	f := os.NewFile(uintptr(fd), "mantisdb-commit-notifier")
	if f == nil {
		return
	}
	w.notes = f
	go w.poll(db, f)
}

// stopCommitPoller ends the poller; called by Close once no writer waits.
func (w *commitWaiter) stopCommitPoller() {
	if w.notes != nil {
		_ = w.notes.Close()
		w.notes = nil
	}
}

// poll wakes the writers whose tickets the durable point covers, each
// time the library signals that it moved. It calls into the library only
// with w.mu held and a writer waiting: a waiting writer holds the engine's
// shared lock, so the handle stays open meanwhile.
func (w *commitWaiter) poll(db *C.MantisDb, f *os.File) {
	var buf [8]byte
	for {
		if _, err := f.Read(buf[:]); err != nil {
			return // closed by Close
		}
		w.mu.Lock()
		if len(w.waiting) > 0 {
			w.settleLocked(db)
		}
		w.mu.Unlock()
	}
}

// settleLocked makes every waiting ticket the durable point covers visible
// and wakes its writer; after a failed sync it sends every waiting writer
// to ask for its own outcome. w.mu is held and w.waiting is not empty.
func (w *commitWaiter) settleLocked(db *C.MantisDb) {
	var durable C.uint64_t
	var cerr *C.MantisError
	failed := C.mantis_commit_request(db, 0, &durable, &cerr) != C.MANTIS_OK
	if failed && cerr != nil {
		C.mantis_error_free(cerr)
	}
	target := w.done
	for _, t := range w.waiting {
		if t.ticket <= uint64(durable) {
			target = max(target, t.ticket)
		}
	}
	if target > w.done {
		// Durable already: this returns once the commits up to target are
		// applied (they were, by the calls that returned their tickets),
		// without a sync.
		if C.mantis_commit_wait(db, C.uint64_t(target), &cerr) == C.MANTIS_OK {
			w.done = target
		} else {
			if cerr != nil {
				C.mantis_error_free(cerr)
			}
			failed = true
		}
	}
	rest := w.waiting[:0]
	covered := 0
	for _, t := range w.waiting {
		switch {
		case t.ticket <= w.done:
			t.ch <- waitCovered
			covered++
		case failed:
			t.ch <- waitAlone
		default:
			rest = append(rest, t)
		}
	}
	clear(w.waiting[len(rest):])
	w.waiting = rest
	// Writers sharing syncs: the next one waits for the poller even when
	// it finds no other waiting (see leadAlone).
	w.crowd = covered > 1 || len(rest) > 0
}

// waitPolled is waitCommit with the poller.
func (e *RustEngine) waitPolled(db *C.MantisDb, ticket uint64) error {
	w := &e.commits
	ch := waitChans.Get().(chan uint8)
	w.waiting = append(w.waiting, ticketWaiter{ticket: ticket, ch: ch})
	w.mu.Unlock()
	var durable C.uint64_t
	var cerr *C.MantisError
	st := C.mantis_commit_request(db, C.uint64_t(ticket), &durable, &cerr)
	if cerr != nil {
		C.mantis_error_free(cerr)
	}
	if st != C.MANTIS_OK || uint64(durable) >= ticket {
		// Covered before the poller was signalled for it, or the log
		// stopped: settle the waiters now rather than wait for a signal
		// that may have come before this writer registered.
		w.mu.Lock()
		if len(w.waiting) > 0 {
			w.settleLocked(db)
		}
		w.mu.Unlock()
	}
	sig := <-ch
	waitChans.Put(ch)
	if sig == waitAlone {
		return commitWaitAlone(db, ticket)
	}
	return nil
}

var waitChans = sync.Pool{New: func() any { return make(chan uint8, 1) }}

// waitCommit returns once the commit of ticket (0: nothing to wait for) is
// durable and visible, or with its error. The caller holds e.mu shared.
func (e *RustEngine) waitCommit(db *C.MantisDb, ticket uint64) error {
	if ticket == 0 {
		return nil
	}
	w := &e.commits
	w.mu.Lock()
	if ticket <= w.done {
		w.mu.Unlock()
		return nil
	}
	if w.notes != nil {
		if w.leading || w.crowd || len(w.waiting) > 0 {
			return e.waitPolled(db, ticket)
		}
		return e.leadAlone(db, ticket)
	}
	if w.leading {
		ch := waitChans.Get().(chan uint8)
		w.waiting = append(w.waiting, ticketWaiter{ticket: ticket, ch: ch})
		w.mu.Unlock()
		sig := <-ch
		waitChans.Put(ch)
		switch sig {
		case waitCovered:
			return nil
		case waitAlone:
			return commitWaitAlone(db, ticket)
		}
		// waitLead: the lead passed to this writer (w.leading stays set),
		// and its ticket is not covered yet.
		w.mu.Lock()
	}
	w.leading = true
	target := ticket
	for _, t := range w.waiting {
		target = max(target, t.ticket)
	}
	w.mu.Unlock()

	var cerr *C.MantisError
	st := C.mantis_commit_wait(db, C.uint64_t(target), &cerr)
	ok := st == C.MANTIS_OK
	if !ok && cerr != nil {
		C.mantis_error_free(cerr)
	}

	w.mu.Lock()
	if ok {
		w.done = max(w.done, target)
	}
	rest := w.waiting[:0]
	next := -1
	for _, t := range w.waiting {
		switch {
		case ok && t.ticket <= w.done:
			t.ch <- waitCovered
		case !ok:
			t.ch <- waitAlone
		default:
			if next < 0 {
				next = len(rest)
			}
			rest = append(rest, t)
		}
	}
	if next >= 0 {
		lead := rest[next]
		rest = append(rest[:next], rest[next+1:]...)
		lead.ch <- waitLead
	} else {
		w.leading = false
	}
	// Drop references to the channels handed out.
	clear(w.waiting[len(rest):])
	w.waiting = rest
	w.mu.Unlock()
	if ok {
		// The group is acknowledged: prepare log space for the next ones
		// here, off their path (usually a no-op; see mantis_prepare_log).
		C.mantis_prepare_log(db, nil)
		return nil
	}
	return commitWaitAlone(db, ticket)
}

// leadAlone is waitCommit with the poller for a writer that finds no other
// waiting, none leading, and no crowd at the last settle: it waits for its
// sync inside the library (as a leader without the poller does), so a lone
// writer's acknowledgement takes no hand-off to the syncer thread, no
// notifier wake-up and no poller goroutine (1.3x the synced puts per second
// of one writer, docs/performance/rust-core.md). Writers that come meanwhile
// wait for the poller (their commits are synced by the syncer thread, or by
// this sync when it covers them); this one then settles those its sync
// covered, which marks the crowd when there were several. Under many
// writers the crowd keeps them all on the poller: a writer waiting in the
// library holds an OS thread and, for a while, its P. Called with w.mu
// held; returns with it released.
func (e *RustEngine) leadAlone(db *C.MantisDb, ticket uint64) error {
	w := &e.commits
	w.leading = true
	w.ledAlone++
	w.mu.Unlock()
	var cerr *C.MantisError
	st := C.mantis_commit_wait(db, C.uint64_t(ticket), &cerr)
	w.mu.Lock()
	w.leading = false
	if st == C.MANTIS_OK {
		w.done = max(w.done, ticket)
	}
	if len(w.waiting) > 0 {
		w.settleLocked(db)
	}
	w.mu.Unlock()
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// commitWaitAlone asks the library for the outcome of one ticket: after a
// failed sync, each commit gets its own error (the failed group's I/O error,
// or, for later commits, the refusal of a poisoned database).
func commitWaitAlone(db *C.MantisDb, ticket uint64) error {
	var cerr *C.MantisError
	if st := C.mantis_commit_wait(db, C.uint64_t(ticket), &cerr); st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}

// ackCommit returns once the commit of ticket (0: nothing to wait for) is
// durable and visible, as waitCommit does; or, when ctx carries a
// CommitDeferral, records its ticket there instead of waiting. No sync is
// asked for then: the caller's AwaitCommit leads one for all the writes it
// deferred, soon after (an event loop's pass). Until then the commit is
// not visible, so a transaction that begins meanwhile and must see it
// waits that long too. The caller holds e.mu shared.
func (e *RustEngine) ackCommit(ctx context.Context, db *C.MantisDb, ticket uint64) error {
	if ticket == 0 {
		return nil
	}
	d := CommitDeferralFrom(ctx)
	if d == nil {
		return e.waitCommit(db, ticket)
	}
	d.Defer(ticket)
	return nil
}

// DefersCommits implements CommitAwaiter: writes defer their
// acknowledgement under the `always` policy (every other policy
// acknowledges a write once it is applied).
func (e *RustEngine) DefersCommits() bool { return e.cfg.Sync == SyncAlways }

// AwaitCommit implements CommitAwaiter. Its caller is an event loop that
// ran the writes of many clients: it waits inside the library and leads
// the sync itself when none runs, as Redis's loop syncs its log before it
// replies, rather than parking on the poller. Parked, the loop would be
// woken by the poller goroutine after the syncer thread's notification:
// two more hand-offs between threads per sync, which on two CPUs cost more
// than the thread this holds (docs/performance/resp.md). Then it wakes the
// writers parked on the poller whose commits that sync covered.
func (e *RustEngine) AwaitCommit(ticket uint64) error {
	db, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.mu.RUnlock()
	if ticket == 0 {
		return nil
	}
	w := &e.commits
	w.mu.Lock()
	done := ticket <= w.done
	w.mu.Unlock()
	if done {
		return nil
	}
	if err := commitWaitAlone(db, ticket); err != nil {
		return err
	}
	w.mu.Lock()
	w.done = max(w.done, ticket)
	if len(w.waiting) > 0 {
		w.settleLocked(db)
	}
	w.mu.Unlock()
	// The writes are acknowledged: prepare log space for the next ones
	// here, off their path (usually a no-op; see mantis_prepare_log).
	C.mantis_prepare_log(db, nil)
	return nil
}

// CommitOutcome implements CommitAwaiter.
func (e *RustEngine) CommitOutcome(ticket uint64) error {
	if ticket == 0 {
		return nil
	}
	return e.call(func(db *C.MantisDb, cerr **C.MantisError) C.MantisStatus {
		return C.mantis_commit_wait(db, C.uint64_t(ticket), cerr)
	})
}
