package chromium

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestErrorsSeesWhatPagesLog checks that Errors reports a console.error
// call, an uncaught exception and a failed load, and not a console.log:
// the browser tests' "no console errors" rests on it.
func TestErrorsSeesWhatPagesLog(t *testing.T) {
	if os.Getenv("MANTISDB_BROWSER_TESTS") != "1" {
		t.Skip("browser test: runs with MANTISDB_BROWSER_TESTS=1 (make test-ui), needs chromium")
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><link rel="icon" href="data:,"><img src="/missing.png">
<script>console.log("fine"); console.error("boom"); if (confirm("go on?")) document.title = "accepted"; setTimeout(() => { throw new Error("uncaught") });</script>`))
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(ctx, 800, 600)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := chromedp.Do(b.Tab(), chromedp.Navigate(ts.URL), chromedp.Sleep(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if title, err := chromedp.Run(b.Tab(), chromedp.Title()); err != nil || title != "accepted" {
		t.Errorf("title %q (%v): the confirm dialog was not accepted", title, err)
	}
	var texts []string
	for _, m := range b.Errors() {
		texts = append(texts, m.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"boom", "uncaught", "404"} {
		if !strings.Contains(all, want) {
			t.Errorf("Errors lacks %q: %q", want, texts)
		}
	}
	if strings.Contains(all, "fine") {
		t.Errorf("Errors reports a console.log: %q", texts)
	}
}
