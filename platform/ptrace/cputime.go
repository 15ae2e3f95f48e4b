//go:build linux && amd64

package ptrace

import "golang.org/x/sys/unix"

// A stub thread is a host process of its own (it shares only the address
// space), so its process CPU clock counts exactly the time it ran: the
// application's, once the mappings queued before its first run are made
// (which a MAP_POPULATE, loading a restored image's pages, can make long).
// The kernel reads that clock for the application's user time; Switch
// tells it (NotifyStub) which stub thread runs the application and what the
// clock showed just before it first did.

// NotifyStub implements platform.StubClocked.
func (c *context) NotifyStub(fn func(pid int, cpu int64)) {
	c.onStub = fn
}

// reportStub calls onStub if t is not the stub thread last reported, or
// was reported for another address space (an exec's new address space
// keeps the stub of the old one: see Renew).
//
// Preconditions: called by the goroutine using the context, with t stopped
// and about to run the application.
func (c *context) reportStub(a *addressSpace, t *stubThread) {
	if c.onStub == nil || (c.reported == t && c.reportedAS == a) {
		return
	}
	c.reported, c.reportedAS = t, a
	c.onStub(t.tid, processCPUNow(t.tid))
}

// cpuClockSched is the CPUCLOCK_SCHED clock type of a CPU clock ID.
const cpuClockSched = 2

// processCPUNow returns the CPU time host process pid has used, in
// nanoseconds (Linux's make_process_cpuclock(pid, CPUCLOCK_SCHED): the
// scheduler's exact runtime, which does not count time spent waiting for
// a CPU), or 0 if it cannot be read (the process is gone).
func processCPUNow(pid int) int64 {
	var ts unix.Timespec
	id := (^int32(pid))<<3 | cpuClockSched
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
