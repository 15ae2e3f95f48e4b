package kernel

// Hooks for the external tests (package kernel_test).

// StopForTest requests a stop and waits until every task goroutine parks.
func (k *Kernel) StopForTest() {
	k.requestStop()
	k.waitStopped()
}

// ResumeForTest releases a stop.
func (k *Kernel) ResumeForTest() { k.releaseStop() }

// UnsupportedSyscallsForTest returns the number and errno of every row of
// the syscall table without a handler.
func UnsupportedSyscallsForTest() map[int]int {
	out := map[int]int{}
	for nr, e := range syscallTable {
		if e.name != "" && e.fn == nil {
			out[nr] = int(e.errno)
		}
	}
	return out
}
