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
const profiled = "Profiled on 2026-12-06 on the same 2-vCPU AMD EPYC guest, with nothing else running, on code that differs from the run's only in the prefetch of a batch's keys (see *Writes without fsync*), which the profiled workloads do not use, and in a bound on the bytes of one walk of a scan (8 MiB) that 1,000 values of 4 KiB do not reach; the profile of the 4 KiB batches is of the run's code. MantisDB alone (the commands are in bench/peers/README.md): one round per workload, the workloads before the profiled one run first as in a full run (`-profile-only`), so they leave the store in the same state. "

// profiledEarlier names the run the profiles of the explanations that no
// cell of the latest runs needed were taken in (2026-12-05, an Intel Xeon
// guest shared with other jobs).
const profiledEarlier = "Profiled on 2026-12-05 between 06:00 and 06:07 UTC on the Intel Xeon guest this page was first run on, right after that morning's run of this page, at the commit it measured, on the machine shared then with other jobs (load average 10 to 17); *the run* in this paragraph is that morning's run, not the one whose tables are above. MantisDB alone (the commands are in bench/peers/README.md): one 8-second round per workload, the workloads before the profiled one run first as in the run (`-profile-only`), so they leave the store in the same state. "

// explanations are tried in order; a losing cell none matches is listed
// as unexplained, so a new loss cannot hide.
var explanations = []explanation{
	{
		id:    "scan",
		title: "Prefix scans: at 100 B a cache miss per key in the skiplist walk; at 1 KiB and 4 KiB every value read whole for its CRC32C, where bbolt and BuntDB lend what they hold unread.",
		text: profiled +
			"**1M × 100 B** (values inline in the index), after put-rand: 62 to 72 ns a pair, against bbolt's 49 in the same process. Of the samples, crossbeam's skiplist steps (`next_node`, `Range::next`) are 27%, the walk ahead of the visit that takes each key's read lock and copies a view of its visible version (`Index::range_views`) 29%, about half of it the lock's two locked instructions, copying each key and inline value into the chunk 11%, the search from the skiplist's top that starts each walk 4.5%, the Go side 7%. Without the lock (an unsound experiment, measured only) the scan ran 1.09 to 1.13x as fast; looking 16 keys ahead instead of 8 changed nothing. The walk is bound by following each node's pointer to the next, a memory miss per key, where bbolt reads leaf pages in which 30 neighbours lie together ([rust-core.md](rust-core.md#100-b-puts-and-scans-against-pebble-and-bbolt-measured-not-changed-2026-12-06)). " +
			"**1 KiB and 4 KiB**: values of closed segments are lent from the segment's memory map and the Go iterator reads views of them (no copy), but each value's key and CRC32C are checked on every read, so a scan reads every value's bytes: 4 MiB for 1,000 values of 4 KiB, which the checksum (carry-less multiplication, 64 bytes a step) reads at the speed of memory. bbolt and BuntDB hand out what they hold without reading it. " +
			"Done on the way here ([rust-core.md](rust-core.md)): no reference count per key, no value-cache probe, reads into kept buffers, values lent from the map, views across the C API, one walk ahead with one lock per key, CRC32C by carry-less multiplication, and (2026-12-06) one walk and one crossing for up to 1,024 pairs when the scan says how many it reads, 1.03x at 100 B, 1.09x at 1 KiB, 1.06x at 4 KiB ([rust-core.md](rust-core.md#scans-that-say-how-many-pairs-they-read-one-walk-for-up-to-1024-2026-12-06)). " +
			"What it would take: at 100 B, an ordered index whose neighbours share cache lines (a B+tree, or nodes in an arena in key order) instead of a node per key; at 1 KiB and 4 KiB, checking a segment's records once per map instead of on every read. That would find bit rot appearing after the check only at the next open, and is not done: MantisDB reports corruption where it is read.",
		match: func(l loss) bool { return l.w.kind == scanPrefix },
	},
	{
		id:    "get",
		title: "Point gets of 4 KiB values against BuntDB: each get checks its value and copies it into a new Go allocation, where BuntDB returns the string it holds.",
		text: profiled +
			"**get-hot, 100k × 4 KiB** (after put-seq): 485k gets/s alone, BuntDB 2.1M in the same process. The library's call is 54% of the samples: the hash probe of the key 12.6% (`KeyMap::get`) and its hash 3.4%, the key compared against the record where it lies in the map 8.3% (the first touch of the record: a cache and TLB miss), CRC32C over the record 9%, the copy into the Go buffer 1%. Go's allocation of each 4 KiB value and its garbage collection take about 35% (`mallocgc`, `scanObject`, `findObject`, sweeping, and `madvise` as the heap gives pages back and takes them again). BuntDB's get returns the string its B-tree holds: no read, no check, no copy, no allocation. The Store contract of this harness gives the caller a value it may keep (as `storage.StorageEngine.Get` does), so one Go allocation per get stays; bbolt's, Pebble's and Badger's adapters copy too, and those cells are ahead. The mixed 90/10 row with one goroutine at 4 KiB is these gets nine times in ten. " +
			"Done on the way here ([rust-core.md](rust-core.md#point-gets-lent-from-the-map-2026-12-05)): a get of a closed segment checks the record where it lies in the memory map and copies it once into the caller's buffer, one cgo call per get of any size, no value-cache churn. " +
			"What it would take: a get that does not read the value, which is what the check per read forbids, or a caller that reads into a buffer it reuses (`storage.ValueAppender`, which the Redis GET uses), which this harness's contract does not model.",
		match: func(l loss) bool { return l.set.Sync == "never" && readHeavy(l.w) },
	},
	{
		id:    "write-cpu",
		title: "Writes without fsync: at 100 B against Pebble each new key is a node of a skiplist searched from its top and an entry of a hash map, where Pebble appends to an arena that stays in the CPU's caches; the 4 KiB batches against BuntDB are decided by the other engines' background work.",
		text: profiled +
			"**put-seq, 1M × 100 B**: 1.24M puts/s alone, Pebble 1.46M in the same process (the run before workers). The Go side is 5% of the samples; the rest is the library's commit: the index insert 44% (the hash map's insert 16%, of which growing its tables 12.6%; its probe for the new key 7%; the skiplist search 6%; fresh pages for new nodes about 10%), encoding the frame with its two checksums and appending it 20%, the hint builder on the other CPU 14%. Tables sized for every key from the start (an experiment: the count is not known in advance) gave 1.02 to 1.05x, and the `crc32c` crate's checksums are no faster than `crc-fast`'s at these sizes ([rust-core.md](rust-core.md#100-b-puts-and-scans-against-pebble-and-bbolt-measured-not-changed-2026-12-06)). " +
			"**Batches of 100**: a profile of 1M × 100 B had 47% of its samples in the hash map's probe of each key, three cache misses one after the other; a batch's apply now loads the index entries of the keys eight places ahead, 1.11x at 100 B and 1.22x at 1 KiB in alternated runs, the probe down to 21% of the samples ([rust-core.md](rust-core.md#batches-and-pipelined-gets-the-next-keys-index-entries-loaded-ahead-2026-12-06)). " +
			"Done on the way here: hint files and compaction through reused buffers, writes that skip the value cache, superseded versions dropped once visible. " +
			"**In the run on this page** (2026-12-06, 04:44 UTC, the first with each engine in a worker process of its own): sequential puts at 1M × 100 B ran 1.29M puts/s against Pebble's 1.43M (rounds 0.91M to 1.39M against 1.26M to 1.65M), where the previous run, all engines in one process, had 0.62M against 1.08M. In one process, Badger's compactions msync the tables they write through memory maps, and cleaning those pages interrupts every thread of the process to flush its TLB (20% of a profile of that run's 1 KiB batch cell went to sending and serving those interrupts): MantisDB beside Badger alone, 1M × 1 KiB, two alternated pairs of runs, made 2,208 and 2,334 batches/s in one process against 4,814 and 5,591 in workers, and 120k and 108k random puts/s against 198k and 192k, Badger's own figures unchanged. With workers the 1 KiB batches against Badger are ahead (3,529 against 1,572 batches/s) and so are the 100 B random puts against Pebble. " +
			"The batches of 100 at 100k × 4 KiB against BuntDB are `≈`: MantisDB's rounds ran 680 to 1,397 batches/s, BuntDB's 522 to 1,589 (in one process the run before had 838 against 632). Beside BuntDB only (`-engines mantisdb,buntdb -keys 100000 -values 4096 -sync never -workloads put-seq,put-rand,batch-100 -rounds 5 -cap 6s`, just after this run) MantisDB ran 5,647 batches/s (rounds 2,212 to 5,780) against BuntDB's 1,732 (865 to 3,251): in the full table, the rounds are decided by the compactions and flushes of the other engines on the same two CPUs and disk. A profile of MantisDB alone on this cell has 42% of the samples on its compaction thread (copying the segments it rewrites out of the page cache 9 points, CRC32C over them 10, the index lookups that decide which records are live 7) and 58% on the writer (applying the batch to the index 7, CRC32C 5, Go's copy of the values into the batch 6, the kernel's page-cache writes most of the rest). " +
			"What it would take: for the 100 B puts, an ordered index that takes a key in key order without a search from its top and without an allocation per key (an arena, as Pebble's memtable), the same change the 100 B scans need; for the 4 KiB batches, nothing the cell can show until the other engines' background work leaves its rounds alone (more rounds, or a cell per engine pair).",
		match: func(l loss) bool { return l.set.Sync == "never" },
	},
	{
		id:    "sync-batch",
		title: "A synced batch of 100 puts: one sync serves 100 puts, so applying them decides the cell, on a disk whose sync latency drifts; most of these cells are `≈`.",
		text: profiledEarlier +
			"A batch is applied as in *Writes without fsync* (100 skiplist searches of an index holding every key, fresh memory for versions and values), then waits for one `fdatasync`. The batch is encoded in Go into a recycled buffer (`batchBufs` in `storage/rust.go`). All four cells are `≈` (MantisDB ahead in 1 to 3 of 5 paired rounds); the largest loss, 1M × 100 B against Pebble (0.66×, ahead in 1 of 5), has MantisDB at 300 batches/s and Pebble at 451 during a table whose load average ran from 10.7 to 18.0. It was not profiled at `always` after this run; the CPU side is the *Writes without fsync* profile of the same workload. " +
			"What it would take: what *Writes without fsync* lists, and more rounds per cell to separate the disk's drift from the engines.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.kind == batchPut },
	},
	{
		id:    "sync-single",
		title: "One synced writer: every engine makes one write and one sync per commit, so these cells are decided by the shared disk's sync latency at the moment, and at 4 KiB by compaction competing for the disk and the CPU.",
		text: profiledEarlier +
			"Counted with `perf stat` over put-seq at 1M × 100 B, `always`, alone: 42,688 puts, 42,721 `pwrite64` and 42,694 `fdatasync` (one of each per put; segments are preallocated and zeroed ahead, or reused, so the sync flushes data only), 48 µs of CPU per put, 5,332 puts/s. In the run the same cell made 609 puts/s, Pebble 826 and BuntDB 1,164, each engine's five rounds spread over 1.5 to 3.6 times (MantisDB 468 to 946, Pebble 724 to 1,109, BuntDB 563 to 2,016): on this shared disk, the sync latency of the moment decides, and most of these cells are `≈`. " +
			"**mixed 90/10, 1 goroutine, 100k × 4 KiB** (lost to all four, to Pebble 0.31× in every round): alone after put-rand and batch-100, 4,323 ops/s (1,886 in the run); compaction of the segments those overwrites left dead took 73% of the process's samples (writing its output through the page cache 31 points, zeroing fresh memory 21, CRC32C 9), and its output goes to the disk the writer's `fdatasync` waits on (that it slows the syncs is likely, not measured); the foreground thread was mostly waiting. At 1M × 1 KiB the same row ran at 12.7k ops/s alone (6,213 in the run, Pebble 7,405; not profiled). " +
			"Before the run above (and after the quiet run of 16:20 UTC at `be3fd8d`, where one writer's random puts at 1M × 100 B were 0.89× Pebble in every round), a lone synced writer stopped handing each put to the syncer thread, the commit notifier and the poller goroutine, and leads its own sync ([rust-core.md](rust-core.md#one-synced-writer-leads-its-own-sync-2026-12-05)): 37.9 µs of CPU and 4.3 context switches per put instead of 77.5 µs and 9.6; in alternated runs of `-engines mantisdb,pebble -sync always -keys 1000000 -values 100 -rounds 3 -cap 3s`, random puts of one writer went from 5,559-6,006 to 7,253-7,559 per second (Pebble 5,594-6,480 in the same runs) and mixed 50/50 with one goroutine from 10,344-10,960 to 14,246-16,870 (Pebble 9,367-11,896). " +
			"What it would take: with one writer, a sync per commit is the durability asked for; what is left is compaction's share (its fresh buffers, see *Writes without fsync*, and writing it at a pace that leaves the disk to the foreground's syncs), and many more rounds per cell to rank the engines on this disk.",
		match: func(l loss) bool { return l.set.Sync == "always" && l.w.threads == 1 },
	},
	{
		id:    "group-commit",
		title: "Many synced writers: group commit shares the sync, and then the cost is applying the puts and compaction beside them.",
		text: profiledEarlier +
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
