// Command mantisdb-screenshots takes the screenshots of the dashboard in
// docs/operations/dashboard.md: it starts a server binary with a token on a
// loopback port and a fresh data directory, writes sample keys, applies a
// mixed HTTP load that changes pace over time, and photographs /ui in a
// headless Chromium at a laptop's and a phone's width: the charts, the key
// browser with the editor open, and the token prompt of a fresh tab.
//
// Usage (see `make dashboard-screenshots`):
//
//	mantisdb-screenshots --server ./mantisdb-rust --out docs/operations/dashboard
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mantisdb/mantisdb/internal/chromium"
)

// token is the bearer token the photographed server runs with.
const token = "dashboard-screenshots"

// Viewports: a common laptop screen, and a common phone in CSS pixels.
const (
	laptopWidth, laptopHeight = 1366, 900
	phoneWidth, phoneHeight   = 390, 844
)

func main() {
	server := flag.String("server", "./mantisdb-rust", "server binary to photograph")
	out := flag.String("out", "docs/operations/dashboard", "directory for the PNG files")
	warmup := flag.Duration("load", 40*time.Second, "how long to apply load before the first screenshot")
	flag.Parse()
	if err := run(*server, *out, *warmup); err != nil {
		log.Fatal(err)
	}
}

func run(serverBin, out string, warmup time.Duration) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("", "mantisdb-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	port, err := freePort()
	if err != nil {
		return err
	}
	// Small segments, so the load's overwrites leave dead bytes that
	// compaction reclaims while the charts watch.
	// --resp-port 0: a free Redis port, so a server on 6379 is no obstacle.
	cmd := exec.Command(serverBin, "--port", strconv.Itoa(port), "--resp-port", "0", "--data-dir", dataDir,
		"--segment-size", "1MiB", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "MANTISDB_AUTH_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", serverBin, err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	c := &client{base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: 10 * time.Second}}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		return err
	}
	if err := c.writeSamples(); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), warmup+3*time.Minute)
	defer cancel()
	stopLoad := make(chan struct{})
	var loadWG sync.WaitGroup
	loadWG.Add(1)
	go func() {
		defer loadWG.Done()
		c.load(stopLoad)
	}()
	defer func() {
		close(stopLoad)
		loadWG.Wait()
	}()

	b, err := chromium.Start(ctx, laptopWidth, laptopHeight)
	if err != nil {
		return err
	}
	defer b.Close()
	tab := b.Tab()
	// The page polls from the start, so the charts fill during the load.
	if err := chromedp.Do(tab,
		chromedp.EmulateViewport(laptopWidth, laptopHeight),
		chromedp.Navigate(c.base+"/ui"),
		chromedp.WaitVisible(chromedp.ID("auth-token")),
		chromedp.SetValue(chromedp.ID("auth-token"), token),
		chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`)),
		chromedp.WaitNotVisible(chromedp.ID("auth")),
	); err != nil {
		return fmt.Errorf("opening the dashboard: %w", err)
	}
	log.Printf("applying load for %v while the charts fill", warmup)
	if err := chromedp.Do(tab, chromedp.Sleep(warmup)); err != nil {
		return err
	}

	shots := []struct {
		name          string
		width, height int64
		mobile        bool
		prepare       []chromedp.Action[chromedp.Void]
	}{
		{"dashboard-laptop.png", laptopWidth, laptopHeight, false, nil},
		{"dashboard-phone.png", phoneWidth, phoneHeight, true, nil},
		{"keys-laptop.png", laptopWidth, laptopHeight, false, openEditor("user:", "user:1002")},
		{"keys-phone.png", phoneWidth, phoneHeight, true, openEditor("blob:", "blob:header")},
	}
	for _, s := range shots {
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Click(chromedp.CSS(`[data-tab=overview]`)),
		}
		steps = append(steps, s.prepare...)
		if err := chromedp.Do(tab, steps...); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		png, err := fullPage(tab, s.width, s.height, s.mobile)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := writeFile(filepath.Join(out, s.name), png); err != nil {
			return err
		}
	}

	// A tab of its own has no token: the page asks for it.
	fresh, closeFresh, err := b.NewTab()
	if err != nil {
		return err
	}
	defer closeFresh()
	if err := chromedp.Do(fresh, chromedp.EmulateViewport(laptopWidth, 600),
		chromedp.Navigate(c.base+"/ui"), chromedp.WaitVisible(chromedp.ID("auth-token"))); err != nil {
		return fmt.Errorf("token prompt: %w", err)
	}
	png, err := chromedp.Run(fresh, chromedp.CaptureScreenshot())
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(out, "auth-prompt.png"), png); err != nil {
		return err
	}
	for _, m := range b.Errors() {
		// The fresh tab's first call is refused: the browser logs that 401.
		if m.Source != "network" {
			return fmt.Errorf("the page logged an error: %s", m)
		}
	}
	log.Printf("%d requests sent during the run", c.sent.Load())
	return nil
}

// openEditor searches the key browser for prefix and opens key.
func openEditor(prefix, key string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Click(chromedp.CSS(`[data-tab=keys]`)),
		chromedp.SetValue(chromedp.ID("prefix"), prefix),
		chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#key-rows tr[data-key=%q]`, key))),
		chromedp.WaitVisible(chromedp.ID("edit-value")),
	}
}

// fullPage photographs the whole page at a width: the viewport is grown
// to the page's height, and the charts get a moment to redraw at the new
// size (and take a fresh sample).
func fullPage(tab context.Context, width, height int64, mobile bool) ([]byte, error) {
	emulate := func(h int64) chromedp.Action[chromedp.Void] {
		if mobile {
			return chromedp.EmulateViewport(width, h, chromedp.EmulateMobile, chromedp.EmulateScale(2))
		}
		return chromedp.EmulateViewport(width, h)
	}
	if err := chromedp.Do(tab, emulate(height), chromedp.Sleep(1500*time.Millisecond)); err != nil {
		return nil, err
	}
	full, err := chromedp.Run(tab, chromedp.Evaluate[int64](`document.documentElement.scrollHeight`))
	if err != nil {
		return nil, err
	}
	if err := chromedp.Do(tab, emulate(max(full, height)), chromedp.Sleep(1200*time.Millisecond)); err != nil {
		return nil, err
	}
	return chromedp.Run(tab, chromedp.CaptureScreenshot())
}

func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s (%d KiB)", path, len(data)>>10)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// client talks to the server under photograph.
type client struct {
	base string
	http *http.Client
	sent atomic.Int64
}

func (c *client) call(method, path string, body any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	c.sent.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (c *client) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if code, err := c.call("GET", "/health", nil); err == nil && code == 200 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the server did not become healthy within " + limit.String())
}

// writeSamples writes the keys the key browser screenshots show.
func (c *client) writeSamples() error {
	samples := map[string]map[string]any{
		"user:1001":        {"value": `{"name":"Ada Lovelace","plan":"pro","since":"2024-03-01"}`},
		"user:1002":        {"value": `{"name":"Grace Hopper","plan":"team","since":"2025-01-17"}`},
		"user:1003":        {"value": `{"name":"Edsger Dijkstra","plan":"free","since":"2026-07-09"}`},
		"session:7f3a9c":   {"value": "user:1002", "ttl": 3600},
		"blob:header":      {"value": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==", "value_encoding": "base64"},
		"config/cache-ttl": {"value": "300"},
	}
	for key, body := range samples {
		code, err := c.call("PUT", "/api/v1/kv/"+url.PathEscape(key), body)
		if err != nil || code != 200 {
			return fmt.Errorf("writing %s: %d %v", key, code, err)
		}
	}
	return nil
}

// load sends a mixed load until stop closes: mostly reads, overwrites of a
// working set (dead bytes for compaction), scans, batches and
// transactions, from a number of clients that rises and falls so the
// charts show change. Each client pauses a little between requests.
func (c *client) load(stop <-chan struct{}) {
	const maxClients = 6
	start := time.Now()
	var wg sync.WaitGroup
	for id := range maxClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(id), 42))
			value := bytes.Repeat([]byte("x"), 900)
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Client id works in the phases where the wave reaches it:
				// 2, 4, 6, 4, 2 clients in 10-second steps.
				phase := int(time.Since(start)/(10*time.Second)) % 5
				active := []int{2, 4, 6, 4, 2}[phase]
				if id >= active {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				key := fmt.Sprintf("bench:%05d", rng.IntN(3000))
				var err error
				switch r := rng.IntN(100); {
				case r < 55:
					_, err = c.call("GET", "/api/v1/kv/"+key, nil)
				case r < 85:
					_, err = c.call("PUT", "/api/v1/kv/"+key, map[string]string{"value": string(value[:100+rng.IntN(800)])})
				case r < 92:
					_, err = c.call("GET", "/api/v1/kv?prefix=bench:0&limit=50", nil)
				case r < 97:
					_, err = c.call("POST", "/api/v1/kv/batch", map[string]any{"atomic": true, "operations": []map[string]string{
						{"op": "put", "key": key + ":a", "value": "1"}, {"op": "delete", "key": key + ":b"}}})
				default:
					_, err = c.call("POST", "/api/v1/txn", map[string]any{
						"compare": []map[string]any{{"key": key, "exists": true}},
						"success": []map[string]string{{"op": "put", "key": key + ":seen", "value": "1"}}})
				}
				if err != nil {
					log.Printf("load: %v", err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}
