//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import "sync"

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
