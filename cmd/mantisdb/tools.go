package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes of the operator subcommands, the same for each.
const (
	// exitOK: the subcommand did what was asked; check found no damage.
	exitOK = 0
	// exitFailed: the operation failed (the message says why), or check
	// found damage (the report names file and offset).
	exitFailed = 1
	// exitUsage: a bad flag or argument; nothing was done.
	exitUsage = 2
)

// toolIO is what a subcommand reads and writes besides its flags.
type toolIO struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// tool is one operator subcommand of the binary, in the manner of
// `bbolt check`: its own flags, its own --help, the exit codes above.
type tool struct {
	name     string
	synopsis string // the arguments after the name, for the usage line
	summary  string // one line for `mantisdb help`
	about    string // what the subcommand does, for its --help
	// run parses args with fs (already holding the common flags) and does
	// the work; it returns an exit code.
	run func(ctx context.Context, fs *flag.FlagSet, args []string, io toolIO) int
}

// tools lists the subcommands in the order `mantisdb help` shows them.
func tools() []tool {
	return []tool{checkTool(), statsTool(), dumpTool(), loadTool(), backupTool(), compactTool()}
}

func findTool(name string) (tool, bool) {
	for _, t := range tools() {
		if t.name == name {
			return t, true
		}
	}
	return tool{}, false
}

// isToolCommand reports whether args start with a command word rather
// than the server's flags: the server takes no other arguments, so a
// mistyped command is reported as one.
func isToolCommand(args []string) bool {
	return len(args) > 0 && !strings.HasPrefix(args[0], "-")
}

// runTool runs the subcommand args[0] with the rest of args.
func runTool(args []string, tio toolIO) int {
	if args[0] == "help" {
		if len(args) > 1 {
			if t, ok := findTool(args[1]); ok {
				printToolUsage(tio.stdout, t, newToolFlagSet(t))
				return exitOK
			}
			fmt.Fprintf(tio.stderr, "mantisdb help: no subcommand %q\n", args[1])
			printToolList(tio.stderr)
			return exitUsage
		}
		printToolList(tio.stdout)
		return exitOK
	}
	t, ok := findTool(args[0])
	if !ok {
		fmt.Fprintf(tio.stderr, "mantisdb: unknown command %q\n", args[0])
		printToolList(tio.stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return t.run(ctx, newToolFlagSet(t), args[1:], tio)
}

func newToolFlagSet(t tool) *flag.FlagSet {
	fs := flag.NewFlagSet("mantisdb "+t.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseToolFlags reports errors itself
	return fs
}

// parseToolFlags parses args; on --help it prints the usage to stdout, on
// a bad flag it names it on stderr. ok is false when the caller should
// return code.
func parseToolFlags(t tool, fs *flag.FlagSet, args []string, tio toolIO) (code int, ok bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printToolUsage(tio.stdout, t, fs)
		return exitOK, false
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q (every input is a flag)", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(tio.stderr, "mantisdb %s: %v\nRun 'mantisdb %s --help' for its flags.\n", t.name, err, t.name)
		return exitUsage, false
	}
	return exitOK, true
}

// usageErrorf reports a bad combination of flags: exit code 2.
func usageErrorf(t tool, tio toolIO, format string, args ...any) int {
	fmt.Fprintf(tio.stderr, "mantisdb %s: %s\nRun 'mantisdb %s --help' for its flags.\n", t.name, fmt.Sprintf(format, args...), t.name)
	return exitUsage
}

// failf reports a failed operation: exit code 1.
func failf(t tool, tio toolIO, format string, args ...any) int {
	fmt.Fprintf(tio.stderr, "mantisdb %s: %s\n", t.name, fmt.Sprintf(format, args...))
	return exitFailed
}

func printToolList(w io.Writer) {
	fmt.Fprint(w, "Usage: mantisdb <command> [flags]\n\nOperator commands:\n")
	for _, t := range tools() {
		fmt.Fprintf(w, "  %-8s %s\n", t.name, t.summary)
	}
	fmt.Fprint(w, `
Run 'mantisdb <command> --help' for a command's flags. Without a command,
mantisdb runs the server ('mantisdb --help' lists its flags).

Exit codes: 0 done (check: no damage), 1 failed or damage found (the
message names the file and offset), 2 bad flags (nothing was done).
`)
}

func printToolUsage(w io.Writer, t tool, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: mantisdb %s %s\n\n%s\n\nFlags:\n", t.name, t.synopsis, strings.TrimSpace(t.about))
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if t, ok := f.Value.(interface{ Type() string }); ok {
			typ = t.Type()
		}
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		fmt.Fprintf(w, "        %s", usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	failed := "1 failed"
	if t.name == "check" {
		failed = "1 damage found or the check could not finish"
	}
	fmt.Fprintf(w, "\nExit codes: 0 done, %s, 2 bad flags. See docs/operations/tools.md.\n", failed)
}
