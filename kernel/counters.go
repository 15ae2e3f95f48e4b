package kernel

import (
	"sync/atomic"
	"time"

	"snapshotter/platform"
)

// kernelCounts count what a kernel's tasks did, for diagnostics (Counts,
// `snap run --timings`). Every field is accessed atomically.
type kernelCounts struct {
	// syscalls counts system calls handled, faults the memory faults that
	// reached the sentry (not those the host served: copy-on-write,
	// genuine faults).
	syscalls, faults atomic.Uint64
	// watch is what AfterSyscalls waits for, or nil.
	watch atomic.Pointer[syscallWatch]
}

// syscallWatch is a call AfterSyscalls arranged: fn, once the kernel has
// counted at system calls.
type syscallWatch struct {
	at uint64
	fn func()
}

// AfterSyscalls calls fn once the sandbox's tasks have made n more system
// calls than now, on a goroutine of its own, and replaces any call
// arranged before that has not run. It only counts (an atomic load per
// system call): a pool member taken uses it to start work that would
// compete with its program's first moments once the program has read its
// request and written something back (its second system call).
func (k *Kernel) AfterSyscalls(n uint64, fn func()) {
	k.counts.watch.Store(&syscallWatch{at: k.counts.syscalls.Load() + n, fn: fn})
}

// countSyscall counts one system call and runs the AfterSyscalls call it
// completes, if any.
func (c *kernelCounts) countSyscall() {
	n := c.syscalls.Add(1)
	if w := c.watch.Load(); w != nil && n >= w.at && c.watch.CompareAndSwap(w, nil) {
		// S/R-SAFE: fn is the caller's (runner), not kernel state; it
		// runs beside the tasks as any other goroutine of the caller.
		go w.fn()
	}
}

// fileCacheCounts count the file cache's reads of host files. Every field
// is accessed atomically.
type fileCacheCounts struct {
	// fills counts runs of pages read from a host file into the cache
	// (misses), bytes their bytes.
	fills, bytes atomic.Uint64
	// nanos is the time spent reading them, in nanoseconds.
	nanos atomic.Uint64
}

// Count is one named count of Counts.
type Count = platform.Count

// Counts returns what the kernel and its platform did since New (or
// Restore), in a fixed order: system calls handled, faults that reached the
// sentry, file cache misses with the bytes they read and the time it took,
// the bytes copied inside the memory file (fork, copy-on-write, data
// segments) and how many of them over kept freed pages
// (memory_file_reuse.go), then the platform's own counts if it keeps any.
func (k *Kernel) Counts() []Count {
	out := []Count{
		{Name: "syscalls", Value: k.counts.syscalls.Load()},
		{Name: "sentry-faults", Value: k.counts.faults.Load()},
		{Name: "file-cache-misses", Value: k.mf.files.counts.fills.Load()},
		{Name: "file-cache-bytes-read", Value: k.mf.files.counts.bytes.Load()},
		{Name: "file-cache-read-us", Value: k.mf.files.counts.nanos.Load() / 1000},
		{Name: "copied-bytes", Value: k.mf.copies.bytes.Load()},
		{Name: "copied-over-kept-bytes", Value: k.mf.copies.over.Load()},
	}
	if c, ok := k.platform.(platform.Counted); ok {
		out = append(out, c.Counts()...)
	}
	return out
}

// The steps of New, Start and the program's run that Config.Timings
// records.
const (
	// StepNewKernel is New: the memory file and platform (waiting for
	// Prewarm's if it made them), the root, the vDSO and the clock.
	StepNewKernel = "new-kernel"
	// StepWaitPlatform, within StepNewKernel, waits for the memory file
	// and platform that Prewarm is making.
	StepWaitPlatform = "wait-platform"
	// StepLoad is Start: finding the program, its address space (a stub
	// thread), loading the ELF and its interpreter, the initial stack.
	StepLoad = "load"
	// StepRun: from the program's first instruction until its init
	// process began to exit (dynamic loading and the program itself).
	StepRun = "run"
	// StepExit: from then until every task goroutine is gone (the
	// address spaces and their stubs released).
	StepExit = "exit"
)

// startRunTiming records, with timings on, that the init process starts
// running now.
func (k *Kernel) startRunTiming() {
	if k.timings == nil {
		return
	}
	k.stopMu.Lock()
	k.runStart = time.Now()
	k.stopMu.Unlock()
}

// initExitTiming records, with timings on, that the init process began to
// exit now: the end of StepRun and the start of StepExit.
func (k *Kernel) initExitTiming() {
	if k.timings == nil {
		return
	}
	now := time.Now()
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	if !k.runStart.IsZero() && k.exitStart.IsZero() {
		k.timings.Add(StepRun, k.runStart, now)
		k.exitStart = now
	}
}

// exitedTimingLocked records StepExit, with timings on, as every task goroutine
// is gone.
//
// Preconditions: k.stopMu is held.
func (k *Kernel) exitedTimingLocked() {
	if k.timings != nil && !k.exitStart.IsZero() {
		k.timings.Since(StepExit, k.exitStart)
	}
}
