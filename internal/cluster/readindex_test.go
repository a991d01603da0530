package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A request must get an index fetched after it arrived, and concurrent
// requests share fetches.
func TestReadRoundsFetchAfterEveryRequest(t *testing.T) {
	var counter atomic.Uint64
	var fetches atomic.Int32
	r := readRounds{timeout: time.Second, fetch: func(context.Context) (uint64, error) {
		fetches.Add(1)
		v := counter.Load()
		time.Sleep(2 * time.Millisecond)
		return v, nil
	}}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				before := counter.Add(1)
				idx, err := r.index(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if idx < before {
					t.Errorf("index %d fetched before the request (counter was %d)", idx, before)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n >= 64*20 {
		t.Fatalf("%d fetches for %d requests: nothing shared", n, 64*20)
	}
	t.Logf("%d fetches for %d requests", fetches.Load(), 64*20)
}
