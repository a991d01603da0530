package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// startRedis runs Debian's redis-server on a free loopback port, without
// persistence, for the duration of the test. A machine without it fails
// the test: the differential test is how the server proves it speaks
// Redis, and CI installs the package (.ci/run).
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed; the differential test needs it: apt-get install -y redis-server redis-tools")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
			if line == "+PONG\r\n" {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reply is one parsed RESP reply: its raw bytes and, for aggregates, its
// elements.
type reply struct {
	raw   string
	kind  byte
	text  string // simple, error, integer, bulk text
	elems []reply
}

// readReply reads one reply of any RESP2/RESP3 type.
func readReply(r *bufio.Reader) (reply, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return reply{}, err
	}
	if len(line) < 3 {
		return reply{}, fmt.Errorf("short reply line %q", line)
	}
	rep := reply{raw: line, kind: line[0], text: line[1 : len(line)-2]}
	switch rep.kind {
	case '$', '=', '!':
		n, err := strconv.Atoi(rep.text)
		if err != nil {
			return reply{}, fmt.Errorf("bad bulk length in %q", line)
		}
		if n < 0 {
			return rep, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return reply{}, err
		}
		rep.raw += string(buf)
		rep.text = string(buf[:n])
	case '*', '~', '%', '>':
		n, err := strconv.Atoi(rep.text)
		if err != nil {
			return reply{}, fmt.Errorf("bad aggregate length in %q", line)
		}
		if rep.kind == '%' {
			n *= 2
		}
		for range max(n, 0) {
			e, err := readReply(r)
			if err != nil {
				return reply{}, err
			}
			rep.raw += e.raw
			rep.elems = append(rep.elems, e)
		}
	}
	return rep, nil
}

// respConn is a raw client connection that sends commands as RESP arrays.
type respConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRESP(t *testing.T, addr string) *respConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &respConn{c: c, r: bufio.NewReader(c)}
}

func encodeCommand(args []string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

func (c *respConn) do(args ...string) (reply, error) {
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write(encodeCommand(args)); err != nil {
		return reply{}, err
	}
	return readReply(c.r)
}

// pipeline sends every command at once and reads their replies in order.
func (c *respConn) pipeline(cmds [][]string) ([]reply, error) {
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	var buf []byte
	for _, args := range cmds {
		buf = append(buf, encodeCommand(args)...)
	}
	if _, err := c.c.Write(buf); err != nil {
		return nil, err
	}
	out := make([]reply, len(cmds))
	for i := range cmds {
		var err error
		if out[i], err = readReply(c.r); err != nil {
			return nil, err
		}
	}
	return out, nil
}
