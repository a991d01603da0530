//go:build rust

package soak

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mantisdb/mantisdb/internal/serverbuild"
)

// TestShortSoak runs a 24-second soak of the real server (Rust engine):
// mixed load from 8 clients, a warm-up of 6s, then slow and oversized
// clients for 8s, and requires every check of the verdict. The memory
// slack is wider than make soak's: 24 seconds cannot tell a slow leak
// from allocator and compaction noise, but they do catch memory that
// follows what abusive clients declare or hold.
func TestShortSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server for 24s")
	}
	dir := t.TempDir()
	bin := serverbuild.Binary(t)
	var report bytes.Buffer
	cfg := Config{
		Server:   bin,
		TempDir:  dir,
		Duration: 24 * time.Second, Interval: 2 * time.Second, Warmup: 6 * time.Second,
		Clients: 8, Keys: 4000, ValueMin: 100, ValueMax: 1000,
		AttackAt: 9 * time.Second, AttackFor: 8 * time.Second,
		Attack: AttackConfig{
			SlowHeaders: 40, SlowBodies: 16, Pregrow: 16,
			MaxValueSize: 64 << 20, MaxBatchOps: 10000, MaxHeaderBytes: 1 << 20,
			Cutoff: 10 * time.Second,
		},
		RSSFactor: 1.10, RSSSlack: 128 << 20, RSSSpike: 256 << 20,
		MaxProbeLatency: 2 * time.Second,
		Out:             &report,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, report.String())
	}
	if !res.Pass {
		t.Fatalf("the soak failed:\n%s", report.String())
	}
	for _, a := range res.Attacks {
		if a.Attempts == 0 {
			t.Fatalf("%s: no attempts\n%s", a.Kind, report.String())
		}
	}
	if res.Total < 1000 {
		t.Fatalf("only %d operations in 24s\n%s", res.Total, report.String())
	}
	t.Logf("\n%s", report.String())
}
