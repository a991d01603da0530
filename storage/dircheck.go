package storage

// DirReport is what an offline check of a Rust engine data directory
// found (CheckDataDir): damage with file and offset, notes on what an
// open would change, and the directory's statistics. It is the core's
// check::DirReport; the field docs there say exactly what each counts.
type DirReport struct {
	Dir string `json:"dir"`
	// InUse is true when a process (a server) has the directory open.
	InUse bool `json:"in_use"`
	// Keys are live: newest version a put, not expired.
	Keys uint64 `json:"keys"`
	// ExpiredKeys have expired and wait for compaction.
	ExpiredKeys uint64 `json:"expired_keys"`
	// DeletedKeys have a delete as their newest version still in the log.
	DeletedKeys    uint64 `json:"deleted_keys"`
	KeysWithExpiry uint64 `json:"keys_with_expiry"`
	Records        uint64 `json:"records"`
	Ops            uint64 `json:"ops"`
	// LiveBytes and DeadBytes are log bytes of live versions and of
	// everything else (overwritten, deleted, expired).
	LiveBytes    uint64 `json:"live_bytes"`
	DeadBytes    uint64 `json:"dead_bytes"`
	SegmentBytes uint64 `json:"segment_bytes"`
	// MinSeq is the lowest sequence number of any record; LastSeq the one
	// the next commit follows.
	MinSeq       uint64 `json:"min_seq"`
	LastSeq      uint64 `json:"last_seq"`
	HintsValid   uint64 `json:"hints_valid"`
	HintsMissing uint64 `json:"hints_missing"`
	HintsInvalid uint64 `json:"hints_invalid"`
	// IndexEstimateBytes estimates the memory the index takes once open.
	IndexEstimateBytes uint64          `json:"index_estimate_bytes"`
	Damage             []Damage        `json:"damage"`
	Notes              []string        `json:"notes"`
	Segments           []SegmentReport `json:"segments,omitempty"`
}

// Damage is one finding that keeps a directory from opening as it is (or,
// for a hint file, from being trusted): the file, the byte offset of the
// first bad record or field, and the check that failed.
type Damage struct {
	File   string `json:"file"`
	Offset uint64 `json:"offset"`
	Reason string `json:"reason"`
}

// SegmentReport is what the check found in one segment file.
type SegmentReport struct {
	ID         uint32 `json:"id"`
	File       string `json:"file"`
	Len        uint64 `json:"len"`
	Sealed     bool   `json:"sealed"`
	Active     bool   `json:"active"`
	BaseSeq    uint64 `json:"base_seq"`
	PrevWriter uint32 `json:"prev_writer"`
	Records    uint64 `json:"records"`
	Ops        uint64 `json:"ops"`
	FirstSeq   uint64 `json:"first_seq"`
	LastSeq    uint64 `json:"last_seq"`
	LiveBytes  uint64 `json:"live_bytes"`
	DeadBytes  uint64 `json:"dead_bytes"`
	// Hint is not_yet (the active segment), missing, valid or invalid.
	Hint string `json:"hint"`
	// TornTail is the cut open will make of an incomplete last write.
	TornTail *TornTail `json:"torn_tail,omitempty"`
}

// TornTail is an incomplete write at the end of the active segment.
type TornTail struct {
	Offset uint64 `json:"offset"`
	Bytes  uint64 `json:"bytes"`
}
