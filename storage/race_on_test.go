//go:build race

package storage

// raceEnabled is true in a -race build, where sync.Pool drops a share of
// the items put into it on purpose, so tests of allocation counts that rely
// on a pool skip that check.
const raceEnabled = true
