// Package prewarm makes a platform, and the memory file it serves, in the
// background, for a process that learns early in its start-up that it will
// start or restore a sandbox.
//
// Making a ptrace platform starts a stub process (a fork and an exec, a
// few milliseconds here), which is as long as the rest of snap's start-up.
// This package imports only the platform registry and basic packages, so
// that a package of the command that imports it (and the platform
// implementations) can be initialised before the heavier part of the
// program and call Start there; the kernel takes the result when it makes
// its memory file and platform (Take). Nothing here knows the kernel.
package prewarm

import (
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// MemoryFileName is the name of the memory file's memfd (what the host
// shows in /proc/PID/maps and fd links).
const MemoryFileName = "snap-memory"

// made is one platform that Start makes.
type made struct {
	name string
	// done is closed when memFD and p are set (-1 and nil if that
	// failed: the caller then makes its own and reports why); they are
	// read only after.
	done  chan struct{}
	memFD int
	p     platform.Platform
}

var (
	mu sync.Mutex
	// pending is what the next Take takes, or nil. Protected by mu.
	pending *made
)

// Start starts making, on another goroutine, a memory file (a memfd) and
// a platform of the named registered kind for it. A call while the last
// one's result is not taken yet does nothing, and so does an unknown
// name (the caller's own attempt reports it). If no Take follows, they
// end with the process (a platform's host processes have a parent-death
// signal).
func Start(name string) {
	ctor, err := platform.Lookup(name)
	if err != nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if pending != nil {
		return
	}
	m := &made{name: name, done: make(chan struct{}), memFD: -1}
	pending = m
	go func() {
		defer close(m.done)
		m.memFD, m.p = makePlatform(ctor)
	}()
}

// makePlatform makes a memfd and a platform over it, or returns -1 and nil.
func makePlatform(ctor platform.Constructor) (int, platform.Platform) {
	fd, err := unix.MemfdCreate(MemoryFileName, unix.MFD_CLOEXEC)
	if err != nil {
		return -1, nil
	}
	p, err := ctor(platform.Options{MemoryFD: fd})
	if err != nil {
		unix.Close(fd)
		return -1, nil
	}
	return fd, p
}

// Take returns the memory file descriptor and the platform that Start made
// for the named platform, waiting for them if needed; the caller owns
// both. It returns -1 and nil if there are none: none started, already
// taken, failed, or made for another platform (which are then released).
func Take(name string) (int, platform.Platform) {
	mu.Lock()
	m := pending
	pending = nil
	mu.Unlock()
	if m == nil {
		return -1, nil
	}
	<-m.done
	if m.p == nil {
		return -1, nil
	}
	if m.name != name {
		m.p.Release()
		unix.Close(m.memFD)
		return -1, nil
	}
	return m.memFD, m.p
}

// Pending reports whether a Start's result waits to be taken.
func Pending() bool {
	mu.Lock()
	defer mu.Unlock()
	return pending != nil
}

// Peek waits for the pending Start's result and returns its platform
// without taking it (nil if none is pending or it failed): tests use it to
// see which platform a Take hands out.
func Peek() platform.Platform {
	mu.Lock()
	m := pending
	mu.Unlock()
	if m == nil {
		return nil
	}
	<-m.done
	return m.p
}
