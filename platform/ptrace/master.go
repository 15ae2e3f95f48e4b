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

func (m *master) stop() {
	close(m.quit)
	<-m.exited
}
