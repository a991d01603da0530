package api

import (
	"context"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/storage"
)

func TestTxnBranches(t *testing.T) {
	c := newClient(t, Options{})
	c.put("balance", "10")
	c.put("owner", "ann")

	casBody := func(from, to string) string {
		return `{"compare":[{"key":"balance","value":"` + from + `"},{"key":"lock","exists":false},{"key":"owner","exists":true}],
			"success":[{"op":"put","key":"balance","value":"` + to + `"},{"op":"get","key":"balance"},{"op":"delete","key":"owner"},{"op":"get","key":"owner"}],
			"failure":[{"op":"get","key":"balance"}]}`
	}
	got := ok[txnJSON](c, "POST", "/api/v1/txn", casBody("10", "20"))
	want := txnJSON{Succeeded: true, Results: []resultJSON{
		{Op: "put", Key: "balance"},
		{Op: "get", Key: "balance", Found: ptr(true), Value: ptr("20")}, // read-your-writes
		{Op: "delete", Key: "owner"},
		{Op: "get", Key: "owner", Found: ptr(false)},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("success branch\n got %+v\nwant %+v", got, want)
	}
	if v, _ := c.get("balance"); v != "20" {
		t.Fatalf("balance = %q after the swap", v)
	}
	// The same swap again fails its compare: the failure branch runs and
	// nothing of the success branch is written.
	c.put("owner", "ann")
	got = ok[txnJSON](c, "POST", "/api/v1/txn", casBody("10", "30"))
	want = txnJSON{Succeeded: false, Results: []resultJSON{{Op: "get", Key: "balance", Found: ptr(true), Value: ptr("20")}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("failure branch\n got %+v\nwant %+v", got, want)
	}
	if v, _ := c.get("balance"); v != "20" {
		t.Fatalf("balance = %q after a failed swap", v)
	}
	// exists:true on a missing key, and a value compare on a missing key, fail.
	for _, cmp := range []string{`{"key":"missing","exists":true}`, `{"key":"missing","value":""}`, `{"key":"balance","exists":false}`} {
		got := ok[txnJSON](c, "POST", "/api/v1/txn", `{"compare":[`+cmp+`],"success":[{"op":"put","key":"x","value":"y"}]}`)
		if got.Succeeded || len(got.Results) != 0 {
			t.Fatalf("compare %s: %+v", cmp, got)
		}
	}
	// No compares: the success branch runs. Binary keys and values work.
	got = ok[txnJSON](c, "POST", "/api/v1/txn", `{"success":[{"op":"put","key":"/w==","key_encoding":"base64","value":"AA==","value_encoding":"base64"}]}`)
	if !got.Succeeded {
		t.Fatalf("empty compare: %+v", got)
	}
	got = ok[txnJSON](c, "POST", "/api/v1/txn", `{"compare":[{"key":"/w==","key_encoding":"base64","value":"AA==","value_encoding":"base64"}]}`)
	if !got.Succeeded || len(got.Results) != 0 {
		t.Fatalf("binary compare: %+v", got)
	}
	// An empty transaction is valid.
	if got := ok[txnJSON](c, "POST", "/api/v1/txn", `{}`); !got.Succeeded || got.Results == nil {
		t.Fatalf("empty txn: %+v", got)
	}
}

func TestTxnErrors(t *testing.T) {
	c := newClient(t, Options{MaxValueSize: 4, MaxBatchOps: 3})
	cases := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"bad JSON", `{"compare":`, 400, codeInvalidArgument, "invalid JSON"},
		{"unknown field", `{"compares":[]}`, 400, codeInvalidArgument, "compares"},
		{"compare without condition", `{"compare":[{"key":"k"}]}`, 400, codeInvalidArgument, `compare[0]: give "value"`},
		{"compare contradiction", `{"compare":[{"key":"k","value":"v","exists":false}]}`, 400, codeInvalidArgument, "contradict"},
		{"compare without key", `{"compare":[{"exists":true}]}`, 400, codeInvalidArgument, "compare[0]: key is missing"},
		{"compare empty key", `{"compare":[{"key":"","exists":true}]}`, 400, codeInvalidArgument, "key is empty"},
		{"compare value too large", `{"compare":[{"key":"k","value":"12345"}]}`, 413, codeTooLarge, "limit of 4"},
		{"compare unknown field", `{"compare":[{"key":"k","equals":"v"}]}`, 400, codeInvalidArgument, "equals"},
		{"unknown op", `{"success":[{"op":"cas","key":"k"}]}`, 400, codeInvalidArgument, `success[0]: op "cas"`},
		{"bad failure op", `{"failure":[{"op":"put","key":"k"}]}`, 400, codeInvalidArgument, "failure[0]: value is missing"},
		{"ttl in txn", `{"success":[{"op":"put","key":"k","value":"v","ttl":5}]}`, 400, codeInvalidArgument, "not supported inside a transaction"},
		{"too many", `{"compare":[{"key":"a","exists":true},{"key":"b","exists":true}],"success":[{"op":"get","key":"a"}],"failure":[{"op":"get","key":"b"}]}`, 413, codeTooLarge, "over the limit of 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, c.do("POST", "/api/v1/txn", tc.body), tc.status, tc.code, tc.msg)
		})
	}
}

// conflictEngine makes the next `conflicts` transaction commits conflict
// for real: just before each, another writer changes the key "contended".
type conflictEngine struct {
	storage.StorageEngine
	conflicts atomic.Int32
}

func (e *conflictEngine) BeginTransaction(ctx context.Context) (storage.Transaction, error) {
	tx, err := e.StorageEngine.BeginTransaction(ctx)
	if err != nil {
		return nil, err
	}
	return &conflictTxn{Transaction: tx, e: e}, nil
}

type conflictTxn struct {
	storage.Transaction
	e *conflictEngine
}

func (tx *conflictTxn) Commit() error {
	if tx.e.conflicts.Add(-1) >= 0 {
		if err := tx.e.Put(context.Background(), "contended", "someone else"); err != nil {
			return err
		}
	}
	return tx.Transaction.Commit()
}

func TestTxnConflict(t *testing.T) {
	e := &conflictEngine{StorageEngine: newEngine(t)}
	c := newClientOver(t, e, Options{})
	c.put("contended", "start")
	body := `{"compare":[{"key":"contended","exists":true}],"success":[{"op":"put","key":"contended","value":"mine"}]}`

	// One conflict: the retry re-runs the compare and commits.
	e.conflicts.Store(1)
	if got := ok[txnJSON](c, "POST", "/api/v1/txn", body); !got.Succeeded {
		t.Fatalf("after one conflict: %+v", got)
	}
	if v, _ := c.get("contended"); v != "mine" {
		t.Fatalf("contended = %q, want mine", v)
	}
	// Conflicts on every attempt: 409, and the transaction wrote nothing.
	e.conflicts.Store(kv.CASAttempts)
	wantError(t, c.do("POST", "/api/v1/txn", body), http.StatusConflict, codeConflict, "retry")
	if v, _ := c.get("contended"); v != "someone else" {
		t.Fatalf("contended = %q, want the other writer's value", v)
	}
	if n := e.conflicts.Load(); n != 0 {
		t.Fatalf("%d conflicts left: the transaction ran %d times, want %d", n, kv.CASAttempts-int(n), kv.CASAttempts)
	}
	// A read-only branch never conflicts.
	e.conflicts.Store(1)
	if got := ok[txnJSON](c, "POST", "/api/v1/txn", `{"success":[{"op":"get","key":"contended"}]}`); !got.Succeeded {
		t.Fatalf("read-only txn: %+v", got)
	}
	if n := e.conflicts.Load(); n != 0 {
		t.Fatalf("read-only txn committed %d times, want once", 1-n)
	}
}
