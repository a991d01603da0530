package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultBodyGrace is how long a request body may take before its
// average rate is held to Options.MinBodyRate.
const DefaultBodyGrace = 5 * time.Second

// guardBodyRate cuts off request bodies that arrive slower than rate
// bytes a second on average once grace has passed, and any body still
// arriving timeout after the handler started (0: no such limit). A client
// trickling a body a byte at a time would otherwise hold its connection,
// goroutine and buffers for the server's whole read timeout. The check is
// a read deadline on the connection, moved forward as bytes arrive: at
// start + grace + received/rate. A body cut off this way fails its read
// with a timeout error, which the handlers answer 408. With rate 0 next
// is returned unchanged.
func guardBodyRate(rate int64, grace, timeout time.Duration, next http.Handler) http.Handler {
	if rate <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		g := &rateGuard{
			body:  r.Body,
			rc:    http.NewResponseController(w),
			start: time.Now(),
			grace: grace,
			rate:  rate,
		}
		if timeout > 0 {
			g.limit = g.start.Add(timeout)
		}
		r.Body = g
		next.ServeHTTP(w, r)
		if !g.off {
			// The handler answered without reading the whole body (a
			// 401, a 413 by Content-Length). The server reads up to
			// 256 KiB of the rest to keep the connection; that read must
			// keep up with the rate too, or an unauthenticated client
			// could trickle a small body for the whole read timeout.
			_ = g.rc.SetReadDeadline(g.deadline())
		}
	})
}

// rateGuard is a request body whose reads must keep up with a rate.
type rateGuard struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	limit time.Time // the latest deadline; zero: none
	n     int64     // bytes read so far
	off   bool      // at EOF, or the connection does not support deadlines
}

// deadline is when the next byte must have arrived.
func (g *rateGuard) deadline() time.Time {
	d := g.start.Add(g.grace + time.Duration(float64(g.n)/float64(g.rate)*float64(time.Second)))
	if !g.limit.IsZero() && g.limit.Before(d) {
		d = g.limit
	}
	return d
}

func (g *rateGuard) Read(p []byte) (int, error) {
	if g.off {
		return g.body.Read(p)
	}
	if err := g.rc.SetReadDeadline(g.deadline()); err != nil {
		// Not a network connection (a test recorder): the server's own
		// timeouts are all there is.
		g.off = true
		return g.body.Read(p)
	}
	n, err := g.body.Read(p)
	g.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		// The whole body is in. Later reads of the connection (the
		// server's check for a client going away while the handler runs)
		// get the overall limit back, not the rate deadline.
		g.off = true
		_ = g.rc.SetReadDeadline(g.limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		elapsed := time.Since(g.start).Round(time.Millisecond)
		if !g.limit.IsZero() && !time.Now().Before(g.limit) {
			return n, newError(codeTimeout, "the request body was not complete %v after the request started (%d bytes arrived)",
				g.limit.Sub(g.start), g.n)
		}
		return n, newError(codeTimeout, "the request body arrived too slowly: %d bytes in %v, under the minimum of %d bytes/s after the first %v",
			g.n, elapsed, g.rate, g.grace)
	}
	return n, err
}

func (g *rateGuard) Close() error { return g.body.Close() }
