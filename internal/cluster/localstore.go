package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mantisdb/mantisdb/storage"
)

// localStore opens the node's local engine and replaces it with a staged
// one when a snapshot is installed. A durable engine lives in dir; a
// snapshot is loaded into dir+".staging" and swapped in by renames:
//
//	dir -> dir.old, dir.staging -> dir, reopen dir, remove dir.old
//
// A crash between the renames leaves dir.old and no dir: open puts dir.old
// back (its applied index is below the snapshot's, so raft installs the
// snapshot again). The memory engine has no directory; its staged copy
// simply replaces it.
type localStore struct {
	name string
	cfg  storage.Config
	dir  string
}

func (s *localStore) durable() bool { return s.name != "memory" }

func (s *localStore) staging() string { return s.dir + ".staging" }
func (s *localStore) old() string     { return s.dir + ".old" }

// open recovers from an interrupted swap and opens the engine in dir.
func (s *localStore) open() (storage.StorageEngine, error) {
	if s.durable() {
		if _, err := os.Stat(s.dir); errors.Is(err, fs.ErrNotExist) {
			if _, err := os.Stat(s.old()); err == nil {
				if err := os.Rename(s.old(), s.dir); err != nil {
					return nil, fmt.Errorf("cluster: put back the engine directory of an interrupted snapshot install: %w", err)
				}
			}
		}
		if err := os.RemoveAll(s.staging()); err != nil {
			return nil, fmt.Errorf("cluster: remove a stale staged snapshot: %w", err)
		}
		if err := os.RemoveAll(s.old()); err != nil {
			return nil, fmt.Errorf("cluster: remove the engine directory a snapshot replaced: %w", err)
		}
	}
	// Checkpoints of snapshots and unpacked archives a stop interrupted.
	stale, _ := filepath.Glob(s.dir + ".checkpoint-*")
	for _, d := range append(stale, s.unpackDir()) {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("cluster: remove %s left by an interrupted snapshot: %w", d, err)
		}
	}
	return s.openAt(s.dir)
}

func (s *localStore) openAt(dir string) (storage.StorageEngine, error) {
	return s.openAs(s.name, dir)
}

// openAs opens the engine named name in dir, with this store's settings.
func (s *localStore) openAs(name, dir string) (storage.StorageEngine, error) {
	cfg := s.cfg
	cfg.DataDir = dir
	e, err := storage.NewStorageEngine(name, cfg)
	if err != nil {
		return nil, err
	}
	if err := e.Init(dir); err != nil {
		return nil, fmt.Errorf("cluster: open the %s engine in %s: %w", name, dir, err)
	}
	return e, nil
}

// checkpointDir makes an empty directory beside dir for a snapshot's
// checkpoint: on the same filesystem, so the checkpoint can hard-link the
// engine's files.
func (s *localStore) checkpointDir() (string, error) {
	d, err := os.MkdirTemp(filepath.Dir(s.dir), filepath.Base(s.dir)+".checkpoint-")
	if err != nil {
		return "", fmt.Errorf("cluster: snapshot: make a checkpoint directory: %w", err)
	}
	return d, nil
}

// unpackDir is where a snapshot archive of another engine is unpacked to
// be read.
func (s *localStore) unpackDir() string { return s.dir + ".unpack" }

// stage returns an empty engine to load a snapshot into.
func (s *localStore) stage() (storage.StorageEngine, error) {
	if s.durable() {
		if err := os.RemoveAll(s.staging()); err != nil {
			return nil, fmt.Errorf("cluster: clear the snapshot staging directory: %w", err)
		}
	}
	return s.openAt(s.staging())
}

// discard drops a staged engine that will not be used.
func (s *localStore) discard(staged storage.StorageEngine) {
	_ = staged.Close()
	if s.durable() {
		_ = os.RemoveAll(s.staging())
	}
}

// swap replaces current with the loaded staged engine and returns the
// engine to use from now on. On an error after current was closed, it
// reopens whatever dir holds, so the node keeps an open engine if it can.
func (s *localStore) swap(current, staged storage.StorageEngine) (storage.StorageEngine, error) {
	if !s.durable() {
		_ = current.Close()
		return staged, nil
	}
	if err := staged.Sync(context.Background()); err != nil {
		s.discard(staged)
		return current, fmt.Errorf("cluster: sync the staged snapshot: %w", err)
	}
	if err := staged.Close(); err != nil {
		s.discard(staged)
		return current, fmt.Errorf("cluster: close the staged snapshot: %w", err)
	}
	if err := current.Close(); err != nil {
		return nil, fmt.Errorf("cluster: close the engine for a snapshot install: %w", err)
	}
	if err := os.Rename(s.dir, s.old()); err != nil {
		e, rerr := s.openAt(s.dir)
		return e, errors.Join(fmt.Errorf("cluster: move the old engine directory aside: %w", err), rerr)
	}
	if err := os.Rename(s.staging(), s.dir); err != nil {
		_ = os.Rename(s.old(), s.dir)
		e, rerr := s.openAt(s.dir)
		return e, errors.Join(fmt.Errorf("cluster: move the staged snapshot in place: %w", err), rerr)
	}
	if err := syncDir(filepath.Dir(s.dir)); err != nil {
		return nil, err
	}
	e, err := s.openAt(s.dir)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(s.old()); err != nil {
		return e, fmt.Errorf("cluster: remove the replaced engine directory: %w", err)
	}
	return e, nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cluster: open %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cluster: sync directory %s: %w", dir, err)
	}
	return nil
}
