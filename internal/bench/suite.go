package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// loadBatch is how many keys one untimed loading batch writes.
const loadBatch = 500

// test is one benchmark of the suite. setup prepares its data untimed and
// returns what to measure.
type test struct {
	id, name string
	// about says what the test does; it is printed above the test's results.
	about string
	setup func(ctx context.Context, s *session, sub *subjectRun) (phase, error)
}

// phase is a test ready to measure on one subject.
type phase struct {
	st store
	op opFunc
	// after (optional) checks the outcome; it may add errors to m.
	after func(ctx context.Context, m *measurement)
	// note (optional) explains the figures, given the cache capacity.
	note func(cacheCapacity uint64) string
	// close (optional) releases what setup opened.
	close func() error
}

// tests is the suite, in the order it runs. Sequential Reads, High
// Throughput and Prefix Scan read the main key space Sequential Writes
// fills; when that test stopped early, the missing keys are loaded untimed.
var tests = []test{
	{
		id: "sequential_writes", name: "Sequential Writes",
		about: "put of keys in ascending order, one key per operation",
		setup: func(_ context.Context, s *session, sub *subjectRun) (phase, error) {
			return phase{
				st: sub.main,
				op: func(ctx context.Context, w *worker, i int64) error {
					return sub.main.put(ctx, mainKey(int(i%int64(s.lvl.Keys))), s.value(w))
				},
				after: func(_ context.Context, m *measurement) {
					sub.mainLoaded = m.errors == 0 && m.ops >= int64(s.lvl.Keys)
				},
			}, nil
		},
	},
	{
		id: "sequential_reads", name: "Sequential Reads",
		about: "get of the main key space in ascending order; a missing or wrong-sized value is an error",
		setup: func(ctx context.Context, s *session, sub *subjectRun) (phase, error) {
			if err := s.loadMain(ctx, sub); err != nil {
				return phase{}, err
			}
			return phase{st: sub.main, op: func(ctx context.Context, w *worker, i int64) error {
				return s.checkGet(ctx, sub.main, mainKey(int(i%int64(s.lvl.Keys))))
			}}, nil
		},
	},
	{
		id: "random_writes", name: "Random Writes",
		about: "put of uniformly random keys of the main key space (overwrites)",
		setup: func(_ context.Context, s *session, sub *subjectRun) (phase, error) {
			return phase{st: sub.main, op: func(ctx context.Context, w *worker, _ int64) error {
				return sub.main.put(ctx, mainKey(w.rng.IntN(s.lvl.Keys)), s.value(w))
			}}, nil
		},
	},
	{
		id: "high_throughput", name: "High Throughput",
		about: "80% get, 20% put of random keys of the main key space from every worker",
		setup: func(ctx context.Context, s *session, sub *subjectRun) (phase, error) {
			if err := s.loadMain(ctx, sub); err != nil {
				return phase{}, err
			}
			return phase{st: sub.main, op: func(ctx context.Context, w *worker, _ int64) error {
				key := mainKey(w.rng.IntN(s.lvl.Keys))
				if w.rng.IntN(100) < 80 {
					return s.checkGet(ctx, sub.main, key)
				}
				return sub.main.put(ctx, key, s.value(w))
			}}, nil
		},
	},
	{
		id: "concurrent_operations", name: "Concurrent Operations",
		about: "on a key space of its own, starting empty: 40% get (a miss is fine), 25% put, 10% delete, " +
			"15% atomic batch of 10 puts, 10% prefix scan of up to 20 keys",
		setup: func(_ context.Context, s *session, sub *subjectRun) (phase, error) {
			st := sub.main
			return phase{st: st, op: func(ctx context.Context, w *worker, _ int64) error {
				key := concurrentKey(w.rng.IntN(s.lvl.Keys))
				switch r := w.rng.IntN(100); {
				case r < 40:
					_, _, err := st.get(ctx, key)
					return err
				case r < 65:
					return st.put(ctx, key, s.value(w))
				case r < 75:
					return st.delete(ctx, key)
				case r < 90:
					kvs := make([]kv, 10)
					for j := range kvs {
						kvs[j] = kv{concurrentKey(w.rng.IntN(s.lvl.Keys)), s.value(w)}
					}
					return st.batchPut(ctx, kvs)
				default:
					_, err := st.scan(ctx, key[:len(key)-3], 20)
					return err
				}
			}}, nil
		},
	},
	{
		id: "memory_pressure", name: "Memory Pressure",
		about: "uniformly random gets over a working set larger than the cache (the engine's cache is set to " +
			"a fraction of the data; over HTTP the server's own cache applies)",
		setup: func(ctx context.Context, s *session, sub *subjectRun) (phase, error) {
			st, closeStore, err := sub.subject.withCache(s.lvl.pressureCache())
			if err != nil {
				return phase{}, err
			}
			if err := s.load(ctx, sub, st, s.lvl.PressureKeys, pressureKey); err != nil {
				return phase{}, errors.Join(err, closeStore())
			}
			working := s.lvl.pressureBytes()
			return phase{
				st: st,
				op: func(ctx context.Context, w *worker, _ int64) error {
					return s.checkGet(ctx, st, pressureKey(w.rng.IntN(s.lvl.PressureKeys)))
				},
				note: func(capacity uint64) string {
					switch {
					case capacity == 0:
						return "no value cache: every read goes to the engine's index"
					case capacity >= uint64(working):
						return fmt.Sprintf("the cache (%s) holds the whole working set (%s): not under memory pressure",
							formatBytes(int64(capacity)), formatBytes(working))
					}
					return fmt.Sprintf("cache %s for a working set of %s", formatBytes(int64(capacity)), formatBytes(working))
				},
				close: closeStore,
			}, nil
		},
	},
	{
		id: "prefix_scan", name: "Prefix Scan",
		about: "scan of a random 1000-key prefix of the main key space, reading up to the level's scan limit; " +
			"a short answer is an error",
		setup: func(ctx context.Context, s *session, sub *subjectRun) (phase, error) {
			if err := s.loadMain(ctx, sub); err != nil {
				return phase{}, err
			}
			return phase{st: sub.main, op: func(ctx context.Context, w *worker, _ int64) error {
				group := w.rng.IntN((s.lvl.Keys + 999) / 1000)
				want := min(s.lvl.ScanLimit, 1000, s.lvl.Keys-group*1000)
				n, err := sub.main.scan(ctx, fmt.Sprintf("k/%07d", group), s.lvl.ScanLimit)
				if err == nil && n != want {
					err = fmt.Errorf("scan of group %d returned %d keys, want %d", group, n, want)
				}
				return err
			}}, nil
		},
	},
	{
		id: "transactions", name: "Transactions",
		about: "read-modify-write increment of a random counter in one transaction, retried on conflict " +
			"(over HTTP a compare-and-swap through /api/v1/txn); the counters' sum must equal the commits",
		setup: func(ctx context.Context, s *session, sub *subjectRun) (phase, error) {
			st := sub.main
			kvs := make([]kv, s.lvl.Counters)
			for i := range kvs {
				kvs[i] = kv{counterKey(i), "0"}
			}
			if err := st.batchPut(ctx, kvs); err != nil {
				return phase{}, fmt.Errorf("setting the counters: %w", err)
			}
			return phase{
				st: st,
				op: func(ctx context.Context, w *worker, _ int64) error {
					conflicts, err := st.increment(ctx, counterKey(w.rng.IntN(s.lvl.Counters)), w.rng)
					w.conflicts += int64(conflicts)
					return err
				},
				after: func(ctx context.Context, m *measurement) {
					sum, err := sumCounters(ctx, st, s.lvl.Counters)
					if err == nil && sum != m.ops {
						err = fmt.Errorf("the counters sum to %d after %d committed increments", sum, m.ops)
						m.errors += max(sum-m.ops, m.ops-sum)
					} else if err != nil {
						m.errors++
					}
					if err != nil && m.firstErr == nil {
						m.firstErr = err
					}
				},
			}, nil
		},
	},
}

// mainKey is key i of the main key space; its last three digits group
// keys by thousands for Prefix Scan.
func mainKey(i int) string { return fmt.Sprintf("k/%010d", i) }

// concurrentKey is key i of Concurrent Operations' key space.
func concurrentKey(i int) string { return fmt.Sprintf("c/%010d", i) }

// pressureKey is key i of Memory Pressure's working set.
func pressureKey(i int) string { return fmt.Sprintf("p/%010d", i) }

// counterKey is counter i of Transactions.
func counterKey(i int) string { return fmt.Sprintf("t/%06d", i) }

// sumCounters reads every counter back.
func sumCounters(ctx context.Context, st store, n int) (int64, error) {
	var sum int64
	for i := range n {
		v, found, err := st.get(ctx, counterKey(i))
		if err != nil {
			return 0, err
		}
		if !found {
			return 0, fmt.Errorf("counter %q is missing", counterKey(i))
		}
		c, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("counter %q holds %q", counterKey(i), v)
		}
		sum += c
	}
	return sum, nil
}
