//go:build linux && amd64

package ptrace

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// addressSpace is one stub process. See the package doc.
type addressSpace struct {
	p *Platform

	// pid is the stub leader, traced by the master thread; leaderRegs are
	// its registers at the exec stop (a template for injection). Both are
	// immutable after creation.
	pid        int
	leaderRegs platform.Registers
	// table is the sentry's mapping of the stub's table page; immutable,
	// shared with an heir (Renew), unmapped by the release that kills the
	// stub.
	table stubTable

	// opMu serializes MapFile, Unmap and Release, so that the mapping
	// table changes in the order the stub's mappings do. It is held across
	// injected system calls (a populating mmap can take a long time), while
	// mu is held only briefly, so Switch on other threads never waits for
	// a mapping change. Lock order: opMu, then mu.
	opMu sync.Mutex

	mu       sync.Mutex
	released bool // protected by mu
	// threads maps a sentry OS thread id to the stub thread it traces in
	// this address space. Protected by mu.
	threads map[int]*stubThread
	// maps are the current mappings, sorted by start, non-overlapping.
	// Protected by mu; written also holding opMu.
	maps []mapping
	// pre is the stub thread cloned with the leader, until the first
	// newThreadLocked takes it (then zero). Protected by mu.
	pre preThread

	// ran is set when Switch first runs application code in the address
	// space. Until then nothing can observe its mappings, so MapFile and
	// Unmap only queue their system calls in pending, and the first
	// Switch runs them all in one stop (injectBatch): a fork's child maps
	// every vma of its parent, an exec every segment and the stack, a
	// restore every vma, and each would otherwise cost a round trip to the
	// stub. Accessed atomically; written holding opMu.
	ran atomic.Bool
	// pending are the queued system calls, in order. Protected by opMu.
	pending []stubCall
	// batching is set between BeginBatch and EndBatch: MapFile and Unmap
	// queue as before the first Switch. Protected by opMu.
	batching bool
	// deferred is set while pending holds calls deferred after the first
	// Switch (mayDeferLocked): mappings of ranges the stub maps nothing
	// in, which the address space's only stub thread, traced by
	// deferTracer, need not have until it touches them. A touch there
	// faults in the stub, and Switch then makes them and resumes the
	// application (run), as does its second Switch since if they map
	// something readable (deferReadable); any other use of the stub
	// makes them first: a Switch of another stub thread, an injected
	// call, HostPID, a write watch. ld.so maps a library in 4-6 calls
	// before it touches it, and each would otherwise cost a round trip
	// to the stub. Accessed atomically; written holding opMu.
	deferred atomic.Bool
	// deferTracer is the OS thread whose stub thread alone runs while
	// calls are deferred; deferRanges are the ranges the deferred calls
	// change, where the stub maps nothing until they are made. Protected
	// by opMu.
	deferTracer int
	deferRanges []span
	// deferReadable is set while a deferred call maps something readable,
	// and deferRuns counts the Switches of deferTracer's stub thread since
	// the last call was deferred: a second one (the application went on
	// to another kind of system call) makes the calls before it runs, as
	// readable memory is read soon, which would otherwise cost a fault
	// as well. ld.so maps ld.so.cache, closes it and reads it. Protected
	// by opMu.
	deferReadable bool
	deferRuns     int
	// faultPage is the page of the last memory fault Switch reported, plus
	// one, until the next Switch (else 0): the kernel maps it now and the
	// application touches it at once, so its mapping is never deferred.
	// Accessed atomically.
	faultPage atomic.Uint64
	// refillAtStart is set when the address space took the platform's
	// spare and the first Switch is to start the next one
	// (Platform.refillAfterStart). Protected by opMu.
	refillAtStart bool
	// baseOpen is set once the stub has opened the base file, as its
	// descriptor baseInStub (base.go). Protected by opMu.
	baseOpen   bool
	baseInStub uint64

	// watch is the write watching of the address space (watch.go).
	watch watchState
	// heir is the address space Renew made to take this one's stub over
	// when this one is released, until then. Protected by p.renewMu.
	heir *addressSpace
	// renewing is the address space whose stub this one (an heir) takes
	// over when that one is released, until then: meanwhile its calls
	// only queue (and the stub is not this address space's to use).
	// Protected by opMu; written also holding p.renewMu.
	renewing *addressSpace
}

var _ platform.Batcher = (*addressSpace)(nil)

// BeginBatch implements platform.Batcher.
func (a *addressSpace) BeginBatch() {
	a.opMu.Lock()
	a.batching = true
	a.opMu.Unlock()
}

// EndBatch implements platform.Batcher.
func (a *addressSpace) EndBatch() error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.batching = false
	if !a.ran.Load() || a.isReleased() {
		return nil // the first Switch makes them
	}
	return a.flushLocked()
}

// queuing reports whether MapFile and Unmap queue their calls.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) queuing() bool { return a.batching || !a.ran.Load() }

var (
	_ platform.AddressSpace = (*addressSpace)(nil)
	_ platform.Protector    = (*addressSpace)(nil)
)

// mapping is one range of the address space and its access.
type mapping struct {
	start, end uint64
	at         platform.AccessType
}

// stubThread is a stub thread process, traced by one sentry OS thread.
type stubThread struct {
	tid    int
	tracer int
	// pidfd refers to the stub thread process, so that killing it can never
	// hit an unrelated process that reused its pid after it was reaped.
	pidfd int

	// mu is held by Switch while it uses the stub thread. Only the tracer
	// OS thread uses it, so mu is never contended; it orders the accesses
	// of successive goroutines that ran on that thread.
	mu sync.Mutex
	// regs and fp are what the stub thread holds after its last stop (or
	// what Switch last wrote), valid if regsValid and fpValid (an injected
	// system call changes the registers but not the XSAVE area). Protected
	// by mu.
	regsValid, fpValid bool
	regs               platform.Registers
	fp                 []byte
	// live is the context whose application thread's current floating
	// point state only this stub thread holds (Switch left it here; see
	// platform.State.FPInContext), or nil. Protected by mu.
	live *context
	// cpu is what bindLocked last gave this stub thread and its tracer: a
	// CPU number or cpuAny. Protected by mu.
	cpu int
}

func checkRange(addr, length uint64) error {
	if addr%pageSize != 0 || length%pageSize != 0 || length == 0 {
		return fmt.Errorf("[%#x, +%#x) not page aligned or empty: %w", addr, length, ErrBadRange)
	}
	end := addr + length
	if end < addr || addr < minUserAddress || end > maxUserAddress {
		return fmt.Errorf("[%#x, %#x) outside [%#x, %#x): %w", addr, end, uint64(minUserAddress), uint64(maxUserAddress), ErrBadRange)
	}
	return nil
}

// MapFile implements platform.AddressSpace.
func (a *addressSpace) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	if err := checkRange(addr, length); err != nil {
		return fmt.Errorf("ptrace: map file: %w", err)
	}
	if offset%pageSize != 0 || offset+length < offset {
		return fmt.Errorf("ptrace: map file: offset %#x: %w", offset, ErrBadRange)
	}
	prot := hostProt(at)
	flags := uint64(unix.MAP_SHARED | unix.MAP_FIXED)
	// MAP_POPULATE populates a shared mapping with read faults, so every
	// first write still faults (about twice the cost of populating for
	// writing, measured). Writable ranges are populated for writing with
	// MADV_POPULATE_WRITE after the mmap instead.
	populateWrite := precommit && at.Write
	if precommit && !populateWrite {
		flags |= unix.MAP_POPULATE
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.isReleased() {
		return fmt.Errorf("ptrace: map file: %w", ErrReleased)
	}
	if a.queuing() {
		if !precommit || a.renewing != nil {
			// (An heir's calls wait for the stub: populated on first
			// touch instead.)
			a.queueMmapLocked(stubCall{sysMmap, [6]uint64{addr, length, prot, flags &^ unix.MAP_POPULATE, stubFDInStub, offset}})
			a.mu.Lock()
			a.unwatchLocked(addr, addr+length)
			a.setMappingLocked(addr, addr+length, &at)
			a.mu.Unlock()
			return a.flushIfFullLocked()
		}
		// Populated now, as documented: what was queued goes first.
		if err := a.flushLocked(); err != nil {
			return err
		}
	} else if !precommit && !at.Write && a.mayDeferLocked(addr, addr+length) {
		// (Writable mappings are written at once as a rule: a stack,
		// a heap, a library's bss or TLS. Deferred, each would cost a
		// fault as well as the call.)
		a.deferLocked(stubCall{sysMmap, [6]uint64{addr, length, prot, flags, stubFDInStub, offset}})
		a.mu.Lock()
		a.unwatchLocked(addr, addr+length)
		a.setMappingLocked(addr, addr+length, &at)
		a.mu.Unlock()
		return nil
	}
	got, err := a.syscall(sysMmap, [6]uint64{addr, length, prot, flags, stubFDInStub, offset})
	if err == nil && got != addr {
		err = fmt.Errorf("mmap returned %#x, want %#x", got, addr)
	}
	if err == nil && populateWrite {
		_, err = a.syscall(sysMadvise, [6]uint64{addr, length, unix.MADV_POPULATE_WRITE})
		if _, failed := err.(unix.Errno); failed {
			// The call itself failed (a kernel before 5.14, a range past
			// the end of the file): precommit is best effort, as with
			// MAP_POPULATE, and pages arrive on first touch.
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("ptrace: map [%#x, +%#x) at offset %#x %v in stub %d: %w", addr, length, offset, at, a.pid, err)
	}
	a.mu.Lock()
	a.unwatchLocked(addr, addr+length)
	a.setMappingLocked(addr, addr+length, &at)
	a.mu.Unlock()
	return nil
}

// Unmap implements platform.AddressSpace.
func (a *addressSpace) Unmap(addr, length uint64) error {
	if err := checkRange(addr, length); err != nil {
		return fmt.Errorf("ptrace: unmap: %w", err)
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.isReleased() {
		return fmt.Errorf("ptrace: unmap: %w", ErrReleased)
	}
	if a.queuing() {
		a.pending = append(a.pending, stubCall{sysMunmap, [6]uint64{addr, length}})
		a.mu.Lock()
		a.unwatchLocked(addr, addr+length)
		a.setMappingLocked(addr, addr+length, nil)
		a.mu.Unlock()
		return a.flushIfFullLocked()
	}
	if a.mayDeferLocked(addr, addr+length) {
		a.deferLocked(stubCall{sysMunmap, [6]uint64{addr, length}})
		a.mu.Lock()
		a.unwatchLocked(addr, addr+length)
		a.setMappingLocked(addr, addr+length, nil)
		a.mu.Unlock()
		return nil
	}
	_, err := a.syscall(sysMunmap, [6]uint64{addr, length})
	if err != nil {
		return fmt.Errorf("ptrace: unmap [%#x, +%#x) in stub %d: %w", addr, length, a.pid, err)
	}
	a.mu.Lock()
	a.unwatchLocked(addr, addr+length)
	a.setMappingLocked(addr, addr+length, nil)
	a.mu.Unlock()
	return nil
}

// Protect implements platform.Protector with mprotect in the stub: the
// pages already mapped stay mapped (with the new access), so write-
// protecting memory for dirty tracking costs no refault of reads.
func (a *addressSpace) Protect(addr, length uint64, at platform.AccessType) error {
	if err := checkRange(addr, length); err != nil {
		return fmt.Errorf("ptrace: protect: %w", err)
	}
	prot := hostProt(at)
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.isReleased() {
		return fmt.Errorf("ptrace: protect: %w", ErrReleased)
	}
	if a.queuing() {
		// After the queued mappings, in order.
		a.pending = append(a.pending, stubCall{sysMprotect, [6]uint64{addr, length, prot}})
	} else if a.mayDeferLocked(addr, addr+length) {
		a.deferLocked(stubCall{sysMprotect, [6]uint64{addr, length, prot}})
	} else if _, err := a.syscall(sysMprotect, [6]uint64{addr, length, prot}); err != nil {
		return fmt.Errorf("ptrace: protect [%#x, +%#x) %v in stub %d: %w", addr, length, at, a.pid, err)
	}
	a.mu.Lock()
	a.setMappingLocked(addr, addr+length, &at)
	a.mu.Unlock()
	return nil
}

// hostProt returns the mmap/mprotect protection bits of at.
func hostProt(at platform.AccessType) uint64 {
	prot := uint64(unix.PROT_NONE)
	if at.Read {
		prot |= unix.PROT_READ
	}
	if at.Write {
		prot |= unix.PROT_WRITE
	}
	if at.Execute {
		prot |= unix.PROT_EXEC
	}
	return prot
}

// syscall executes system call nr in the stub (see onStub).
//
// Preconditions: a.opMu is held.
func (a *addressSpace) syscall(nr uint64, args [6]uint64) (uint64, error) {
	if a.deferred.Load() {
		// The deferred calls go first; a mapping change goes with them,
		// in the same stop.
		if nr == sysMunmap || nr == sysMprotect || (nr == sysMmap && args[3]&unix.MAP_FIXED != 0) {
			a.pending = append(a.pending, stubCall{nr, args})
			return args[0], a.flushLocked()
		}
		if err := a.flushLocked(); err != nil {
			return 0, err
		}
	}
	a.p.counts.countInjected(nr)
	defer a.p.counts.injectedSince(time.Now())
	var r uint64
	err := a.onStub(func(pid int) error {
		var err error
		r, err = inject(pid, &a.leaderRegs, stubSyscallEntry, nr, args, 0)
		return err
	})
	return r, err
}

// onStub calls inject, which injects into the stopped stub process pid,
// on the stub thread that the calling OS thread traces, which is created
// if there is none yet: the OS thread that maps memory is almost always
// one that runs (or is about to run) the application, and injecting from
// it avoids two hand-offs to the master per call, which are the expensive
// part, especially on a loaded host. If that fails the master injects into
// the stub leader.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) onStub(inject func(pid int) error) error {
	a.p.counts.injections.Add(1)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := a.threadFor(unix.Gettid())
	if errors.Is(err, ErrReleased) {
		return err
	}
	// TryLock cannot fail on the tracer thread (Switch, the only other
	// holder, runs on this thread and is not running now); it guards
	// against misuse.
	if err == nil && t.mu.TryLock() {
		err := inject(t.tid)
		t.regsValid = false
		t.mu.Unlock()
		if !errors.Is(err, unix.ESRCH) {
			return err
		}
		// The stub thread is gone (its tracer exited and this thread
		// reused its id, or it was killed): forget it and use the leader.
		a.dropThread(t)
	}
	return a.p.master.call(func() error { return inject(a.pid) })
}

// leaderSyscall executes system call nr in the stub leader, through the
// master.
func (a *addressSpace) leaderSyscall(nr uint64, args [6]uint64) (uint64, error) {
	var r uint64
	err := a.p.master.call(func() error {
		var err error
		r, err = inject(a.pid, &a.leaderRegs, stubSyscallEntry, nr, args, 0)
		return err
	})
	return r, err
}

// queueMmapLocked queues the mmap of the memory file c, or extends the last
// queued call with it if that maps the memory file just before c, in the
// address space and in the file, with the same protection and flags: a
// fork's child maps its parent's vmas in address order, and those that
// the fork copied lie side by side in the memory file too.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) queueMmapLocked(c stubCall) {
	if n := len(a.pending); n > 0 {
		last := &a.pending[n-1]
		if last.nr == sysMmap && last.args[4] == stubFDInStub && last.args[0]+last.args[1] == c.args[0] &&
			last.args[5]+last.args[1] == c.args[5] && last.args[2] == c.args[2] && last.args[3] == c.args[3] {
			last.args[1] += c.args[1]
			return
		}
	}
	a.pending = append(a.pending, c)
}

// flushIfFullLocked runs the queued system calls once they fill a batch.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) flushIfFullLocked() error {
	if len(a.pending) < batchMax-1 || a.renewing != nil {
		return nil
	}
	return a.flushLocked()
}

// flushLocked runs the queued system calls in the stub, a batch at a time,
// and empties the queue. A failure ends the flush with an error, the rest
// of the queue dropped.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) flushLocked() error {
	return a.flushWithLocked(a.onStub)
}

// flushOnLocked is flushLocked on the stub thread t, whose tracer calls it
// holding t.mu (onStub would not find t free).
//
// Preconditions: a.opMu and t.mu are held; the caller is t's tracer.
func (a *addressSpace) flushOnLocked(t *stubThread) error {
	return a.flushWithLocked(func(inject func(pid int) error) error {
		a.p.counts.injections.Add(1)
		t.regsValid = false
		return inject(t.tid)
	})
}

// flushWithLocked runs the queued system calls with onStub (or what stands
// for it), as flushLocked documents.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) flushWithLocked(onStub func(inject func(pid int) error) error) error {
	defer a.p.counts.injectedSince(time.Now())
	defer a.undeferLocked()
	for len(a.pending) > 0 {
		calls := a.pending[:min(len(a.pending), batchMax)]
		failed, callErr := -1, error(nil)
		err := onStub(func(pid int) error {
			var err error
			failed, err = injectBatch(pid, &a.leaderRegs, calls, a.table)
			if failed >= 0 {
				callErr, err = err, nil
			}
			return err
		})
		if err != nil {
			a.pending = nil
			return fmt.Errorf("ptrace: %d queued mappings in stub %d: %w", len(calls), a.pid, err)
		}
		done := len(calls)
		if failed >= 0 {
			done = failed + 1
		}
		for _, c := range calls[:done] {
			a.p.counts.countInjected(c.nr)
		}
		if failed >= 0 {
			c := calls[failed]
			a.pending = nil
			return fmt.Errorf("ptrace: queued system call %d at %#x, +%#x in stub %d: %w", c.nr, c.args[0], c.args[1], a.pid, callErr)
		}
		a.pending = a.pending[done:]
	}
	a.pending = nil
	return nil
}

// mayDeferLocked reports whether a change of the mappings of [start, end)
// may wait in pending (see deferred): the calling OS thread traces the
// address space's only stub thread (so no stub thread runs now, and no
// other runs before the change is made), and the stub maps nothing in
// [start, end) (so a touch there before then faults).
//
// Preconditions: a.opMu is held; a.queuing() is false.
func (a *addressSpace) mayDeferLocked(start, end uint64) bool {
	if !a.p.deferMappings || a.renewing != nil || len(a.pending) >= batchMax-1 {
		return false
	}
	if f := a.faultPage.Load(); f != 0 && f-1 >= start && f-1 < end {
		return false
	}
	runtime.LockOSThread()
	tid := unix.Gettid()
	runtime.UnlockOSThread()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released || a.pre.tid != 0 || len(a.threads) != 1 || a.threads[tid] == nil {
		return false
	}
	if a.deferred.Load() && a.deferTracer != tid {
		return false
	}
	i := sort.Search(len(a.maps), func(k int) bool { return a.maps[k].end > start })
	for ; i < len(a.maps) && a.maps[i].start < end; i++ {
		if !spansCover(a.deferRanges, max(a.maps[i].start, start), min(a.maps[i].end, end)) {
			return false // mapped in the stub now
		}
	}
	a.deferTracer = tid
	return true
}

// deferLocked queues c, which mayDeferLocked allowed.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) deferLocked(c stubCall) {
	if c.nr == sysMmap {
		a.queueMmapLocked(c)
	} else {
		a.pending = append(a.pending, c)
	}
	a.deferRanges = addSpan(a.deferRanges, span{c.args[0], c.args[0] + c.args[1]})
	a.deferRuns = 0
	if c.nr == sysMmap && c.args[2]&unix.PROT_READ != 0 {
		a.deferReadable = true
	}
	a.deferred.Store(true)
}

// undeferLocked forgets the deferral once pending is empty.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) undeferLocked() {
	if len(a.pending) == 0 && a.deferred.Load() {
		a.deferred.Store(false)
		a.deferRanges = a.deferRanges[:0]
		a.deferReadable, a.deferRuns = false, 0
	}
}

// flushDeferred makes the deferred calls on the stub thread t before t
// runs the application, unless t's tracer deferred them and this is the
// first Switch since, or they map nothing readable (then a fault in t
// does, see run, or the next injection); or before t runs at all if
// always. It reports whether it made them.
//
// Preconditions: t.mu is held; the caller is t's tracer.
func (a *addressSpace) flushDeferred(t *stubThread, always bool) (bool, error) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if !a.deferred.Load() {
		return false, nil
	}
	if !always && a.deferTracer == t.tracer {
		if !a.deferReadable || a.deferRuns == 0 {
			a.deferRuns++
			return false, nil
		}
	}
	return true, a.flushOnLocked(t)
}

// spansCover reports whether [start, end) lies within the union of the
// sorted, disjoint spans.
func spansCover(spans []span, start, end uint64) bool {
	for _, s := range spans {
		if s.start > start {
			return false
		}
		if s.end > start {
			start = s.end
		}
		if start >= end {
			return true
		}
	}
	return start >= end
}

// addSpan adds n to the sorted, disjoint spans, merging where they touch.
func addSpan(spans []span, n span) []span {
	out := spans[:0:0]
	for _, s := range spans {
		switch {
		case s.end < n.start:
			out = append(out, s)
		case s.start > n.end:
			if n.end > n.start {
				out = append(out, n)
				n = span{}
			}
			out = append(out, s)
		default:
			n = span{min(s.start, n.start), max(s.end, n.end)}
		}
	}
	if n.end > n.start {
		out = append(out, n)
	}
	return out
}

// startRunning runs the queued system calls before Switch first runs
// application code, and from then on MapFile and Unmap take effect at once.
func (a *addressSpace) startRunning() error {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.ran.Load() {
		return nil
	}
	if a.isReleased() {
		return ErrReleased
	}
	if a.renewing != nil {
		return ErrRenewing
	}
	a.ran.Store(true)
	err := a.flushLocked()
	a.p.refillAfterStart(a)
	return err
}

// HostPID returns the host process ID of the stub leader: the kernel reads
// through it with process_vm_readv to map, in bulk, pages that already hold
// data (after a restore) into the stub's page tables. The pid is
// immutable; mappings still queued are made first, so that the process
// maps everything MapFile was given (if that fails, the reads fail too,
// and the pages are faulted in on first touch).
func (a *addressSpace) HostPID() int {
	if !a.ran.Load() || a.deferred.Load() {
		a.opMu.Lock()
		if !a.isReleased() && a.renewing == nil {
			_ = a.flushLocked()
		}
		a.opMu.Unlock()
	}
	return a.pid
}

func (a *addressSpace) isReleased() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.released
}

// setMappingLocked records that [start, end) now has access *at, or is
// unmapped if at is nil. The mappings that [start, end) overlaps are
// replaced in place (dirty tracking changes the access of small windows
// of large mappings, one write fault at a time).
//
// Preconditions: a.opMu and a.mu are held.
func (a *addressSpace) setMappingLocked(start, end uint64, at *platform.AccessType) {
	i := sort.Search(len(a.maps), func(k int) bool { return a.maps[k].end > start })
	j := sort.Search(len(a.maps), func(k int) bool { return a.maps[k].start >= end })
	var repl [3]mapping
	n := 0
	if i < j && a.maps[i].start < start {
		repl[n] = mapping{a.maps[i].start, start, a.maps[i].at}
		n++
	}
	if at != nil {
		repl[n] = mapping{start, end, *at}
		n++
	}
	if i < j && a.maps[j-1].end > end {
		repl[n] = mapping{end, a.maps[j-1].end, a.maps[j-1].at}
		n++
	}
	a.maps = slices.Replace(a.maps, i, j, repl[:n]...)
}

// accessAt returns the recorded access of the page holding addr.
func (a *addressSpace) accessAt(addr uint64) (platform.AccessType, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.maps), func(i int) bool { return a.maps[i].end > addr })
	if i < len(a.maps) && a.maps[i].start <= addr {
		return a.maps[i].at, true
	}
	return platform.NoAccess, false
}

// Release implements platform.AddressSpace.
func (a *addressSpace) Release() {
	a.release()
	a.closeWatch()
	a.p.forget(a)
}

// Renew implements platform.Renewer. The heir starts with an munmap of the
// whole user range queued; a's Release hands it the stub (leader, stub
// threads, the base file's descriptor), and the heir's first Switch makes
// that munmap and the heir's own calls in one batch, as in a new stub.
// Meanwhile the stub still maps a's memory, which the kernel may free and
// reuse: nothing runs in the stub or reads through it before the munmap
// (HostPID and a write watch make the queued calls first), and freeing
// a page of the memory file takes it out of every mapping.
func (a *addressSpace) Renew() (platform.AddressSpace, error) {
	a.p.renewMu.Lock()
	defer a.p.renewMu.Unlock()
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.isReleased() || a.heir != nil || a.renewing != nil {
		return nil, fmt.Errorf("ptrace: renew stub %d: %w", a.pid, ErrReleased)
	}
	h := &addressSpace{
		p:          a.p,
		pid:        a.pid,
		leaderRegs: a.leaderRegs,
		table:      a.table,
		threads:    make(map[int]*stubThread),
		pending:    []stubCall{{sysMunmap, [6]uint64{minUserAddress, maxUserAddress - minUserAddress}}},
		baseOpen:   a.baseOpen,
		baseInStub: a.baseInStub,
		renewing:   a,
	}
	a.p.mu.Lock()
	defer a.p.mu.Unlock()
	if a.p.released {
		return nil, fmt.Errorf("ptrace: renew stub %d: %w", a.pid, ErrReleased)
	}
	a.p.spaces[h] = struct{}{}
	a.heir = h
	return h, nil
}

// handOver gives a's stub to its heir h and marks a released. It reports
// false if a was released already (h then has no stub: it was released
// too, by Platform.Release).
//
// Preconditions: p.renewMu is held; a.heir was h.
func (a *addressSpace) handOver(h *addressSpace) bool {
	a.opMu.Lock()
	a.mu.Lock()
	if a.released {
		a.mu.Unlock()
		a.opMu.Unlock()
		return false
	}
	a.released = true
	a.pending = nil
	a.undeferLocked()
	threads, pre := a.threads, a.pre
	a.threads, a.pre = nil, preThread{}
	baseOpen, baseInStub := a.baseOpen, a.baseInStub
	a.mu.Unlock()
	a.opMu.Unlock()

	h.opMu.Lock()
	defer h.opMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.renewing = nil
	if !h.baseOpen {
		h.baseOpen, h.baseInStub = baseOpen, baseInStub
	}
	for tracer, t := range threads {
		if _, dup := h.threads[tracer]; dup {
			t.kill() // the heir cloned one of its own meanwhile
			continue
		}
		h.threads[tracer] = t
	}
	if h.pre.tid == 0 {
		h.pre = pre
	} else {
		pre.kill()
	}
	return true
}

// cancelRenewal undoes Renew for its heir a, released before the address
// space it renews: that one keeps its stub. It reports false if a is no
// heir waiting.
//
// Preconditions: p.renewMu is held.
func (a *addressSpace) cancelRenewal() bool {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	r := a.renewing
	if r == nil {
		return false
	}
	r.heir = nil
	a.mu.Lock()
	defer a.mu.Unlock()
	a.renewing = nil
	a.released = true
	a.pending = nil
	a.undeferLocked()
	// Stub threads it cloned meanwhile are extra threads of r's stub.
	for _, t := range a.threads {
		t.kill()
	}
	a.threads = nil
	return true
}

// release kills the stub threads and the stub leader, at once, and reaps
// them in the background (Platform.reaping): a process's exit (its
// address space torn down by the host) takes 0.1-0.3 ms or more here, and
// an exec or an exit would otherwise wait for it before the parent learns
// of it. Once release returns, nothing of the address space runs again.
// An address space renewed (Renew) hands its stub to its heir instead, and
// an heir released before that leaves the stub to the one it renews.
func (a *addressSpace) release() {
	a.p.renewMu.Lock()
	if a.cancelRenewal() {
		a.p.renewMu.Unlock()
		return
	}
	h := a.heir
	a.heir = nil
	handed := h != nil && a.handOver(h)
	a.p.renewMu.Unlock()
	if handed {
		return
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		return
	}
	a.released = true
	a.pending = nil
	a.undeferLocked()
	// The stub threads are all sent SIGKILL first, so that they exit in
	// parallel, then (in the background) each is waited for, while the
	// leader still lives: it is their parent, and it ignores SIGCHLD, so
	// once their tracer has reaped them nothing is left (with the leader
	// gone they would become zombies of init's). Then the leader, which
	// is stopped meanwhile and runs nothing. Any thread of this process
	// may reap a child or tracee of any other, so neither the stub
	// threads' tracers nor the master (the leader's parent and tracer)
	// take part: no hand-off to the master.
	threads := a.threads
	killed := make(map[*stubThread]bool, len(threads))
	for _, t := range threads {
		killed[t] = t.signalKill()
	}
	pre := a.pre
	if pre.tid != 0 {
		_ = unix.PidfdSendSignal(pre.pidfd, unix.SIGKILL, nil, 0)
	}
	a.threads = nil
	a.pre = preThread{}
	pid, table := a.pid, a.table
	a.p.reaping.Add(1)
	// S/R-SAFE: host-side platform machinery, no kernel state; Platform.Release
	// waits for it.
	go func() {
		defer a.p.reaping.Done()
		for _, t := range threads {
			t.reap(killed[t])
		}
		discardStub(pid, pre, table)
	}()
}

// threadFor returns the stub thread traced by the calling OS thread tid,
// creating it if needed.
//
// Preconditions: the caller is locked to OS thread tid.
func (a *addressSpace) threadFor(tid int) (*stubThread, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		return nil, ErrReleased
	}
	if t, ok := a.threads[tid]; ok {
		return t, nil
	}
	a.sweepLocked()
	t, err := a.newThreadLocked(tid)
	if err != nil {
		return nil, err
	}
	a.threads[tid] = t
	return t, nil
}

// sweepLocked forgets stub threads that exited, which happens when the OS
// thread that traced them exits (PTRACE_O_EXITKILL). A task goroutine that
// ends while locked ends its thread, so without this a long-lived address
// space would keep a map entry and a pidfd per finished application
// thread. It runs only when a stub thread is about to be created.
//
// Preconditions: a.mu is held.
func (a *addressSpace) sweepLocked() {
	if len(a.threads) == 0 {
		return
	}
	fds := make([]unix.PollFd, 0, len(a.threads))
	for _, t := range a.threads {
		fds = append(fds, unix.PollFd{Fd: int32(t.pidfd), Events: unix.POLLIN})
	}
	n, err := unix.Poll(fds, 0)
	if err != nil || n == 0 {
		return
	}
	dead := make(map[int32]bool, n)
	for _, f := range fds {
		if f.Revents != 0 {
			dead[f.Fd] = true
		}
	}
	for tracer, t := range a.threads {
		if dead[int32(t.pidfd)] {
			delete(a.threads, tracer)
			t.kill()
		}
	}
}

// dropThread forgets a stub thread that died or is unusable, killing it
// if it is still there.
func (a *addressSpace) dropThread(t *stubThread) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.threads[t.tracer] == t {
		delete(a.threads, t.tracer)
	}
	t.kill()
}

// kill kills and reaps the stub thread if it is still alive, and closes
// its pidfd.
func (t *stubThread) kill() {
	t.reap(t.signalKill())
}

// signalKill sends SIGKILL to the stub thread and reports whether it was
// sent.
func (t *stubThread) signalKill() bool {
	return t.pidfd >= 0 && unix.PidfdSendSignal(t.pidfd, unix.SIGKILL, nil, 0) == nil
}

// reap waits for the stub thread to exit if killed (it was sent SIGKILL),
// reaps it, and closes its pidfd.
func (t *stubThread) reap(killed bool) {
	if t.pidfd < 0 {
		return
	}
	if killed {
		// Reaping works only while a thread of ours still traces it;
		// otherwise its parent (the stub leader) reaps it. The wait is
		// bounded: the pidfd says when the thread has exited, and the
		// reaping never blocks, so a thread that cannot be reaped here
		// leaves at worst a zombie that dies with its stub, never a
		// sentry goroutine blocked forever.
		waitPidfdExit(t.pidfd, reapTimeoutMillis)
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(t.tid, &ws, unix.WALL|unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid == 0 || ws.Exited() || ws.Signaled() {
				break
			}
		}
	}
	unix.Close(t.pidfd)
	t.pidfd = -1
}

// newThreadLocked seizes, from the calling thread, the stub thread cloned
// with the leader (a.pre) if it is still there, or else a new one that it
// clones from the leader (on the master thread).
//
// Preconditions: a.mu is held; the caller is locked to OS thread tracer.
func (a *addressSpace) newThreadLocked(tracer int) (*stubThread, error) {
	if pre := a.pre; pre.tid != 0 {
		a.pre = preThread{}
		switch {
		case pre.exited():
			// Killed from outside: make a new stub thread.
			pre.kill()
		default:
			t, err := seizeThread(pre.tid, pre.pidfd, tracer)
			if err != nil {
				break // seizeThread killed it and closed its pidfd
			}
			if !pre.exited() {
				return t, nil
			}
			// It died while being seized: the seize may have hit another
			// process that took its pid, so let that one go.
			_ = ptraceRaw(unix.PTRACE_DETACH, pre.tid, 0, 0)
			unix.Close(pre.pidfd)
		}
	}
	var tid int
	a.p.counts.countInjected(sysClone)
	a.p.counts.injections.Add(1)
	err := a.p.master.call(func() error {
		r, err := inject(a.pid, &a.leaderRegs, stubCloneEntry, sysClone, [6]uint64{cloneThreadFlag}, uint64(a.pid))
		tid = int(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("clone stub thread in stub %d: %w", a.pid, err)
	}
	// The leader is stopped, so the child cannot have exited and its pid
	// is still its own.
	pidfd, err := unix.PidfdOpen(tid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open stub thread %d: %w", tid, err)
	}
	return seizeThread(tid, pidfd, tracer)
}

// seizeThread seizes the stub thread tid (whose pidfd it takes over) from
// the calling thread and waits until it is stopped. On failure the thread
// is killed.
//
// Preconditions: the caller is locked to OS thread tracer.
func seizeThread(tid, pidfd, tracer int) (*stubThread, error) {
	t := &stubThread{tid: tid, tracer: tracer, pidfd: pidfd, cpu: cpuAny}
	// A tracer pinned to one CPU (see cpu.go) gets its stub thread there
	// from the start, before the interrupt below wakes it: system calls
	// injected before the first Switch (a program's load) then cost what
	// a pinned Switch does.
	if cpu := singleCPU(0); cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if unix.SchedSetaffinity(tid, &set) == nil {
			t.cpu = cpu
		}
	}
	opts := uintptr(unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESYSGOOD)
	if err := ptraceRaw(unix.PTRACE_SEIZE, tid, 0, opts); err != nil {
		t.kill()
		return nil, fmt.Errorf("seize stub thread %d: %w", tid, err)
	}
	if err := ptraceRaw(unix.PTRACE_INTERRUPT, tid, 0, 0); err != nil {
		t.kill()
		return nil, fmt.Errorf("interrupt stub thread %d: %w", tid, err)
	}
	for {
		ws, err := wait4(tid)
		if err != nil {
			t.kill()
			return nil, fmt.Errorf("wait for stub thread %d: %w", tid, err)
		}
		if !ws.Stopped() {
			t.kill()
			return nil, fmt.Errorf("stub thread %d: status %#x: %w", tid, uint32(ws), ErrStubDied)
		}
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_STOP {
			break
		}
		if err := ptraceRaw(unix.PTRACE_CONT, tid, 0, 0); err != nil {
			t.kill()
			return nil, fmt.Errorf("continue stub thread %d: %w", tid, err)
		}
	}
	return t, nil
}

// reapTimeoutMillis bounds how long kill waits for a killed stub thread to
// exit before it gives up reaping it.
const reapTimeoutMillis = 5000

// waitPidfdExit waits until the process behind pidfd has exited (the pidfd
// polls readable) or timeoutMillis have passed.
func waitPidfdExit(pidfd, timeoutMillis int) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, timeoutMillis)
		if err == unix.EINTR {
			continue
		}
		return
	}
}
