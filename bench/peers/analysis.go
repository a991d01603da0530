package main

// explanation is the reason a class of cells is lost to a peer, written
// from the profiles of a run: the MantisDB adapter alone on the cell's
// workload and size, its measured rounds only (the fill before them is
// not profiled), as bench/peers/README.md shows: a Go CPU profile
// (-cpuprofile) and perf record of the whole process (-perf-ctl), whose
// samples are split by thread: the Go threads, which also run the Rust
// code of a call, and the library's background threads (mantisdb-compaction,
// which builds hint files and compacts; mantisdb-flusher). Percentages are
// shares of the process's samples in that profile. The doc groups the
// losing cells of a run under the first explanation that matches each.
type explanation struct {
	id    string
	title string
	text  string
	// match says whether the explanation covers a losing cell.
	match func(l loss) bool
}

// readHeavy is a workload whose time goes mostly to gets.
func readHeavy(w Workload) bool {
	return w.kind == getHot || w.kind == getCold || (w.kind == mixed && w.readPct >= 90)
}

// profiled names the run the profiles below were taken in.
const profiled = "Profiled on 2026-12-05 between 06:00 and 06:07 UTC, right after that morning's run of this page, at the commit it measured, on the machine shared then with other jobs (load average 10 to 17); *the run* in these paragraphs is that morning's run, not the later and quieter one whose tables are above. MantisDB alone (the commands are in bench/peers/README.md): one 8-second round per workload, the workloads before the profiled one run first as in the run (`-profile-only`), so they leave the store in the same state, except that each ran 8 s where the run's rounds of one engine add up to 6 s: the profiles hold somewhat more garbage to compact than the run's cells did. "

// explanations are tried in order; a losing cell none matches is listed
// as unexplained, so a new loss cannot hide.
var explanations = []explanation{
	{
		id:    "scan",
		title: "Prefix scans: a dependent cache miss per key in the skiplist walk at 100 B; at 1 KiB and 4 KiB every value read whole for its CRC32C, where bbolt and BuntDB lend what they hold unread.",
		text: profiled +
			"Scans no longer count a reference per key or per value, no longer go through the value cache, and read into buffers the iterator keeps (`rust-core/src/iter.rs`; before and after in [rust-core.md](rust-core.md#scans-of-values-on-disk-no-value-cache-churn-no-fresh-pages-2026-12-05)); what is left: " +
			"**1M × 100 B** (values inline in the index): alone, right after get-cold, the scan ran at 3,916 scans/s (1,000 scans in 0.26 s, 124 samples); in the run, interleaved with the other engines in one process, MantisDB made 789, bbolt 4,366 and BuntDB 2,475. Of the profile's samples, 51% are `memmove` (the copies of each key and inline value into the chunk's buffers: the first touch of a value that is an allocation of its own, a cache miss per key) and 40% the walk itself (`Index::range_from`: a node per key, scattered in the heap). This profile does not show why the run's rate was five times lower; a walk that misses the cache at every key is what loses most when the other engines in the process and the machine's other jobs evict the caches between rounds (likely, not measured); bbolt and BuntDB read keys and values packed in pages or B-tree nodes. " +
			"**100k × 4 KiB**, after the overwrites of put-rand and batch-100: compaction of the overwritten segments ran beside the scan and took 54% of the process's samples, 41 points of them the kernel zeroing fresh memory (`clear_page_erms` under `do_huge_pmd_anonymous_page`) for compaction's new buffers: the zeroed buffer each input segment is read into whole (`Segment::read_all`, 14 points) and, most likely, the output buffer the kept records are copied into (25 points first touched by a `memmove` whose caller the call graph lost). Of the scan thread's own samples, the copy out of the page cache (`_copy_to_iter`) is 27%, finding the pages (`filemap_get_read_batch`, `xas_load`) 15%, `memmove` 11%, CRC32C 8%, the index walk 8%, fresh pages 5%, the value cache probe 3%. The scan ran at 54 scans/s in the profile (520 in the run). " +
			"**1M × 1 KiB**, after the overwrites: 316 scans/s alone (112 in the run; BuntDB 1,252, Pebble 132, Badger 119, the last two `≈`). Of the scan thread's samples (65% of the process's; compaction the rest, half of it looking its records up in the index), the copy out of the page cache is 28%, finding the pages 18%, fresh memory zeroed by the kernel 9% (6 points of it the new buffer of each value read alone through the log, `Segment::read_at`: a value whose neighbours on disk belong to other prefixes), the index walk 8%, CRC32C 5%, `memmove` 4%, the value cache probe 3%, sorting the reads by position 2%. " +
			"bbolt hands out views into leaf pages of its memory map, BuntDB the strings its B-tree holds: neither copies, checksums, or makes a system call per run of values. " +
			"What it would take: map sealed segments and lend values from the map (no copy out of the page cache, each record's CRC checked once rather than per scan); compaction through buffers it keeps between passes, or reading its inputs through a window (no fresh memory, see *Writes without fsync*), and rewriting a prefix's values together; for inline values, values of a few dozen bytes kept inside the version (no separate allocation to miss on) and nodes allocated so that neighbours in key order share cache lines. " +
			"Since this run (2026-12-05): values of closed segments are lent from the map (checked, key and CRC32C, on every scan) and the Go iterator reads views of them through `mantis_iter_next_refs` (no copy at all), records are prefetched ahead of the check, and a scan that says how many pairs it reads (`storage.LimitReads`, which this harness's adapter now does) fetches them in one batch. " +
			"The scan-1000 cell alone (`-engines mantisdb,bbolt,buntdb -workloads scan-1000 -sync never -rounds 5 -cap 2s`, values in key order, three runs per build alternating, 11:23-11:26 UTC, load 13.6 to 15.9; medians of the runs): **100k × 4 KiB** MantisDB 468 → 436 scans/s, vs bbolt 0.18× → 0.32×, vs BuntDB 0.030× → 0.015×; **200k × 1 KiB** MantisDB 1,381 → 1,552 scans/s, vs bbolt 0.52× → 0.82×, vs BuntDB 0.050× → 0.070×. MantisDB's own rate did not move beyond this load's noise in these cells (one scanner, values in key order, so the records are already read in sequence; the gains are under 64 concurrent scanners of scattered values, see benchmark-mode.md), and the ratios moved mostly with the peers' own swings (bbolt 1.4k to 2.9k scans/s at 4 KiB). Still lost: what is left is reading every value's bytes for its CRC32C (the memory stalls of the check, then the checksum: about half of a scan's samples) against engines that lend what they hold unchecked, and BuntDB's rounds spread 10× under this load ([benchmark-mode.md](benchmark-mode.md#results-heavy-level---syncalways-2026-12-05-1127-1153-utc-prefix-scan-lent-from-the-map-one-batch-per-scan-records-prefetched)). " +
			"Later the same day the Go iterator stopped yielding its P after each batch when fewer scans than Ps are open, and stopped taking a lock per step ([rust-core.md](rust-core.md#scans-through-the-go-iterator-no-yield-for-a-lone-scan-no-lock-per-step-2026-12-05)): the same cell alone, quiet machine (load 1.3 to 1.5), before and after alternated: **1M × 100 B** (keys in order) 10,784 → 14,109 scans/s (medians of three runs; bbolt 17.2k to 22.4k, BuntDB 53.4k to 55.2k), **200k × 1 KiB** 4,374 / 4,466 → 5,726 / 5,869 (bbolt 7.2k to 7.9k), **100k × 4 KiB** unchanged (1,610 / 1,641 → 1,628 / 1,549; bbolt 6.0k to 7.1k): there the time is CRC32C over every value's bytes. Then the walk took each key's lock once: it copies a view of the visible version eight keys ahead of the visit and prefetches its inline value, and a superseded inline value is freed only after the readers' epoch ([rust-core.md](rust-core.md#the-walk-ahead-with-one-lock-per-key-superseded-inline-values-freed-after-the-epoch-2026-12-05)): **1M × 100 B** after random overwrites (`-workloads put-rand,scan-1000`) 5,707 → 7,887 scans/s (medians of three runs per build, alternated; bbolt 14.9k to 20.5k, BuntDB 15.4k to 16.8k), over keys in order 14.0k → 12.1k (0.86×; bbolt 18.5k to 24.5k, BuntDB 54.9k to 59.6k). " +
			"The run on this page (22:27 UTC, on an AMD EPYC guest where the earlier runs had an Intel Xeon) followed CRC32C computed by carry-less multiplication, 64 bytes at a time, instead of the `crc32` instruction ([rust-core.md](rust-core.md#crc32c-by-carry-less-multiplication-2026-12-05)): at 100k × 4 KiB the scan after overwrites went from 1,609 to 1,935 scans/s and in key order from 3,116 to 3,583 (medians of three alternated runs each), the checksum now bound by the memory it reads rather than by the instruction. At 100 B the scan is now ahead of BuntDB (1.42×) and at 0.67× bbolt; at 1 KiB 0.52× bbolt and 0.39× BuntDB (0.37× and 0.23× in the previous run), at 4 KiB 0.22× and 0.11×. What is left at 1 KiB and 4 KiB is reading each value's bytes for its check, which neither peer does: checking a segment's records once per map instead of per read would find bit rot only at the next open, and was not done.",
		match: func(l loss) bool { return l.w.kind == scanPrefix },
	},
	{
		id:    "get",
		title: "Point gets of 4 KiB values against BuntDB: each get checks and copies its value into a new Go allocation, where BuntDB returns the string it holds.",
		text: profiled +
			"No 100 B get is lost any more: gets walk the skiplist under one epoch guard without reference counts and copy an inline value where it lies ([rust-core.md](rust-core.md#read-path-the-index-without-reference-counts-2026-12-05)). " +
			"**get-cold, 100k × 4 KiB**, after the overwrites: 40.6k gets/s alone (141k in the run), with compaction beside it taking 44% of the samples (writing its output through the page cache 13 points, zeroing fresh memory 9, CRC32C 7). Of the get thread's own samples: the `pread` of the value out of the page cache 21% (`_copy_to_iter`, `filemap_get_read_batch`, `xas_load`, `filemap_read`), the skiplist search 14%, Go's garbage collector 10% (`findObject`, `scanObject`, `gcmarknewobject`: each get allocates its 4 KiB value in Go, one cgo call per get), the value cache 6% (`make_room`, `get`, `Ghost::insert`: a get that misses inserts the value it read and evicts another, and 100k × 4 KiB is six times the 64 MiB cache), `Db::get_with` 5%. " +
			"The 1 KiB cells (1M keys, 16 times the cache) were not profiled after this run; their path is the same. " +
			"BuntDB returns the string its B-tree holds: no read, no copy, no allocation (538k gets/s in the run against MantisDB's 141k at 4 KiB); bbolt a view into its memory map, which the adapter copies. The mixed 90/10 rows without fsync at 4 KiB are these gets nine times in ten. " +
			"What it would take: map sealed segments and copy the value from the map into the caller's buffer (no system call), a value cache that admits a value only when it is likely to be read again (not on every miss of a data set larger than it), and a get that fills a buffer the caller reuses instead of a new Go string per value. " +
			"The first two are done: closed segments are read through maps, and a get now checks its record where it lies in the map and copies it once into the caller's buffer, without the value cache ([rust-core.md](rust-core.md#point-gets-lent-from-the-map-2026-12-05)): the C API's CPU per 4 KiB get fell from 1,290-1,348 to 353-371 ns, and in alternated runs of this harness 1M × 1 KiB cold gets went from 374k-409k to 561k-588k per second. In the run on this page (22:27 UTC, AMD EPYC) every 1 KiB get cell and the 4 KiB gets against bbolt are ahead; against BuntDB at 4 KiB the gets run at 0.36-0.37× and the mixed 90/10 row with one goroutine at 0.66×. A profile of 4 KiB get-cold after this change (`-workloads put-rand,get-cold -profile-only get-cold`): the hash probe of the key 12% (`KeyMap::get`, a miss on the bucket and the node) and 3% its hash, the key compare against the record 9% (the first touch of the record in the map), CRC32C 8%, Go's garbage collector 13% (each get allocates its 4 KiB string), the compaction thread, busy after the overwrites, a fifth of the samples. The Store contract here gives the caller a value it may keep, so a Go allocation per get stays; BuntDB's get allocates nothing.",
		match: func(l loss) bool { return l.set.Sync == "never" && readHeavy(l.w) },
	},
	{
		id:    "write-cpu",
		title: "Writes without fsync: each put searches a skiplist of every key and takes fresh memory, and the background thread reads whole segments into fresh memory, on the same two cores.",
		text: profiled +
			"The hint builder now streams each hint to its file through one 128 KiB buffer from the segment's frames, and compaction sizes its output buffer once ([rust-core.md](rust-core.md#unsynced-puts-hint-files-and-compaction-output-without-fresh-memory-cargo-run---release---example-put_load)): the growing serialization buffer and the per-entry vectors are gone. " +
			"**batch-100, 1M × 100 B** (755 batches/s alone, 1,060 in the run, Pebble 1,981): the Go thread takes 65% of the samples, the background thread 34%. In the foreground the skiplist search of the inserts (`search_position`) is 41% of the thread's samples and the version-list update (`Index::insert`'s closure) 10%; the kernel zeroing fresh pages for the allocator is 20% (12 under a key's version list growing onto the heap when an overwrite adds a second version, `SmallVec::reserve_one_unchecked`; 7 under the new inline value's allocation in `Inner::apply`). In the background thread 28 of its 34 points are the kernel zeroing fresh memory: 24 under the `pread` that fills a new buffer (`read_exact_at`) and 3 under that buffer's allocation in `Segment::read_all`, which reads a whole 64 MiB segment into a new zeroed buffer before a hint is built and for each compaction input. " +
			"**100k × 4 KiB** (three cells lost to BuntDB, all `≈`): every overwrite leaves 4 KiB dead, so compaction runs through these cells; in the profiles taken after them it held 44% to 54% of the process's samples, most of it zeroing its fresh buffers and copying through the page cache (see *Prefix scans*). BuntDB keeps every value in its heap, writes its append-only file without compacting it during a cell, and reads no file on a get. The batch-100 cell at 1M × 1 KiB lost to Badger (`≈`, MantisDB ahead in 3 of 5 paired rounds) was not profiled after this run. " +
			"Pebble appends to a 4 MiB arena memtable that stays in the CPU caches and is flushed and reused. " +
			"What it would take: read closed segments through a window kept between passes, or map them, for the hint builder and compaction; keep compaction's output buffer between passes; a version list that takes a second version without a heap allocation (or reuses the superseded one's slot); an index whose insert touches fewer cache lines. " +
			"Since then, writes no longer copy each value above the inline threshold into the value cache ([rust-core.md](rust-core.md#writes-without-the-value-cache-2026-12-05)): 300k × 1 KiB sequential puts 1.77×, random puts 1.49×, batches of 100 1.77× in alternated runs, and in the run on this page (22:27 UTC, AMD EPYC) every 1 KiB and 4 KiB write cell without fsync is ahead of BuntDB. The cells left are 100 B puts against Pebble, whose memtable is an arena that stays in the CPU caches (0.84× sequential, 0.93×≈ random), and a batch-100 cell at 1M × 1 KiB against Badger that is `≈` (ahead in 3 of 5 paired rounds); none was profiled after this run.",
		match: func(l loss) bool { return l.set.Sync == "never" },
	},
	{
		id:    "sync-batch",
		title: "A synced batch of 100 puts: one sync serves 100 puts, so applying them decides the cell, on a disk whose sync latency drifts; most of these cells are `≈`.",
		text: profiled +
			"A batch is applied as in *Writes without fsync* (100 skiplist searches of an index holding every key, fresh memory for versions and values), then waits for one `fdatasync`. The batch is encoded in Go into a recycled buffer (`batchBufs` in `storage/rust.go`). All four cells are `≈` (MantisDB ahead in 1 to 3 of 5 paired rounds); the largest loss, 1M × 100 B against Pebble (0.66×, ahead in 1 of 5), has MantisDB at 300 batches/s and Pebble at 451 during a table whose load average ran from 10.7 to 18.0. It was not profiled at `always` after this run; the CPU side is the *Writes without fsync* profile of the same workload. " +
			"What it would take: what *Writes without fsync* lists, and more rounds per cell to separate the disk's drift from the engines.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.kind == batchPut },
	},
	{
		id:    "sync-single",
		title: "One synced writer: every engine makes one write and one sync per commit, so these cells are decided by the shared disk's sync latency at the moment, and at 4 KiB by compaction competing for the disk and the CPU.",
		text: profiled +
			"Counted with `perf stat` over put-seq at 1M × 100 B, `always`, alone: 42,688 puts, 42,721 `pwrite64` and 42,694 `fdatasync` (one of each per put; segments are preallocated and zeroed ahead, or reused, so the sync flushes data only), 48 µs of CPU per put, 5,332 puts/s. In the run the same cell made 609 puts/s, Pebble 826 and BuntDB 1,164, each engine's five rounds spread over 1.5 to 3.6 times (MantisDB 468 to 946, Pebble 724 to 1,109, BuntDB 563 to 2,016): on this shared disk, the sync latency of the moment decides, and most of these cells are `≈`. " +
			"**mixed 90/10, 1 goroutine, 100k × 4 KiB** (lost to all four, to Pebble 0.31× in every round): alone after put-rand and batch-100, 4,323 ops/s (1,886 in the run); compaction of the segments those overwrites left dead took 73% of the process's samples (writing its output through the page cache 31 points, zeroing fresh memory 21, CRC32C 9), and its output goes to the disk the writer's `fdatasync` waits on (that it slows the syncs is likely, not measured); the foreground thread was mostly waiting. At 1M × 1 KiB the same row ran at 12.7k ops/s alone (6,213 in the run, Pebble 7,405; not profiled). " +
			"Before the run above (and after the quiet run of 16:20 UTC at `be3fd8d`, where one writer's random puts at 1M × 100 B were 0.89× Pebble in every round), a lone synced writer stopped handing each put to the syncer thread, the commit notifier and the poller goroutine, and leads its own sync ([rust-core.md](rust-core.md#one-synced-writer-leads-its-own-sync-2026-12-05)): 37.9 µs of CPU and 4.3 context switches per put instead of 77.5 µs and 9.6; in alternated runs of `-engines mantisdb,pebble -sync always -keys 1000000 -values 100 -rounds 3 -cap 3s`, random puts of one writer went from 5,559-6,006 to 7,253-7,559 per second (Pebble 5,594-6,480 in the same runs) and mixed 50/50 with one goroutine from 10,344-10,960 to 14,246-16,870 (Pebble 9,367-11,896). " +
			"What it would take: with one writer, a sync per commit is the durability asked for; what is left is compaction's share (its fresh buffers, see *Writes without fsync*, and writing it at a pace that leaves the disk to the foreground's syncs), and many more rounds per cell to rank the engines on this disk.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.threads == 1 },
	},
	{
		id:    "group-commit",
		title: "Many synced writers: group commit shares the sync, and then the cost is applying the puts and compaction beside them.",
		text: profiled +
			"Only one cell is lost, and it is `≈` (MantisDB ahead in 2 of 5 paired rounds): mixed 50/50 with 8 goroutines at 1M × 1 KiB, 5,442 ops/s against Pebble's 6,069. Alone, after the workloads before it, 7,942 ops/s. The Go threads take 80% of the samples: switching between goroutines' threads as writers sleep and wake around a shared sync (`finish_task_switch`) 13 points, the virtio disk notification of the syncs (`iowrite16`) 10, the skiplist searches of puts and gets 13, the value cache 5 (each put inserts its new 1 KiB value and evicts another: `Ghost::insert`, `make_room`, `insert`); the background thread 20%, nearly all of it the kernel zeroing fresh memory for whole-segment reads (see *Writes without fsync*). " +
			"What it would take: the costs in *Writes without fsync* and *Point gets* (the index, fresh memory, compaction's buffers, a read per get).",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.threads > 1 },
	},
}

const unexplained = "unexplained"

func explain(l loss) string {
	for _, e := range explanations {
		if e.match(l) {
			return e.id
		}
	}
	return unexplained
}

func explanationTitle(id string) string {
	for _, e := range explanations {
		if e.id == id {
			return e.title
		}
	}
	return "Not yet explained."
}

func explanationText(id string) string {
	for _, e := range explanations {
		if e.id == id {
			return e.text
		}
	}
	return "No reason is recorded in bench/peers/analysis.go for these cells; they need a profile."
}
