package cluster

import (
	"reflect"
	"testing"
	"time"
)

func TestCommandRoundTripAndStamp(t *testing.T) {
	p := command{kind: kindProposal,
		conds: []cond{{key: "a", version: 7}, {key: "", version: 0}},
		ops: []op{
			{key: "a", value: "1"},
			{key: "ttl", value: "2", expiry: 1500},
			{key: "at", value: "3", expiry: 1_800_000_000_000, abs: true},
			{del: true, key: "gone"},
			{key: "bin\x00\xff", value: ""},
		}}
	got, err := decodeCommand(p.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, p)
	}
	now := time.UnixMilli(1_700_000_000_000)
	e := p.stamp(now)
	if e.kind != kindEntry || e.clockMs != now.UnixMilli() {
		t.Fatalf("entry header %+v", e)
	}
	// A TTL becomes an absolute expiry from the leader's clock; an absolute
	// expiry stays; no expiry stays none.
	if e.ops[0].expiry != 0 || e.ops[1].expiry != now.UnixMilli()+1500 || e.ops[2].expiry != 1_800_000_000_000 {
		t.Fatalf("stamped expiries %d %d %d", e.ops[0].expiry, e.ops[1].expiry, e.ops[2].expiry)
	}
	back, err := decodeCommand(e.encode())
	if err != nil || !reflect.DeepEqual(back, e) {
		t.Fatalf("entry round trip: %+v, %v", back, err)
	}
}

func TestCommandDecodeRejectsDamage(t *testing.T) {
	b := command{kind: kindProposal, ops: []op{{key: "k", value: "v"}}}.encode()
	for i := range len(b) {
		if _, err := decodeCommand(b[:i]); err == nil {
			t.Fatalf("a command cut to %d of %d bytes decoded", i, len(b))
		}
	}
	if _, err := decodeCommand(append(append([]byte(nil), b...), 0)); err == nil {
		t.Fatal("a command with a trailing byte decoded")
	}
	bad := append([]byte(nil), b...)
	bad[0] = 9
	if _, err := decodeCommand(bad); err == nil {
		t.Fatal("a command of an unknown kind decoded")
	}
}
