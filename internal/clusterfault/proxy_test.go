package clusterfault

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// serveLoopback listens on a free loopback port until the test ends and
// hands every accepted connection to serve, in its own goroutine.
func serveLoopback(t *testing.T, serve func(net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := c.Write([]byte(line)); err != nil {
				return
			}
		}
	}).String()
}

// dialFrom connects to addr from node i's loopback address.
func dialFrom(t *testing.T, i int, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(nodeIP(i))}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(c net.Conn, msg string, wait time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestProxyFaults(t *testing.T) {
	if ln, err := net.Listen("tcp", nodeIP(2)+":0"); err != nil {
		t.Skipf("needs loopback address %s (Linux has all of 127/8): %v", nodeIP(2), err)
	} else {
		ln.Close()
	}
	f := newFaults()
	p, err := startProxy(0, echoServer(t), f, sourceNode)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()

	c := dialFrom(t, 1, p.addr())
	if got, err := roundTrip(c, "hello", time.Second); err != nil || got != "hello" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}
	// Blackhole: an open connection goes silent, without an error.
	f.set(0, 1, link{mode: linkBlackhole})
	if got, err := roundTrip(c, "lost", 300*time.Millisecond); err == nil {
		t.Fatalf("a blackholed link answered %q", got)
	}
	// Another node's link is not affected.
	if got, err := roundTrip(dialFrom(t, 2, p.addr()), "other", time.Second); err != nil || got != "other" {
		t.Fatalf("node 2 through the proxy: %q, %v", got, err)
	}
	// Drop: new connections are cut.
	f.set(0, 1, link{mode: linkDrop})
	if _, err := roundTrip(dialFrom(t, 1, p.addr()), "cut", time.Second); err == nil {
		t.Fatal("a dropped link carried a message")
	}
	// Delay: messages arrive, late.
	f.heal()
	f.set(0, 1, link{delay: 100 * time.Millisecond})
	start := time.Now()
	if got, err := roundTrip(dialFrom(t, 1, p.addr()), "slow", 2*time.Second); err != nil || got != "slow" {
		t.Fatalf("delayed link: %q, %v", got, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("a link delayed 100ms each way answered in %v", d)
	}
	f.heal()
	if got, err := roundTrip(dialFrom(t, 1, p.addr()), "healed", time.Second); err != nil || got != "healed" {
		t.Fatalf("after heal: %q, %v", got, err)
	}
}
