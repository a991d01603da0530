package kv

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// wantKeys fails unless every key of want holds its value and every key
// of absent is missing.
func wantKeys(t *testing.T, s *Store, want map[string]string, absent ...string) {
	t.Helper()
	ctx := context.Background()
	for k, v := range want {
		if got, err := s.Get(ctx, k); err != nil || got != v {
			t.Fatalf("Get %q = %q, %v; want %q", k, got, err, v)
		}
	}
	for _, k := range absent {
		if got, err := s.Get(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get %q = %q, %v; want ErrNotFound", k, got, err)
		}
	}
}

func TestBatchGetsSeeEarlierOps(t *testing.T) {
	ops := []Op{
		{Kind: OpGet, Key: "a"},
		{Kind: OpPut, Key: "a", Value: "2"},
		{Kind: OpGet, Key: "a"},
		{Kind: OpDelete, Key: "a"},
		{Kind: OpGet, Key: "a"},
		{Kind: OpGet, Key: "b"},
		{Kind: OpPut, Key: "c", Value: "3"},
	}
	want := []Result{
		{Kind: OpGet, Key: "a", Found: true, Value: "1"},
		{Kind: OpPut, Key: "a"},
		{Kind: OpGet, Key: "a", Found: true, Value: "2"},
		{Kind: OpDelete, Key: "a"},
		{Kind: OpGet, Key: "a"},
		{Kind: OpGet, Key: "b"},
		{Kind: OpPut, Key: "c"},
	}
	for _, atomic := range []bool{true, false} {
		runOnEngines(t, func(t *testing.T, s *Store) {
			ctx := context.Background()
			if err := s.Put(ctx, "a", "1", 0); err != nil {
				t.Fatal(err)
			}
			got, err := s.Batch(ctx, ops, atomic)
			if err != nil {
				t.Fatalf("atomic %v: %v", atomic, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("atomic %v:\n got %+v\nwant %+v", atomic, got, want)
			}
			wantKeys(t, s, map[string]string{"c": "3"}, "a", "b")
		})
	}
}

func TestBatchAtomicAllOrNone(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, err := s.Batch(ctx, []Op{{Kind: OpPut, Key: "x", Value: "1"}, {Kind: OpPut, Key: "", Value: "2"}}, true)
		if !errors.Is(err, storage.ErrInvalidKey) {
			t.Fatalf("atomic batch with an empty key: %v, want ErrInvalidKey", err)
		}
		var partial *PartialBatchError
		if errors.As(err, &partial) {
			t.Fatalf("an atomic batch reported a partial failure: %v", err)
		}
		wantKeys(t, s, nil, "x")
	})
}

func TestBatchInOrderStopsAtFailure(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ops := []Op{{Kind: OpPut, Key: "x", Value: "1"}, {Kind: OpPut, Key: "", Value: "2"}, {Kind: OpPut, Key: "y", Value: "3"}}
		_, err := s.Batch(ctx, ops, false)
		var partial *PartialBatchError
		if !errors.As(err, &partial) || partial.Index != 1 || !errors.Is(err, storage.ErrInvalidKey) {
			t.Fatalf("in-order batch failing at op 1: %v, want a PartialBatchError at 1 wrapping ErrInvalidKey", err)
		}
		wantKeys(t, s, map[string]string{"x": "1"}, "y")
	})
}

func TestBatchValidatesBeforeRunning(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		for _, atomic := range []bool{true, false} {
			ops := []Op{{Kind: OpPut, Key: "x", Value: "1"}, {Kind: OpGet, Key: "y", Value: "stray"}}
			_, err := s.Batch(context.Background(), ops, atomic)
			if !errors.Is(err, storage.ErrInvalidArgument) || err.Error() != "op 1: value is only allowed on put" {
				t.Fatalf("atomic %v: %v, want op 1's invalid argument", atomic, err)
			}
			wantKeys(t, s, nil, "x")
		}
	})
}

func TestBatchTTL(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		for _, atomic := range []bool{true, false} {
			ops := []Op{{Kind: OpPut, Key: "brief", Value: "v", TTL: 50 * time.Millisecond}, {Kind: OpPut, Key: "lasting", Value: "v"}}
			if _, err := s.Batch(context.Background(), ops, atomic); err != nil {
				t.Fatal(err)
			}
			wantKeys(t, s, map[string]string{"brief": "v", "lasting": "v"})
			time.Sleep(120 * time.Millisecond)
			wantKeys(t, s, map[string]string{"lasting": "v"}, "brief")
		}
	})
}
