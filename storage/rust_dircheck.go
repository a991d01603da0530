//go:build rust

package storage

/*
#include "mantisdb.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"unsafe"
)

// CheckDataDir verifies the Rust engine data directory dir without
// writing to it (no lock file, no truncation, no hint written) and
// gathers its statistics. Damage is in the report; the error is for a
// check that could not run (dir missing or unreadable).
func CheckDataDir(dir string) (DirReport, error) {
	if dir == "" {
		return DirReport{}, fmt.Errorf("%w: the data directory is empty", ErrInvalidArgument)
	}
	p, n := ptr(dir)
	var buf C.MantisBuf
	var cerr *C.MantisError
	st := C.mantis_check_dir(p, n, &buf, &cerr)
	runtime.KeepAlive(dir)
	if st != C.MANTIS_OK {
		return DirReport{}, statusError(st, cerr)
	}
	// SAFETY: on MANTIS_OK the library filled buf with len readable bytes
	// (data NULL when len is 0); they are copied before buf is freed.
	report := C.GoBytes(unsafe.Pointer(buf.data), C.int(buf.len))
	C.mantis_buf_free(&buf)
	var rep DirReport
	if err := json.Unmarshal(report, &rep); err != nil {
		return DirReport{}, fmt.Errorf("reading the check report: %w", err)
	}
	return rep, nil
}

// RepairDataDir opens the data directory dir with the core's repair
// option, which keeps every readable record and drops the rest of a
// damaged segment (and rewrites hint files it cannot trust), then closes
// it. Run CheckDataDir before it to know what is dropped.
func RepairDataDir(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no database at %s: %w", dir, err)
	}
	opts := C.mantis_options_default()
	opts.repair = true
	opts.background_compaction = false
	p, n := ptr(dir)
	var db *C.MantisDb
	var cerr *C.MantisError
	st := C.mantis_open(p, n, &opts, &db, &cerr)
	runtime.KeepAlive(dir)
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	st = C.mantis_close(db, &cerr)
	C.mantis_db_free(db)
	if st != C.MANTIS_OK {
		return statusError(st, cerr)
	}
	return nil
}
