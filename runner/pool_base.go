package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/storage"
)

// A pool's members restore from one decompressed copy of their image's
// memory, the base (kernel.MemoryBase): each member's memory starts as a
// copy-on-write view of it, so that what no member writes is held once
// for the whole pool. It is a file of the pool's directory,
//
//	<state-dir>/.pools/<name>/base-<manifest SHA-256>
//
// the memory file's bytes at their offsets with zero pages as holes,
// named after the image it was made from so that a pool whose image name
// now resolves to another image makes a new one. The first member
// restored from an image makes it (members are restored one at a time,
// under the pool's lock); the others open it. A member keeps its
// descriptor and its mappings of it, so it keeps working when the pool
// (and the file's name) is removed. The base is trusted as the state
// directory is: with --verify, the member that made it checked the
// image first.

// basePrefix begins the names of base files in a pool's directory.
const basePrefix = "base-"

// The chunks of the base that the first member taken from a pool wrote in
// its first moments (until ReplenishDelay after the take) are recorded
// beside the base, as writes-<manifest SHA-256> (JSON, chunk indices in
// the order they were first written); every member taken later copies
// the first of them before its program runs and the others once it has
// answered (its second system call), ahead of it, rather than one write
// fault each while it answers.
// Waiting members still share them.
const writesPrefix = "writes-"

// takeCopyFirst is how many of the recorded chunks, the first written
// (3 MiB), a take copies before the program runs: the cold-start CPython
// writes 46-50 chunks before its answer, and copied here, in one batch of
// mappings made by the program's first run, they cost the program no
// stop of its own, where each one it faults on costs a stop and a
// mapping change. It copies the others from the program's second system
// call on (see Unpark), in the order they were written
// (Kernel.CopyBaseAhead): copied beside the program's first moments, they
// took the CPU from it and stopped its stub to map them.
const takeCopyFirst = 48

// maxWrites bounds the chunks a writes file may name.
const maxWrites = 1 << 20

// writesPath returns the writes file of the image whose manifest is m.
func writesPath(dir string, m *storage.Manifest) string {
	return filepath.Join(dir, writesPrefix+m.Digest())
}

// copyWrites copies the first takeCopyFirst chunks recorded at path now
// (Kernel.CopyBase) and returns the others, for Kernel.CopyBaseAhead;
// record is true if none were recorded yet, so that this take records
// them.
//
// Preconditions: s.parked.mu is held.
func (s *KernelSandbox) copyWrites(path string) (ahead []int, record bool) {
	if path == "" {
		return nil, false
	}
	idx, err := s.parked.recordedLocked()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true
	}
	if err == nil {
		n := min(len(idx), takeCopyFirst)
		if err = s.k.CopyBase(idx[:n]); err == nil {
			ahead = idx[n:]
		}
	}
	if err != nil && s.opts.Diag != nil {
		s.opts.Diag.Printf("take: chunks written first (%s) not copied: %v", path, err)
	}
	return ahead, false
}

// Prime implements Primer: a member over a base copies the first
// takeCopyFirst chunks recorded in its pool's writes file now, maps them
// and prefaults them into its stubs (Kernel.PrimeBase), so that its take
// copies and maps nothing before the program runs (copyWrites finds them
// copied). It holds them from then on, as a member with a copy of its own
// would (3 MiB of the cold-start image's 27), so a pool primes one member
// at a time. It reports false if the pool has recorded no writes yet, or
// the member does not restore over a base.
func (s *KernelSandbox) Prime() (bool, error) {
	p, err := s.lockWaiting()
	if err != nil {
		return false, err
	}
	defer p.mu.Unlock()
	if p.writes == "" {
		return false, nil
	}
	idx, err := p.recordedLocked()
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.k.PrimeBase(idx[:min(len(idx), takeCopyFirst)]); err != nil {
		return false, fmt.Errorf("copy the chunks written first: %w", err)
	}
	p.trimmed = true // mapped from its own copies now
	return true, nil
}

// Trim implements Primer: a member over a base restored before its pool
// recorded the chunks written first drops the base's pages of the first
// takeCopyFirst of them from its stubs (Kernel.UnpopulateBase), as one
// restored after maps them (MemoryBase.Unpopulated): its take copies them
// before its program runs, which never reads them from the base. Once
// done (or restored so), it does nothing.
func (s *KernelSandbox) Trim() error {
	p, err := s.lockWaiting()
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	if p.writes == "" || p.trimmed {
		return nil
	}
	idx, err := p.recordedLocked()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.k.UnpopulateBase(idx[:min(len(idx), takeCopyFirst)]); err != nil {
		return fmt.Errorf("drop the base's pages of the chunks written first: %w", err)
	}
	p.trimmed = true
	return nil
}

// recordedLocked returns the chunks recorded in p.writes, read once and
// kept (writesIdx) so that a take does not read them again on its path;
// an error wrapping fs.ErrNotExist if none are recorded yet.
//
// Preconditions: p.mu is held; p.writes is not empty.
func (p *parking) recordedLocked() ([]int, error) {
	if p.writesIdx == nil {
		idx, err := readWrites(p.writes)
		if err != nil {
			return nil, err
		}
		p.writesIdx = idx
	}
	return p.writesIdx, nil
}

// readWrites reads the chunks recorded at path (an error wrapping
// fs.ErrNotExist if none are).
func readWrites(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx []int
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(idx) > maxWrites {
		return nil, fmt.Errorf("%s: %d chunks, more than %d", path, len(idx), maxWrites)
	}
	return idx, nil
}

// recordWrites writes the chunks of the base this sandbox has copied so far
// to path, unless another member did first.
func (s *KernelSandbox) recordWrites(path string) {
	idx := s.k.BaseCopied()
	if len(idx) == 0 {
		return
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".writes-*.tmp")
	if err != nil {
		return // the pool was removed
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Link(tmp.Name(), path) // the first one stays
	}
	os.Remove(tmp.Name())
	if werr != nil && !errors.Is(werr, fs.ErrExist) && s.opts.Diag != nil {
		s.opts.Diag.Printf("take: chunks written first not recorded: %v", werr)
	}
}

// recordWritesLater has the chunks of the base this sandbox copies in its
// first ReplenishDelay recorded at path (recordWrites), or those until it
// ended if that is sooner (Release).
func (s *KernelSandbox) recordWritesLater(path string) {
	s.record = func() { s.recordWrites(path) }
	s.recordTimer = time.AfterFunc(replenishDelay(), s.recordOnce)
}

// recordOnce runs s.record the first time it is called, if set.
func (s *KernelSandbox) recordOnce() {
	s.recorded.Do(func() {
		if s.record != nil {
			s.record()
		}
	})
}

// PoolBaseDir returns the directory that holds the base files of pool
// name (KernelOptions.BaseDir).
func (s StateDir) PoolBaseDir(name string) string { return s.pool(name).dir }

// openBase returns the base of img in dir, read-only, making it first if
// it is not there.
func openBase(ctx context.Context, img *storage.Image, dir string) (*os.File, error) {
	m := img.Manifest()
	digest := m.Digest()
	if digest == "" || strings.ContainsAny(digest, "/.") || m.MemorySize == 0 {
		return nil, fmt.Errorf("image has no memory or no manifest digest to name its base by")
	}
	path := filepath.Join(dir, basePrefix+digest)
	f, err := openBaseFile(path, m.MemorySize)
	if !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if err := makeBase(ctx, img, dir, path); err != nil {
		return nil, err
	}
	return openBaseFile(path, m.MemorySize)
}

// openBaseFile opens the base at path read-only, without following a link
// or blocking on a FIFO planted there, and checks that it is a regular
// file of at least size bytes.
func openBaseFile(path string, size uint64) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	st, err := f.Stat()
	if err == nil && (!st.Mode().IsRegular() || uint64(st.Size()) < size) {
		err = fmt.Errorf("not a regular file of at least %d bytes", size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("base %s: %w", path, err)
	}
	return f, nil
}

// makeBase writes img's memory into a new file of dir and renames it to
// path, then removes the bases of other images (members that use them
// keep them open).
func makeBase(ctx context.Context, img *storage.Image, dir, path string) error {
	f, err := newFill(dir, path, img.Manifest().MemorySize)
	if err != nil {
		return fmt.Errorf("make base: %w", err)
	}
	if err = img.ReadMemoryRuns(ctx, f.write); err != nil {
		f.abort()
	} else {
		err = f.commit()
	}
	if err != nil {
		return fmt.Errorf("make base %s: %w", path, err)
	}
	for _, prefix := range []string{basePrefix, writesPrefix} {
		old, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
		for _, o := range old {
			if filepath.Base(o)[len(prefix):] != filepath.Base(path)[len(basePrefix):] {
				os.Remove(o)
			}
		}
	}
	return nil
}
