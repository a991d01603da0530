package clusterfault

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeRedis answers the commands of one CAS from a script: for each
// command name, the raw reply, or "" to close the connection when the
// command arrives (the fault: the node died or the connection was cut).
func fakeRedis(t *testing.T, script map[string]string) int {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) { serveScript(c, script) }).Port
}

func serveScript(c net.Conn, script map[string]string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		reply, ok := script[strings.ToUpper(args[0])]
		if !ok {
			reply = "+OK\r\n"
		}
		if reply == "" {
			return
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || line[0] != '*' {
		return nil, errors.New("not an array")
	}
	args := make([]string, n)
	for i := range args {
		if _, err := r.ReadString('\n'); err != nil {
			return nil, err
		}
		s, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args[i] = strings.TrimSuffix(s, "\r\n")
	}
	return args, nil
}

// TestRESPOutcomes: how the Redis protocol client files each answer of a
// CAS and a write in the history: definite, unknown (EXEC or SET sent and
// no answer), or left out (nothing that writes was sent).
func TestRESPOutcomes(t *testing.T) {
	ctx := t.Context()
	client := func(script map[string]string) *respClient {
		port := fakeRedis(t, script)
		c := newRESPClient([]*node{{respPort: port}}, time.Second)
		t.Cleanup(c.close)
		return c
	}
	absent := map[string]string{"HELLO": "-ERR unknown command 'HELLO'\r\n", "GET": "$-1\r\n", "MULTI": "+OK\r\n", "SET": "+QUEUED\r\n", "EXEC": "*1\r\n+OK\r\n"}
	with := func(cmd, reply string) map[string]string {
		s := map[string]string{}
		for k, v := range absent {
			s[k] = v
		}
		s[cmd] = reply
		return s
	}

	if ok, err := client(absent).cas(ctx, 0, "k", "", "v"); err != nil || !ok {
		t.Fatalf("CAS from absent that EXEC ran: %v, %v; want true", ok, err)
	}
	if ok, err := client(with("EXEC", "*-1\r\n")).cas(ctx, 0, "k", "", "v"); !errors.Is(err, errAborted) || ok {
		t.Fatalf("CAS whose EXEC answered nil: %v, %v; want errAborted", ok, err)
	}
	if ok, err := client(with("GET", "$1\r\nx\r\n")).cas(ctx, 0, "k", "", "v"); err != nil || ok {
		t.Fatalf("CAS that read another value: %v, %v; want a definite false", ok, err)
	}
	if _, err := client(with("EXEC", "")).cas(ctx, 0, "k", "", "v"); !errors.Is(err, errIndefinite) {
		t.Fatalf("CAS whose connection closed after EXEC was sent: %v; want an unknown outcome", err)
	}
	if _, err := client(with("EXEC", "-ERR the write's outcome is unknown\r\n")).cas(ctx, 0, "k", "", "v"); !errors.Is(err, errIndefinite) {
		t.Fatalf("CAS whose EXEC answered an error: %v; want an unknown outcome", err)
	}
	if _, err := client(with("GET", "")).cas(ctx, 0, "k", "", "v"); err == nil || errors.Is(err, errIndefinite) {
		t.Fatalf("CAS whose connection closed at GET: %v; want a definite failure (nothing was written)", err)
	}
	if err := client(with("SET", "")).put(ctx, 0, "k", "v"); !errors.Is(err, errIndefinite) {
		t.Fatalf("SET without an answer: %v; want an unknown outcome", err)
	}

	// The history files them so: unknown ones stay open to the end,
	// definite failures are left out.
	h := &harness{start: time.Now()}
	h.record(0, h.now(), kvInput{Kind: opPut, Key: "k", Value: "1"}, kvOutput{}, errIndefinite)
	h.record(0, h.now(), kvInput{Kind: opCAS, Key: "k", Value: "2"}, kvOutput{}, errors.New("before EXEC: closed"))
	if len(h.history) != 1 || !h.history[0].Output.(kvOutput).Unknown || h.history[0].Return < 1<<62 {
		t.Fatalf("history %+v", h.history)
	}
}
