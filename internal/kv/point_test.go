package kv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

func TestPutGetDelete(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
		}
		if err := s.Put(ctx, "k", "v", 0); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get(ctx, "k"); err != nil || v != "v" {
			t.Fatalf("Get = %q, %v; want v", v, err)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if err := s.Put(ctx, "", "v", 0); !errors.Is(err, storage.ErrInvalidKey) {
			t.Fatalf("Put of an empty key: %v, want ErrInvalidKey", err)
		}
	})
}

func TestPutTTL(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Put(ctx, "k", "v", -time.Second); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Fatalf("Put with a negative ttl: %v, want ErrInvalidArgument", err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a refused Put wrote: %v", err)
		}
		if err := s.Put(ctx, "short", "v", 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "long", "v", time.Hour); err != nil {
			t.Fatal(err)
		}
		// A put without ttl replaces an earlier expiry.
		if err := s.Put(ctx, "kept", "v", 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "kept", "w", 0); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get(ctx, "short"); err != nil || v != "v" {
			t.Fatalf("Get before expiry = %q, %v", v, err)
		}
		time.Sleep(120 * time.Millisecond)
		if _, err := s.Get(ctx, "short"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get after expiry: %v, want ErrNotFound", err)
		}
		for k, want := range map[string]string{"long": "v", "kept": "w"} {
			if v, err := s.Get(ctx, k); err != nil || v != want {
				t.Fatalf("Get %s = %q, %v; want %q", k, v, err, want)
			}
		}
	})
}
