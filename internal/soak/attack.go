package soak

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// trickleEvery is the pause between the bytes a slow client sends.
const trickleEvery = 500 * time.Millisecond

// AttackConfig sets the abusive clients run during the attack window.
type AttackConfig struct {
	// SlowHeaders is how many connections send their request headers a
	// byte at a time, each reconnecting once the server cuts it off.
	SlowHeaders int
	// SlowBodies is how many connections send complete headers (half of
	// them without the token) and then trickle a 1 MiB body.
	SlowBodies int
	// Pregrow is how many connections declare a body of MaxValueSize
	// bytes and send none of it: the server must not reserve memory for
	// bytes that never come.
	Pregrow int
	// MaxValueSize is the server's --max-value-size.
	MaxValueSize int64
	// MaxBatchOps is the server's --max-batch-ops.
	MaxBatchOps int
	// MaxHeaderBytes is the server's header limit; the oversized header
	// sent is a little over it.
	MaxHeaderBytes int
	// Cutoff is the longest the server may keep a slow connection open.
	Cutoff time.Duration
}

// attackStats counts what one kind of abusive client saw.
type attackStats struct {
	Kind       string         `json:"kind"`
	Attempts   int64          `json:"attempts"`
	Cut        int64          `json:"cut_off"`            // closed by the server within the cutoff
	NotCut     int64          `json:"not_cut_off"`        // still open at the cutoff plus slack
	LongestMs  int64          `json:"longest_hold_ms"`    // longest time a connection stayed open
	Statuses   map[string]int `json:"statuses,omitempty"` // first answer status, or "none"
	Unexpected int64          `json:"unexpected"`         // answers other than the expected ones
	DialErrors int64          `json:"dial_errors"`
	FirstIssue string         `json:"first_issue,omitempty"`

	mu sync.Mutex
}

func newAttackStats(kind string) *attackStats {
	return &attackStats{Kind: kind, Statuses: make(map[string]int)}
}

// record notes one connection: how long it stayed open, its first answer
// status ("none" when the server closed it without one), and whether that
// status was among want.
func (s *attackStats) record(hold time.Duration, closed bool, status string, want []string, cutoff time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Attempts++
	s.Statuses[status]++
	if ms := hold.Milliseconds(); ms > s.LongestMs {
		s.LongestMs = ms
	}
	if closed && hold <= cutoff {
		s.Cut++
	} else {
		s.NotCut++
		if s.FirstIssue == "" {
			s.FirstIssue = fmt.Sprintf("a connection stayed open %v (cutoff %v)", hold.Round(time.Millisecond), cutoff)
		}
	}
	if !contains(want, status) {
		s.Unexpected++
		if s.FirstIssue == "" {
			s.FirstIssue = fmt.Sprintf("answer %s, want one of %v", status, want)
		}
	}
}

// recordAnswer notes one request whose answer is all that matters.
func (s *attackStats) recordAnswer(status string, want []string, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Attempts++
	s.Statuses[status]++
	if !contains(want, status) {
		s.Unexpected++
		if s.FirstIssue == "" {
			s.FirstIssue = fmt.Sprintf("%s: answer %s, want one of %v", detail, status, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// attack runs the abusive clients against the server until ctx ends.
type attack struct {
	cfg    AttackConfig
	addr   string // host:port
	token  string
	ns     string // key namespace of the soak's own keys
	open   atomic.Int64
	kinds  []*attackStats
	byKind map[string]*attackStats
}

func newAttack(cfg AttackConfig, target *url.URL, token, ns string) *attack {
	a := &attack{cfg: cfg, addr: target.Host, token: token, ns: ns, byKind: make(map[string]*attackStats)}
	for _, k := range []string{"slow-headers", "slow-body", "slow-body-no-token", "pregrow", "oversized"} {
		s := newAttackStats(k)
		a.kinds = append(a.kinds, s)
		a.byKind[k] = s
	}
	return a
}

// run starts every abusive client; wg is done when all have stopped.
func (a *attack) run(ctx context.Context, wg *sync.WaitGroup) {
	loop := func(n int, f func(ctx context.Context, i int)) {
		for i := 0; i < n; i++ {
			wg.Go(func() {
				for ctx.Err() == nil {
					f(ctx, i)
				}
			})
		}
	}
	loop(a.cfg.SlowHeaders, a.slowHeaders)
	loop(a.cfg.SlowBodies, a.slowBody)
	loop(a.cfg.Pregrow, a.pregrow)
	loop(1, a.oversized)
}

// slowConn sends head, then trickles body a byte every trickleEvery
// (repeating it while the connection lasts), and returns how long the
// server kept the connection, whether it closed it, and the status of
// the first answer ("none" if it answered nothing). It stops trying at
// the cutoff plus a margin, or when ctx ends.
func (a *attack) slowConn(ctx context.Context, head string, trickle []byte) (time.Duration, bool, string, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", a.addr, 10*time.Second)
	if err != nil {
		return 0, false, "", err
	}
	a.open.Add(1)
	defer a.open.Add(-1)
	defer conn.Close()
	giveUp := a.cfg.Cutoff + 10*time.Second
	_ = conn.SetReadDeadline(start.Add(giveUp))

	type result struct {
		status string
		closed bool
	}
	done := make(chan result, 1)
	go func() {
		br := bufio.NewReader(conn)
		status := "none"
		if line, err := br.ReadString('\n'); err == nil {
			if f := strings.Fields(line); len(f) >= 2 {
				status = f[1]
			}
		}
		// Read the rest until the server closes the connection.
		_, err := io.Copy(io.Discard, br)
		var ne net.Error
		closed := err == nil || !(errors.As(err, &ne) && ne.Timeout())
		done <- result{status, closed}
	}()
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		tick := time.NewTicker(trickleEvery)
		defer tick.Stop()
		for i := 0; len(trickle) > 0; i = (i + 1) % len(trickle) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			if _, err := conn.Write(trickle[i : i+1]); err != nil {
				return
			}
		}
	}()
	select {
	case r := <-done:
		return time.Since(start), r.closed, r.status, nil
	case <-ctx.Done():
		// The window ended first: this connection is not judged.
		return 0, false, "", ctx.Err()
	}
}

// slowHeaders sends a request line, then header bytes one at a time.
func (a *attack) slowHeaders(ctx context.Context, _ int) {
	head := "GET /api/v1/kv/x HTTP/1.1\r\nHost: " + a.addr + "\r\n"
	hold, closed, status, err := a.slowConn(ctx, head, []byte("X-Slow: aaaaaaaaaaaaaaaa"))
	if err != nil {
		a.pause(ctx, "slow-headers", err)
		return
	}
	a.byKind["slow-headers"].record(hold, closed, status, []string{"none"}, a.cfg.Cutoff)
}

// slowBody sends complete headers for a 1 MiB raw put, then its body a
// byte at a time; every other one without the token.
func (a *attack) slowBody(ctx context.Context, i int) {
	kind, auth, want := "slow-body", "Authorization: Bearer "+a.token+"\r\n", []string{"408"}
	if i%2 == 1 {
		kind, auth, want = "slow-body-no-token", "", []string{"401"}
	}
	head := fmt.Sprintf("PUT /api/v1/kv/%s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		url.PathEscape(a.ns+"slow-"+strconv.Itoa(i)), a.addr, auth, 1<<20)
	hold, closed, status, err := a.slowConn(ctx, head, []byte("slow body "))
	if err != nil {
		a.pause(ctx, kind, err)
		return
	}
	a.byKind[kind].record(hold, closed, status, want, a.cfg.Cutoff)
}

// pregrow declares a body at the value limit and sends nothing.
func (a *attack) pregrow(ctx context.Context, i int) {
	head := fmt.Sprintf("PUT /api/v1/kv/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		url.PathEscape(a.ns+"pregrow-"+strconv.Itoa(i)), a.addr, a.token, a.cfg.MaxValueSize)
	hold, closed, status, err := a.slowConn(ctx, head, nil)
	if err != nil {
		a.pause(ctx, "pregrow", err)
		return
	}
	a.byKind["pregrow"].record(hold, closed, status, []string{"408"}, a.cfg.Cutoff)
}

// pause counts a failed dial against kind and waits a little, so a
// refused connection does not spin.
func (a *attack) pause(ctx context.Context, kind string, err error) {
	if ctx.Err() != nil {
		return
	}
	s := a.byKind[kind]
	s.mu.Lock()
	s.DialErrors++
	if s.FirstIssue == "" {
		s.FirstIssue = "dial: " + err.Error()
	}
	s.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
}

// oversized sends, one after another, the requests the server must refuse
// without holding memory for them: a body declared over the value limit,
// headers over the header limit, a batch over the operation limit, and
// requests with no token or a wrong one.
func (a *attack) oversized(ctx context.Context, _ int) {
	s := a.byKind["oversized"]
	record := func(status string, want []string, detail string) {
		if ctx.Err() == nil { // an answer cut short by the end of the window is not judged
			s.recordAnswer(status, want, detail)
		}
	}
	status := a.rawStatus(fmt.Sprintf("PUT /api/v1/kv/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
		url.PathEscape(a.ns+"huge"), a.addr, a.token, a.cfg.MaxValueSize+1), nil)
	record(status, []string{"413"}, "body declared over the value limit")

	pad := bytes.Repeat([]byte("a"), a.cfg.MaxHeaderBytes+64<<10)
	status = a.rawStatus(fmt.Sprintf("GET /api/v1/kv/x HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Pad: ", a.addr, a.token), pad)
	record(status, []string{"431"}, "headers over the header limit")

	var ops strings.Builder
	ops.WriteString(`{"operations":[`)
	for i := 0; i <= a.cfg.MaxBatchOps; i++ {
		if i > 0 {
			ops.WriteByte(',')
		}
		fmt.Fprintf(&ops, `{"op":"get","key":"%sb%d"}`, a.ns, i)
	}
	ops.WriteString(`]}`)
	record(a.httpStatus(ctx, "POST", "/api/v1/kv/batch", ops.String(), a.token), []string{"413"}, "batch over the operation limit")
	record(a.httpStatus(ctx, "GET", "/api/v1/kv/"+url.PathEscape(a.ns+"k00000000"), "", ""), []string{"401"}, "no token")
	record(a.httpStatus(ctx, "GET", "/api/v1/stats", "", a.token+"x"), []string{"401"}, "wrong token")
	select {
	case <-ctx.Done():
	case <-time.After(200 * time.Millisecond):
	}
}

// rawStatus sends head then tail (if any) and the header end on a new
// connection, and returns the answer's status ("none" if there is none).
// The writing runs beside the reading: the server may answer before it
// has read everything.
func (a *attack) rawStatus(head string, tail []byte) string {
	conn, err := net.DialTimeout("tcp", a.addr, 10*time.Second)
	if err != nil {
		return "dial-error"
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(a.cfg.Cutoff + 10*time.Second))
	go func() {
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		if tail != nil {
			if _, err := conn.Write(tail); err != nil {
				return
			}
			_, _ = io.WriteString(conn, "\r\n\r\n")
		}
	}()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if f := strings.Fields(line); err == nil && len(f) >= 2 {
		return f[1]
	}
	return "none"
}

// httpStatus sends a request with the standard client (token if not
// empty) and returns the answer's status.
func (a *attack) httpStatus(ctx context.Context, method, path, body, token string) string {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.addr+path, strings.NewReader(body))
	if err != nil {
		return "request-error"
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := attackClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled"
		}
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

var attackClient = &http.Client{Timeout: 30 * time.Second}

// results lists every kind's figures.
func (a *attack) results() []*attackStats { return a.kinds }
