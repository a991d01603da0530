package api

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mantisdb/mantisdb/storage"
)

// fuzzLimits are small so the fuzzer reaches the limit checks.
var fuzzLimits = limits{maxValueSize: 64, maxOps: 8}

var batchSeeds = []string{
	`{"operations":[{"op":"put","key":"k","value":"v","ttl":5},{"op":"get","key":"k"},{"op":"delete","key":"k"}],"atomic":true}`,
	`{"operations":[{"op":"put","key":"/w==","key_encoding":"base64","value":"AP8=","value_encoding":"base64"}]}`,
	`{"operations":[]}`,
	`{"operations":[{"op":"incr","key":"k"}]}`,
	`{"operations":[{"op":"put","key":"","value":"v"}]}`,
	`{"operations":[{"op":"put","key":"k","value":"v","ttl":1.5}]}`,
	`{"operations":[{"op":"get","key":"k","ttl":null}]}`,
	`{"operations":null,"atomic":false}`,
	`{"operations":[{"op":"put","key":"k","value":"v"}]} trailing`,
	`{"operations":[{"op":"put","key":"k","value":"\ud800"}]}`,
	`[]`, `null`, `"x"`, ``, `{`, `{"atomic":1}`,
}

var txnSeeds = []string{
	`{"compare":[{"key":"k","value":"v"},{"key":"k2","exists":false}],"success":[{"op":"put","key":"k","value":"w"}],"failure":[{"op":"get","key":"k"}]}`,
	`{"compare":[{"key":"k"}]}`,
	`{"compare":[{"key":"k","value":"v","exists":false}]}`,
	`{"compare":[{"key":"AA==","key_encoding":"base64","exists":true}]}`,
	`{"success":[{"op":"put","key":"k","value":"v","ttl":3}]}`,
	`{"failure":[{"op":"delete","key":"k","value":"v"}]}`,
	`{}`, `{"compare":null}`, `{"compare":[null]}`, `{"success":[{}]}`,
	`[]`, ``, `{"compare":[{"key":"k","exists":"yes"}]}`,
}

// checkDecodeError fails unless err is a client error: an *apiError with
// a 4xx status.
func checkDecodeError(t *testing.T, data []byte, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("decoding %q: error %v (%T) is not an API error", data, err, err)
	}
	if s := ae.status(); s < 400 || s > 499 {
		t.Fatalf("decoding %q: status %d for %v", data, s, err)
	}
	if ae.msg == "" {
		t.Fatalf("decoding %q: empty message", data)
	}
}

// checkOps fails unless every op respects the limits decoding enforces.
func checkOps(t *testing.T, data []byte, ops []op, allowTTL bool) {
	for _, o := range ops {
		if len(o.key) == 0 || len(o.key) > storage.MaxKeySize {
			t.Fatalf("decoding %q: accepted key of %d bytes", data, len(o.key))
		}
		if len(o.value) > fuzzLimits.maxValueSize {
			t.Fatalf("decoding %q: accepted value of %d bytes", data, len(o.value))
		}
		if o.ttl < 0 || (o.ttl > 0 && (!allowTTL || o.kind != opPut)) {
			t.Fatalf("decoding %q: accepted ttl %v on %s", data, o.ttl, o.kind)
		}
		if o.kind != opPut && o.value != "" {
			t.Fatalf("decoding %q: accepted a value on %s", data, o.kind)
		}
	}
}

func FuzzBatchDecode(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBatch(bytes.NewReader(data), fuzzLimits)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if len(b.ops) > fuzzLimits.maxOps {
			t.Fatalf("decoding %q: accepted %d ops", data, len(b.ops))
		}
		checkOps(t, data, b.ops, true)
	})
}

func FuzzTxnDecode(f *testing.F) {
	for _, s := range txnSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := decodeTxn(bytes.NewReader(data), fuzzLimits)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if n := len(tx.compares) + len(tx.success) + len(tx.failure); n > fuzzLimits.maxOps {
			t.Fatalf("decoding %q: accepted %d compares and ops", data, n)
		}
		for _, c := range tx.compares {
			if len(c.key) == 0 || len(c.key) > storage.MaxKeySize || len(c.value) > fuzzLimits.maxValueSize {
				t.Fatalf("decoding %q: accepted compare %+v", data, c)
			}
			if !c.hasValue && c.value != "" {
				t.Fatalf("decoding %q: compare value without hasValue", data)
			}
		}
		checkOps(t, data, tx.success, false)
		checkOps(t, data, tx.failure, false)
	})
}
