//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// TestPeerMemory measures what each engine holds in memory to serve a
// store of N keys of 16 bytes with 100-byte values: the store is filled
// and closed by one process, then a fresh process opens it and reports how
// much its resident set (VmRSS) and its Go heap (HeapAlloc after a GC)
// grew, divided by N. Every engine runs with the adapter's settings
// (bench/peers/<engine>.go, a 64 MiB cache where it has one), and after the
// measurement 1,000 keys are read back and checked. The memory engine,
// which keeps nothing on disk, is left out.
//
// Skipped unless MANTIS_MEMORY_KEYS is set; MANTIS_MEMORY_ENGINES (comma
// separated, default all) narrows the engines and MANTIS_MEMORY_DIR (default
// $TMPDIR) is where stores are created. For example:
//
//	MANTIS_MEMORY_KEYS=1000000 go test -tags rust -run TestPeerMemory -v .
func TestPeerMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MANTIS_MEMORY_KEYS"))
	if n <= 0 {
		t.Skip("set MANTIS_MEMORY_KEYS to measure")
	}
	if phase := os.Getenv("MANTIS_MEMORY_PHASE"); phase != "" {
		memoryPhase(t, phase, os.Getenv("MANTIS_MEMORY_ENGINE"), os.Getenv("MANTIS_MEMORY_STORE"), n)
		return
	}
	var names []string
	if s := os.Getenv("MANTIS_MEMORY_ENGINES"); s != "" {
		names = strings.Split(s, ",")
	}
	engs, err := selectEngines(names)
	if err != nil {
		t.Fatal(err)
	}
	parent := os.Getenv("MANTIS_MEMORY_DIR")
	if parent == "" {
		parent = os.TempDir()
	}
	t.Logf("%-10s %12s %12s %14s %14s", "engine", "RSS B/key", "heap B/key", "RSS growth", "on disk")
	for _, e := range engs {
		if !e.Durable {
			continue // nothing to reopen: the memory engine keeps nothing on disk
		}
		dir, err := os.MkdirTemp(parent, "peermem-"+e.Name+"-")
		if err != nil {
			t.Fatal(err)
		}
		runPhase(t, "fill", e.Name, dir, n)
		res := runPhase(t, "measure", e.Name, dir, n)
		var disk int64
		_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				disk += fi.Size()
			}
			return nil
		})
		os.RemoveAll(dir)
		t.Logf("%-10s %12.1f %12.1f %11.1f MiB %10.1f MiB", e.Name,
			float64(res.RSSGrowth)/float64(n), float64(res.HeapGrowth)/float64(n),
			float64(res.RSSGrowth)/(1<<20), float64(disk)/(1<<20))
	}
}

// memoryResult is what the measure phase prints (one JSON line).
type memoryResult struct {
	RSSGrowth  int64 `json:"rss_growth"`
	HeapGrowth int64 `json:"heap_growth"`
}

// runPhase runs one phase in a fresh process (this test binary again) and
// returns what it printed.
func runPhase(t *testing.T, phase, engine, dir string, n int) memoryResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerMemory$", "-test.v")
	cmd.Env = append(os.Environ(),
		"MANTIS_MEMORY_PHASE="+phase,
		"MANTIS_MEMORY_ENGINE="+engine,
		"MANTIS_MEMORY_STORE="+dir,
		"MANTIS_MEMORY_KEYS="+strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", engine, phase, err, out)
	}
	var res memoryResult
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "MEMORY "); i >= 0 {
			if err := json.Unmarshal([]byte(line[i+len("MEMORY "):]), &res); err != nil {
				t.Fatalf("%s %s: %v", engine, phase, err)
			}
		}
	}
	return res
}

func memoryKey(i int) []byte {
	return []byte(fmt.Sprintf("key:%012d", i))
}

func memoryValue(i int) []byte {
	v := bytes.Repeat([]byte{0x5a}, 100)
	binary.LittleEndian.PutUint64(v, uint64(i))
	return v
}

// memoryPhase is the child process: "fill" writes the store and closes it,
// "measure" opens it and prints the growth.
func memoryPhase(t *testing.T, phase, engine, dir string, n int) {
	engs, err := selectEngines([]string{engine})
	if err != nil {
		t.Fatal(err)
	}
	e := engs[0]
	switch phase {
	case "fill":
		s, err := e.Open(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		batch := make([]KV, 0, 1000)
		for i := 0; i < n; i++ {
			batch = append(batch, KV{Key: memoryKey(i), Value: memoryValue(i)})
			if len(batch) == cap(batch) || i == n-1 {
				if err := s.Batch(batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	case "measure":
		rss0, heap0 := memoryNow(t)
		s, err := e.Open(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		rss1, heap1 := memoryNow(t)
		for i := 0; i < n; i += max(1, n/1000) {
			v, err := s.Get(memoryKey(i))
			if err != nil || !bytes.Equal(v, memoryValue(i)) {
				t.Fatalf("%s: key %d after reopen: %v", engine, i, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(memoryResult{RSSGrowth: rss1 - rss0, HeapGrowth: int64(heap1) - int64(heap0)})
		fmt.Printf("MEMORY %s\n", b)
	default:
		t.Fatalf("unknown phase %q", phase)
	}
}

// memoryNow returns the process's resident set (bytes) and Go heap in use
// after a full collection.
func memoryNow(t *testing.T) (int64, uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10, ms.HeapAlloc
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0, 0
}
