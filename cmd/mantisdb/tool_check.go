package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/mantisdb/mantisdb/storage"
)

func checkTool() tool {
	return tool{
		name:     "check",
		synopsis: "--data-dir D [--json] [--repair]",
		summary:  "verify a data directory offline; exit 1 naming the file and offset of damage",
		about: `Verifies a data directory without writing to it (no lock file, no
truncation, no hint written): every segment's header and every record's
checksums and sequence numbers, the links between writer segments, and
every hint file against its segment, entry by entry. These are the checks
recovery makes when the database opens. Prints a report; exits 1 when it
finds damage, naming the file and byte offset of the first (the place open
would refuse). A torn tail of the newest segment is not damage: it is the
write a crash cut, which open removes, and the report says so.

--repair is a separate, explicit step: with the server stopped, it opens
the directory with the engine's repair option, which keeps every readable
record and drops the rest of each damaged segment (and rewrites hint files
it cannot trust), then checks again. The report before it says what is
dropped. Take a copy of the directory first.`,
		run: runCheck,
	}
}

func runCheck(_ context.Context, fs *flag.FlagSet, args []string, tio toolIO) int {
	t := checkTool()
	dataDir := fs.String("data-dir", "", "data directory to check")
	asJSON := fs.Bool("json", false, "print the whole report as JSON")
	repair := fs.Bool("repair", false, "salvage a damaged directory (see above); the server must be stopped")
	rep, code, ok := readDirReport(t, fs, args, tio, dataDir)
	if !ok {
		return code
	}
	if *asJSON && !*repair {
		writeJSONReport(tio.stdout, rep)
		return checkExit(rep)
	}
	printCheck(tio.stdout, rep)
	if !*repair || len(rep.Damage) == 0 {
		if *repair {
			fmt.Fprintln(tio.stdout, "nothing to repair")
		}
		return checkExit(rep)
	}
	if rep.InUse {
		return failf(t, tio, "%s is open in a running server; stop it before --repair", *dataDir)
	}
	fmt.Fprintln(tio.stdout, "\nrepairing: each damaged segment keeps its records before the damage; hint files are rewritten")
	for _, d := range rep.Damage {
		for _, s := range rep.Segments {
			if filepath.Join(rep.Dir, s.File) == filepath.Clean(d.File) {
				fmt.Fprintf(tio.stdout, "  drops %s from offset %d to its end (%d bytes)\n", d.File, d.Offset, s.Len-d.Offset)
			}
		}
	}
	if err := storage.RepairDataDir(*dataDir); err != nil {
		return failf(t, tio, "repair: %v", err)
	}
	after, err := storage.CheckDataDir(*dataDir)
	if err != nil {
		return failf(t, tio, "checking after the repair: %v", err)
	}
	fmt.Fprintf(tio.stdout, "\nafter the repair: %d keys (the check before it could read %d)\n", after.Keys, rep.Keys)
	printCheck(tio.stdout, after)
	return checkExit(after)
}

// readDirReport is how check and stats begin, once their flags are
// defined on fs: it parses args, requires --data-dir (whose value dataDir
// points to) and reads the directory's report. When ok is false the tool
// ends with code.
func readDirReport(t tool, fs *flag.FlagSet, args []string, tio toolIO, dataDir *string) (rep storage.DirReport, code int, ok bool) {
	if code, ok := parseToolFlags(t, fs, args, tio); !ok {
		return rep, code, false
	}
	if *dataDir == "" {
		return rep, usageErrorf(t, tio, "--data-dir is required"), false
	}
	rep, err := storage.CheckDataDir(*dataDir)
	if err != nil {
		return rep, failf(t, tio, "%v", err), false
	}
	return rep, exitOK, true
}

func checkExit(rep storage.DirReport) int {
	if len(rep.Damage) > 0 {
		return exitFailed
	}
	return exitOK
}

func writeJSONReport(w io.Writer, rep storage.DirReport) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

// printCheck writes the check report: what was read, notes, damage, and
// a last line that says OK or names the first damage.
func printCheck(w io.Writer, rep storage.DirReport) {
	sealed := 0
	for _, s := range rep.Segments {
		if s.Sealed {
			sealed++
		}
	}
	fmt.Fprintf(w, "checked %s: %d segments (%d written by compaction), %s, %d records, %d hint files valid\n",
		rep.Dir, len(rep.Segments), sealed, formatBytes(int64(rep.SegmentBytes)), rep.Records, rep.HintsValid)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, d := range rep.Damage {
		fmt.Fprintf(w, "damage: %s at offset %d: %s\n", d.File, d.Offset, d.Reason)
	}
	if len(rep.Damage) == 0 {
		fmt.Fprintln(w, "OK: no damage")
		return
	}
	first := rep.Damage[0]
	fmt.Fprintf(w, "DAMAGED: %d problems; the first is in %s at offset %d\n", len(rep.Damage), first.File, first.Offset)
}
