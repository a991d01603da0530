package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/mantisdb/mantisdb/internal/api"
)

func compactTool() tool {
	return tool{
		name:     "compact",
		synopsis: "--target URL [--auth-token T] [--json]",
		summary:  "run a compaction pass on a running server now",
		about: `Asks the server at --target to compact now (POST /api/v1/admin/compact):
closed segments holding dead data (overwritten, deleted or expired
versions) are rewritten without it, while reads and writes go on. Prints
the segments and dead bytes before and after.`,
		run: runCompact,
	}
}

func runCompact(ctx context.Context, fs *flag.FlagSet, args []string, tio toolIO) int {
	t := compactTool()
	var rf remoteFlags
	addRemoteFlags(fs, &rf, tio.getenv)
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	if code, ok := parseToolFlags(t, fs, args, tio); !ok {
		return code
	}
	if rf.target == "" {
		return usageErrorf(t, tio, "--target is required")
	}
	r, err := newRemote(rf)
	if err != nil {
		return usageErrorf(t, tio, "%v", err)
	}
	var res api.CompactResult
	if err := r.doJSON(ctx, "POST", "/api/v1/admin/compact", nil, nil, &res); err != nil {
		return failf(t, tio, "%v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(tio.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return exitOK
	}
	fmt.Fprintf(tio.stdout, "compacted %s in %v\n  segments:   %d -> %d\n  dead bytes: %s -> %s\n  live bytes: %s\n",
		r, (time.Duration(res.DurationMS) * time.Millisecond), res.SegmentsBefore, res.SegmentsAfter,
		formatBytes(int64(res.DeadBytesBefore)), formatBytes(int64(res.DeadBytesAfter)), formatBytes(int64(res.LiveBytesAfter)))
	return exitOK
}
