package clusterfault

import (
	"net"
	"strconv"
	"testing"
)

// Ports for the nodes come from below the kernel's ephemeral range, where
// no bind to port 0 elsewhere on the machine can take them between the
// check and the node's own bind; each is handed out once and is free.
func TestFreePortsAreDistinctAndOutsideTheEphemeralRange(t *testing.T) {
	low, ok := ephemeralLow()
	if !ok || low <= portFloor+1000 {
		t.Skipf("no ephemeral range to stay below (read %d, %v)", low, ok)
	}
	seen := map[int]bool{}
	for range 50 {
		p, err := freePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < portFloor || p >= low {
			t.Fatalf("port %d outside [%d, %d)", p, portFloor, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d handed out but not free: %v", p, err)
		}
		_ = ln.Close()
	}
}
