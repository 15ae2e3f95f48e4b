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

// checkStateVersion applies Firecracker's rule to the kernel state
// header's version: the same major, a minor up to ours.
func checkStateVersion(major, minor uint16) error {
	if major != stateMajor || minor > stateMinor {
		return fmt.Errorf("kernel state format %d.%d, this snap loads %d.0 to %d.%d (restore it with a newer snap): %w",
			major, minor, stateMajor, stateMajor, stateMinor, ErrIncompatibleVersion)
	}
	return nil
}

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

	// MemorySize, if not zero, is the size of the saved memory that
	// LoadMemory writes (the image's manifest says it): the load then
	// starts before the kernel objects are decoded and runs while they
	// decode and the platform and address spaces are made. The decoded
	// memory file must be at least that big (ErrBadState otherwise).
	MemorySize uint64
}

// Restore makes a kernel from a state blob written by SaveState: a fresh
// platform and memory file, the memory loaded by o.LoadMemory, the kernel
// objects decoded (host files reopened and checked, stdio re-bound), every
// address space rebuilt, and CLOCK_MONOTONIC continuing from its saved
// value. The platform is made, and with o.MemorySize the memory loaded,
// while the objects decode; the present pages are mapped into the address
// spaces in bulk on the side after it returns (prefaultPresent). On error
// nothing is left: the loader is stopped, and the memory file and the
// platform are released. The tasks do not run until Resume.
func Restore(ctx context.Context, state io.Reader, o RestoreOptions) (*Kernel, error) {
	var hdr [stateHeaderSize]byte
	if _, err := io.ReadFull(state, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadState, err)
	}
	if string(hdr[:8]) != stateMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadState, hdr[:8])
	}
	if err := checkStateVersion(binary.LittleEndian.Uint16(hdr[8:]), binary.LittleEndian.Uint16(hdr[10:])); err != nil {
		return nil, err
	}
	savedMinor := binary.LittleEndian.Uint16(hdr[10:])
	savedMonotonic := int64(binary.LittleEndian.Uint64(hdr[12:]))

	cfg := o.Config
	name, ctor, err := cfg.platformConstructor()
	if err != nil {
		return nil, err
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}

	// The memory file and the platform: made during start-up (Prewarm) or
	// now. The platform (a stub process) is made on another goroutine
	// while the state decodes and the memory loads.
	mf, p := takePrewarmed(name)
	platformMade := make(chan error, 1)
	if p != nil {
		platformMade <- nil
	} else {
		if mf, err = NewMemoryFile("snap-memory"); err != nil {
			return nil, err
		}
		// S/R-SAFE: makes a host object only; the kernel does not exist
		// yet.
		go func() {
			var err error
			if p, err = ctor(platform.Options{MemoryFD: mf.fd}); err != nil {
				err = fmt.Errorf("create %s platform: %w", name, err)
			}
			platformMade <- err
		}()
	}
	var (
		platformErr  error
		platformDone bool
	)
	waitPlatform := func() error {
		if !platformDone {
			platformErr, platformDone = <-platformMade, true
		}
		return platformErr
	}
	var (
		loader   *MemoryLoader
		loadDone chan error
	)
	startLoad := func(size uint64) {
		loader = &MemoryLoader{f: mf, size: size, pid: os.Getpid()}
		loadDone = make(chan error, 1)
		// S/R-SAFE: writes the fresh memory file only; the kernel does
		// not run before the load is waited for.
		go func() { loadDone <- o.LoadMemory(loader) }()
	}
	// fail releases what was made, once the loader and the platform are
	// done with the memory file, and returns err.
	fail := func(k *Kernel, err error) (*Kernel, error) {
		if loadDone != nil {
			loader.abort()
			<-loadDone
		}
		if waitPlatform() == nil {
			p.Release()
		}
		if k != nil {
			k.releaseLoaded()
		}
		mf.Release()
		return nil, err
	}
	// With the memory size known up front (the image's manifest), the
	// memory loads while the kernel objects decode.
	if o.LoadMemory != nil && o.MemorySize > 0 {
		if o.MemorySize%pageSize != 0 || o.MemorySize > uint64(len(mf.mapping)) {
			return fail(nil, fmt.Errorf("%w: memory size %#x not page aligned or beyond the %d-byte reservation", ErrBadState, o.MemorySize, len(mf.mapping)))
		}
		if err := unix.Ftruncate(mf.fd, int64(o.MemorySize)); err != nil {
			return fail(nil, fmt.Errorf("size memory file to %d bytes: %w", o.MemorySize, err))
		}
		startLoad(o.MemorySize)
	}

	// Decode the kernel objects: they say how big the memory file is.
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
		// A partly decoded kernel is not walked (its task set may be
		// incomplete).
		return fail(nil, fmt.Errorf("load kernel state: %w", err))
	}
	if err := rerrs.Err(); err != nil {
		return fail(k, fmt.Errorf("restore files: %w", err))
	}
	if k.mf == nil || k.tasks == nil {
		return fail(k, fmt.Errorf("%w: no memory file or task set", ErrBadState))
	}
	if err := k.vdso.check(); err != nil {
		return fail(k, err)
	}
	live := false
	for _, t := range k.tasks.all() {
		live = live || t.runState != nil
	}
	if !live {
		return fail(k, fmt.Errorf("%w: no task to resume (the program had ended)", ErrBadState))
	}
	if savedMinor < minorThreadCreds {
		k.adoptLegacyCreds()
	}
	k.debug = cfg.Debug
	k.pins = newCPUPins(cfg.NoCPUPinning)
	k.cpus = readHostCPUs()
	// Images from before limits were saved load zero limits: the defaults.
	k.limits = k.limits.withDefaults().override(cfg.Limits)
	if cfg.Log != nil {
		k.log = cfg.Log
	}
	// The host monotonic clock of this machine may be anywhere: continue
	// the kernel's clock from the saved value.
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	k.monotonicOffset = savedMonotonic - ts.Nano()

	// The fresh memory file takes the saved size.
	size := k.mf.size
	if size > uint64(len(mf.mapping)) {
		return fail(k, fmt.Errorf("%w: memory file of %d bytes exceeds the %d-byte reservation", ErrBadState, size, len(mf.mapping)))
	}
	if loader != nil && size < loader.size {
		return fail(k, fmt.Errorf("%w: memory file of %d bytes, but the image holds %d", ErrBadState, size, loader.size))
	}
	// Growing the file under a running loader is safe: it writes below
	// the old size only.
	if err := unix.Ftruncate(mf.fd, int64(size)); err != nil {
		return fail(k, fmt.Errorf("size memory file to %d bytes: %w", size, err))
	}
	if o.LoadMemory != nil && loader == nil {
		startLoad(size)
	}

	// The address spaces map the memory file while it loads: nothing
	// touches it through them before the tasks run.
	if err := waitPlatform(); err != nil {
		return fail(k, err)
	}
	// A vfork child shares its parent's MM: one address space each.
	seenMM := map[*MM]bool{}
	for _, tg := range k.threadGroups() {
		if seenMM[tg.mm] {
			continue
		}
		seenMM[tg.mm] = true
		as, err := p.NewAddressSpace()
		if err == nil {
			err = tg.mm.attachAddressSpace(as)
		}
		if err != nil {
			return fail(k, fmt.Errorf("restore address space of process %d: %w", tg.tgid, err))
		}
	}
	if loadDone != nil {
		err := <-loadDone
		loadDone = nil
		if err != nil {
			return fail(k, fmt.Errorf("load memory: %w", err))
		}
	}
	k.platform = p
	k.mf.fd, k.mf.mapping = mf.fd, mf.mapping
	k.applyLimits()
	// The parameter page came back with the rest of the memory, at the
	// same addresses in every address space; it gets a line for this
	// host's TSC that starts at the saved CLOCK_MONOTONIC. A kernel saved
	// before there was a vDSO gets one for the programs it starts now.
	if k.vdso.Range.Length() == 0 {
		if err := k.setupVDSO(); err != nil {
			k.platform = nil
			return fail(k, err)
		}
	}
	if err := k.startClock(savedMonotonic); err != nil {
		k.platform = nil
		return fail(k, err)
	}
	if k.root != nil {
		// Images from before mount tables get the default one here.
		k.root.Mounts().SetPages(k.mf)
	}

	// Map the restored pages into the new address spaces in bulk, on the
	// side: a first touch then costs the application no fault in the host
	// kernel, and the restore does not wait for it.
	for mm := range seenMM {
		// S/R-SAFE: prefaultPresent changes no kernel state (only host
		// page tables) and holds mm.mu for reading one batch at a time,
		// so Pause, a save and Release proceed around it.
		go mm.prefaultPresent()
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
