package crashtest

import (
	"bytes"
	"strings"
	"testing"
)

func TestValueBytesIdentifyTheirWrite(t *testing.T) {
	a := valueBytes(7, 3, 100)
	if len(a) != 100 || !bytes.Equal(a, valueBytes(7, 3, 100)) {
		t.Fatal("valueBytes is not deterministic or has the wrong length")
	}
	for _, other := range [][]byte{valueBytes(8, 3, 100), valueBytes(7, 4, 100), valueBytes(7, 3, 101)[:100]} {
		if bytes.Equal(a, other) {
			t.Fatal("two different writes share a value")
		}
	}
	if got := len(valueBytes(1, 1, 0)); got != minValueSize {
		t.Fatalf("shortest value is %d bytes, want the %d-byte header", got, minValueSize)
	}
	if d := describe(a, true); !strings.Contains(d, "op 7") || !strings.Contains(d, "(intact)") {
		t.Fatalf("describe: %s", d)
	}
	damaged := bytes.Clone(a)
	damaged[60] ^= 1
	if d := describe(damaged, true); !strings.Contains(d, "damaged") {
		t.Fatalf("describe of a damaged value: %s", d)
	}
}

// server builds what a scan would answer for the given key states.
func server(m map[int]state) map[string]observed {
	got := make(map[string]observed)
	for k, s := range m {
		if s.present {
			got[keyName(k)] = observed{present: true, value: expectedBytes(s, k)}
		}
	}
	return got
}

func whats(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.String() + "\n")
	}
	return b.String()
}

func TestCheckAcknowledgedWrites(t *testing.T) {
	m := newModel(16)
	put := &op{id: 1, kind: opPut, writes: []write{{key: 2, size: 40}}}
	batch := &op{id: 2, kind: opBatch, writes: []write{{key: 3, size: 500}, {key: 4, size: 20}, {key: 2, del: true}}}
	later := &op{id: 3, kind: opPut, writes: []write{{key: 4, size: 3000}}}
	for _, o := range []*op{put, batch, later} {
		m.apply(o)
	}
	want := map[int]state{3: {true, 2, 500}, 4: {true, 3, 3000}}

	res := m.check(1, server(want), nil)
	if len(res.violations) != 0 || res.keysVerified != 16 {
		t.Fatalf("a faithful server: %d keys verified, violations:\n%s", res.keysVerified, whats(res.violations))
	}

	cases := []struct {
		name   string
		edit   func(map[string]observed)
		key    string
		what   string
		expect string
	}{
		{"lost", func(g map[string]observed) { delete(g, keyName(3)) }, keyName(3), "acknowledged write lost", "value of op 2 (500 bytes)"},
		{"stale", func(g map[string]observed) {
			g[keyName(4)] = observed{present: true, value: valueBytes(2, 4, 20)}
		}, keyName(4), "wrong value", "value of op 3"},
		{"damaged", func(g map[string]observed) { g[keyName(4)].value[2000] ^= 0x80 }, keyName(4), "wrong value", "value of op 3"},
		{"delete undone", func(g map[string]observed) {
			g[keyName(2)] = observed{present: true, value: valueBytes(1, 2, 40)}
		}, keyName(2), "deleted or never written", "absent"},
		{"foreign key", func(g map[string]observed) {
			g["crash/zzz"] = observed{present: true, value: []byte("x")}
		}, "crash/zzz", "never wrote", "absent"},
		{"key past the key space", func(g map[string]observed) {
			g[keyName(16)] = observed{present: true, value: valueBytes(9, 16, 30)}
		}, keyName(16), "never wrote", "absent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m2 := &model{keys: append([]state(nil), m.keys...)}
			got := server(want)
			tc.edit(got)
			res := m2.check(5, got, nil)
			if len(res.violations) != 1 {
				t.Fatalf("want one violation, got:\n%s", whats(res.violations))
			}
			v := res.violations[0]
			if v.Cycle != 5 || v.Key != tc.key || !strings.Contains(v.What, tc.what) || !strings.Contains(v.Expected, tc.expect) {
				t.Fatalf("violation %s; want key %s, %q, expected %q", v, tc.key, tc.what, tc.expect)
			}
		})
	}
}

func TestCheckInFlight(t *testing.T) {
	before := map[int]state{1: {true, 10, 100}, 2: {true, 11, 30}}
	inflight := &op{id: 20, kind: opBatch, writes: []write{
		{key: 1, size: 700}, {key: 2, del: true}, {key: 3, size: 15}, {key: 5, del: true}, // key 5 is absent: unobservable
	}}
	after := map[int]state{1: {true, 20, 700}, 3: {true, 20, 15}}
	fresh := func() *model {
		m := newModel(8)
		for k, s := range before {
			m.keys[k] = s
		}
		return m
	}

	t.Run("not applied", func(t *testing.T) {
		m := fresh()
		res := m.check(1, server(before), []*op{inflight})
		if len(res.violations) != 0 || res.resolved[resolvedNotApplied] != 1 {
			t.Fatalf("resolved %v, violations:\n%s", res.resolved, whats(res.violations))
		}
		if m.keys[1] != before[1] {
			t.Fatal("a batch that did not happen changed the model")
		}
	})
	t.Run("applied", func(t *testing.T) {
		m := fresh()
		res := m.check(1, server(after), []*op{inflight})
		if len(res.violations) != 0 || res.resolved[resolvedApplied] != 1 {
			t.Fatalf("resolved %v, violations:\n%s", res.resolved, whats(res.violations))
		}
		// The next cycle expects the batch: losing it then is a loss.
		lost := server(after)
		delete(lost, keyName(3))
		if res := m.check(2, lost, nil); len(res.violations) != 1 || res.violations[0].What != "acknowledged write lost" {
			t.Fatalf("a resolved batch lost later:\n%s", whats(res.violations))
		}
	})
	t.Run("torn", func(t *testing.T) {
		m := fresh()
		torn := server(after)
		torn[keyName(2)] = observed{present: true, value: valueBytes(11, 2, 30)} // the delete did not happen
		res := m.check(1, torn, []*op{inflight})
		if len(res.violations) != 3 {
			t.Fatalf("want the three informative keys reported, got:\n%s", whats(res.violations))
		}
		for _, v := range res.violations {
			if !strings.Contains(v.What, "torn atomic batch (op 20)") {
				t.Fatalf("violation %s", v)
			}
		}
		if !strings.Contains(whats(res.violations), "not applied here") {
			t.Fatal("the report does not say which keys missed the batch")
		}
	})
	t.Run("neither before nor after", func(t *testing.T) {
		m := fresh()
		m.keys[7] = state{true, 12, 80}
		got := server(before)                                                    // key 7 lost as well
		got[keyName(1)] = observed{present: true, value: valueBytes(20, 1, 699)} // truncated value
		res := m.check(1, got, []*op{inflight})
		if len(res.violations) != 2 || !strings.Contains(res.violations[0].What, "neither as before it nor as after it") ||
			res.violations[1].Key != keyName(7) || res.violations[1].What != "acknowledged write lost" {
			t.Fatalf("violations:\n%s", whats(res.violations))
		}
	})
	t.Run("unobservable", func(t *testing.T) {
		m := fresh()
		del := &op{id: 30, kind: opDelete, writes: []write{{key: 6, del: true}}}
		res := m.check(1, server(before), []*op{del})
		if len(res.violations) != 0 || res.resolved[resolvedUnobservable] != 1 {
			t.Fatalf("resolved %v, violations:\n%s", res.resolved, whats(res.violations))
		}
	})
}

func TestKeyIndex(t *testing.T) {
	for _, tc := range []struct {
		key string
		i   int
		ok  bool
	}{
		{keyName(0), 0, true}, {keyName(99), 99, true}, {keyName(100), 0, false},
		{"crash/-0001", 0, false}, {"crash/0001", 0, false}, {"other/00001", 0, false}, {"crash/+0001", 0, false},
	} {
		if i, ok := keyIndex(tc.key, 100); i != tc.i || ok != tc.ok {
			t.Errorf("keyIndex(%q) = %d, %v; want %d, %v", tc.key, i, ok, tc.i, tc.ok)
		}
	}
}
