//go:build linux && amd64

package ptrace

import (
	"sync/atomic"
	"time"

	"snapshotter/platform"
)

// counts are what a Platform did on the host, for diagnostics
// (platform.Counted). Every field is accessed atomically.
type counts struct {
	// switches counts the times Switch ran the application: each is one
	// ptrace stop of a stub thread.
	switches atomic.Uint64
	// mmaps, munmaps, madvises and clones count the system calls stubs
	// executed for the sentry, by kind.
	mmaps, munmaps, madvises, clones atomic.Uint64
	// injections counts the stops spent on them (a batch of queued
	// mappings is one), injectedNanos the time, in nanoseconds.
	injections, injectedNanos atomic.Uint64
	// stubs counts stub processes started (fork and exec).
	stubs atomic.Uint64
	// setupStops counts the stops of stubs' set-up on the master thread
	// (spawnStub: its batch, the clone of its first stub thread).
	setupStops atomic.Uint64
	// deferredFaults counts the faults of stub threads that made
	// deferred mapping calls (addressSpace.deferred).
	deferredFaults atomic.Uint64
}

// countInjected counts one injected system call nr.
func (c *counts) countInjected(nr uint64) {
	switch nr {
	case sysMmap:
		c.mmaps.Add(1)
	case sysMunmap:
		c.munmaps.Add(1)
	case sysMadvise:
		c.madvises.Add(1)
	case sysClone:
		c.clones.Add(1)
	}
}

// injectedSince adds the time since start to injectedNanos.
func (c *counts) injectedSince(start time.Time) {
	c.injectedNanos.Add(uint64(time.Since(start)))
}

var _ platform.Counted = (*Platform)(nil)

// Counts implements platform.Counted.
func (p *Platform) Counts() []platform.Count {
	c := &p.counts
	return []platform.Count{
		{Name: "ptrace-stops", Value: c.switches.Load()},
		{Name: "injected-mmap", Value: c.mmaps.Load()},
		{Name: "injected-munmap", Value: c.munmaps.Load()},
		{Name: "injected-madvise", Value: c.madvises.Load()},
		{Name: "injected-clone", Value: c.clones.Load()},
		{Name: "injection-stops", Value: c.injections.Load()},
		{Name: "injected-us", Value: c.injectedNanos.Load() / 1000},
		{Name: "stub-processes", Value: c.stubs.Load()},
		{Name: "stub-setup-stops", Value: c.setupStops.Load()},
		{Name: "deferred-map-faults", Value: c.deferredFaults.Load()},
	}
}
