package runner

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"snapshotter/storage"
)

// saveLive is a --leave-running save that pauses only to find the memory
// ranges, start a memory snapshot (which write-protects the sandbox's
// memory: kernel.StartMemorySnapshot) and encode the kernel state; the
// memory is then read from the snapshot while the program runs, each page
// as it was at the pause (a page written before the writer read it was
// copied aside first). The dirty tracking the snapshot starts stays on,
// so that a later save knows what changed.
//
// Preconditions: the kernel is paused by the caller, who is told through
// resumed when the pause is over (it must not unpause again).
func (s *KernelSandbox) saveLive(ctx context.Context, w *storage.Writer, setTotal func(uint64), resumed func()) (SaveStats, error) {
	start := time.Now()
	alloc, _, err := s.k.SavedMemory(minHole)
	if err != nil {
		return SaveStats{}, err
	}
	rangesAt := time.Since(start)
	snap, _, err := s.k.StartMemorySnapshot(alloc)
	if err != nil {
		return SaveStats{}, err
	}
	snapAt := time.Since(start)
	defer snap.Release()
	var state bytes.Buffer
	if err := s.k.SaveState(ctx, &state); err != nil {
		return SaveStats{}, err
	}
	resumed()
	paused := time.Since(start)

	ranges := make([]storage.Range, len(alloc))
	var total uint64
	for i, r := range alloc {
		ranges[i] = storage.Range{Off: r[0], Len: r[1]}
		total += r[1]
	}
	setTotal(total)
	stateDone := make(chan error, 1)
	// S/R-SAFE: writes only bytes already encoded; waited for below.
	go func() {
		_, err := w.StateWriter().Write(state.Bytes())
		stateDone <- err
	}()
	err = w.WriteMemoryFrom(snap, ranges)
	if serr := <-stateDone; err == nil {
		err = serr
	}
	if err != nil {
		return SaveStats{}, err
	}
	log.Printf("sandbox %s: live save: paused %v (memory ranges found %v, snapshot started %v, %d bytes of state), memory read while running in %v, %d bytes copied aside before a write",
		s.opts.ID, paused, rangesAt, snapAt, state.Len(), time.Since(start)-paused, snap.CopiedAside())
	return SaveStats{Paused: paused, MemoryBytes: total}, nil
}

// errLive wraps a live-save failure for the save's error line.
func errLive(id string, err error) error { return fmt.Errorf("save %s: %w", id, err) }
