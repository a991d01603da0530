package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progressInterval is how often the bar is redrawn at most.
const progressInterval = 200 * time.Millisecond

// progressBar draws one self-rewriting line of a long operation's
// progress on a terminal. A nil *progressBar draws nothing.
type progressBar struct {
	w     io.Writer
	total int64 // input bytes, -1 when unknown
	start time.Time
	last  time.Time
	drawn bool
	keys  uint64
	bytes int64
}

// newProgressBar returns a bar on w for mode auto (only when w is a
// terminal), always or never; total is the input size, -1 if unknown.
func newProgressBar(w io.Writer, mode string, total int64) *progressBar {
	switch mode {
	case "never":
		return nil
	case "auto":
		f, ok := w.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil
		}
	}
	now := time.Now()
	return &progressBar{w: w, total: total, start: now}
}

// update records keys written and input bytes read, redrawing at most
// every progressInterval.
func (p *progressBar) update(keys uint64, bytes int64) {
	if p == nil {
		return
	}
	p.keys, p.bytes = keys, bytes
	if now := time.Now(); now.Sub(p.last) >= progressInterval {
		p.last = now
		p.draw()
	}
}

func (p *progressBar) draw() {
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.keys) / elapsed
	}
	line := fmt.Sprintf("%d keys, %s read, %.0f keys/s", p.keys, formatBytes(p.bytes), rate)
	if p.total > 0 {
		frac := min(float64(p.bytes)/float64(p.total), 1)
		const width = 30
		full := int(frac * width)
		line = fmt.Sprintf("[%s%s] %3.0f%%  %s", strings.Repeat("#", full), strings.Repeat(".", width-full), frac*100, line)
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// finish draws the final state and ends the line.
func (p *progressBar) finish() {
	if p == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}
