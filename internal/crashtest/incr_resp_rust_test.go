//go:build rust

package crashtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverbuild"
)

// incrCrashCycles runs cycles of INCR load over the Redis protocol against
// the real server (extraArgs after --sync always), each ended by SIGKILL,
// and returns what it found wrong. Each of conns connections increments a
// counter of its own and one counter all share, alone or in pipelines of
// up to 8; after each restart:
//   - a connection's own counter holds at least the last value the server
//     acknowledged to it, and at most that plus the INCRs it had sent
//     without a reply (in flight at the kill);
//   - the shared counter holds at least the largest value acknowledged to
//     anyone, and at most the number of INCRs ever sent on it.
func incrCrashCycles(t *testing.T, cycles, conns int, extraArgs ...string) (acked int, problems []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	work := t.TempDir()
	log, err := os.Create(filepath.Join(work, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	p := &Process{Bin: serverbuild.Binary(t), DataDir: filepath.Join(work, "data"), Log: log, ExtraArgs: extraArgs, RESP: true}
	ctx := context.Background()
	own := make([]int64, conns) // last acknowledged value per connection
	var shared, sharedSent int64
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	for c := 0; c < cycles; c++ {
		in, err := p.Start(ctx)
		if err != nil {
			t.Fatalf("cycle %d: %v", c, err)
		}
		type result struct {
			ownAcked, ownSent, sharedAcked, sharedSent int64
			acked                                      int
			err                                        error
		}
		results := make([]result, conns)
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go func(i int, seed uint64) {
				defer wg.Done()
				r := &results[i]
				r.ownAcked = own[i]
				conn, err := dialRESP(ctx, in.RESPAddr())
				if err != nil {
					return // the kill came first
				}
				defer conn.close()
				rg := rand.New(rand.NewPCG(seed, uint64(i)))
				ownKey := []byte(fmt.Sprintf("incr:own:%d", i))
				sharedKey := []byte("incr:shared")
				for {
					isOwn := make([]bool, 1+rg.IntN(8))
					for j := range isOwn {
						isOwn[j] = rg.IntN(2) == 0
						if isOwn[j] {
							conn.command([]byte("INCR"), ownKey)
							r.ownSent++
						} else {
							conn.command([]byte("INCR"), sharedKey)
							r.sharedSent++
						}
					}
					if conn.send() != nil {
						return
					}
					for _, mine := range isOwn {
						rep, err := conn.reply()
						if err != nil {
							return // the kill: the rest are in flight
						}
						v, perr := strconv.ParseInt(rep.line, 10, 64)
						if rep.kind != ':' || perr != nil {
							r.err = fmt.Errorf("INCR answered %s", rep)
							return
						}
						r.acked++
						if mine {
							if v != r.ownAcked+1 {
								r.err = fmt.Errorf("INCR %s answered %d after %d", ownKey, v, r.ownAcked)
								return
							}
							r.ownAcked = v
						} else {
							r.sharedAcked = max(r.sharedAcked, v)
						}
					}
				}
			}(i, rng.Uint64())
		}
		time.Sleep(time.Duration(150+rng.IntN(350)) * time.Millisecond)
		if err := in.Kill(); err != nil {
			t.Fatalf("cycle %d: kill: %v", c, err)
		}
		wg.Wait()
		var sharedAcked int64
		for i, r := range results {
			if r.err != nil {
				problems = append(problems, fmt.Sprintf("cycle %d, connection %d: %v", c, i, r.err))
			}
			acked += r.acked
			sharedSent += r.sharedSent
			sharedAcked = max(sharedAcked, r.sharedAcked)
		}
		shared = max(shared, sharedAcked)
		// Restart and check every counter.
		in, err = p.Start(ctx)
		if err != nil {
			t.Fatalf("cycle %d: restart: %v", c, err)
		}
		conn, err := dialRESP(ctx, in.RESPAddr())
		if err != nil {
			t.Fatal(err)
		}
		read := func(key string) int64 {
			o, err := conn.get(key)
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			if !o.present {
				return 0
			}
			n, err := strconv.ParseInt(string(o.value), 10, 64)
			if err != nil {
				t.Fatalf("GET %s: %q", key, o.value)
			}
			return n
		}
		for i, r := range results {
			got := read(fmt.Sprintf("incr:own:%d", i))
			inFlight := r.ownSent - (r.ownAcked - own[i])
			if got < r.ownAcked || got > r.ownAcked+inFlight {
				problems = append(problems, fmt.Sprintf("cycle %d: incr:own:%d is %d after the restart; acknowledged %d, %d in flight",
					c, i, got, r.ownAcked, inFlight))
			}
			own[i] = got
		}
		got := read("incr:shared")
		if got < shared || got > sharedSent {
			problems = append(problems, fmt.Sprintf("cycle %d: incr:shared is %d after the restart; acknowledged up to %d, %d sent",
				c, got, shared, sharedSent))
		}
		shared = got
		conn.close()
		if err := in.Stop(); err != nil {
			t.Fatalf("cycle %d: stop: %v", c, err)
		}
	}
	return acked, problems
}

// TestServerCrashIncrRESP: every INCR the server acknowledged under
// --sync always survives SIGKILL (see incrCrashCycles), with the
// increments of many connections sharing group commits in the engine.
// 4 cycles (MANTIS_SERVER_INCR_CRASH_CYCLES overrides the count).
func TestServerCrashIncrRESP(t *testing.T) {
	cycles := envCycles(t, "MANTIS_SERVER_INCR_CRASH_CYCLES", 4)
	acked, problems := incrCrashCycles(t, cycles, 8, "--segment-size", "64KiB")
	for _, p := range problems {
		t.Error(p)
	}
	if acked < 100 {
		t.Fatalf("only %d INCRs acknowledged in %d cycles: the run proves nothing", acked, cycles)
	}
	t.Logf("%d INCRs acknowledged over %d kills", acked, cycles)
}

// TestServerCrashIncrRESPCatchesSyncNever: under --sync never the server
// acknowledges INCRs still in its write buffer, and SIGKILL loses them;
// the check above must see that, so its pass means something.
func TestServerCrashIncrRESPCatchesSyncNever(t *testing.T) {
	for attempt := 0; attempt < 3; attempt++ {
		if _, problems := incrCrashCycles(t, 3, 8, "--sync", "never"); len(problems) > 0 {
			return
		}
	}
	t.Fatal("no lost INCR found under --sync never")
}
