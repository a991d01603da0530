// Package chromium runs a headless Chromium for the dashboard's browser
// tests and screenshots: it finds the binary, starts it with a throwaway
// profile and no network of its own (no updates, no sync, no QUIC), keeps
// every console message the pages log, and accepts every JavaScript dialog
// (the dashboard asks before deleting a key).
package chromium

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// EnvPath names the environment variable that, when set, is the browser
// binary to run instead of the one found on PATH.
const EnvPath = "MANTISDB_CHROMIUM"

// candidates are the names Debian, Ubuntu and Google give the binary.
var candidates = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}

// ErrNotFound is returned by ExecPath when no browser is installed.
var ErrNotFound = errors.New("no Chromium found: install it (apt-get install chromium) or set " + EnvPath)

// ExecPath returns the browser binary to run: $MANTISDB_CHROMIUM, else the
// first of chromium, chromium-browser, google-chrome on PATH.
func ExecPath() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		return p, nil
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Browser is one headless Chromium process and its first tab.
type Browser struct {
	tab     context.Context
	cancel  func()
	profile string

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// Start launches the browser with a window of width x height CSS pixels
// and opens its first tab. Close it when done.
func Start(parent context.Context, width, height int) (*Browser, error) {
	path, err := ExecPath()
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "mantisdb-chromium-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
		// Root in a container has no usable sandbox.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	b := &Browser{tab: tab, profile: profile}
	b.cancel = func() {
		cancelTab()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	}
	// The first Run starts the process; do it here so a missing or broken
	// binary fails Start rather than the first step of a test.
	if err := chromedp.Do(tab); err != nil {
		b.cancel()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	b.watch(tab)
	return b, nil
}

// Tab returns the context of the browser's first tab, for chromedp.Run.
func (b *Browser) Tab() context.Context { return b.tab }

// NewTab opens another tab of the same browser: same cookies, but its own
// session storage, as a tab a user opens. Its messages are kept too.
func (b *Browser) NewTab() (context.Context, context.CancelFunc, error) {
	ctx, cancel := chromedp.NewContext(b.tab)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	b.watch(ctx)
	return ctx, cancel, nil
}

// watch keeps ctx's console messages and accepts its dialogs until ctx ends.
func (b *Browser) watch(ctx context.Context) {
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				return
			}
		}
	}()
}

// Errors returns the messages of type error and the uncaught exceptions
// logged so far, in order.
func (b *Browser) Errors() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []chromedp.ConsoleMessage
	for _, m := range b.messages {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m)
		}
	}
	return out
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() { b.cancel() }
