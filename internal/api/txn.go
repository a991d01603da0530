package api

import (
	"fmt"
	"io"
	"net/http"

	"github.com/mantisdb/mantisdb/internal/kv"
)

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

// handleTxn runs a compare-and-swap (kv.Store.CompareAndSwap): if every
// compare holds, the success operations run, else the failure operations,
// in order, inside one engine transaction. Conflicting commits are
// retried; the last conflict answers 409.
func (s *Server) handleTxn(w http.ResponseWriter, r *http.Request) {
	_, err := parseQuery(r)
	var t txn
	if err == nil {
		t, err = decodeTxn(r.Body, s.requestLimits())
	}
	var res kv.CASResult
	if err == nil {
		res, err = s.kv.CompareAndSwap(r.Context(), t.kvCAS())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, txnAnswer{Succeeded: res.Succeeded, Results: newResults(res.Results)})
}

// kvCAS is t as internal/kv runs it.
func (t txn) kvCAS() kv.CAS {
	c := kv.CAS{Success: kvOps(t.success), Failure: kvOps(t.failure)}
	for _, cmp := range t.compares {
		c.Compares = append(c.Compares, kv.Compare{Key: cmp.key, Value: cmp.value, HasValue: cmp.hasValue, Exists: cmp.exists})
	}
	return c
}
