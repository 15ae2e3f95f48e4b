//go:build linux && amd64

package ptrace

import "runtime"

// master runs functions on one OS thread that it never gives back to the
// Go scheduler; see the package doc.
type master struct {
	reqs   chan func()
	quit   chan struct{}
	exited chan struct{}
}

// startMaster starts the master thread and runs first on it, and returns
// once first has returned, with its error. Running it as the new thread's
// first act spares a hand-off (a wake-up of the thread, which takes 0.1 ms
// or more here) on every sandbox's start.
func startMaster(first func() error) (*master, error) {
	m := &master{reqs: make(chan func()), quit: make(chan struct{}), exited: make(chan struct{})}
	errc := make(chan error, 1)
	// S/R-SAFE: host-side platform machinery, no kernel state; lives as long
	// as the Platform.
	go m.loop(func() { errc <- first() })
	return m, <-errc
}

func (m *master) loop(first func()) {
	// Never unlocked: when this goroutine returns, the runtime ends the OS
	// thread, and any stub still alive gets its parent-death SIGKILL.
	runtime.LockOSThread()
	defer close(m.exited)
	first()
	for {
		select {
		case f := <-m.reqs:
			f()
		case <-m.quit:
			return
		}
	}
}

// call runs f on the master thread and returns its error.
func (m *master) call(f func() error) error {
	errc := make(chan error, 1)
	select {
	case m.reqs <- func() { errc <- f() }:
		return <-errc
	case <-m.exited:
		return ErrReleased
	}
}

// stop ends the master thread. It does not wait for the thread to be
// gone: Release calls it once every stub is killed and reaped, so nothing
// is left for the thread's parent-death signal, and having the Go runtime
// wake a locked thread only to let it exit took 1.5-2 ms here, at the end
// of every sandbox. A call racing with stop either runs or gets
// ErrReleased.
func (m *master) stop() {
	close(m.quit)
}
