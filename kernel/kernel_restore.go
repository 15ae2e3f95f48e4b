package kernel

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
	"snapshotter/platform"
	"snapshotter/stateify"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Config gives the platform, the debug options and the stdio that the
	// restored sandbox's stdio files bind to (nil: the process's own).
	// Root, if set, is the host directory the restored filesystem root
	// reopens instead of the saved one.
	Config Config

	// LoadMemory fills the memory file: it hands w the saved memory,
	// present pages only, calling w.WriteRuns concurrently if it likes for
	// disjoint ranges. Pages it does not write stay holes and read as zero.
	LoadMemory func(w *MemoryLoader) error
}

// Restore makes a kernel from a state blob written by SaveState: a fresh
// platform and memory file, the memory loaded by o.LoadMemory, the kernel
// objects decoded (host files reopened and checked, stdio re-bound), every
// address space rebuilt, and CLOCK_MONOTONIC continuing from its saved
// value. The tasks do not run until Resume.
func Restore(ctx context.Context, state io.Reader, o RestoreOptions) (*Kernel, error) {
	var hdr [stateHeaderSize]byte
	if _, err := io.ReadFull(state, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadState, err)
	}
	if string(hdr[:8]) != stateMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadState, hdr[:8])
	}
	if major, minor := binary.LittleEndian.Uint16(hdr[8:]), binary.LittleEndian.Uint16(hdr[10:]); major != stateMajor {
		return nil, fmt.Errorf("%w: format %d.%d, this snap loads %d.x", ErrBadState, major, minor, stateMajor)
	}
	savedMonotonic := int64(binary.LittleEndian.Uint64(hdr[12:]))

	cfg := o.Config
	name, ctor, err := cfg.platformConstructor()
	if err != nil {
		return nil, err
	}

	// Decode the kernel objects first: they say how big the memory file is.
	stdio := [3]*os.File{cfg.Stdin, cfg.Stdout, cfg.Stderr}
	for i, f := range stdio {
		if f == nil {
			stdio[i] = []*os.File{os.Stdin, os.Stdout, os.Stderr}[i]
		}
	}
	lctx := vfs.WithRestoreStdio(ctx, stdio)
	if cfg.Root != "" {
		lctx = vfs.WithRestoreRoot(lctx, cfg.Root)
	}
	var rerrs vfs.RestoreErrors
	lctx = vfs.WithRestoreErrors(lctx, &rerrs)
	k := new(Kernel)
	if err := stateify.Load(lctx, state, k); err != nil {
		return nil, fmt.Errorf("load kernel state: %w", err)
	}
	if err := rerrs.Err(); err != nil {
		k.releaseLoaded()
		return nil, fmt.Errorf("restore files: %w", err)
	}
	if k.mf == nil || k.tasks == nil {
		k.releaseLoaded()
		return nil, fmt.Errorf("%w: no memory file or task set", ErrBadState)
	}
	live := false
	for _, t := range k.tasks.all() {
		live = live || t.runState != nil
	}
	if !live {
		k.releaseLoaded()
		return nil, fmt.Errorf("%w: no task to resume (the program had ended)", ErrBadState)
	}
	k.debug = cfg.Debug
	if cfg.Log != nil {
		k.log = cfg.Log
	}
	// The host monotonic clock of this machine may be anywhere: continue
	// the kernel's clock from the saved value.
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	k.monotonicOffset = savedMonotonic - ts.Nano()

	// A fresh memory file of the saved size, filled by the loader.
	fresh, err := NewMemoryFile("snap-memory")
	if err != nil {
		k.releaseLoaded()
		return nil, err
	}
	k.mf.fd, k.mf.mapping = fresh.fd, fresh.mapping
	size := k.mf.size
	if size > uint64(len(k.mf.mapping)) {
		k.Release()
		return nil, fmt.Errorf("%w: memory file of %d bytes exceeds the %d-byte reservation", ErrBadState, size, len(k.mf.mapping))
	}
	if err := unix.Ftruncate(k.mf.fd, int64(size)); err != nil {
		k.Release()
		return nil, fmt.Errorf("size memory file to %d bytes: %w", size, err)
	}
	if o.LoadMemory != nil {
		if err := o.LoadMemory(&MemoryLoader{f: k.mf, size: size, pid: os.Getpid()}); err != nil {
			k.Release()
			return nil, fmt.Errorf("load memory: %w", err)
		}
	}

	p, err := ctor(platform.Options{MemoryFD: k.mf.fd})
	if err != nil {
		k.Release()
		return nil, fmt.Errorf("create %s platform: %w", name, err)
	}
	k.platform = p
	for _, tg := range k.threadGroups() {
		as, err := p.NewAddressSpace()
		if err == nil {
			err = tg.mm.attachAddressSpace(as)
		}
		if err != nil {
			k.Release()
			return nil, fmt.Errorf("restore address space of process %d: %w", tg.tgid, err)
		}
	}
	// Map the restored pages into the new address spaces in bulk, on the
	// side: a first touch then costs the application no fault in the host
	// kernel, and the restore does not wait for it.
	for _, tg := range k.threadGroups() {
		// S/R-SAFE: prefaultPresent changes no kernel state (only host
		// page tables) and holds mm.mu for reading one batch at a time,
		// so Pause, a save and Release proceed around it.
		go tg.mm.prefaultPresent()
	}
	return k, nil
}

// populate pre-faults b, a view of the memory file, with one
// MADV_POPULATE_WRITE, so that filling it costs no fault per page. Kernels
// without it fall back to first-touch faults.
func populate(b []byte) {
	if len(b) > 0 {
		_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	}
}

// Resume starts a task goroutine for every task of a restored kernel.
func (k *Kernel) Resume() {
	tasks := k.tasks.all()
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].tid < tasks[j].tid })
	for _, t := range tasks {
		if t.runState != nil {
			t.start()
		}
	}
}

// threadGroups returns the live processes, by PID.
func (k *Kernel) threadGroups() []*ThreadGroup {
	seen := map[*ThreadGroup]bool{}
	var out []*ThreadGroup
	for _, t := range k.tasks.all() {
		if t.tg != nil && !seen[t.tg] {
			seen[t.tg] = true
			out = append(out, t.tg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tgid < out[j].tgid })
	return out
}

// releaseLoaded frees what a failed restore decoded before the kernel got
// host resources: reopened host files.
func (k *Kernel) releaseLoaded() {
	for _, tg := range k.threadGroups() {
		if tg.fdTable != nil {
			tg.fdTable.Close()
		}
	}
	if k.root != nil {
		k.root.Close()
	}
}
