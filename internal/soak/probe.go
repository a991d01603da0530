package soak

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// probeEvery is the period of the fresh-connection probe.
const probeEvery = 250 * time.Millisecond

// prober reads one key on a new connection every probeEvery: the load's
// clients keep their connections, so only a probe shows whether the
// server still accepts and answers newcomers.
type prober struct {
	url    string
	token  string
	client *http.Client
	attack atomic.Bool

	mu sync.Mutex
	st probeStats
}

// probeStats counts probes outside and during the attack window.
type probeStats struct {
	Count          int64  `json:"count"`
	Failures       int64  `json:"failures"`
	MaxUs          int64  `json:"max_us"`
	AttackCount    int64  `json:"attack_count"`
	AttackFailures int64  `json:"attack_failures"`
	AttackMaxUs    int64  `json:"attack_max_us"`
	FirstFailure   string `json:"first_failure,omitempty"`
}

func newProber(target *url.URL, token, key string) *prober {
	tr := &http.Transport{DisableKeepAlives: true}
	return &prober{
		url:    target.String() + "/api/v1/kv/" + url.PathEscape(key),
		token:  token,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}
}

func (p *prober) setAttack(on bool) { p.attack.Store(on) }

func (p *prober) run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() {
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			during := p.attack.Load()
			t0 := time.Now()
			err := p.once(ctx)
			elapsed := time.Since(t0).Microseconds()
			if ctx.Err() != nil {
				return
			}
			p.record(during, elapsed, err)
		}
	})
}

func (p *prober) once(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return &statusErr{resp.StatusCode}
	}
	return nil
}

type statusErr struct{ code int }

func (e *statusErr) Error() string { return "status " + http.StatusText(e.code) }

func (p *prober) record(during bool, us int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && p.st.FirstFailure == "" {
		p.st.FirstFailure = err.Error()
	}
	if during {
		p.st.AttackCount++
		p.st.AttackMaxUs = max(p.st.AttackMaxUs, us)
		if err != nil {
			p.st.AttackFailures++
		}
		return
	}
	p.st.Count++
	p.st.MaxUs = max(p.st.MaxUs, us)
	if err != nil {
		p.st.Failures++
	}
}

func (p *prober) stats() probeStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}
