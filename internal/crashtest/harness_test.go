package crashtest

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/internal/kv"
	"github.com/mantisdb/mantisdb/internal/resp"
	"github.com/mantisdb/mantisdb/storage"
)

// memLauncher serves the API in process over the memory engine. A kill
// cuts every connection at once. With keep, the engine outlives its
// servers, as a durable engine's data outlives its process; without it
// every start begins empty, as if every write were lost. With resp it
// serves the Redis protocol beside HTTP.
type memLauncher struct {
	keep   bool
	resp   bool
	mu     sync.Mutex
	engine storage.StorageEngine
	starts int
}

func (l *memLauncher) Start(context.Context) (Instance, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.starts++
	if l.engine == nil || !l.keep {
		e := storage.NewMemoryEngine(storage.DefaultConfig())
		if err := e.Init(""); err != nil {
			return nil, err
		}
		l.engine = e
	}
	in := &memInstance{srv: httptest.NewServer(api.New(l.engine, api.Options{}).Handler())}
	if l.resp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			in.srv.Close()
			return nil, err
		}
		in.resp = resp.Start(ln, resp.Config{Store: kv.New(l.engine), Sync: "always"})
	}
	return in, nil
}

func (l *memLauncher) StartAndKill(ctx context.Context, d time.Duration) error {
	in, err := l.Start(ctx)
	if err != nil {
		return err
	}
	time.Sleep(d)
	return in.Kill()
}

type memInstance struct {
	srv  *httptest.Server
	resp *resp.Server
}

func (m *memInstance) URL() string { return m.srv.URL }

func (m *memInstance) RESPAddr() string {
	if m.resp == nil {
		return ""
	}
	return m.resp.Addr().String()
}

func (m *memInstance) Kill() error {
	m.srv.CloseClientConnections()
	m.srv.Close()
	return m.closeRESP()
}

func (m *memInstance) Stop() error {
	m.srv.Close()
	return m.closeRESP()
}

func (m *memInstance) closeRESP() error {
	if m.resp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.resp.Close(ctx)
}

func testConfig(cycles int) Config {
	cfg := DefaultConfig()
	cfg.Cycles = cycles
	cfg.Writers = 4
	cfg.Keys = 256
	cfg.MinLoad, cfg.MaxLoad = 10*time.Millisecond, 40*time.Millisecond
	cfg.LongLoads, cfg.LongLoad = 0.2, 50*time.Millisecond
	cfg.StartupKills = 0.5
	cfg.MaxStartupKill = 2 * time.Millisecond
	cfg.Seed = 42
	return cfg
}

func TestRunPassesOnAServerThatKeepsItsData(t *testing.T) {
	l := &memLauncher{keep: true}
	var out strings.Builder
	cfg := testConfig(6)
	cfg.Progress = 3
	cfg.Out = &out
	sum, err := Run(context.Background(), cfg, l)
	if err != nil {
		Report(&out, sum.Violations, 20)
		t.Fatalf("%v\n%s", err, out.String())
	}
	if sum.Cycles != 6 || sum.Puts == 0 || sum.Deletes == 0 || sum.Batches == 0 || sum.PointReads == 0 {
		t.Fatalf("the run did too little: %s", sum.Line())
	}
	// The empty start, every cycle, and the restart after the clean stop.
	if want := (6 + 2) * cfg.Keys; sum.KeysVerified != want {
		t.Fatalf("%d key checks, want %d", sum.KeysVerified, want)
	}
	if want := 6 + 1 + 1 + sum.StartupKills; l.starts != want {
		t.Fatalf("%d starts, want %d", l.starts, want)
	}
	if !strings.Contains(out.String(), "cycle 3/6:") || !strings.Contains(out.String(), "cycle 6/6:") {
		t.Fatalf("progress lines missing:\n%s", out.String())
	}
	if line := sum.Line(); !strings.HasPrefix(line, "crash-test PASS: 6 cycles,") || !strings.Contains(line, " 0 violations") {
		t.Fatalf("summary line: %s", line)
	}
}

// TestRunRESPPassesOnAServerThatKeepsItsData drives SET, DEL and MSET,
// alone and pipelined, over the Redis protocol against the in-process
// server, and checks each reply and every key after each restart.
func TestRunRESPPassesOnAServerThatKeepsItsData(t *testing.T) {
	l := &memLauncher{keep: true, resp: true}
	cfg := testConfig(6)
	cfg.Protocol = ProtocolRESP
	sum, err := Run(context.Background(), cfg, l)
	if err != nil {
		var b strings.Builder
		Report(&b, sum.Violations, 20)
		t.Fatalf("%v\n%s", err, b.String())
	}
	if sum.Cycles != 6 || sum.Puts == 0 || sum.Deletes == 0 || sum.Batches == 0 || sum.Pipelined == 0 || sum.PointReads == 0 {
		t.Fatalf("the run did too little: %s", sum.Line())
	}
	t.Log(sum.Line())
	if line := sum.Line(); !strings.Contains(line, "over RESP: ") || !strings.Contains(line, " pipelined)") {
		t.Fatalf("summary line: %s", line)
	}
}

func TestRunRESPReportsLostWrites(t *testing.T) {
	cfg := testConfig(3)
	cfg.Protocol = ProtocolRESP
	sum, err := Run(context.Background(), cfg, &memLauncher{resp: true})
	if !errors.Is(err, ErrViolations) || sum.Cycles != 1 {
		t.Fatalf("a server that forgets everything passed: %v, %s", err, sum.Line())
	}
	for _, v := range sum.Violations {
		if v.What == "acknowledged write lost" && v.Found == "absent" {
			return
		}
	}
	var b strings.Builder
	Report(&b, sum.Violations, 10)
	t.Fatalf("no lost write reported:\n%s", b.String())
}

func TestRunReportsLostWrites(t *testing.T) {
	sum, err := Run(context.Background(), testConfig(3), &memLauncher{})
	if !errors.Is(err, ErrViolations) {
		t.Fatalf("a server that forgets everything passed: %v, %s", err, sum.Line())
	}
	if sum.Cycles != 1 {
		t.Fatalf("the run went on after a failing cycle: %d cycles", sum.Cycles)
	}
	var lost int
	for _, v := range sum.Violations {
		if v.What == "acknowledged write lost" && v.Cycle == 1 && strings.HasPrefix(v.Expected, "value of op ") && v.Found == "absent" {
			lost++
		}
	}
	if lost == 0 {
		var b strings.Builder
		Report(&b, sum.Violations, 10)
		t.Fatalf("no lost write reported:\n%s", b.String())
	}
	if !strings.HasPrefix(sum.Line(), "crash-test FAIL:") {
		t.Fatalf("summary line: %s", sum.Line())
	}
}

func TestRunRefusesDataItDidNotWrite(t *testing.T) {
	l := &memLauncher{keep: true}
	in, err := l.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.engine.Put(context.Background(), keyName(1), "left over"); err != nil {
		t.Fatal(err)
	}
	if err := in.Kill(); err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), testConfig(2), l)
	if !errors.Is(err, ErrViolations) || sum.Cycles != 0 || len(sum.Violations) == 0 || sum.Violations[0].Key != keyName(1) {
		t.Fatalf("non-empty data: %v, %+v", err, sum.Violations)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, edit := range []func(*Config){
		func(c *Config) { c.Cycles = 0 },
		func(c *Config) { c.Writers = 0 },
		func(c *Config) { c.Keys = 8*c.Writers - 1 },
		func(c *Config) { c.MaxLoad = c.MinLoad - 1 },
		func(c *Config) { c.StartupKills = 1.5 },
		func(c *Config) { c.LongLoads = -0.1 },
		func(c *Config) { c.LongLoad = 0 },
		func(c *Config) { c.Protocol = "gopher" },
	} {
		cfg := testConfig(1)
		edit(&cfg)
		if _, err := Run(context.Background(), cfg, &memLauncher{}); err == nil || errors.Is(err, ErrViolations) {
			t.Errorf("config %+v: want a config error, got %v", cfg, err)
		}
	}
}
