package kernel

// Hooks for the external tests (package kernel_test).

// StopForTest requests a stop and waits until every task goroutine parks.
func (k *Kernel) StopForTest() {
	k.requestStop()
	k.waitStopped()
}

// ResumeForTest releases a stop.
func (k *Kernel) ResumeForTest() { k.releaseStop() }
