package resp

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestConcurrentIncr: 50 connections x 1,000 INCR on one key end at
// exactly 50,000 (1,000 x 50 / 10 in -short).
func TestConcurrentIncr(t *testing.T) {
	ts := startTestServer(t, nil)
	clients, per := 50, 1000
	if testing.Short() {
		per = 100
	}
	c := ts.client(t, 3, func(o *redis.Options) { o.PoolSize = clients })
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if err := c.Incr(context.Background(), "counter").Err(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v, err := c.Get(t.Context(), "counter").Int(); err != nil || v != clients*per {
		t.Fatalf("counter = %d, %v; want %d", v, err, clients*per)
	}
}

// TestWatchCheckAndSet: check-and-set loops with WATCH/MULTI/EXEC from
// many connections lose no update.
func TestWatchCheckAndSet(t *testing.T) {
	ts := startTestServer(t, nil)
	workers, per := 10, 100
	c := ts.client(t, 2, func(o *redis.Options) { o.PoolSize = workers })
	var wg sync.WaitGroup
	ctx := context.Background()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				for {
					err := c.Watch(ctx, func(tx *redis.Tx) error {
						n, err := tx.Get(ctx, "cas").Int()
						if err != nil && !errors.Is(err, redis.Nil) {
							return err
						}
						_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Set(ctx, "cas", strconv.Itoa(n+1), 0)
							return nil
						})
						return err
					}, "cas")
					if err == nil {
						break
					}
					if !errors.Is(err, redis.TxFailedErr) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if v, err := c.Get(ctx, "cas").Int(); err != nil || v != workers*per {
		t.Fatalf("cas = %d, %v; want %d", v, err, workers*per)
	}
}

// TestWatchSeesEngineWrites: a write that bypasses the RESP server (as
// the HTTP API's does), even of the same value, aborts EXEC.
func TestWatchSeesEngineWrites(t *testing.T) {
	ts := startTestServer(t, nil)
	r := ts.raw(t)
	if err := ts.engine.Put(t.Context(), "w", "same"); err != nil {
		t.Fatal(err)
	}
	r.send("WATCH w\r\n")
	r.expect("+OK\r\n")
	if err := ts.engine.Put(t.Context(), "w", "same"); err != nil {
		t.Fatal(err)
	}
	r.send("MULTI\r\nSET w mine\r\nEXEC\r\nGET w\r\n")
	r.expect("+OK\r\n+QUEUED\r\n*-1\r\n$4\r\nsame\r\n")
	// Without a write in between, EXEC runs.
	r.send("WATCH w\r\nMULTI\r\nSET w mine\r\nEXEC\r\n")
	r.expect("+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
}
