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

func startMaster() *master {
	m := &master{reqs: make(chan func()), quit: make(chan struct{}), exited: make(chan struct{})}
	// S/R-SAFE: host-side platform machinery, no kernel state; lives as long
	// as the Platform.
	go m.loop()
	return m
}

func (m *master) loop() {
	// Never unlocked: when this goroutine returns, the runtime ends the OS
	// thread, and any stub still alive gets its parent-death SIGKILL.
	runtime.LockOSThread()
	defer close(m.exited)
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
