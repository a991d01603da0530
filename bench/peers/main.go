// Command peers runs the same workloads, at the same durability, on
// MantisDB and on the embedded engines a Go user would pick instead
// (Badger, Pebble, bbolt, BuntDB), and writes the table of ratios to
// docs/performance/peers.md. It is a module of its own so that the product
// does not depend on its peers.
//
// Build it with -tags rust (after make build-rust-core) to include the
// MantisDB Rust engine, the engine every ratio is taken against; without
// the tag it runs the others and says that the ratios are missing.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mantisdb/mantisdb/storage"
)

// Run is everything one invocation measured: what the doc is made from.
type Run struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Command string    `json:"command"`
	Rust    bool      `json:"rust"`
	Machine Machine   `json:"machine"`
	Ops     int       `json:"ops"`
	CapSec  float64   `json:"cap_seconds"`
	Rounds  int       `json:"rounds"`
	Hot     int       `json:"hot"`
	Verify  bool      `json:"verify"`
	// Workers is true for a run whose engines each ran in a worker process
	// of their own (false with -one-process, and in runs from before
	// workers existed).
	Workers  bool              `json:"workers"`
	Versions map[string]string `json:"versions"`
	Sets     []SetResult       `json:"sets"`
}

// SetResult is one size at one durability: a table of the doc.
type SetResult struct {
	Keys      int            `json:"keys"`
	ValueSize int            `json:"value_size"`
	Sync      string         `json:"sync"`
	Engines   []EngineResult `json:"engines"`
	// LoadAvg samples the machine's 1-minute load average before each
	// workload and at the end: how busy the shared machine was.
	LoadAvg []float64 `json:"load_avg"`
}

// EngineResult is one engine's column of a table.
type EngineResult struct {
	Engine  string `json:"engine"`
	Durable bool   `json:"durable"`
	Setting string `json:"setting"`
	Cells   []Cell `json:"cells"`
	// LoadSeconds is the untimed batch load of the keys put-seq did not reach.
	LoadSeconds float64 `json:"load_seconds"`
	// DiskBytes is the size of the data directory after Close.
	DiskBytes int64  `json:"disk_bytes"`
	Error     string `json:"error,omitempty"`
}

// options are the command's flags.
type options struct {
	keys, values []int
	engines      []string
	workloads    map[string]bool
	syncs        []string
	lim          limits
	hot          int
	dir          string
	allowTmpfs   bool
	oneProcess   bool
	doc, jsonOut string
	report       string
	prof         profiler
}

func main() {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	log.SetFlags(0)
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	var run *Run
	if o.report != "" {
		run, err = readRun(o.report)
	} else {
		run, err = runAll(o, os.Stderr)
	}
	if err != nil {
		log.Fatal(err)
	}
	if o.jsonOut != "" && o.report == "" {
		if err := writeRun(o.jsonOut, run); err != nil {
			log.Fatal(err)
		}
	}
	doc := renderDoc(run)
	if o.doc == "" {
		fmt.Print(doc)
		return
	}
	if err := os.WriteFile(o.doc, []byte(doc), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", o.doc)
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	keys := fs.String("keys", "1000000,100000,1000000", "keys per data set; one count for every value size, or one per -values entry")
	values := fs.String("values", "100,4096,1024", "value sizes in bytes, comma separated")
	engineList := fs.String("engines", "", "engines to run, comma separated (default all: mantisdb,memory,badger,pebble,bbolt,buntdb)")
	workloadList := fs.String("workloads", "", "workloads to run, comma separated (default all; the store is always filled first)")
	syncs := fs.String("sync", "never,always", "durabilities: never (no fsync) and/or always (fsync per commit)")
	quick := fs.Bool("quick", false, "tiny sizes and caps, every value checked: a few seconds, for tests")
	ops := fs.Int("ops", 1_000_000, "point operations a cell aims for (batches ops/100, scans ops/1000; put-seq writes each key once)")
	capDur := fs.Duration("cap", 6*time.Second, "time cap of one cell (split among the rounds)")
	rounds := fs.Int("rounds", 5, "measurements per cell, interleaved across engines; the median is reported")
	hot := fs.Int("hot", 10_000, "keys in the hot working set of get-hot")
	verify := fs.Bool("verify", false, "compare every value read with the one written (always on with -quick)")
	dir := fs.String("dir", os.TempDir(), "parent of the per-engine data directories (must be a disk, not tmpfs)")
	allowTmpfs := fs.Bool("allow-tmpfs", false, "allow a tmpfs -dir (the fsync figures are then meaningless)")
	oneProcess := fs.Bool("one-process", false, "run every engine in this process instead of one worker process per engine")
	doc := fs.String("doc", "", "write the markdown report here (default: standard output)")
	jsonOut := fs.String("json", "", "also write the raw results as JSON here")
	report := fs.String("report", "", "do not run: render the doc from this JSON file of an earlier run")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of each measured cell's rounds to PREFIX-<keys>x<bytes>-<sync>-<workload>.pprof (use with -engines mantisdb and -workloads)")
	perfCtl := fs.String("perf-ctl", "", "write enable/disable to this FIFO around each measured cell's rounds, for perf record --control fifo:FIFO -D -1")
	profileOnly := fs.String("profile-only", "", "profile only these workloads (comma separated; default every workload run), so earlier ones set the store up as in a full run")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		// Tiny defaults; flags given explicitly still win.
		for name, v := range map[string]string{"keys": "3000", "ops": "3000", "cap": "20ms", "rounds": "1", "hot": "300"} {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return options{}, err
				}
			}
		}
		*verify, *allowTmpfs = true, true
	}
	o := options{
		lim:        limits{ops: *ops, cap: *capDur, rounds: *rounds, verify: *verify},
		hot:        *hot,
		dir:        *dir,
		allowTmpfs: *allowTmpfs,
		oneProcess: *oneProcess,
		doc:        *doc,
		jsonOut:    *jsonOut,
		report:     *report,
		prof:       profiler{cpuPrefix: *cpuProfile, perfCtl: *perfCtl},
	}
	if *profileOnly != "" {
		o.prof.only = map[string]bool{}
		for _, w := range strings.Split(*profileOnly, ",") {
			o.prof.only[w] = true
		}
	}
	var err error
	if o.values, err = intList(*values); err != nil {
		return o, fmt.Errorf("-values: %w", err)
	}
	if o.keys, err = intList(*keys); err != nil {
		return o, fmt.Errorf("-keys: %w", err)
	}
	if len(o.keys) == 1 {
		for len(o.keys) < len(o.values) {
			o.keys = append(o.keys, o.keys[0])
		}
	}
	if len(o.keys) != len(o.values) {
		return o, fmt.Errorf("-keys has %d entries and -values %d: give one key count, or one per value size", len(o.keys), len(o.values))
	}
	for _, k := range o.keys {
		if k < scanSize || k%scanSize != 0 || k >= 1e9 {
			return o, fmt.Errorf("-keys %d: want a multiple of %d below 1e9 (a scan prefix covers %d keys)", k, scanSize, scanSize)
		}
	}
	if *workloadList != "" {
		o.workloads = map[string]bool{}
		for _, w := range strings.Split(*workloadList, ",") {
			if !slices.ContainsFunc(workloads, func(x Workload) bool { return x.Name == w }) {
				return o, fmt.Errorf("-workloads: unknown workload %q", w)
			}
			o.workloads[w] = true
		}
	}
	if *engineList != "" {
		o.engines = strings.Split(*engineList, ",")
	}
	for _, s := range strings.Split(*syncs, ",") {
		if s != "never" && s != "always" {
			return o, fmt.Errorf("-sync %q: want never and/or always", s)
		}
		o.syncs = append(o.syncs, s)
	}
	if o.lim.ops < 1 || o.lim.rounds < 1 || o.lim.cap <= 0 || o.hot < 1 {
		return o, fmt.Errorf("-ops, -rounds, -hot and -cap must be positive")
	}
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// runAll runs every selected engine on every size and durability, printing
// progress to progress.
func runAll(o options, progress io.Writer) (*Run, error) {
	engs, err := selectEngines(o.engines)
	if err != nil {
		return nil, err
	}
	if !storage.RustAvailable {
		fmt.Fprintln(progress, "note: built without -tags rust: the MantisDB Rust engine is skipped and no ratios can be computed (run make build-rust-core, then go run -tags rust .)")
	}
	m, err := machine(o.dir)
	if err != nil {
		return nil, err
	}
	if m.FS == "tmpfs" && !o.allowTmpfs {
		return nil, fmt.Errorf("-dir %s is on tmpfs: fsync costs nothing there; pick a directory on disk (or pass -allow-tmpfs)", o.dir)
	}
	run := &Run{
		Started: time.Now(), Command: command(), Rust: storage.RustAvailable, Machine: m,
		Ops: o.lim.ops, CapSec: o.lim.cap.Seconds(), Rounds: o.lim.rounds, Hot: o.hot, Verify: o.lim.verify,
		Workers:  !o.oneProcess,
		Versions: versions(),
	}
	for i, n := range o.keys {
		for _, syncName := range o.syncs {
			set := runSet(engs, n, o.values[i], syncName, o, progress)
			run.Sets = append(run.Sets, set)
			if o.jsonOut != "" {
				// Each finished table is kept at once: a long run that
				// fails later still leaves its earlier tables (-report
				// renders them).
				run.Seconds = time.Since(run.Started).Seconds()
				if err := writeRun(o.jsonOut, run); err != nil {
					return nil, err
				}
			}
		}
	}
	run.Seconds = time.Since(run.Started).Seconds()
	return run, nil
}

// contender is one engine open for a table.
type contender struct {
	e   Engine
	dir string
	l   lane
	res EngineResult
}

// runSet measures one table: every engine open at once, each in a fresh
// directory under o.dir and (unless -one-process) in a process of its own,
// and each workload's rounds interleaved across the engines (the order
// rotated every round), so that a burst of load from the machine's other
// users, or a slow spell of the shared disk, hits every engine alike
// instead of one engine's whole column. Dirty pages are written back
// before each workload.
func runSet(engs []Engine, keys, valueSize int, syncName string, o options, progress io.Writer) SetResult {
	sync := syncName == "always"
	set := SetResult{Keys: keys, ValueSize: valueSize, Sync: syncName}
	label := fmt.Sprintf("%s x %s, %s", count(keys), bytesLabel(valueSize), syncName)
	var d *dataset
	if o.oneProcess {
		// Workers build their own; engines in this process share one.
		d = newDataset(keys, valueSize, o.hot)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var cs []*contender
	for _, e := range engs {
		c := &contender{e: e, res: EngineResult{Engine: e.Name, Durable: e.Durable, Setting: e.Setting(sync)}}
		cs = append(cs, c)
		dir, err := os.MkdirTemp(o.dir, "peers-"+e.Name+"-")
		if err != nil {
			c.res.Error = err.Error()
			continue
		}
		c.dir = dir
		spec := laneSpec{
			Engine: e.Name, Dir: dir, Sync: sync, Keys: keys, ValueSize: valueSize, Hot: o.hot,
			Ops: o.lim.ops, CapNs: int64(o.lim.cap), Rounds: o.lim.rounds, Verify: o.lim.verify,
		}
		var l lane
		if o.oneProcess {
			l, err = openLocal(spec, d)
		} else {
			l, err = openWorker(spec)
		}
		if err != nil {
			c.res.Error = err.Error()
			continue
		}
		c.l = l
	}
	live := func() []*contender {
		var out []*contender
		for _, c := range cs {
			if c.l != nil && c.res.Error == "" {
				out = append(out, c)
			}
		}
		return out
	}
	// fail records the first error of a lane, which then leaves the table.
	fail := func(c *contender, what string, err error) {
		if err != nil && c.res.Error == "" {
			c.res.Error = fmt.Sprintf("%s: %v", what, err)
		}
	}
	for wi, w := range workloads {
		set.LoadAvg = append(set.LoadAvg, loadAvg())
		if !(sync && !w.Writes) && (o.workloads == nil || o.workloads[w.Name]) {
			settle(o.dir)
			cellName := fmt.Sprintf("%dx%d-%s-%s", keys, valueSize, syncName, w.Name)
			for _, c := range live() {
				// Workers profile their own processes, one file each (named
				// after the engine when there are several).
				var cpuFile string
				if !o.oneProcess {
					engine := ""
					if len(engs) > 1 {
						engine = c.e.Name
					}
					cpuFile = o.prof.cpuFile(w.Name, cellName, engine)
				}
				fail(c, w.Name, c.l.start(w, uint64(wi+1), cpuFile))
			}
			order := live()
			stop, err := o.prof.start(w.Name, cellName, o.oneProcess)
			if err != nil {
				fmt.Fprintf(progress, "profile: %v\n", err)
			}
			for r := range max(1, o.lim.rounds) {
				// Round r starts at engine r: each engine takes a different
				// place in the order, so none always follows the same
				// neighbour's leftover work.
				for i := range order {
					c := order[(i+r)%len(order)]
					if c.res.Error == "" {
						fail(c, w.Name, c.l.round())
					}
				}
			}
			if err := stop(); err != nil {
				fmt.Fprintf(progress, "profile: %v\n", err)
			}
			for _, c := range live() {
				cell, err := c.l.result()
				if err != nil {
					fail(c, w.Name, err)
					continue
				}
				c.res.Cells = append(c.res.Cells, cell)
				fmt.Fprintf(progress, "%-24s %-9s %-14s %12s ops/s  %s\n", label, c.e.Name, w.Name, count(int(cell.OpsPerSec)), cellNote(cell))
			}
		}
		if w.kind == putSeq {
			for _, c := range live() {
				took, err := c.l.load()
				c.res.LoadSeconds = took.Seconds()
				fail(c, "load", err)
			}
		}
	}
	set.LoadAvg = append(set.LoadAvg, loadAvg())
	for _, c := range cs {
		if c.l != nil {
			fail(c, "close", c.l.close())
		}
		if c.dir != "" {
			c.res.DiskBytes = dirSize(c.dir)
			os.RemoveAll(c.dir)
		}
		if c.res.Error != "" {
			fmt.Fprintf(progress, "%-24s %-9s error: %s\n", label, c.e.Name, c.res.Error)
		}
		set.Engines = append(set.Engines, c.res)
	}
	return set
}

func cellNote(c Cell) string {
	s := fmt.Sprintf("(%d ops in %.2fs", c.Ops, c.Seconds)
	if c.Capped {
		s += ", time-capped"
	}
	s += ")"
	if c.Error != "" {
		s += " error: " + c.Error
	}
	return s
}

// command is how to repeat this run.
func command() string {
	var b strings.Builder
	if os.Getenv("MAKELEVEL") != "" {
		b.WriteString("make bench-peers, which runs: ")
	}
	b.WriteString("cd bench/peers && go run ")
	if storage.RustAvailable {
		b.WriteString("-tags rust ")
	}
	b.WriteString(".")
	for _, a := range os.Args[1:] {
		b.WriteString(" " + a)
	}
	return b.String()
}

// versions names the module version of every engine, and the MantisDB commit.
func versions() map[string]string {
	out := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			out[dep.Path] = dep.Version
		}
	}
	if b, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		out["github.com/mantisdb/mantisdb"] = "commit " + strings.TrimSpace(string(b))
	}
	if c := productCommit("HEAD"); c != "" {
		out[productKey] = c
	}
	if storage.RustAvailable {
		out[rustLibKey] = rustLibVersion()
	}
	return out
}

// productKey names, in Run.Versions, the last commit that changed the
// product measured: anything outside bench/, docs/ and the Makefile. A run
// from a branch that only changes the benchmark names the main-line commit
// whose engine it measured.
const productKey = "product code"

// productCommit is the short hash of the last commit at or before rev that
// changed a file outside bench/, docs/ and the Makefile, or "".
func productCommit(rev string) string {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return ""
	}
	b, err := exec.Command("git", "-C", strings.TrimSpace(string(top)), "log", "-1", "--format=%h", rev, "--", ".", ":(exclude)bench", ":(exclude)docs", ":(exclude)Makefile").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rustLibKey names, in Run.Versions, the static library the run linked.
const rustLibKey = "rust-core library"

// rustLibVersion says when the linked static library was built, and warns
// when rust-core changed after: the Go build links whatever library is
// there, so a stale one would be measured under a newer commit's name.
func rustLibVersion() string {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "unknown (not in a git checkout)"
	}
	root := strings.TrimSpace(string(top))
	info, err := os.Stat(filepath.Join(root, "rust-core/target/release/libmantisdb_core.a"))
	if err != nil {
		return "unknown: " + err.Error()
	}
	built := info.ModTime().UTC()
	v := "built " + built.Format("2006-01-02 15:04 MST")
	last, err := exec.Command("git", "-C", root, "log", "-1", "--format=%h %cI", "--", "rust-core/src", "rust-core/Cargo.toml", "rust-core/Cargo.lock").Output()
	if f := strings.Fields(string(last)); err == nil && len(f) == 2 {
		if t, err := time.Parse(time.RFC3339, f[1]); err == nil && t.After(built) {
			v += fmt.Sprintf(", older than rust-core commit %s (%s): possibly stale (make build-rust-core rebuilds it)", f[0], t.UTC().Format("2006-01-02 15:04 MST"))
		}
	}
	return v
}

// writeRun writes a run's raw results as indented JSON.
func writeRun(path string, run *Run) error {
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readRun(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var run Run
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Runs made before productKey was recorded: derived from the commit
	// they name (git log of that commit, not of the checkout).
	if _, ok := run.Versions[productKey]; !ok && run.Versions != nil {
		if c, ok := strings.CutPrefix(run.Versions["github.com/mantisdb/mantisdb"], "commit "); ok && !strings.HasSuffix(c, "-dirty") {
			if p := productCommit(c); p != "" {
				run.Versions[productKey] = p
			}
		}
	}
	return &run, nil
}
