package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestBatch(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprint("atomic=", atomic), func(t *testing.T) {
			c := newClient(t, Options{})
			c.put("old", "before")
			c.put("gone", "soon")
			body := fmt.Sprintf(`{"atomic":%v,"operations":[
				{"op":"get","key":"old"},
				{"op":"put","key":"old","value":"after"},
				{"op":"get","key":"old"},
				{"op":"delete","key":"gone"},
				{"op":"get","key":"gone"},
				{"op":"get","key":"never"},
				{"op":"put","key":"/w==","key_encoding":"base64","value":"AP8=","value_encoding":"base64"},
				{"op":"get","key":"/w==","key_encoding":"base64"}
			]}`, atomic)
			got := ok[resultsJSON](c, "POST", "/api/v1/kv/batch", body)
			want := []resultJSON{
				{Op: "get", Key: "old", Found: ptr(true), Value: ptr("before")},
				{Op: "put", Key: "old"},
				{Op: "get", Key: "old", Found: ptr(true), Value: ptr("after")},
				{Op: "delete", Key: "gone"},
				{Op: "get", Key: "gone", Found: ptr(false)},
				{Op: "get", Key: "never", Found: ptr(false)},
				{Op: "put", Key: "/w==", KeyEncoding: "base64"},
				{Op: "get", Key: "/w==", KeyEncoding: "base64", Found: ptr(true), Value: ptr("AP8="), ValueEncoding: "base64"},
			}
			if !reflect.DeepEqual(got.Results, want) {
				t.Fatalf("results\n got %s\nwant %s", show(got.Results), show(want))
			}
			if v, _ := c.get("old"); v != "after" {
				t.Fatalf("old = %q after the batch", v)
			}
			if _, found := c.get("gone"); found {
				t.Fatal("gone survived its delete")
			}
			rec := c.do("GET", "/api/v1/kv/%FF", "", "Accept", "application/octet-stream")
			if rec.Body.String() != "\x00\xff" {
				t.Fatalf("binary put through the batch: %q", rec.Body)
			}
			// An empty batch is valid and answers no results.
			if got := ok[resultsJSON](c, "POST", "/api/v1/kv/batch", `{"operations":[]}`); len(got.Results) != 0 {
				t.Fatalf("empty batch: %+v", got)
			}
		})
	}
}

func show(rs []resultJSON) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "{%s %q %q", r.Op, r.Key, r.KeyEncoding)
		if r.Found != nil {
			fmt.Fprintf(&b, " found=%v", *r.Found)
		}
		if r.Value != nil {
			fmt.Fprintf(&b, " value=%q", *r.Value)
		}
		fmt.Fprintf(&b, " %q} ", r.ValueEncoding)
	}
	return b.String()
}

func TestBatchErrors(t *testing.T) {
	c := newClient(t, Options{MaxValueSize: 8, MaxBatchOps: 3})
	long := strings.Repeat("k", 65536)
	cases := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"bad JSON", `{"operations":[`, 400, codeInvalidArgument, "invalid JSON"},
		{"operations not an array", `{"operations":{}}`, 400, codeInvalidArgument, "operations"},
		{"unknown field", `{"ops":[]}`, 400, codeInvalidArgument, "ops"},
		{"atomic not a bool", `{"operations":[],"atomic":"yes"}`, 400, codeInvalidArgument, "atomic"},
		{"unknown op", `{"operations":[{"op":"put","key":"a","value":"v"},{"op":"incr","key":"k"}]}`, 400, codeInvalidArgument, `operations[1]: op "incr"`},
		{"missing op", `{"operations":[{"key":"k"}]}`, 400, codeInvalidArgument, "op is missing"},
		{"missing key", `{"operations":[{"op":"get"}]}`, 400, codeInvalidArgument, "key is missing"},
		{"empty key", `{"operations":[{"op":"get","key":""}]}`, 400, codeInvalidArgument, "key is empty"},
		{"oversized key", `{"operations":[{"op":"delete","key":"` + long + `"}]}`, 400, codeInvalidArgument, "65536 bytes"},
		{"put without value", `{"operations":[{"op":"put","key":"k"}]}`, 400, codeInvalidArgument, "value is missing"},
		{"value on get", `{"operations":[{"op":"get","key":"k","value":"v"}]}`, 400, codeInvalidArgument, "only allowed on put"},
		{"ttl on delete", `{"operations":[{"op":"delete","key":"k","ttl":5}]}`, 400, codeInvalidArgument, "ttl is only allowed on put"},
		{"bad ttl", `{"operations":[{"op":"put","key":"k","value":"v","ttl":0}]}`, 400, codeInvalidArgument, "ttl"},
		{"bad key base64", `{"operations":[{"op":"get","key":"!","key_encoding":"base64"}]}`, 400, codeInvalidArgument, "key is not valid base64"},
		{"value too large", `{"operations":[{"op":"put","key":"k","value":"123456789"}]}`, 413, codeTooLarge, "limit of 8"},
		{"too many ops", `{"operations":[{"op":"get","key":"a"},{"op":"get","key":"b"},{"op":"get","key":"c"},{"op":"get","key":"d"}]}`, 413, codeTooLarge, "4 operations, over the limit of 3"},
		{"query parameter", ``, 400, codeInvalidArgument, "takes none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/api/v1/kv/batch"
			if tc.name == "query parameter" {
				target += "?atomic=true"
			}
			wantError(t, c.do("POST", target, tc.body), tc.status, tc.code, tc.msg)
		})
	}
	// A batch that fails validation writes nothing, atomic or not.
	for _, atomic := range []string{"true", "false"} {
		rec := c.do("POST", "/api/v1/kv/batch", `{"atomic":`+atomic+`,"operations":[{"op":"put","key":"first","value":"v"},{"op":"nope","key":"k"}]}`)
		wantError(t, rec, http.StatusBadRequest, codeInvalidArgument)
		if _, found := c.get("first"); found {
			t.Fatalf("atomic=%s: a rejected batch wrote its first op", atomic)
		}
	}
}

func TestBatchAtMaxOps(t *testing.T) {
	c := newClient(t, Options{MaxBatchOps: 500})
	var ops []string
	for i := range 500 {
		ops = append(ops, fmt.Sprintf(`{"op":"put","key":"k%03d","value":"%s"}`, i, base64.StdEncoding.EncodeToString([]byte{byte(i)})))
	}
	got := ok[resultsJSON](c, "POST", "/api/v1/kv/batch", `{"atomic":true,"operations":[`+strings.Join(ops, ",")+`]}`)
	if len(got.Results) != 500 {
		t.Fatalf("%d results, want 500", len(got.Results))
	}
	page := ok[pageJSON](c, "GET", "/api/v1/kv?limit=1000", "")
	if len(page.Items) != 500 || page.Next != nil {
		t.Fatalf("scan after the batch: %d items, next %v", len(page.Items), page.Next)
	}
}
