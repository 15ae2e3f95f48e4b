package kernel

import (
	"context"
	"fmt"
	"os"
	"sync"

	"snapshotter/kernel/socket"
	"snapshotter/platform"
)

// This file holds the save/restore hooks of the kernel's own objects. A
// restore (kernel_save.go) loads the Kernel with stateify, then gives it a
// platform and a memory file, rebinds every MM to a new address space
// (MM.attachAddressSpace) and starts a task goroutine (Task.start) for every
// task whose runState is not nil; each creates its platform context on its
// own OS thread.

// afterLoad rebuilds the kernel's host-side synchronization. Invoked by
// stateify.
func (k *Kernel) afterLoad(context.Context) {
	k.exited = make(chan struct{})
	k.stopCond = sync.NewCond(&k.stopMu)
	k.unimplLogged = map[unsupportedKey]bool{}
	if k.log == nil {
		k.log = os.Stderr
	}
	if k.locks == nil {
		k.locks = newFileLocks() // an image from before file locks
	}
	if k.unixNames == nil {
		k.unixNames = socket.NewNames() // an image from before sockets
	}
}

// afterLoad marks the memory file as having no host file yet: the restorer
// creates a memfd and loads the saved ranges into it. Invoked by stateify.
func (f *MemoryFile) afterLoad(context.Context) {
	f.fd = -1
	f.mapping = nil
	f.keepMax = keepFreedMax
	f.sharedFromPages()
}

// attachAddressSpace makes as the MM's platform address space and maps
// every vma into it (without populating: pages arrive with the memory file
// contents, and first touches are served by the host).
func (mm *MM) attachAddressSpace(as platform.AddressSpace) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.as = as
	// Every mapping is new, whichever way it is made below: a task saved
	// between a fault its MM fixed and its next run faults there again
	// when the page is not mapped as the fix left it (mapped from a base,
	// read-only, or not loaded yet), and that must not count as the same
	// fault repeating with no mapping changed (Task.lastFaultGen).
	mm.gen++
	l := mm.mf.lazyLoader()
	for i := range mm.vmas {
		v := &mm.vmas[i]
		var err error
		if l != nil && v.Perms != 0 {
			// A fresh address space: nothing to unmap.
			at := v.Perms.access()
			at.Write = at.Write && !v.COW
			err = mm.mapLazyLocked(l, v, at, false, false)
		} else {
			err = mm.mapIntoLocked(v, false)
		}
		if err != nil {
			return fmt.Errorf("restore mapping %d: %w", i, err)
		}
	}
	return nil
}
