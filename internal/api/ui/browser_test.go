package ui_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mantisdb/mantisdb/internal/api"
	"github.com/mantisdb/mantisdb/internal/chromium"
	"github.com/mantisdb/mantisdb/storage"
)

// The browser tests drive the dashboard in a real headless Chromium. They
// take seconds and need the browser, so they run when
// MANTISDB_BROWSER_TESTS=1 (`make test-ui`, part of `make test`); there a
// missing browser is a failure, not a skip.
const envBrowserTests = "MANTISDB_BROWSER_TESTS"

// waitFor bounds every wait on the page.
const waitFor = 20 * time.Second

// server is the API server over a fresh engine of this build's default
// kind (the Rust engine under -tags rust), on a loopback listener.
type server struct {
	t     *testing.T
	url   string
	token string
	eng   storage.StorageEngine
}

func startServer(t *testing.T, token string) *server {
	t.Helper()
	cfg := storage.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.SegmentSize = 1 << 20 // small segments, so load leaves dead bytes to compact
	eng, err := storage.NewStorageEngine(storage.DefaultEngine, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Init(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	srv := api.New(eng, api.Options{AuthToken: token, Version: "browser-test"})
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Config.ConnState = srv.ConnState
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		_ = eng.Close()
	})
	return &server{t: t, url: ts.URL, token: token, eng: eng}
}

// call sends a JSON request over the API and decodes the answer into out.
func (s *server) call(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func (s *server) put(key string, value []byte) {
	s.t.Helper()
	body := map[string]string{"value": base64.StdEncoding.EncodeToString(value), "value_encoding": "base64"}
	if code := s.call("PUT", "/api/v1/kv/"+url.PathEscape(key), body, nil); code != 200 {
		s.t.Fatalf("PUT %q: %d", key, code)
	}
}

// get reads a key's bytes over the API; nil when it is not found.
func (s *server) get(key string) []byte {
	s.t.Helper()
	var v struct {
		Value         string `json:"value"`
		ValueEncoding string `json:"value_encoding"`
	}
	code := s.call("GET", "/api/v1/kv/"+url.PathEscape(key), nil, &v)
	if code == 404 {
		return nil
	}
	if code != 200 {
		s.t.Fatalf("GET %q: %d", key, code)
	}
	if v.ValueEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(v.Value)
		if err != nil {
			s.t.Fatal(err)
		}
		return b
	}
	return []byte(v.Value)
}

// load applies a mixed load of every family for d: writes with
// overwrites, reads, scans, batches and transactions, from a few clients.
// Bounded in time and in operations.
func (s *server) load(d time.Duration) {
	const clients, maxOps = 4, 20000
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := strings.Repeat("v", 512)
			for i := 0; i < maxOps && time.Now().Before(deadline); i++ {
				// Each run of ten operations shares a key, so the reads
				// and the transaction's compare find what the puts wrote.
				key := fmt.Sprintf("load/%d/%03d", c, (i/10)%200)
				switch i % 10 {
				case 0, 1, 2:
					s.call("PUT", "/api/v1/kv/"+url.PathEscape(key), map[string]string{"value": value}, nil)
				case 3:
					s.call("GET", "/api/v1/kv?prefix=load/&limit=20", nil, nil)
				case 4:
					s.call("POST", "/api/v1/kv/batch", map[string]any{"operations": []map[string]string{{"op": "put", "key": key + "b", "value": value}, {"op": "delete", "key": key + "c"}}}, nil)
				case 5:
					s.call("POST", "/api/v1/txn", map[string]any{"compare": []map[string]any{{"key": key, "exists": true}}, "success": []map[string]string{{"op": "put", "key": key, "value": value}}}, nil)
				default:
					s.call("GET", "/api/v1/kv/"+url.PathEscape(key), nil, nil)
				}
			}
		}()
	}
	wg.Wait()
}

// newBrowser starts Chromium for t, or skips t outside `make test-ui`.
func newBrowser(t *testing.T, width, height int) *chromium.Browser {
	t.Helper()
	if os.Getenv(envBrowserTests) != "1" {
		t.Skipf("browser test: runs with %s=1 (make test-ui), needs chromium", envBrowserTests)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	b, err := chromium.Start(ctx, width, height)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// noConsoleErrors fails t on any error the page logged, except those
// allowed reports true for.
func noConsoleErrors(t *testing.T, b *chromium.Browser, allowed func(chromedp.ConsoleMessage) bool) {
	t.Helper()
	for _, m := range b.Errors() {
		if allowed == nil || !allowed(m) {
			t.Errorf("console: %s (source %q, %s:%d)", m, m.Source, m.URL, m.Line)
		}
	}
}

// do runs steps on ctx and fails t with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(waitFor), chromedp.WithPollingInterval(50*time.Millisecond))
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// chartState is what a chart's element says about its last draw.
type chartState struct {
	ID     string `json:"id"`
	Points int    `json:"points"`
	Max    string `json:"max"`
}

const readCharts = `[...document.querySelectorAll('[data-chart]')].map(c => ({id: c.dataset.chart, points: Number(c.dataset.points), max: c.dataset.max ?? ''}))`

// TestBrowserDashboardDrawsEveryChart loads the page while the server is
// under load and checks that every chart drew the load: the page loads
// without a console error, each chart has samples, and the charts the load
// moves show it.
func TestBrowserDashboardDrawsEveryChart(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	s := startServer(t, "")
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		s.load(5 * time.Second)
	}()
	defer func() { <-loaded }()
	ctx := b.Tab()
	do(t, ctx, "opening /ui", chromedp.Navigate(s.url+"/ui"),
		// Four samples: three rates, with the load running throughout.
		poll(`document.querySelectorAll('[data-chart]').length >= 8 && [...document.querySelectorAll('[data-chart]')].every(c => Number(c.dataset.points) >= 4)`))
	charts := eval[[]chartState](t, ctx, readCharts)
	want := []string{"ops-http", "latency-http", "cache", "keys", "bytes", "syncs", "compactions", "connections"}
	got := map[string]chartState{}
	for _, c := range charts {
		got[c.ID] = c
	}
	if len(charts) != len(want) {
		t.Errorf("charts %+v, want %v", charts, want)
	}
	// Under load these must be above zero on any engine; the disk and cache
	// charts only on the Rust engine, the memory engine has neither.
	moving := []string{"ops-http", "latency-http", "keys", "connections"}
	if storage.DefaultEngine == "rust" {
		moving = append(moving, "cache", "bytes", "syncs")
	}
	for _, id := range want {
		c, ok := got[id]
		if !ok {
			t.Errorf("chart %s is missing", id)
			continue
		}
		if c.Points < 4 {
			t.Errorf("chart %s drew %d samples, want at least 4", id, c.Points)
		}
		if storage.DefaultEngine == "rust" || id != "cache" {
			if c.Max == "" {
				t.Errorf("chart %s drew no value", id)
			}
		}
	}
	for _, id := range moving {
		if c := got[id]; c.Max == "" || c.Max == "0" {
			t.Errorf("chart %s shows no load: max %q", id, c.Max)
		}
	}
	// The tiles show the server's own figures.
	tiles := eval[string](t, ctx, `document.getElementById('tiles').innerText`)
	if !strings.Contains(tiles, "browser-test") || !strings.Contains(tiles, storage.DefaultEngine) {
		t.Errorf("tiles lack the version or engine: %q", tiles)
	}
	// A single node has no cluster, so no Cluster panel.
	if !eval[bool](t, ctx, `document.getElementById('cluster').hidden`) {
		t.Error("a single node's dashboard shows the Cluster panel")
	}
	noConsoleErrors(t, b, nil)
}

// TestBrowserKeyBrowserEditsKeys writes keys over the API, finds them in
// the browser by prefix with paging, edits one as text and a binary one as
// hex, sets a TTL, deletes one, and reads every change back over the API.
func TestBrowserKeyBrowserEditsKeys(t *testing.T) {
	b := newBrowser(t, 1280, 900)
	s := startServer(t, "")
	s.put("browser/alpha", []byte("first value"))
	s.put("browser/bin", []byte{0x00, 0xff, 0x10})
	s.put("browser/short-lived", []byte("soon gone"))
	if code := s.call("PUT", "/api/v1/kv/browser%2Fttl", map[string]any{"value": "kept a while", "ttl": 600}, nil); code != 200 {
		t.Fatalf("PUT browser/ttl with a TTL: %d", code)
	}
	binaryKey := "browser/\xff\x00k" // not UTF-8: shown and addressed as bytes
	s.put(binaryKey, []byte("under a binary key"))
	for i := range 60 {
		s.put(fmt.Sprintf("paged/%02d", i), []byte("p"))
	}
	ctx := b.Tab()
	openKey := func(key string) {
		t.Helper()
		do(t, ctx, "searching "+key,
			// Empty the list first, so the click below waits for the new
			// search's rows rather than hitting an old row as it is replaced.
			chromedp.Evaluate[chromedp.Void](`document.getElementById('key-rows').replaceChildren()`),
			chromedp.SetValue(chromedp.ID("prefix"), "browser/"),
			chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`#key-rows tr[data-key=%q]`, key))),
			poll(fmt.Sprintf(`!document.getElementById('editor').hidden && document.getElementById('edit-key').value === %q`, key)))
	}
	do(t, ctx, "opening the key browser", chromedp.Navigate(s.url+"/ui"),
		chromedp.Click(chromedp.CSS(`[data-tab=keys]`)), chromedp.WaitVisible(chromedp.ID("prefix")))

	// Text: edit and read back over the API.
	openKey("browser/alpha")
	if v := eval[string](t, ctx, `document.getElementById('edit-value').value`); v != "first value" {
		t.Fatalf("editor shows %q", v)
	}
	if e := eval[string](t, ctx, `document.getElementById('edit-expiry').textContent`); e != "No expiry." {
		t.Fatalf("a key without expiry shows %q", e)
	}
	do(t, ctx, "editing browser/alpha",
		chromedp.SetValue(chromedp.ID("edit-value"), "edited in the browser ✓"),
		chromedp.Click(chromedp.ID("save-key")),
		poll(`document.getElementById('editor-status').textContent.startsWith('Saved')`))
	if got := string(s.get("browser/alpha")); got != "edited in the browser ✓" {
		t.Fatalf("after the browser's edit the API reads %q", got)
	}

	// Binary: the editor opens in hex; edit the hex.
	openKey("browser/bin")
	if v := eval[string](t, ctx, `document.getElementById('edit-value').value`); v != "00 ff 10" {
		t.Fatalf("binary value shown as %q, want hex 00 ff 10", v)
	}
	do(t, ctx, "a bad hex edit is refused",
		chromedp.SetValue(chromedp.ID("edit-value"), "00 fg"),
		chromedp.Click(chromedp.ID("save-key")),
		poll(`document.getElementById('editor-status').textContent.includes('not a hex digit')`))
	do(t, ctx, "editing browser/bin as hex",
		chromedp.SetValue(chromedp.ID("edit-value"), "01 02 03 fe ff"),
		chromedp.Click(chromedp.ID("save-key")),
		poll(`document.getElementById('editor-status').textContent.startsWith('Saved 5 bytes')`))
	if got := s.get("browser/bin"); !bytes.Equal(got, []byte{1, 2, 3, 0xfe, 0xff}) {
		t.Fatalf("after the hex edit the API reads %x", got)
	}

	// A key that is not UTF-8 shows as hex and is written back to itself.
	openKey("0x" + hex.EncodeToString([]byte(binaryKey)))
	do(t, ctx, "editing the value of a binary key",
		chromedp.SetValue(chromedp.ID("edit-value"), "edited under a binary key"),
		chromedp.Click(chromedp.ID("save-key")),
		poll(`document.getElementById('editor-status').textContent.startsWith('Saved')`))
	if got := string(s.get(binaryKey)); got != "edited under a binary key" {
		t.Fatalf("after editing under the binary key the API reads %q", got)
	}

	// A key written with a TTL over the API shows its remaining time, and
	// the TTL box holds it, so saving unchanged keeps the key expiring.
	openKey("browser/ttl")
	expiry := eval[string](t, ctx, `document.getElementById('edit-expiry').textContent`)
	var left int
	if _, err := fmt.Sscanf(expiry, "Expires in %d s", &left); err != nil || left < 590 || left > 600 {
		t.Fatalf("a key with 600 s to live shows %q", expiry)
	}
	if box := eval[string](t, ctx, `document.getElementById('edit-ttl').value`); box != strconv.Itoa(left) {
		t.Fatalf("TTL box holds %q, want the remaining %d s", box, left)
	}
	do(t, ctx, "saving browser/ttl unchanged",
		chromedp.Click(chromedp.ID("save-key")),
		poll(`document.getElementById('editor-status').textContent.includes('expiring in')`))
	var meta struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code := s.call("GET", "/api/v1/kv/browser%2Fttl", nil, &meta); code != 200 {
		t.Fatalf("GET browser/ttl after saving: %d", code)
	}
	if until := time.Until(meta.ExpiresAt); until < 580*time.Second || until > 601*time.Second {
		t.Fatalf("after saving unchanged the key expires in %v, want about 600 s", until)
	}

	// TTL: a key saved with a TTL of one second is gone after it.
	openKey("browser/short-lived")
	do(t, ctx, "saving with a TTL",
		chromedp.SetValue(chromedp.ID("edit-ttl"), "1"),
		chromedp.Click(chromedp.ID("save-key")),
		poll(`document.getElementById('editor-status').textContent.includes('expiring in 1 s')`))
	if got := s.get("browser/short-lived"); string(got) != "soon gone" {
		t.Fatalf("right after saving with a TTL: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.get("browser/short-lived") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the key saved with a 1 s TTL is still there after 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Delete (the page asks; the browser accepts).
	openKey("browser/alpha")
	do(t, ctx, "deleting browser/alpha", chromedp.Click(chromedp.ID("delete-key")),
		poll(`document.getElementById('keys-status').textContent.startsWith('Deleted')`))
	if s.get("browser/alpha") != nil {
		t.Fatal("the key deleted in the browser is still there")
	}

	// Paging: 60 keys at 25 a page.
	firstKey := `document.querySelector('#key-rows tr')?.dataset.key`
	do(t, ctx, "paging",
		chromedp.SetValue(chromedp.ID("prefix"), "paged/"),
		chromedp.SetValue(chromedp.ID("page-size"), "25"),
		chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)),
		poll(`document.querySelectorAll('#key-rows tr').length === 25 && `+firstKey+` === 'paged/00'`),
		chromedp.Click(chromedp.ID("next-page")),
		poll(firstKey+` === 'paged/25'`),
		chromedp.Click(chromedp.ID("next-page")),
		poll(firstKey+` === 'paged/50' && document.querySelectorAll('#key-rows tr').length === 10 && document.getElementById('next-page').disabled`),
		chromedp.Click(chromedp.ID("prev-page")),
		poll(firstKey+` === 'paged/25'`))
	noConsoleErrors(t, b, nil)
}

// TestBrowserAuthAsksForTheToken runs the server with --auth-token: the
// page shows no figures until the token is given, refuses a wrong one,
// keeps the right one for the tab (a reload does not ask again) and only
// for the tab (a new tab asks).
func TestBrowserAuthAsksForTheToken(t *testing.T) {
	const token = "browser-test-token"
	b := newBrowser(t, 1280, 900)
	s := startServer(t, token)
	ctx := b.Tab()
	dialogShown := `!document.getElementById('auth').hidden`
	do(t, ctx, "opening /ui without a token", chromedp.Navigate(s.url+"/ui"),
		poll(dialogShown+` && document.getElementById('auth-message').textContent.includes('requires a token')`))
	// No data reached the page: no chart, no tile.
	time.Sleep(1500 * time.Millisecond)
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-chart], .tile').length`); n != 0 {
		t.Fatalf("without the token the page shows %d charts and tiles", n)
	}
	do(t, ctx, "giving a wrong token",
		chromedp.SetValue(chromedp.ID("auth-token"), "wrong"),
		chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`)),
		poll(dialogShown+` && document.getElementById('auth-message').textContent.includes('invalid bearer token')`))
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-chart]').length`); n != 0 {
		t.Fatalf("with a wrong token the page shows %d charts", n)
	}
	do(t, ctx, "giving the token",
		chromedp.SetValue(chromedp.ID("auth-token"), token),
		chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`)),
		poll(`document.getElementById('auth').hidden && document.querySelectorAll('[data-chart]').length >= 8`))
	if got := eval[string](t, ctx, `sessionStorage.getItem('mantisdb.token')`); got != token {
		t.Fatalf("session storage holds %q", got)
	}
	if got := eval[string](t, ctx, `localStorage.length + ':' + document.cookie`); got != "0:" {
		t.Fatalf("the token went beyond the tab's session storage: %q", got)
	}
	do(t, ctx, "reloading keeps the token for the tab", chromedp.Reload(),
		poll(`document.querySelectorAll('[data-chart]').length >= 8`))
	if eval[bool](t, ctx, dialogShown) {
		t.Fatal("the reloaded tab asked for the token again")
	}
	tab2, closeTab2, err := b.NewTab()
	if err != nil {
		t.Fatal(err)
	}
	defer closeTab2()
	do(t, tab2, "a new tab asks again", chromedp.Navigate(s.url+"/ui"), poll(dialogShown))
	// The refusals show in the console as failed loads (the browser logs
	// every 401); nothing else may.
	noConsoleErrors(t, b, func(m chromedp.ConsoleMessage) bool {
		return m.Source == "network" && strings.Contains(m.Text, "401")
	})
}
