package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// settle writes back every dirty page of the filesystem holding dir
// (syncfs), so the writes of one workload, or of the untimed load, are not
// paid for by whichever engine happens to run next.
func settle(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Syncfs(int(f.Fd()))
}
