package kv

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// scanAll follows q's pages to the end and returns every item in order.
func scanAll(t *testing.T, s *Store, q PageQuery) ([]Pair, int) {
	t.Helper()
	var all []Pair
	pages := 0
	for {
		page, err := s.ScanPage(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Items) == 0 && page.More {
			t.Fatalf("an empty page with more to come: %+v", page)
		}
		all = append(all, page.Items...)
		if !page.More {
			return all, pages
		}
		if page.Next <= q.Start {
			t.Fatalf("next %q does not move past start %q", page.Next, q.Start)
		}
		q.Start = page.Next
	}
}

func TestScanPagePaging(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var want []Pair
		for i := range 25 {
			p := Pair{Key: fmt.Sprintf("user:%02d", i), Value: fmt.Sprint(i)}
			want = append(want, p)
			if err := s.Put(ctx, p.Key, p.Value, 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []string{"user", "usera", "other:1", "user;"} {
			if err := s.Put(ctx, k, "x", 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, limit := range []int{1, 7, 25, MaxPageLimit} {
			got, pages := scanAll(t, s, PageQuery{Prefix: "user:", Limit: limit})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("limit %d: %+v", limit, got)
			}
			if wantPages := (25 + limit - 1) / limit; limit < 25 && pages != wantPages {
				t.Fatalf("limit %d: %d pages, want %d", limit, pages, wantPages)
			}
		}
		// A start before the prefix begins at the prefix; one inside it
		// begins there; one past it finds nothing.
		got, _ := scanAll(t, s, PageQuery{Prefix: "user:", Start: "a", Limit: 100})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("start before the prefix: %+v", got)
		}
		got, _ = scanAll(t, s, PageQuery{Prefix: "user:", Start: "user:20", Limit: 100})
		if !reflect.DeepEqual(got, want[20:]) {
			t.Fatalf("start inside the prefix: %+v", got)
		}
		page, err := s.ScanPage(ctx, PageQuery{Prefix: "user:", Start: "user;", Limit: 100})
		if err != nil || len(page.Items) != 0 || page.More {
			t.Fatalf("start past the prefix: %+v, %v", page, err)
		}
		// No prefix: every key.
		got, _ = scanAll(t, s, PageQuery{Limit: 10})
		if len(got) != 29 || got[0].Key != "other:1" {
			t.Fatalf("whole keyspace: %d items from %+v", len(got), got[0])
		}
	})
}

func TestScanPageBinaryPrefix(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, k := range []string{"p\xff", "p\xff\x00", "p\xff\xff", "q"} {
			if err := s.Put(ctx, k, "v", 0); err != nil {
				t.Fatal(err)
			}
		}
		// "\xff" has no successor byte: the scan runs to the last key and
		// still keeps to the prefix.
		got, _ := scanAll(t, s, PageQuery{Prefix: "p\xff", Limit: 1})
		if len(got) != 3 || got[2].Key != "p\xff\xff" {
			t.Fatalf("prefix p\\xff: %+v", got)
		}
		got, _ = scanAll(t, s, PageQuery{Prefix: "\xff", Limit: 1})
		if len(got) != 0 {
			t.Fatalf("prefix \\xff: %+v", got)
		}
	})
}

func TestScanPageByteBudget(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, k := range []string{"k1", "k2", "k3", "k4"} {
			if err := s.Put(ctx, k, "v", 0); err != nil {
				t.Fatal(err)
			}
		}
		// Each item costs half the budget: two fill a page.
		half := func(string, string) int { return MaxPageBytes / 2 }
		page, err := s.ScanPage(ctx, PageQuery{Limit: 10, Size: half})
		if err != nil || len(page.Items) != 2 || !page.More || page.Next != "k3" {
			t.Fatalf("half-budget items: %+v, %v", page, err)
		}
		// An item over the whole budget still makes a page of one.
		over := func(string, string) int { return MaxPageBytes + 1 }
		got, pages := scanAll(t, s, PageQuery{Limit: 10, Size: over})
		if len(got) != 4 || pages != 4 {
			t.Fatalf("oversized items: %d items in %d pages", len(got), pages)
		}
	})
}

func TestScanPageSkipsExpired(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Put(ctx, "a", "v", time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "b", "v", 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		got, _ := scanAll(t, s, PageQuery{Limit: 10})
		if !reflect.DeepEqual(got, []Pair{{Key: "b", Value: "v"}}) {
			t.Fatalf("%+v, want only b", got)
		}
	})
}

func TestScanPageLimit(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		for _, limit := range []int{0, -1, MaxPageLimit + 1} {
			_, err := s.ScanPage(context.Background(), PageQuery{Limit: limit})
			if !errors.Is(err, storage.ErrInvalidArgument) {
				t.Fatalf("limit %d: %v, want ErrInvalidArgument", limit, err)
			}
		}
	})
}

// An engine's iterator may hand out views of a buffer its next step
// reuses (the Rust engine does): a page must hold its own copies, intact
// after the iterator moved on, closed, and other scans reused its memory.
func TestScanPageKeepsCopiesOfIteratorViews(t *testing.T) {
	runOnEngines(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// Enough pairs for several iterator batches, each value distinct
		// and longer than its key, so a stale view cannot pass for it.
		const n = 700
		want := make([]Pair, n)
		for i := range want {
			want[i] = Pair{Key: fmt.Sprintf("a:%04d", i), Value: fmt.Sprintf("value-%04d-%s", i, strings.Repeat("x", i%50))}
			if err := s.Put(ctx, want[i].Key, want[i].Value, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, fmt.Sprintf("b:%04d", i), strings.Repeat("y", 60), 0); err != nil {
				t.Fatal(err)
			}
		}
		page, err := s.ScanPage(ctx, PageQuery{Prefix: "a:", Limit: n - 1})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := s.ScanPage(ctx, PageQuery{Prefix: "b:", Limit: MaxPageLimit}); err != nil {
				t.Fatal(err)
			}
		}
		if !page.More || page.Next != want[n-1].Key {
			t.Fatalf("next = %q (more %v), want %q", page.Next, page.More, want[n-1].Key)
		}
		if !reflect.DeepEqual(page.Items, want[:n-1]) {
			for i, p := range page.Items {
				if p != want[i] {
					t.Fatalf("item %d = %q=%q, want %q=%q", i, p.Key, p.Value, want[i].Key, want[i].Value)
				}
			}
			t.Fatalf("%d items, want %d", len(page.Items), n-1)
		}
	})
}
