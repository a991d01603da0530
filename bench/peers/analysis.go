package main

import "slices"

// explanation is the likely reason a class of cells is lost to a peer,
// written from the measurements and profiles of a run (perf record on this
// binary with -engines mantisdb and one workload; strace -c for syscalls).
// The doc groups the losing cells of a run under the first explanation
// that matches each.
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

// explanations are tried in order; a losing cell none matches is listed
// as unexplained, so a new loss cannot hide.
var explanations = []explanation{
	{
		id:    "scan",
		title: "Scans pay atomic operations per key in the index walk, and copies per value read from disk.",
		text: "Runs before 2026-12-04 (the tables of 2026-11-24 among them) kept only values of at most 64 bytes in the index, so a scan of 100 B values looked each value up in the value cache, a sharded hash map (`ValueCache::get`, 26% of a scan's CPU), and Go copied each batch out with `C.GoBytes`. Since then values up to 128 bytes live in the index version (the default `inline_threshold`), the walk lends versions instead of cloning them, the iterator fetches a chunk's values that are not in the index together (cache hits, then one read per run of nearby records in segment and offset order), and Go reads the batch in place: measured as CPU time per scan in `docs/performance/engines.md`, the 100 B scan costs 2.35 times less, and still 4.5 times bbolt's and 6 times BuntDB's. " +
			"What is left at 100 B (profile in engines.md): four atomic read-modify-writes per key in the index walk (the per-key version lock taken and released, the skiplist node's reference count, the inline value's `Arc` count) and their cache misses, 40% of a scan, plus 16% stepping the skiplist's reference-counted range. At 4 KiB, where the store is several times the 64 MiB cache, each value read is copied from the page cache into a fresh zeroed buffer, checksummed, copied into its own allocation and again into the batch, and inserted into a full cache that evicts another. " +
			"bbolt walks leaf pages of its memory map and hands out views into them; BuntDB walks its in-heap B-tree and hands out the strings it holds; Pebble decodes sstable blocks from its block cache. None takes a lock per item, and bbolt and BuntDB copy nothing. " +
			"Directions: walk the skiplist under one epoch guard per chunk without reference counts, read version lists without a lock; read runs into a buffer the iterator keeps and lend values from it, keep scan reads out of the cache, map sealed segments.",
		match: func(l loss) bool { return l.w.kind == scanPrefix },
	},
	{
		id:    "get-large",
		title: "A 4 KiB get crosses into Rust twice and copies the value; BuntDB copies nothing.",
		text: "`storage.RustEngine.Get` reads into a 512-byte stack buffer first. A larger value answers `BUFFER_TOO_SMALL` with its size, and a second call (a second index search and cache probe) copies it into a fresh allocation: every 4 KiB get is two cgo calls, two lookups and a 4 KiB copy. " +
			"BuntDB's `Get` returns the very string it stores; bbolt finds the value in its memory map after a short B+tree descent (the adapter copies it out, as bbolt's slices die with the transaction). The mixed rows at 4 KiB lose on their gets: MantisDB's 4 KiB puts are faster than BuntDB's and bbolt's (the random put row). " +
			"Direction: one call that returns any value, e.g. a library-allocated buffer handed to Go and freed once copied, or a size kept beside the key in the index so Go allocates once.",
		match: func(l loss) bool {
			return l.set.Sync == "never" && l.set.ValueSize > mantisGetStackBuf && (readHeavy(l.w) || l.w.kind == mixed)
		},
	},
	{
		id:    "get-small",
		title: "A point get chases pointers down a skiplist and crosses cgo; B-trees touch a few nodes.",
		text: "A MantisDB get is a crossbeam skiplist search, about log2(n) levels of pointer chasing where each hop is a likely cache miss once the index outgrows the CPU caches, then a value-cache probe (100 B values are above the 64 B inline threshold) and a cgo call. In a profile of MantisDB alone doing get-cold at 100k × 100 B, the skiplist search (`try_pin_loop`, `memcmp`) took 51% of the CPU and the cache probe 17%; Go then allocates the returned string. " +
			"bbolt binary-searches three or four B+tree pages of its memory map and BuntDB three or four nodes of a B-tree in the Go heap, without a language crossing. " +
			"Directions: a cache-friendlier ordered index (B+tree or adaptive radix tree), or a hash index beside the ordered one for point gets; inline small values so a hit needs no second lookup.",
		match: func(l loss) bool { return l.set.Sync == "never" && readHeavy(l.w) },
	},
	{
		id:    "group-commit",
		title: "Many synced writers: every MantisDB writer waits as an OS thread blocked in Rust; Pebble's wait as goroutines.",
		text: "Both engines share one fdatasync among the writers that queue behind it. In MantisDB each waiting writer is a goroutine inside a cgo call, parked on a Rust condition variable, so it holds an OS thread; every sync wakes each waiter's thread, which must then get a CPU and re-acquire a Go P before it can continue. Pebble parks waiting goroutines in the Go scheduler and one goroutine syncs. " +
			"Measured alone on this machine (mixed 50/50, 64 goroutines, 100k keys × 100 B, `perf stat`): MantisDB made 1.5 context switches per operation and used 18 µs of CPU per operation; Pebble 0.15 and 7 µs. On two cores that CPU is throughput. Pebble's cheaper syncs (next reason) also shorten each group. " +
			"Directions: wait for durability on the Go side (a Go channel or futex per group, the cgo call returning at once with a sequence to wait for), or hand the sync to one thread and wake a group with one call.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.threads > 1 },
	},
	{
		id:    "sync-append",
		title: "Synced writes: MantisDB appends to a growing file; Pebble, Badger and bbolt write into space that already exists.",
		text: "Under `always`, a commit is acknowledged after fdatasync. MantisDB appends every record to the end of its segment, so each fdatasync must also commit the file's new size (and, at 4 KiB, a newly allocated block) through the ext4 journal. Pebble recycles old WAL files (`ReuseForWrite`), Badger writes its WAL into preallocated memory-mapped files, and bbolt overwrites pages of a file it grows in large steps: their syncs flush data only. " +
			"On this machine, writing and fdatasyncing 4 KiB at a time was 1.5–3× faster into preallocated space than at the end of a growing file, and 100 B at a time 0.8–1.5× (three paired trials each, same disk, same hour). With one writer nothing hides this cost; with 8 or 64 writers group commit shares it. " +
			"These cells are also the noisiest: the disk is shared, and its sync latency drifted by up to 4× between the rounds of a single cell (see `rounds` in `bench/peers/results.json`). " +
			"Direction: preallocate segment files and overwrite zeroed space (or recycle retired segments), syncing the size only when a segment is sealed.",
		match: func(l loss) bool {
			return l.set.Sync == "always" && slices.Contains([]string{"pebble", "badger", "bbolt"}, l.peer)
		},
	},
	{
		id:    "sync-buntdb",
		title: "Synced writes against BuntDB: both append and sync per commit; the difference is the disk's drift and MantisDB's heavier commit.",
		text: "BuntDB writes each commit to the end of its append-only file and fsyncs it, as MantisDB does, so the file-growth cost above applies to both. What is left is, likely, MantisDB's longer commit path (not profiled separately): the record is framed and checksummed, inserted into the skiplist index and the value cache, and made visible only once durable. BuntDB sets a key in a B-tree and writes a line. " +
			"With one writer every microsecond of that path adds to each sync; the drift of the shared disk between rounds (up to 4× within a cell) is of the same order as these ratios, so a single run does not rank the two reliably. With 8 or 64 writers BuntDB's exclusive lock serializes every sync and MantisDB's group commit wins every cell.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.peer == "buntdb" },
	},
	{
		id:    "write-cpu",
		title: "Writes without fsync: MantisDB does more work per put than an LSM memtable, and its compaction competes for the two cores.",
		text: "Every MantisDB put inserts a node into the skiplist index, which holds every key for the life of the database, and copies the value into the write-through value cache; and each sealed 64 MiB segment gets a hint file, built in the background from the whole segment read into memory. In a profile of MantisDB alone doing put-seq at 1M × 100 B, the kernel zero-filling fresh memory took 26% of the CPU (`clear_page_erms`; much of it for the hint writer's buffers: `write_pending_hints`, rkyv `AlignedVec` growth), CRC32C 9%, the value cache 15% (`ValueCache::insert`, `make_room`, `Ghost::insert`) and the skiplist insert about 7%. Pebble appends into a 4 MiB arena memtable that it flushes and reuses. " +
			"With 4 KiB values overwritten at random, MantisDB's compaction rewrites segments in the background: it reads each 64 MiB segment whole into a fresh buffer (page faults and zeroing, 17% of a batch-100 profile) and re-checksums every record (CRC32C, 11%), CPU that on two cores is taken from the foreground writer. " +
			"Directions: stream compaction and hint building through a reused buffer (or write hints as segments fill); fill the cache on reads only; allocate index nodes from an arena.",
		match: func(l loss) bool { return l.set.Sync == "never" },
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
