package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

// opKind is what one operation of a batch or transaction does.
type opKind string

const (
	opPut    opKind = "put"
	opGet    opKind = "get"
	opDelete opKind = "delete"
)

// opRequest is one operation as clients send it in a batch or a
// transaction branch.
type opRequest struct {
	Op            string          `json:"op"`
	Key           *string         `json:"key"`
	KeyEncoding   string          `json:"key_encoding"`
	Value         *string         `json:"value"`
	ValueEncoding string          `json:"value_encoding"`
	TTL           json.RawMessage `json:"ttl"`
}

// op is a validated operation: key within limits, value only on puts.
type op struct {
	kind  opKind
	key   string
	value string
	ttl   time.Duration
}

// opKinds maps the names clients send to the operations of internal/kv.
var opKinds = map[opKind]kv.OpKind{opGet: kv.OpGet, opPut: kv.OpPut, opDelete: kv.OpDelete}

// kvOp is o as internal/kv runs it.
func (o op) kvOp() kv.Op {
	return kv.Op{Kind: opKinds[o.kind], Key: o.key, Value: o.value, TTL: o.ttl}
}

// kvOps is ops as internal/kv runs them.
func kvOps(ops []op) []kv.Op {
	out := make([]kv.Op, len(ops))
	for i, o := range ops {
		out[i] = o.kvOp()
	}
	return out
}

// opResult is the answer to one operation. Puts and deletes carry op and
// key; gets add found, and value when found.
type opResult struct {
	Op            opKind  `json:"op"`
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Found         *bool   `json:"found,omitempty"`
	Value         *string `json:"value,omitempty"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

// newResult encodes the answer to one operation.
func newResult(r kv.Result) opResult {
	key, enc := encodeBytes(r.Key)
	res := opResult{Op: opKind(r.Kind.String()), Key: key, KeyEncoding: enc}
	if r.Kind == kv.OpGet {
		found := r.Found
		res.Found = &found
		if found {
			v, enc := encodeBytes(r.Value)
			res.Value, res.ValueEncoding = &v, enc
		}
	}
	return res
}

// newResults encodes the answers to a list of operations.
func newResults(rs []kv.Result) []opResult {
	out := make([]opResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, newResult(r))
	}
	return out
}

// limits are the request limits decoders enforce.
type limits struct {
	maxValueSize int
	maxOps       int
}

// validateOps checks every operation of the list named field (so errors
// say "operations[3].key: ...") and returns them decoded.
func validateOps(field string, reqs []opRequest, lim limits, allowTTL bool) ([]op, error) {
	ops := make([]op, 0, len(reqs))
	for i, req := range reqs {
		o, err := req.validate(lim, allowTTL)
		if err != nil {
			return nil, prefixError(fmt.Sprintf("%s[%d]", field, i), err)
		}
		ops = append(ops, o)
	}
	return ops, nil
}

func (req opRequest) validate(lim limits, allowTTL bool) (op, error) {
	o := op{kind: opKind(req.Op)}
	switch o.kind {
	case opPut, opGet, opDelete:
	case "":
		return op{}, invalidf("op is missing (want put, get or delete)")
	default:
		return op{}, invalidf("op %q is not put, get or delete", req.Op)
	}
	if req.Key == nil {
		return op{}, invalidf("key is missing")
	}
	key, err := decodeBytes("key", *req.Key, req.KeyEncoding)
	if err != nil {
		return op{}, err
	}
	if err := checkKey(key); err != nil {
		return op{}, err
	}
	o.key = key
	if o.kind != opPut {
		if req.Value != nil || req.ValueEncoding != "" {
			return op{}, invalidf("value is only allowed on put")
		}
		if len(req.TTL) > 0 {
			return op{}, invalidf("ttl is only allowed on put")
		}
		return o, nil
	}
	if req.Value == nil {
		return op{}, invalidf("value is missing (a put needs one; \"\" is a valid value)")
	}
	if o.value, err = decodeBytes("value", *req.Value, req.ValueEncoding); err != nil {
		return op{}, err
	}
	if err := checkValue(o.value, lim.maxValueSize); err != nil {
		return op{}, err
	}
	secs, err := parseTTL("ttl", req.TTL)
	if err != nil {
		return op{}, err
	}
	o.ttl = time.Duration(secs) * time.Second
	if err := o.kvOp().Validate(!allowTTL); err != nil {
		return op{}, invalidf("%v", err)
	}
	return o, nil
}

// checkKey applies storage's key rule, answering its words as a 400.
func checkKey(key string) error {
	if err := storage.CheckKey(key); err != nil {
		return invalidf("%v", err)
	}
	return nil
}

// checkValue applies the configured value limit with the API's error.
func checkValue(value string, limit int) error {
	if len(value) > limit {
		return tooLargef("value is %d bytes, over the limit of %d", len(value), limit)
	}
	return nil
}

// prefixError names where in the request an *apiError arose.
func prefixError(where string, err error) error {
	if ae, ok := err.(*apiError); ok {
		return &apiError{code: ae.code, msg: where + ": " + ae.msg}
	}
	return err
}
