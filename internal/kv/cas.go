package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// CASAttempts is how many times a compare-and-swap runs before a conflict
// is reported: conflicts are short races, and a rerun evaluates the
// compares again on fresh reads.
const CASAttempts = 5

// Compare is one condition of a compare-and-swap. With HasValue the key
// must hold Value; otherwise it must exist (Exists) or be absent (!Exists).
// An expired key is absent.
type Compare struct {
	Key      string
	Value    string
	HasValue bool
	Exists   bool
}

// CAS is a compare-and-swap: when every compare holds, the Success
// operations run, else the Failure ones.
type CAS struct {
	Compares []Compare
	Success  []Op
	Failure  []Op
}

// CASResult says which branch ran and the results of its operations.
type CASResult struct {
	Succeeded bool
	Results   []Result
}

// CASConflictError is returned when a compare-and-swap conflicted with
// other writers on every attempt. errors.Is(err, storage.ErrConflict)
// holds; Last is the final attempt's conflict.
type CASConflictError struct {
	Attempts int
	Last     error
}

func (e *CASConflictError) Error() string {
	return fmt.Sprintf("transaction conflicted with other writers %d times; retry it: %v", e.Attempts, e.Last)
}

func (e *CASConflictError) Unwrap() error { return e.Last }

// CompareAndSwap evaluates the compares and runs the chosen branch, in
// order, inside one engine transaction: the compares and gets read its
// snapshot (and the branch's own earlier writes), and everything commits
// at once, so no write of another client lands between a compare and the
// writes it guards. A conflicting commit runs the whole thing again, up to
// a few times with a short growing pause; then a *CASConflictError. The
// operations are validated first (Op.Validate with inTxn): a put inside a
// compare-and-swap takes no TTL.
func (s *Store) CompareAndSwap(ctx context.Context, c CAS) (CASResult, error) {
	if err := validateOps(c.Success, true); err != nil {
		return CASResult{}, err
	}
	if err := validateOps(c.Failure, true); err != nil {
		return CASResult{}, err
	}
	var err error
	for attempt := 1; attempt <= CASAttempts; attempt++ {
		var res CASResult
		res, err = s.casOnce(ctx, c)
		if !errors.Is(err, storage.ErrConflict) {
			return res, err
		}
		// A short, growing pause lets the competing writer finish.
		select {
		case <-ctx.Done():
			return CASResult{}, ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Millisecond):
		}
	}
	return CASResult{}, &CASConflictError{Attempts: CASAttempts, Last: err}
}

// casOnce is one attempt of CompareAndSwap.
func (s *Store) casOnce(ctx context.Context, c CAS) (CASResult, error) {
	tx, err := s.engine.BeginTransaction(ctx)
	if err != nil {
		return CASResult{}, err
	}
	defer func() { _ = tx.Rollback() }()
	res := CASResult{Succeeded: true}
	for _, cmp := range c.Compares {
		ok, err := cmp.holds(tx)
		if err != nil {
			return CASResult{}, err
		}
		res.Succeeded = res.Succeeded && ok
	}
	ops := c.Failure
	if res.Succeeded {
		ops = c.Success
	}
	res.Results = make([]Result, 0, len(ops))
	for _, o := range ops {
		r := Result{Kind: o.Kind, Key: o.Key}
		var err error
		switch o.Kind {
		case OpGet:
			r.Value, err = tx.Get(o.Key)
			r.Found = err == nil
			if errors.Is(err, storage.ErrNotFound) {
				err = nil
			}
		case OpPut:
			err = tx.Put(o.Key, o.Value)
		case OpDelete:
			err = tx.Delete(o.Key)
		}
		if err != nil {
			return CASResult{}, err
		}
		res.Results = append(res.Results, r)
	}
	if err := tx.Commit(); err != nil {
		return CASResult{}, err
	}
	var puts []string
	for _, o := range ops {
		if o.Kind == OpPut {
			puts = append(puts, o.Key)
		}
	}
	s.TouchKeys(puts...)
	return res, nil
}

// holds evaluates c inside tx; the read joins tx's read set, so a
// concurrent change of the key makes the commit conflict.
func (c Compare) holds(tx storage.Transaction) (bool, error) {
	v, err := tx.Get(c.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return !c.HasValue && !c.Exists, nil
	}
	if err != nil {
		return false, err
	}
	if c.HasValue {
		return v == c.Value, nil
	}
	return c.Exists, nil
}
