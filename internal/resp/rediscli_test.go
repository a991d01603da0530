package resp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// redisCLI is the path of the real redis-cli, or the test fails: it is
// how people first meet a Redis-protocol server, so the suite must not
// pass without it.
func redisCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: install redis-tools (apt-get install -y redis-tools; .ci/run installs it)")
	}
	return p
}

// cliEnv keeps redis-cli away from the user's history and rc files.
func cliEnv(t *testing.T) []string {
	home := t.TempDir()
	return append(os.Environ(), "HOME="+home, "REDISCLI_HISTFILE=/dev/null", "REDISCLI_RCFILE=/dev/null", "TERM=xterm")
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// screen is what a terminal shows redis-cli printing: the pty's output
// without escape sequences and carriage returns, growing as it arrives.
// Like a terminal it answers the cursor-position query (ESC [6n) that
// redis-cli's line editor sends before it draws a prompt.
type screen struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	seen  int       // what expect has consumed
	reply io.Writer // the terminal's input
}

var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]|\r`)

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range bytes.Count(p, []byte("\x1b[6n")) {
		if _, err := s.reply.Write([]byte("\x1b[1;1R")); err != nil {
			return 0, err
		}
	}
	return s.buf.Write(p)
}

func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return escapes.ReplaceAllString(s.buf.String(), "")
}

// expect waits until the screen shows want after what earlier expects
// consumed, and consumes up to its end.
func (s *screen) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		txt := s.text()
		s.mu.Lock()
		seen := min(s.seen, len(txt))
		s.mu.Unlock()
		if i := strings.Index(txt[seen:], want); i >= 0 {
			s.mu.Lock()
			s.seen = seen + i + len(want)
			s.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %q; after the last match it shows:\n%s", want, txt[seen:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisCLIInteractive types into redis-cli under a pseudo-terminal, as
// a person does, and reads the screen: the prompt, SET and GET, an
// unknown command's error, the built-in help (redis-cli falls back to it
// because COMMAND DOCS answers an error), and quit.
func TestRedisCLIInteractive(t *testing.T) {
	cli := redisCLI(t)
	ts := startTestServer(t, nil)
	host, port := hostPort(t, ts.addr)
	cmd := exec.Command(cli, "-h", host, "-p", port)
	cmd.Env = cliEnv(t)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("redis-cli (pid %d) still running 10s after SIGKILL", cmd.Process.Pid)
			}
		}
	})
	scr := screen{reply: tty}
	go func() { _, _ = io.Copy(&scr, tty) }()
	typeLine := func(line string) {
		t.Helper()
		if _, err := tty.WriteString(line + "\r"); err != nil {
			t.Fatal(err)
		}
	}
	prompt := fmt.Sprintf("%s:%s> ", host, port)

	scr.expect(t, prompt)
	typeLine("set greeting hello")
	scr.expect(t, "\nOK\n")
	scr.expect(t, prompt)
	typeLine("get greeting")
	scr.expect(t, `"hello"`)
	scr.expect(t, prompt)
	typeLine("incr greeting")
	scr.expect(t, "(error) ERR value is not an integer or out of range")
	scr.expect(t, prompt)
	typeLine("help set")
	scr.expect(t, "SET key value")
	scr.expect(t, "summary: Set the string value of a key")
	scr.expect(t, "group: string")
	scr.expect(t, prompt)
	typeLine("dbsize")
	scr.expect(t, "(integer) 1")
	scr.expect(t, prompt)
	typeLine("quit")
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("redis-cli exited with %v after quit; the screen:\n%s", waitErr, scr.text())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("redis-cli still running 10s after quit; the screen:\n%s", scr.text())
	}
	if v, err := ts.client(t, 2).Get(context.Background(), "greeting").Result(); err != nil || v != "hello" {
		t.Fatalf("GET greeting after the session = %q, %v", v, err)
	}
}

// TestRedisCLIScan lists keys with redis-cli --scan --pattern over 240
// keys (redis-cli asks for 10 a call, so the scan takes many cursors):
// exactly the matching keys, each once.
func TestRedisCLIScan(t *testing.T) {
	cli := redisCLI(t)
	ts := startTestServer(t, nil)
	ctx := context.Background()
	c := ts.client(t, 2)
	var want []string
	for i := range 120 {
		k := fmt.Sprintf("user:%03d", i)
		want = append(want, k)
		if err := c.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, fmt.Sprintf("order:%03d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	host, port := hostPort(t, ts.addr)
	cmd := exec.Command(cli, "-h", host, "-p", port, "--scan", "--pattern", "user:*")
	cmd.Env = cliEnv(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("redis-cli --scan: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("redis-cli --scan --pattern user:* listed %d keys, want the %d user keys once each:\n%s", len(got), len(want), out)
	}
}

// TestRedisCLIPipe bulk-loads 100,000 keys with redis-cli --pipe (the
// mass-insertion path: raw protocol on stdin, replies counted, an ECHO
// marker to know the last reply arrived) and checks the count and a
// sample of values.
func TestRedisCLIPipe(t *testing.T) {
	cli := redisCLI(t)
	ts := startTestServer(t, nil)
	const n = 100_000
	var in bytes.Buffer
	for i := range n {
		k, v := fmt.Sprintf("pipe:%06d", i), fmt.Sprintf("value-%d", i)
		fmt.Fprintf(&in, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	host, port := hostPort(t, ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "--pipe")
	cmd.Env = cliEnv(t)
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --pipe: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("errors: 0, replies: %d", n)) {
		t.Fatalf("redis-cli --pipe did not report %d replies without errors:\n%s", n, out)
	}
	c := ts.client(t, 2)
	if size, err := c.DBSize(ctx).Result(); err != nil || size != n {
		t.Fatalf("DBSIZE after --pipe = %d, %v; want %d", size, err, n)
	}
	for _, i := range []int{0, 1, 4242, 54321, n - 1} {
		k, want := fmt.Sprintf("pipe:%06d", i), fmt.Sprintf("value-%d", i)
		if v, err := c.Get(ctx, k).Result(); err != nil || v != want {
			t.Fatalf("GET %s = %q, %v; want %q", k, v, err, want)
		}
	}
}
