package kv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/mantisdb/mantisdb/storage"
)

// TestAppendValue: AppendValue appends a value after what dst holds, of
// any size (the Rust engine reads into the buffer, growing it when the
// value does not fit), and leaves dst as it was for a missing key.
func TestAppendValue(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, size := range []int{0, 1, 100, 511, 512, 513, 4096, 70_000} {
			key := "k" + strings.Repeat("x", size%7)
			want := strings.Repeat(string(rune('a'+size%26)), size)
			if err := s.Put(ctx, key, want, 0); err != nil {
				t.Fatal(err)
			}
			dst := append(make([]byte, 0, 8), "prefix"...)
			got, ok, err := s.AppendValue(ctx, dst, key)
			if err != nil || !ok || string(got) != "prefix"+want {
				t.Fatalf("size %d: AppendValue = %d bytes, %v, %v; want %d bytes", size, len(got), ok, err, len("prefix"+want))
			}
		}
		dst := []byte("prefix")
		got, ok, err := s.AppendValue(ctx, dst, "absent")
		if err != nil || ok || string(got) != "prefix" {
			t.Fatalf("AppendValue(absent) = %q, %v, %v", got, ok, err)
		}
	})
}

// TestTransientArgs: where the engine says it keeps no reference to the
// strings it is given, writes through Blind and BlindBatch and reads
// through Get and AppendValue whose keys and values alias a buffer that
// is overwritten after each call still store and find exactly what was
// passed. The memory engine keeps its strings, so it must not claim this.
func TestTransientArgs(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		_, isMemory := s.Engine().(*storage.MemoryEngine)
		if isMemory && s.TransientArgs() {
			t.Fatal("the memory engine keeps its strings but claims TransientArgs")
		}
		if !s.TransientArgs() {
			return
		}
		ctx := context.Background()
		buf := make([]byte, 64)
		// view fills buf with s and returns a string over buf's bytes.
		view := func(off int, v string) string {
			n := copy(buf[off:], v)
			return unsafe.String(&buf[off], n)
		}
		scribble := func() {
			for i := range buf {
				buf[i] = '#'
			}
		}
		if err := s.Blind(ctx, func(tx *Tx) error {
			_, err := tx.Set(view(0, "key-a"), view(8, "value-a"), SetOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		scribble()
		b := s.NewBlindBatch(ctx)
		if err := b.Add(func(tx *Tx) error {
			return tx.MSet([]string{view(0, "key-b"), view(8, "value-b"), view(16, "key-c"), view(24, "value-c")})
		}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		scribble()
		for k, want := range map[string]string{"key-a": "value-a", "key-b": "value-b", "key-c": "value-c"} {
			got, err := s.Get(ctx, view(32, k))
			scribble()
			if err != nil || got != want {
				t.Fatalf("Get(%s) = %q, %v; want %q", k, got, err, want)
			}
			val, ok, err := s.AppendValue(ctx, nil, view(32, k))
			scribble()
			if err != nil || !ok || string(val) != want {
				t.Fatalf("AppendValue(%s) = %q, %v, %v; want %q", k, val, ok, err, want)
			}
		}
	})
}

// TestBlindRecycledTx: the Tx that Blind and BlindBatch reuse carries
// nothing from one use to the next: a failed Blind applies none of its
// writes and leaks none into the next, and a discarded batch's writes
// never reach a later commit.
func TestBlindRecycledTx(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		boom := errors.New("boom")
		for range 3 {
			err := s.Blind(ctx, func(tx *Tx) error {
				if err := tx.MSet([]string{"lost-1", "v", "lost-2", "v"}); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("Blind = %v, want boom", err)
			}
			if err := s.Blind(ctx, func(tx *Tx) error { return tx.MSet([]string{"kept", "v"}) }); err != nil {
				t.Fatal(err)
			}
		}
		b := s.NewBlindBatch(ctx)
		if err := b.Add(func(tx *Tx) error { return tx.MSet([]string{"lost-3", "v"}) }); err != nil {
			t.Fatal(err)
		}
		b.Discard()
		if err := b.Add(func(tx *Tx) error { return tx.MSet([]string{"kept-2", "v"}) }); err != nil {
			t.Fatal(err)
		}
		if b.Ops() != 1 {
			t.Fatalf("a batch after Discard holds %d ops, want 1", b.Ops())
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"lost-1", "lost-2", "lost-3"} {
			if _, err := s.Get(ctx, k); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("Get(%s) = %v, want not found", k, err)
			}
		}
		for _, k := range []string{"kept", "kept-2"} {
			if v, err := s.Get(ctx, k); err != nil || v != "v" {
				t.Fatalf("Get(%s) = %q, %v", k, v, err)
			}
		}
	})
}
