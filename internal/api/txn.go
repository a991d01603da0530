package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// txnAttempts is how many times a transaction runs before a conflict is
// reported: conflicts are short races, and a rerun re-evaluates the compares.
const txnAttempts = 5

// txnRequest is the JSON body of POST /api/v1/txn.
type txnRequest struct {
	Compare []compareRequest `json:"compare"`
	Success []opRequest      `json:"success"`
	Failure []opRequest      `json:"failure"`
}

// compareRequest is one condition: the key holds value, or the key exists
// (or not).
type compareRequest struct {
	Key           *string `json:"key"`
	KeyEncoding   string  `json:"key_encoding"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding"`
	Exists        *bool   `json:"exists"`
}

// compare is a validated condition. With hasValue, the key must hold value;
// else it must exist or be absent as exists says.
type compare struct {
	key      string
	value    string
	hasValue bool
	exists   bool
}

// txn is a validated transaction.
type txn struct {
	compares         []compare
	success, failure []op
}

// txnAnswer says which branch ran and the results of its operations.
type txnAnswer struct {
	Succeeded bool       `json:"succeeded"`
	Results   []opResult `json:"results"`
}

// decodeTxn reads and validates a transaction body. Every error it returns
// is an *apiError with a 4xx status, or the body reader's *http.MaxBytesError.
func decodeTxn(body io.Reader, lim limits) (txn, error) {
	var req txnRequest
	if err := decodeJSON(body, &req); err != nil {
		return txn{}, err
	}
	if n := len(req.Compare) + len(req.Success) + len(req.Failure); n > lim.maxOps {
		return txn{}, tooLargef("transaction has %d compares and operations, over the limit of %d", n, lim.maxOps)
	}
	var t txn
	for i, c := range req.Compare {
		cmp, err := c.validate(lim)
		if err != nil {
			return txn{}, prefixError(fmt.Sprintf("compare[%d]", i), err)
		}
		t.compares = append(t.compares, cmp)
	}
	var err error
	if t.success, err = validateOps("success", req.Success, lim, false); err != nil {
		return txn{}, err
	}
	if t.failure, err = validateOps("failure", req.Failure, lim, false); err != nil {
		return txn{}, err
	}
	return t, nil
}

func (c compareRequest) validate(lim limits) (compare, error) {
	if c.Key == nil {
		return compare{}, invalidf("key is missing")
	}
	key, err := decodeBytes("key", *c.Key, c.KeyEncoding)
	if err != nil {
		return compare{}, err
	}
	if err := checkKey(key); err != nil {
		return compare{}, err
	}
	cmp := compare{key: key, exists: true}
	switch {
	case c.Value != nil:
		if c.Exists != nil && !*c.Exists {
			return compare{}, invalidf(`"value" and "exists": false contradict each other`)
		}
		if cmp.value, err = decodeBytes("value", *c.Value, c.ValueEncoding); err != nil {
			return compare{}, err
		}
		if err := checkValue(cmp.value, lim.maxValueSize); err != nil {
			return compare{}, err
		}
		cmp.hasValue = true
	case c.Exists != nil:
		if c.ValueEncoding != "" {
			return compare{}, invalidf("value_encoding without value")
		}
		cmp.exists = *c.Exists
	default:
		return compare{}, invalidf(`give "value" (the key holds it) or "exists" (true or false)`)
	}
	return cmp, nil
}

// handleTxn runs a compare-and-swap: if every compare holds, the success
// operations run, else the failure operations, in order, inside one engine
// transaction (reads at its snapshot, read-your-writes, one commit).
// Conflicting commits are retried; the last conflict answers 409.
func (s *Server) handleTxn(w http.ResponseWriter, r *http.Request) {
	_, err := parseQuery(r)
	var t txn
	if err == nil {
		t, err = decodeTxn(r.Body, s.requestLimits())
	}
	var ans txnAnswer
	if err == nil {
		ans, err = s.runTxn(r.Context(), t)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) runTxn(ctx context.Context, t txn) (txnAnswer, error) {
	var err error
	for attempt := 1; attempt <= txnAttempts; attempt++ {
		var ans txnAnswer
		ans, err = s.runTxnOnce(ctx, t)
		if !errors.Is(err, storage.ErrConflict) {
			return ans, err
		}
		// A short, growing pause lets the competing writer finish.
		select {
		case <-ctx.Done():
			return txnAnswer{}, ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Millisecond):
		}
	}
	return txnAnswer{}, newError(codeConflict, "transaction conflicted with other writers %d times; retry it: %v", txnAttempts, err)
}

func (s *Server) runTxnOnce(ctx context.Context, t txn) (txnAnswer, error) {
	tx, err := s.engine.BeginTransaction(ctx)
	if err != nil {
		return txnAnswer{}, err
	}
	defer func() { _ = tx.Rollback() }()
	ans := txnAnswer{Succeeded: true}
	for _, c := range t.compares {
		ok, err := c.holds(tx)
		if err != nil {
			return txnAnswer{}, err
		}
		ans.Succeeded = ans.Succeeded && ok
	}
	ops := t.failure
	if ans.Succeeded {
		ops = t.success
	}
	ans.Results = make([]opResult, 0, len(ops))
	for _, o := range ops {
		var err error
		switch o.kind {
		case opGet:
			var v string
			v, err = tx.Get(o.key)
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				ans.Results = append(ans.Results, getResult(o, v, err == nil))
				err = nil
			}
		case opPut:
			err = tx.Put(o.key, o.value)
			ans.Results = append(ans.Results, newResult(o))
		case opDelete:
			err = tx.Delete(o.key)
			ans.Results = append(ans.Results, newResult(o))
		}
		if err != nil {
			return txnAnswer{}, err
		}
	}
	return ans, tx.Commit()
}

// holds evaluates c inside tx; the read joins tx's read set, so a
// concurrent change of the key makes the commit conflict.
func (c compare) holds(tx storage.Transaction) (bool, error) {
	v, err := tx.Get(c.key)
	if errors.Is(err, storage.ErrNotFound) {
		return !c.hasValue && !c.exists, nil
	}
	if err != nil {
		return false, err
	}
	if c.hasValue {
		return v == c.value, nil
	}
	return c.exists, nil
}
