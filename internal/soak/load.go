package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mantisdb/mantisdb/internal/bench"
)

// latencyMaxUs is the longest latency the histograms tell apart (one
// minute); longer requests are recorded as one minute.
const latencyMaxUs = 60_000_000

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, latencyMaxUs, 3) }

// The operation mix, in percent: reads dominate, every write path and the
// scan and transaction paths are exercised.
var mix = []struct {
	op     string
	weight int
}{
	{"get", 50}, {"put", 20}, {"delete", 5}, {"batch", 10}, {"scan", 10}, {"txn", 5},
}

const (
	batchSize   = 20  // puts in one batch
	scanLimit   = 100 // keys one scan reads at most
	counters    = 64  // keys the transactions increment
	scanSpan    = 100 // keys under one scan prefix
	valueSource = 1 << 20
)

// keySpace hands out keys: during the warm-up puts create new keys up to
// Keys; once the warm-up ends the set is frozen at the keys created, and
// every operation lands on one of them, so the key set stops growing.
type keySpace struct {
	max     int64
	grown   atomic.Int64 // keys created so far (0..max)
	frozen  atomic.Int64 // the frozen size, 0 while warming up
	created atomic.Int64 // puts that created a key, for the report
}

func keyName(i int64) string { return fmt.Sprintf("k%08d", i) }

// size is the number of keys operations may touch now.
func (ks *keySpace) size() int64 {
	if f := ks.frozen.Load(); f > 0 {
		return f
	}
	return max(ks.grown.Load(), 1)
}

// writeKey is the key of a put: a new one while warming up and below
// max, else an existing one.
func (ks *keySpace) writeKey(rng *rand.Rand) string {
	if ks.frozen.Load() == 0 {
		if i := ks.grown.Add(1) - 1; i < ks.max {
			ks.created.Add(1)
			return keyName(i)
		}
		ks.grown.Store(ks.max)
	}
	return ks.anyKey(rng)
}

// anyKey is an existing key (one that may have been deleted since).
func (ks *keySpace) anyKey(rng *rand.Rand) string { return keyName(rng.Int64N(ks.size())) }

// freeze ends the growth.
func (ks *keySpace) freeze() int64 {
	n := min(ks.grown.Load(), ks.max)
	ks.frozen.Store(max(n, 1))
	return ks.frozen.Load()
}

// loadWorker is one client goroutine with its own random source and
// interval histogram.
type loadWorker struct {
	rng    *rand.Rand
	mu     sync.Mutex
	hist   *hdrhistogram.Histogram
	errors int64
	ops    map[string]int64
	first  error
}

// take returns the worker's interval figures and starts a new interval.
func (w *loadWorker) take() (*hdrhistogram.Histogram, int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, e, f := w.hist, w.errors, w.first
	w.hist, w.errors, w.first = newHistogram(), 0, nil
	return h, e, f
}

// load drives the server with the mix from n workers until ctx ends.
type load struct {
	client  *bench.HTTPClient
	keys    *keySpace
	values  string // random bytes values are cut from
	vmin    int
	vmax    int
	workers []*loadWorker
}

func newLoad(client *bench.HTTPClient, n int, keys int64, vmin, vmax int) *load {
	src := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	buf := make([]byte, valueSource)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range buf {
		buf[i] = alphabet[src.IntN(len(alphabet))]
	}
	l := &load{client: client, keys: &keySpace{max: keys}, values: string(buf), vmin: vmin, vmax: vmax}
	for i := 0; i < n; i++ {
		l.workers = append(l.workers, &loadWorker{
			rng:  rand.New(rand.NewPCG(rand.Uint64(), uint64(i))),
			hist: newHistogram(),
			ops:  make(map[string]int64),
		})
	}
	return l
}

func (l *load) value(rng *rand.Rand) string {
	n := l.vmin + rng.IntN(l.vmax-l.vmin+1)
	at := rng.IntN(len(l.values) - n + 1)
	return l.values[at : at+n]
}

// prepare creates the transaction counters.
func (l *load) prepare(ctx context.Context) error {
	for i := 0; i < counters; i++ {
		if err := l.client.Put(ctx, fmt.Sprintf("c%02d", i), "0"); err != nil {
			return fmt.Errorf("creating the counters: %w", err)
		}
	}
	return nil
}

// run starts the workers; they stop when ctx ends, and wg is done when
// every one has.
func (l *load) run(ctx context.Context, wg *sync.WaitGroup) {
	for _, w := range l.workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				op := pick(w.rng)
				t0 := time.Now()
				err := l.do(ctx, w, op)
				us := int64((time.Since(t0) + time.Microsecond - 1) / time.Microsecond)
				if ctx.Err() != nil {
					return // cut off by the end of the run, not a failure
				}
				w.mu.Lock()
				w.ops[op]++
				if err != nil {
					w.errors++
					if w.first == nil {
						w.first = fmt.Errorf("%s: %w", op, err)
					}
				} else {
					_ = w.hist.RecordValue(min(us, latencyMaxUs)) // in range by construction
				}
				w.mu.Unlock()
			}
		})
	}
}

func pick(rng *rand.Rand) string {
	n := rng.IntN(100)
	for _, m := range mix {
		if n < m.weight {
			return m.op
		}
		n -= m.weight
	}
	return mix[0].op
}

func (l *load) do(ctx context.Context, w *loadWorker, op string) error {
	switch op {
	case "get":
		_, _, err := l.client.Get(ctx, l.keys.anyKey(w.rng))
		return err
	case "put":
		return l.client.Put(ctx, l.keys.writeKey(w.rng), l.value(w.rng))
	case "delete":
		return l.client.Delete(ctx, l.keys.anyKey(w.rng))
	case "batch":
		keys := make([]string, batchSize)
		values := make([]string, batchSize)
		for i := range keys {
			keys[i], values[i] = l.keys.writeKey(w.rng), l.value(w.rng)
		}
		return l.client.BatchPut(ctx, keys, values)
	case "scan":
		spans := max(l.keys.size()/scanSpan, 1)
		_, err := l.client.Scan(ctx, fmt.Sprintf("k%06d", w.rng.Int64N(spans)), scanLimit)
		return err
	case "txn":
		_, err := l.client.Increment(ctx, fmt.Sprintf("c%02d", w.rng.IntN(counters)), w.rng)
		return err
	}
	return fmt.Errorf("unknown op %q", op)
}

// interval merges and resets every worker's interval figures.
func (l *load) interval() (*hdrhistogram.Histogram, int64, error) {
	h := newHistogram()
	var errs int64
	var first error
	for _, w := range l.workers {
		wh, e, f := w.take()
		h.Merge(wh)
		errs += e
		if first == nil {
			first = f
		}
	}
	return h, errs, first
}

// opCounts is how many operations of each kind ran.
func (l *load) opCounts() map[string]int64 {
	out := make(map[string]int64)
	for _, w := range l.workers {
		w.mu.Lock()
		for k, v := range w.ops {
			out[k] += v
		}
		w.mu.Unlock()
	}
	return out
}
