//go:build rust

package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRustAppendValues: one AppendValues call answers every key as
// AppendValue answers it, whatever the mix of small, large (past the
// first read's room, so the call is made again from that key), absent,
// deleted and expired keys, appending after what dst held; an invalid key
// fails the call.
func TestRustAppendValues(t *testing.T) {
	e := newTestRustEngine(t).(*RustEngine)
	ctx := context.Background()
	want := map[string]string{}
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i)
		v := strings.Repeat(string(rune('a'+i%26)), []int{0, 3, 100, getStackBuf, getStackBuf + 1, 3 << 10, 70 << 10}[i%7])
		if err := e.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	if err := e.Delete(ctx, "k05"); err != nil {
		t.Fatal(err)
	}
	delete(want, "k05")
	if err := e.PutWithTTL(ctx, "gone", "x", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("k%02d", i), "missing", "gone")
	}
	for _, start := range [][]byte{nil, []byte("prefix"), make([]byte, 0, 1<<20)} {
		lens := make([]int, len(keys))
		got, err := e.AppendValues(ctx, bytes.Clone(start), keys, lens)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, start) {
			t.Fatalf("dst lost what it held: %q", got[:min(len(got), 8)])
		}
		at := len(start)
		for i, k := range keys {
			v, ok := want[k]
			one, oneErr := e.AppendValue(ctx, nil, k)
			switch {
			case !ok:
				if lens[i] != -1 || !errors.Is(oneErr, ErrNotFound) {
					t.Fatalf("%s: length %d, AppendValue %v; want absent", k, lens[i], oneErr)
				}
			case lens[i] != len(v) || string(got[at:at+lens[i]]) != v || string(one) != v:
				t.Fatalf("%s: length %d, want %d", k, lens[i], len(v))
			default:
				at += lens[i]
			}
		}
		if at != len(got) {
			t.Fatalf("%d bytes appended, the lengths sum to %d", len(got)-len(start), at-len(start))
		}
	}
	if _, err := e.AppendValues(ctx, nil, []string{"k01", ""}, make([]int, 2)); err == nil {
		t.Fatal("an empty key was read")
	}
	if _, err := e.AppendValues(ctx, nil, []string{"k01"}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("lengths of the wrong size: %v", err)
	}
}
