package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mantisdb/mantisdb/storage"
)

func statsTool() tool {
	return tool{
		name:     "stats",
		synopsis: "--data-dir D [--json] [--segments]",
		summary:  "print a data directory's keys, segments, live/dead bytes, sequence range, hints",
		about: `Reads a data directory without writing to it, as check does, and prints
what it holds: live keys (and expired ones compaction has not reclaimed
yet, and deletes still in the log), segment files, live and dead bytes,
the range of sequence numbers, hint files, and an estimate of the memory
the index will take once the database is open. A directory a server has
open can be read; its newest segment may then be mid-write.`,
		run: runStats,
	}
}

func runStats(_ context.Context, fs *flag.FlagSet, args []string, tio toolIO) int {
	t := statsTool()
	dataDir := fs.String("data-dir", "", "data directory to read")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	perSegment := fs.Bool("segments", false, "also list every segment file")
	rep, code, ok := readDirReport(t, fs, args, tio, dataDir)
	if !ok {
		return code
	}
	if *asJSON {
		if !*perSegment {
			rep.Segments = nil
		}
		writeJSONReport(tio.stdout, rep)
	} else {
		printStats(tio.stdout, rep, *perSegment)
	}
	if len(rep.Damage) > 0 {
		fmt.Fprintf(tio.stderr, "warning: the directory is damaged (first: %s at offset %d); run 'mantisdb check --data-dir %s'\n",
			rep.Damage[0].File, rep.Damage[0].Offset, *dataDir)
	}
	return exitOK
}

func printStats(w io.Writer, rep storage.DirReport, perSegment bool) {
	sealed, active := 0, 0
	for _, s := range rep.Segments {
		if s.Sealed {
			sealed++
		}
		if s.Active {
			active++
		}
	}
	deadShare := 0.0
	if total := rep.LiveBytes + rep.DeadBytes; total > 0 {
		deadShare = 100 * float64(rep.DeadBytes) / float64(total)
	}
	fmt.Fprintf(w, "data directory   %s", rep.Dir)
	if rep.InUse {
		fmt.Fprint(w, " (open in a running server)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "keys             %d live (%d with an expiry), %d expired, %d deleted\n",
		rep.Keys, rep.KeysWithExpiry, rep.ExpiredKeys, rep.DeletedKeys)
	fmt.Fprintf(w, "segments         %d files, %s (%d written by compaction, %d active)\n",
		len(rep.Segments), formatBytes(int64(rep.SegmentBytes)), sealed, active)
	fmt.Fprintf(w, "live bytes       %s\n", formatBytes(int64(rep.LiveBytes)))
	fmt.Fprintf(w, "dead bytes       %s (%.1f%%: compaction reclaims them)\n", formatBytes(int64(rep.DeadBytes)), deadShare)
	fmt.Fprintf(w, "sequence         %d..%d (%d records, %d operations)\n", rep.MinSeq, rep.LastSeq, rep.Records, rep.Ops)
	fmt.Fprintf(w, "hint files       %d valid, %d missing, %d invalid\n", rep.HintsValid, rep.HintsMissing, rep.HintsInvalid)
	fmt.Fprintf(w, "index estimate   %s of memory once open\n", formatBytes(int64(rep.IndexEstimateBytes)))
	if !perSegment {
		return
	}
	fmt.Fprintf(w, "\n%-16s %10s %6s %7s %14s %10s %10s\n", "segment", "bytes", "kind", "hint", "sequence", "live", "dead")
	for _, s := range rep.Segments {
		kind := "closed"
		switch {
		case s.Active:
			kind = "active"
		case s.Sealed:
			kind = "sealed"
		}
		torn := ""
		if s.TornTail != nil {
			torn = fmt.Sprintf("torn tail at %d", s.TornTail.Offset)
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("%-16s %10d %6s %7s %14s %10d %10d %s", s.File, s.Len, kind, s.Hint,
			fmt.Sprintf("%d..%d", s.FirstSeq, s.LastSeq), s.LiveBytes, s.DeadBytes, torn), " "))
	}
}
