package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// kind is what a workload's operation does.
type kind int

const (
	putSeq kind = iota
	putRand
	batchPut
	getHot
	getCold
	scanPrefix
	mixed
)

// batchSize is the number of puts in one batch of the batch workload.
const batchSize = 100

// scanSize is the number of keys one prefix covers and one scan visits:
// keys are "k" and nine digits, and a prefix drops the last three.
const scanSize = 1000

// loadBatch is the batch size of the untimed load that completes the key
// set when put-seq stopped at its time cap.
const loadBatch = 1000

// Workload is one row of the result tables.
type Workload struct {
	// Name identifies the row in the results.
	Name string
	// Title is the row heading in the doc.
	Title string
	// Unit is what one operation is: "op", "batch" (100 puts) or "scan" (1,000 keys).
	Unit string
	// Writes says the workload writes, so it runs at both durabilities;
	// read-only workloads run once, in the `never` pass.
	Writes  bool
	kind    kind
	threads int
	readPct int
}

// workloads is the table every engine runs, in this order, on one store:
// put-seq fills it from empty, so every later row sees the full key set.
var workloads = func() []Workload {
	ws := []Workload{
		{Name: "put-seq", Title: "sequential put (empty store, key order)", Unit: "op", Writes: true, kind: putSeq, threads: 1},
		{Name: "put-rand", Title: "random put (overwrite)", Unit: "op", Writes: true, kind: putRand, threads: 1},
		{Name: "batch-100", Title: "batch of 100 random puts", Unit: "batch", Writes: true, kind: batchPut, threads: 1},
		{Name: "get-hot", Title: "random get, hot (10k-key working set)", Unit: "op", kind: getHot, threads: 1},
		{Name: "get-cold", Title: "random get, cold (uniform over all keys)", Unit: "op", kind: getCold, threads: 1},
		{Name: "scan-1000", Title: "prefix scan of 1,000 keys", Unit: "scan", kind: scanPrefix, threads: 1},
	}
	for _, r := range []int{90, 50} {
		for _, g := range []int{1, 8, 64} {
			ws = append(ws, Workload{
				Name:   fmt.Sprintf("mixed-%d-g%d", r, g),
				Title:  fmt.Sprintf("mixed %d/%d get/put, %d goroutine%s", r, 100-r, g, map[bool]string{true: "s"}[g > 1]),
				Unit:   "op",
				Writes: true, kind: mixed, threads: g, readPct: r,
			})
		}
	}
	return ws
}()

// dataset is what every engine is given: the same keys, values and random
// sequences, so each engine runs the same operations in the same order.
type dataset struct {
	n, valueSize, hot int
	keys              [][]byte
	// pool holds random (incompressible) bytes; value i is a window of it.
	pool []byte
}

// newDataset precomputes n keys "k%09d" and a value pool for valueSize
// values; hot is the size of the hot working set.
func newDataset(n, valueSize, hot int) *dataset {
	d := &dataset{n: n, valueSize: valueSize, hot: min(hot, n)}
	backing := make([]byte, 0, n*10)
	d.keys = make([][]byte, n)
	for i := range n {
		start := len(backing)
		backing = append(backing, 'k')
		s := strconv.Itoa(i)
		for range 9 - len(s) {
			backing = append(backing, '0')
		}
		backing = append(backing, s...)
		d.keys[i] = backing[start:len(backing):len(backing)]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	d.pool = make([]byte, 1<<20+valueSize)
	for i := range d.pool {
		d.pool[i] = byte(rng.Uint32())
	}
	return d
}

// value is the value every write of key i stores: distinct for the first
// 2^20 keys (7919 is prime, so coprime with the pool's 2^20 offsets).
func (d *dataset) value(i int) []byte {
	off := (i * 7919) % (1 << 20)
	return d.pool[off : off+d.valueSize : off+d.valueSize]
}

// prefix is the prefix shared by keys p*1000 .. p*1000+999.
func (d *dataset) prefix(p int) []byte {
	k := d.keys[p*scanSize]
	return k[: len(k)-3 : len(k)-3]
}

// mix is splitmix64: the position-th random number of a workload's
// sequence, so sequences need no memory and differ between workloads.
func mix(seed, pos uint64) uint64 {
	z := seed*0x9e3779b97f4a7c15 + pos + 1
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// limits bound and check one cell.
type limits struct {
	// ops is the number of point operations a cell aims for (batches and
	// scans aim for ops/100 and ops/1000); put-seq writes each key once.
	ops int
	// cap is the time cap of a whole cell, split evenly among the rounds.
	cap time.Duration
	// rounds is how many times the cell is measured; the median is kept.
	rounds int
	// verify compares every value read with the one written; otherwise
	// reads are checked for presence and length, scans for their count.
	verify bool
}

// Cell is one workload's result on one engine.
type Cell struct {
	Workload string `json:"workload"`
	// OpsPerSec is the median over the rounds of ops/elapsed.
	OpsPerSec float64   `json:"ops_per_sec"`
	Rounds    []float64 `json:"rounds"`
	Ops       int64     `json:"ops"`
	Seconds   float64   `json:"seconds"`
	// Capped is true when the time cap ended a round before its op count.
	Capped bool   `json:"capped"`
	Error  string `json:"error,omitempty"`
}

// NsPerOp is the median time per operation.
func (c Cell) NsPerOp() float64 { return 1e9 / c.OpsPerSec }

// runner runs the workloads on one open store.
type runner struct {
	s   Store
	d   *dataset
	lim limits
	// loaded is how many keys, from key 0 in order, the store holds.
	loaded int
}

// target is the op count a workload aims for.
func (r *runner) target(w Workload) int {
	switch w.kind {
	case putSeq:
		return r.d.n
	case batchPut:
		return max(1, r.lim.ops/batchSize)
	case scanPrefix:
		return max(1, r.lim.ops/scanSize)
	}
	return r.lim.ops
}

// cellRun is one workload being measured on one store, a round at a
// time, so the rounds of different engines can be interleaved.
type cellRun struct {
	r      *runner
	w      Workload
	op     func(pos int) error
	per    int
	cursor int
	left   int
	cell   Cell
	failed atomic.Value
}

// start prepares the measurement of w; seed selects its random sequence.
func (r *runner) start(w Workload, seed uint64) *cellRun {
	rounds := max(1, r.lim.rounds)
	return &cellRun{
		r: r, w: w, op: r.op(w, seed), left: rounds,
		per:  max(1, (r.target(w)+rounds-1)/rounds/w.threads),
		cell: Cell{Workload: w.Name},
	}
}

// round measures the next round, if any is left.
func (c *cellRun) round() {
	r, w := c.r, c.w
	if c.left == 0 || c.cell.Error != "" {
		return
	}
	c.left--
	per := c.per
	if w.kind == putSeq {
		per = min(per, r.d.n-c.cursor)
		if per == 0 {
			c.left = 0
			return
		}
	}
	done, elapsed, capped := r.round(w.threads, c.cursor, per, r.lim.cap/time.Duration(max(1, r.lim.rounds)), c.op, &c.failed)
	c.cell.Ops += done
	c.cell.Seconds += elapsed.Seconds()
	c.cell.Capped = c.cell.Capped || capped
	if done > 0 {
		c.cell.Rounds = append(c.cell.Rounds, float64(done)/elapsed.Seconds())
	}
	if w.kind == putSeq {
		c.cursor += int(done)
		r.loaded = c.cursor
	} else {
		c.cursor += per * w.threads
	}
	if err, _ := c.failed.Load().(error); err != nil {
		c.cell.Error = err.Error()
	}
}

// result is the cell with the median round's rate.
func (c *cellRun) result() Cell {
	cell := c.cell
	cell.Rounds = slices.Clone(cell.Rounds)
	sorted := slices.Sorted(slices.Values(cell.Rounds))
	if len(sorted) > 0 {
		cell.OpsPerSec = sorted[len(sorted)/2]
	}
	return cell
}

// run measures every round of w in a row and returns its cell.
func (r *runner) run(w Workload, seed uint64) Cell {
	c := r.start(w, seed)
	for range max(1, r.lim.rounds) {
		c.round()
	}
	return c.result()
}

// round runs per positions on each of threads goroutines, goroutine g
// taking [base+g*per, base+(g+1)*per), until done or the deadline.
func (r *runner) round(threads, base, per int, timeCap time.Duration, op func(pos int) error, failed *atomic.Value) (int64, time.Duration, bool) {
	var total atomic.Int64
	var capped atomic.Bool
	work := func(g int) {
		start := base + g*per
		deadline := time.Now().Add(timeCap)
		n := 0
		for ; n < per; n++ {
			if n&7 == 0 && time.Now().After(deadline) {
				capped.Store(true)
				break
			}
			if err := op(start + n); err != nil {
				failed.CompareAndSwap(nil, err)
				break
			}
		}
		total.Add(int64(n))
	}
	t0 := time.Now()
	if threads == 1 {
		work(0)
	} else {
		var wg sync.WaitGroup
		for g := range threads {
			wg.Go(func() { work(g) })
		}
		wg.Wait()
	}
	return total.Load(), time.Since(t0), capped.Load()
}

// load writes the keys put-seq did not reach, in batches, untimed.
func (r *runner) load() (time.Duration, error) {
	t0 := time.Now()
	kvs := make([]KV, 0, loadBatch)
	for i := r.loaded; i < r.d.n; i++ {
		kvs = append(kvs, KV{r.d.keys[i], r.d.value(i)})
		if len(kvs) == loadBatch || i == r.d.n-1 {
			if err := r.s.Batch(kvs); err != nil {
				return 0, err
			}
			kvs = kvs[:0]
		}
	}
	r.loaded = r.d.n
	return time.Since(t0), nil
}

// checkValue checks a value read for key i.
func (r *runner) checkValue(i int, v []byte, err error) error {
	if err != nil {
		return fmt.Errorf("get %s: %w", r.d.keys[i], err)
	}
	if len(v) != r.d.valueSize {
		return fmt.Errorf("get %s: %d bytes, want %d", r.d.keys[i], len(v), r.d.valueSize)
	}
	if r.lim.verify && !bytes.Equal(v, r.d.value(i)) {
		return fmt.Errorf("get %s: value differs from the one written", r.d.keys[i])
	}
	return nil
}

// op returns the function that performs position pos of w's sequence.
func (r *runner) op(w Workload, seed uint64) func(pos int) error {
	d := r.d
	n := uint64(d.n)
	switch w.kind {
	case putSeq:
		return func(pos int) error { return r.s.Put(d.keys[pos], d.value(pos)) }
	case putRand:
		return func(pos int) error {
			i := int(mix(seed, uint64(pos)) % n)
			return r.s.Put(d.keys[i], d.value(i))
		}
	case batchPut:
		// One goroutine: the slice is reused, as a caller's would be.
		kvs := make([]KV, batchSize)
		return func(pos int) error {
			for j := range kvs {
				i := int(mix(seed, uint64(pos*batchSize+j)) % n)
				kvs[j] = KV{d.keys[i], d.value(i)}
			}
			return r.s.Batch(kvs)
		}
	case getHot:
		stride := uint64(d.n / d.hot)
		return func(pos int) error {
			i := int(mix(seed, uint64(pos)) % uint64(d.hot) * stride)
			v, err := r.s.Get(d.keys[i])
			return r.checkValue(i, v, err)
		}
	case getCold:
		return func(pos int) error {
			i := int(mix(seed, uint64(pos)) % n)
			v, err := r.s.Get(d.keys[i])
			return r.checkValue(i, v, err)
		}
	case scanPrefix:
		prefixes := uint64(d.n / scanSize)
		return func(pos int) error {
			p := int(mix(seed, uint64(pos)) % prefixes)
			first := p * scanSize
			var bad error
			seen := 0
			c, err := r.s.Scan(d.prefix(p), scanSize, func(k, v []byte) {
				// Visits are in key order, so the seen-th is key first+seen.
				i := first + seen
				seen++
				if bad != nil || !r.lim.verify {
					return
				}
				if i >= d.n || !bytes.Equal(k, d.keys[i]) || !bytes.Equal(v, d.value(i)) {
					bad = fmt.Errorf("scan %s: visit %d is key %q, want %q with its value", d.prefix(p), seen, k, d.keys[min(i, d.n-1)])
				}
			})
			if err != nil {
				return fmt.Errorf("scan %s: %w", d.prefix(p), err)
			}
			if bad != nil {
				return bad
			}
			if c != scanSize {
				return fmt.Errorf("scan %s: %d keys, want %d", d.prefix(p), c, scanSize)
			}
			return nil
		}
	case mixed:
		return func(pos int) error {
			x := mix(seed, uint64(pos))
			i := int((x >> 32) % n)
			if int((x&0xffffffff)%100) < w.readPct {
				v, err := r.s.Get(d.keys[i])
				return r.checkValue(i, v, err)
			}
			return r.s.Put(d.keys[i], d.value(i))
		}
	}
	panic("unknown workload kind")
}
