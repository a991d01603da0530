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
const profiled = "Profiled on 2026-12-05 at the commit this page was measured on, on the same shared machine during the run (load average 10 to 28), MantisDB alone, one 8-second round per profile. "

// explanations are tried in order; a losing cell none matches is listed
// as unexplained, so a new loss cannot hide.
var explanations = []explanation{
	{
		id:    "scan",
		title: "Prefix scans: atomic operations per key in the index walk at 100 B; reads, copies and value-cache churn per value at 1 KiB and 4 KiB.",
		text: profiled +
			"**1M × 100 B** (values inline in the index): 63% of the samples are the scan itself and 36% the background hint builder (see *Writes without fsync*). Of the scan's own samples, `Index::range_from` takes 23%, and two thirds of those land on three atomic read-modify-writes per key (`perf annotate`: the version lock's `lock cmpxchg` and `lock xadd`, and a `lock incq` on the inline value's `Arc`, which `Iter::refill` clones into the chunk); the skiplist's reference-counted walk takes 24% more (`RefEntry::next` 13%, `RefRange::next` 7%, `Entry` drop 4%); Go's `rustIterator.Next` 9%, `Iter::next_with` 8%, key compares 6%. " +
			"**1M × 1 KiB** (1 GiB of values beside a 64 MiB value cache), profiled after put-rand and batch-100 had overwritten keys at random, as in the run (`-profile-only`): counted with `perf stat` over the scan's rounds, MantisDB used 3.3 ms of CPU and made 271 `pread64` calls per scan of 1,000 keys (the overwritten values of a prefix lie in many places, so few runs of records are contiguous); BuntDB, in the same sequence, 0.1 ms and no read. In perf, the value cache is a quarter of the scan, as every value read from a segment is inserted and evicts another (`make_room` 11%, `Ghost::insert` 7%, `insert` 4%, `get` 3%, removals 2%); the kernel zeroing newly touched pages 16% (no major faults: memory, not disk) beside mimalloc's page setup 3%; `Iter::refill` 9%; the copy out of the page cache 9%. Alone on the loaded machine, the scan ran at 399 scans/s right after the fill and at 150 after the overwrites. " +
			"**100k × 4 KiB**, profiled the same way after the overwrites: 7.3 ms of CPU and 683 `pread64` calls per scan of 1,000 keys, and compaction of the overwritten segments running beside it (48% of the process's samples). Of the scan's own samples, the reads out of the page cache are 29% (`_copy_to_iter`, `filemap_get_read_batch`, `xas_load`), `memmove` 8%, `Iter::refill` 6%, the value cache 11%, CRC32C 4%. " +
			"bbolt hands out views into leaf pages of its memory map, BuntDB the strings its B-tree holds, Pebble decodes blocks already in its block cache: none takes a lock or a reference count per item, none checksums per value, and bbolt and BuntDB copy nothing. " +
			"What it would take: walk the skiplist under one epoch guard per chunk with no per-node reference count, read a key's newest version without its lock, and lend inline values instead of cloning their `Arc` (the 100 B scan); keep scan reads out of the value cache, read into a buffer the iterator keeps (no fresh pages, no second copy), and check each record's CRC once per read rather than per value (1 KiB, 4 KiB); and have compaction rewrite overwritten data in key order, so that a prefix's values come back together; or map sealed segments and lend views, as bbolt does.",
		match: func(l loss) bool { return l.w.kind == scanPrefix },
	},
	{
		id:    "get",
		title: "Point gets without fsync: the skiplist search is most of a 100 B get; a 1 KiB or 4 KiB get also reads the value from the page cache and allocates it in Go.",
		text: profiled +
			"**100 B**, values inline in the index, one cgo call per get: in get-cold at 1M keys the skiplist search (`SkipList::search_bound`) takes 51% of the Go threads' samples and its key compares (`memcmp`) 13%; in get-hot 54% and 15% (the background hint builder took 43% of that profile's samples: see *Writes without fsync*). That is pointer chasing down about 20 levels of a 1M-key skiplist, a likely cache miss per hop; bbolt binary-searches three or four B+tree pages of its memory map and BuntDB three or four nodes of an in-heap B-tree, without a language crossing. " +
			"**1 KiB** (1M keys, get-cold, profiled right after the fill; a get makes one read whatever the overwrites did): search 29% and `memcmp` 6%, the `pread` of each value out of the page cache 19% (`_copy_to_iter`, `filemap_read`, `filemap_get_read_batch`, `xas_load`), the value cache 10% (`make_room` 5%, `get` 3%, `Ghost::insert` 2%) and Go's garbage collector scanning for the values it returned 3% or more. " +
			"**4 KiB** (100k keys): search 15%, the read out of the page cache 16%, the value cache 7%, Go's collector 7%. BuntDB returns the string it stores; bbolt a view into its map (the adapter copies it out). " +
			"What it would take: a hash index beside the ordered one for point gets, or an ordered index that touches fewer cache lines (a B+tree or an adaptive radix tree); for values above the inline threshold, a read path that does not go through a syscall per value (sealed segments mapped into memory) and a value cache that does not evict on every miss of a data set 16 times its size.",
		match: func(l loss) bool { return l.set.Sync == "never" && readHeavy(l.w) },
	},
	{
		id:    "write-cpu",
		title: "Writes without fsync: each put searches a skiplist of every key, and the background hint builder spends its time in the kernel zeroing fresh memory, on the same two cores.",
		text: profiled +
			"**put-rand, 1M × 100 B**: the Go threads take 55% of the samples, the background thread 43%. In the foreground the skiplist search of the insert (`search_bound`) is 22 points and CRC32C 5. The background thread was writing hint files for the segments the fill had just sealed: 35 of its 43 points are the kernel zero-filling new pages (`clear_page_erms`), and a call graph (`perf record -g`) puts 71% of those under `rkyv` `AlignedVec::do_reserve` and `resolve_aligned`: the hint's serialization buffer growing by reallocation into fresh transparent huge pages (`do_huge_pmd_anonymous_page`: each first touch zeroes 2 MiB). On the same code path (`write_pending_hints`) the whole segment is first read into a new buffer, and `entries_from_frames`, also in the profile, allocates a key and a value vector per entry. " +
			"**put-seq, 1M × 100 B**: the hint builder again 35% (26 points of page zeroing); in the foreground, page zeroing 11 (fresh memory, not attributed further), CRC32C 6, the skiplist insert and search about 11. " +
			"**batch-100, 100k × 4 KiB**: the background thread (compaction of overwritten segments) takes 46%: page zeroing 12, CRC32C 8, copying into and out of the page cache 12, `memset` 3; the foreground's largest item is the copy of the batch into the page cache (16). " +
			"**mixed 50/50 with 8 goroutines, 100k × 4 KiB** (lost to BuntDB at 1, 8 and 64 goroutines): compaction 31% (page zeroing 12, CRC32C 5, copies into and out of the page cache 7); in the foreground the copy of each put into the page cache 9, the skiplist search 8, the `pread` of each get out of the page cache 8, the value cache 5, CRC32C 4, Go's collector 2 or more. BuntDB keeps every value in its heap: its gets read no file, and no compaction runs during the cell. " +
			"Pebble appends to a 4 MiB arena memtable that stays in the CPU caches and is flushed and reused; BuntDB sets a key in an in-heap B-tree. On two shared cores the background thread's CPU is taken from the writer. " +
			"What it would take: build hints as segments fill, or stream them through a buffer kept between segments (no whole-segment read, no per-entry allocation, no growing serialization buffer); compact through a reused buffer and check each record once; an index whose insert touches fewer cache lines.",
		match: func(l loss) bool { return l.set.Sync == "never" },
	},
	{
		id:    "sync-batch",
		title: "A synced batch of 100 puts: one sync serves 100 puts, so the CPU of applying them decides the cell: 100 searches of a skiplist holding every key, beside the hint builder.",
		text: profiled +
			"batch-100 at 1M × 100 B, `always`: the Go threads take 74% of the samples and the background hint builder 26% (page zeroing 15, writing files through the page cache 6). In the Go CPU profile, `mantis_write_batch_begin` (the batch appended to the log and applied to the index) is 55% of the CPU, waiting for the sync (`mantis_commit_wait`) 10% and encoding the batch in Go (`encodeOps`) 4%; in perf, the skiplist search of the 100 inserts is 27 points and the insert itself 4. The round ran at 653 batches/s, and its Go profile holds 3.0 s of CPU, 0.57 ms per batch. At 1M × 1 KiB (968 batches/s alone, 7.0 s of CPU in the 8-second round, so CPU-bound): `mantis_write_batch_begin` 51% of the Go profile, the wait for the sync 15%, `mantis_prepare_log` 6%, `encodeOps` 4%; in perf, the skiplist search 22 points, the value cache taking each new value 9 (`insert`, `make_room`, `Ghost::insert`), Go's collector about 5, the background thread 24 (page zeroing 11, CRC32C 3). Pebble applies a batch to its 4 MiB arena memtable, which stays in the CPU caches. Rerun with only MantisDB, Pebble and BuntDB interleaved (5 rounds of up to 10 s, under `strace`), the cell came out even: MantisDB 578 batches/s, Pebble 573, BuntDB 275, with MantisDB's syncs no slower than Pebble's (see *One synced writer*); on the busier machine of the run, the CPU each batch needs counted for more. " +
			"What it would take: an index whose insert touches fewer cache lines (random keys over 1M give 100 independent searches, so sorting the batch saves little), writes that do not fill the value cache, and the background thread's zeroing gone (see *Writes without fsync*). " +
			"Since this run, `RustEngine.Write` encodes each batch into a recycled buffer (`batchBufs` in `storage/rust.go`) instead of a new one of the batch's size: alone in the engine (a store of 100 keys, `SyncNever`), a batch of 100 × 1 KiB took 134 µs with a fresh buffer and 106 KB allocated, and 81 µs with none (medians of five processes each, alternated, on the same loaded machine: `go test -tags rust -c -o /tmp/storage.test ./storage/ && for i in 1 2 3 4 5; do for v in fresh pooled; do /tmp/storage.test -test.run x -test.bench WriteEncoding/$v -test.benchtime 3000x; done; done`). In a store of 1M keys the index and the value cache weigh more, so these cells will gain less; they have not been rerun.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.kind == batchPut },
	},
	{
		id:    "sync-single",
		title: "One synced writer: every engine makes one write and one sync per commit, so these cells are decided by the shared disk's sync latency at the moment.",
		text: profiled +
			"Counted with `perf stat` over the measured rounds of put-rand at 1M × 100 B, `always` (not counted at 1 KiB or 4 KiB): MantisDB made one `pwrite64` and one `fdatasync` per put (1,952 of each for 1,952 puts; its segments are preallocated and zeroed ahead, so the sync flushes data only), Pebble one `write` and 0.9 `fdatasync` (6,585 and 6,552 for 7,312), BuntDB one `write` and one `fsync`. A Go CPU profile of MantisDB's 8-second round holds 0.55 s of CPU: the rest of the time the writer waited for its sync. " +
			"The same cell was rerun twice with only MantisDB, Pebble and BuntDB, interleaved as in the run (5 rounds of up to 10 s): first MantisDB 1,431 puts/s, Pebble 1,078, BuntDB 1,031; then 792, 1,094 and 883, with single rounds of one engine ranging from 243 to 1,699 puts/s. Every sync of the second rerun timed (`strace -ff -T`; its put-rand and batch-100 cells and the untimed load): MantisDB's `fdatasync` of its segment took 0.24 ms at the median and 0.94 ms on average, Pebble's of its WAL 0.23 and 1.16, BuntDB's `fsync` 0.33 and 1.76. So MantisDB's syncs are not slower; the disk's latency drifts by several times within a cell, and each engine's median round lands wherever its rounds fell. That is why most of these cells carry `≈` (their paired rounds disagree). " +
			"What it would take: with one writer, a sync per commit is the durability asked for, so what is left to cut is the time around each sync: the cgo crossing and the wake-up of the waiting goroutine (on this CPU-starved machine a writer that has been woken may wait for a core), and the hint builder competing for the CPU (see *Writes without fsync*). To rank the engines reliably on this shared disk, a cell needs many more rounds than five.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.threads == 1 },
	},
	{
		id:    "group-commit",
		title: "Many synced writers: group commit shares the sync, and then the skiplist, the copies into the page cache and the hint builder are the cost.",
		text: profiled +
			"mixed 50/50 with 64 goroutines at 1M × 100 B, `always`: the Go threads take 64% of the samples and the background hint builder 36% (page zeroing 20, writing files through the page cache 11). In the foreground: the skiplist search 17, context switches (`finish_task_switch`) 9, the virtio disk notification (`iowrite16`) 3, CRC32C 2. Writers wait for durability as goroutines (`mantis_commit_wait` is called by one goroutine per sync), so waiting no longer holds an OS thread per writer. " +
			"What it would take: the hint builder's and the index's costs (see *Writes without fsync* and *Point gets*); with them gone, the sync is shared as Pebble's is.",
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
