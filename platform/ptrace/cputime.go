//go:build linux && amd64

package ptrace

// StubPID returns the host process ID of the stub thread on which the last
// Switch ran the application, or 0 before the first. A stub thread is a
// process of its own (it shares only the address space), so the kernel can
// read its CPU clock (clock_gettime of the process CPU clock of that pid)
// to measure the application's CPU time exactly, for ITIMER_VIRTUAL and
// ITIMER_PROF. The pid is valid until the address space is released.
//
// Preconditions: called by the goroutine using the context, between
// Switches.
func (c *context) StubPID() int {
	if c.last == nil {
		return 0
	}
	return c.last.tid
}
