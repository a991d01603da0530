package serverproc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestStartPassesOutputInOrderWithoutMantisSettings(t *testing.T) {
	t.Setenv("MANTISDB_AUTH_TOKEN", "secret")
	t.Setenv("SERVERPROC_TEST", "kept")
	// onLine and onExit run on one goroutine, done before Exited closes.
	var got []string
	var state *os.ProcessState
	p, err := Start("/bin/sh", []string{"-c", `echo one; echo two >&2; echo "${MANTISDB_AUTH_TOKEN:-unset} $SERVERPROC_TEST"; exit 3`},
		func(s string) { got = append(got, s) }, func(st *os.ProcessState) { state = st })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not exit")
	}
	if want := []string{"one", "two", "unset kept"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	if state == nil || state.ExitCode() != 3 || p.Err() == nil {
		t.Fatalf("exit state %v, Err %v: want status 3 seen before Exited closed", state, p.Err())
	}
	if p.Running() {
		t.Fatal("Running after exit")
	}
	if err := p.Kill(time.Second); err != nil {
		t.Fatalf("Kill of an exited process: %v", err)
	}
}

func TestKillAndStop(t *testing.T) {
	p, err := Start("/bin/sh", []string{"-c", "exec sleep 60"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("not Running after start")
	}
	if err := p.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.Err() == nil {
		t.Fatalf("after Kill: Running %v, Err %v", p.Running(), p.Err())
	}

	// Stop continues a stopped process before SIGTERM, so it exits.
	p, err = Start("/bin/sh", []string{"-c", "exec sleep 60"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("Running after Stop")
	}
	if err := p.Stop(time.Second); !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("Stop of an exited process: %v, want os.ErrProcessDone", err)
	}
}

func TestWaitHealthy(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := WaitHealthy(context.Background(), srv.URL, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}

	exited := make(chan struct{})
	close(exited)
	if err := WaitHealthy(context.Background(), "http://127.0.0.1:1", 10*time.Second, exited); !errors.Is(err, ErrExited) {
		t.Fatalf("with the process gone: %v, want ErrExited", err)
	}
	err := WaitHealthy(context.Background(), "http://127.0.0.1:1", 100*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "did not answer 200 within 100ms") {
		t.Fatalf("nothing listening: %v", err)
	}
}
