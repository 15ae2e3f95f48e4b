package kernel

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

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

	// Lazy, if not nil, restores lazily: the program starts once the
	// state is decoded and Lazy.Eager is loaded, and the rest of the
	// memory loads on first touch and in the background (memory_lazy.go).
	// LoadMemory is not used then; MemorySize must be given.
	Lazy *LazyMemory

	// Timings, if not nil, records how long each step took.
	Timings *Timings

	// Stdio, if not nil, collects the restored stdio files, so that the
	// caller can bind them to other host files before Resume (a pool
	// member gets its stdio when it is taken).
	Stdio *vfs.StdioSet

	// Base, if not nil, makes the memory a copy-on-write view of a base
	// file that holds it (memory_base.go): nothing is loaded, and a page
	// is copied into the memory file when first written. LoadMemory and
	// Lazy are not used then.
	Base *MemoryBase

	// Memory, if set, is a memory file that already holds the saved
	// memory (a migration target fills one while the source runs), used
	// instead of a fresh one and LoadMemory. Restore owns it from the
	// call on (a failed restore releases it).
	Memory *MemoryFile
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
//
// The work is a restorer's steps, in order; o.Timings, if set, records
// each (see the Step constants).
func Restore(ctx context.Context, state io.Reader, o RestoreOptions) (*Kernel, error) {
	r := &restorer{ctx: ctx, o: o, tm: o.Timings}
	// Before the memory file exists, a failure leaves nothing to release.
	if err := r.readHeader(state); err != nil {
		return nil, err
	}
	if err := r.startPlatform(); err != nil {
		return nil, err
	}
	steps := []func() error{
		r.startMemory,
		func() error { return r.decode(state) },
		r.configure,
		r.sizeMemory,
		r.attach,
		r.waitMemory,
		r.startKernel,
	}
	if o.Base != nil {
		steps = []func() error{
			r.startBase,
			func() error { return r.decode(state) },
			r.configure,
			r.sizeMemory,
			r.attach,
			r.startKernel,
		}
	} else if o.Lazy != nil {
		// The address spaces map what is loaded by then: the working
		// set first.
		steps = []func() error{
			r.startLazy,
			func() error { return r.decode(state) },
			r.configure,
			r.sizeMemory,
			r.waitMemory,
			r.attach,
			r.startKernel,
		}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, r.fail(err)
		}
	}
	if r.lazy != nil {
		r.lazy.start()
		if r.lazy.base != nil {
			start := time.Now()
			r.mapNow()
			r.tm.Since(StepMapBase, start)
		}
		return r.k, nil
	}
	r.prefault()
	return r.k, nil
}

// Restore's steps as Timings names them. StepPlatform and StepMemory run
// on goroutines of their own while the steps after them proceed.
const (
	// StepReadHeader reads and checks the kernel state header.
	StepReadHeader = "read-header"
	// StepPlatform makes the memory file and the platform (a stub
	// process), or waits for the ones Prewarm made.
	StepPlatform = "start-platform"
	// StepMemory fills the memory file from the image (concurrent).
	StepMemory = "load-memory"
	// StepReadState reads the state stream and verifies its checksum.
	StepReadState = "read-state"
	// StepDecode decodes the kernel objects.
	StepDecode = "decode"
	// StepAfterLoad runs the afterLoad hooks: host files reopened and
	// checked, stdio re-bound.
	StepAfterLoad = "afterload"
	// StepConfigure checks the decoded kernel and applies this host's
	// configuration (limits, CPUs, the clock offset).
	StepConfigure = "configure"
	// StepAttach waits for the platform and makes every address space.
	StepAttach = "attach"
	// StepWaitMemory waits for StepMemory to end.
	StepWaitMemory = "wait-memory"
	// StepStartKernel hands the platform and memory to the kernel and
	// starts its clock and vDSO parameter page.
	StepStartKernel = "start-kernel"
	// StepWorkingSet loads a lazy restore's working set (concurrent, in
	// place of StepMemory).
	StepWorkingSet = "load-working-set"
	// StepStartBase, over a base (RestoreOptions.Base), sizes the memory
	// file and lists the base's chunks, in place of StepMemory.
	StepStartBase = "start-base"
	// StepCopyBase, over a base, copies the chunks of Base.Copy into the
	// memory file (concurrent, from StepStartBase to StepAttach).
	StepCopyBase = "copy-base"
	// StepMapBase, over a base, makes the address spaces' mappings of
	// the base that the platform queued, after StepStartKernel.
	StepMapBase = "map-base"
)

// restorer holds a restore in progress; see Restore. It is used by one
// goroutine, except where a field says otherwise.
type restorer struct {
	ctx context.Context
	o   RestoreOptions
	tm  *Timings

	// From the header.
	savedMinor     uint16
	savedMonotonic int64

	// name is the platform's name.
	name string
	// mf is the fresh memory file; p the platform, valid once
	// waitPlatform returned nil.
	mf *MemoryFile
	p  platform.Platform
	// platformMade receives the result of making p.
	platformMade chan error
	platformErr  error
	platformDone bool

	// loader fills mf; loadDone receives its result (nil: no load
	// running or it was waited for).
	loader   *MemoryLoader
	loadDone chan error
	// lazy is the lazy load (RestoreOptions.Lazy), nil for an eager
	// restore.
	lazy *lazyLoad
	// baseCopied receives the result of copying RestoreOptions.Base.Copy
	// (nil: no copy running, or it was waited for).
	baseCopied chan error

	// k is the decoded kernel, nil until it may be walked.
	k *Kernel
	// mms are the restored address spaces' MMs (a vfork child shares its
	// parent's).
	mms map[*MM]bool
}

func (r *restorer) readHeader(state io.Reader) error {
	defer r.tm.Since(StepReadHeader, time.Now())
	var hdr [stateHeaderSize]byte
	if _, err := io.ReadFull(state, hdr[:]); err != nil {
		return fmt.Errorf("%w: header: %v", ErrBadState, err)
	}
	if string(hdr[:8]) != stateMagic {
		return fmt.Errorf("%w: bad magic %q", ErrBadState, hdr[:8])
	}
	if err := checkStateVersion(binary.LittleEndian.Uint16(hdr[8:]), binary.LittleEndian.Uint16(hdr[10:])); err != nil {
		return err
	}
	r.savedMinor = binary.LittleEndian.Uint16(hdr[10:])
	r.savedMonotonic = int64(binary.LittleEndian.Uint64(hdr[12:]))
	return nil
}

// startPlatform takes the memory file and the platform made during
// start-up (Prewarm), or makes the memory file now and the platform (a
// stub process) on another goroutine while the state decodes and the
// memory loads.
func (r *restorer) startPlatform() error {
	name, ctor, err := r.o.Config.platformConstructor()
	if err != nil {
		return err
	}
	if err := r.o.Config.Limits.Validate(); err != nil {
		return err
	}
	r.name = name
	r.platformMade = make(chan error, 1)
	start := time.Now()
	if r.o.Memory != nil {
		r.mf = r.o.Memory
	} else if r.mf, r.p = takePrewarmed(name); r.p != nil {
		r.tm.Since(StepPlatform, start)
		r.platformMade <- nil
		return nil
	} else if r.mf, err = NewMemoryFile("snap-memory"); err != nil {
		return err
	}
	mfd := r.mf.fd
	// S/R-SAFE: makes a host object only; the kernel does not exist yet.
	go func() {
		p, err := ctor(platform.Options{MemoryFD: mfd})
		if err != nil {
			err = fmt.Errorf("create %s platform: %w", name, err)
		}
		r.tm.Since(StepPlatform, start)
		r.p = p // read only after platformMade is received
		r.platformMade <- err
	}()
	return nil
}

// waitPlatform waits for startPlatform's platform and returns why it could
// not be made.
func (r *restorer) waitPlatform() error {
	if !r.platformDone {
		r.platformErr, r.platformDone = <-r.platformMade, true
	}
	return r.platformErr
}

// startLoad starts filling the memory file, size bytes of it, on another
// goroutine.
func (r *restorer) startLoad(size uint64) {
	r.loader = &MemoryLoader{f: r.mf, size: size}
	r.loadDone = make(chan error, 1)
	load, loader, done, tm := r.o.LoadMemory, r.loader, r.loadDone, r.tm
	// S/R-SAFE: writes the fresh memory file only; the kernel does not
	// run before the load is waited for.
	go func() {
		start := time.Now()
		err := load(loader)
		tm.Since(StepMemory, start)
		done <- err
	}()
}

// fail releases what was made, once the loader and the platform are done
// with the memory file, and returns err.
func (r *restorer) fail(err error) error {
	if r.baseCopied != nil {
		<-r.baseCopied
	}
	if r.lazy != nil {
		r.lazy.stop()
	}
	if r.loadDone != nil {
		r.loader.abort()
		<-r.loadDone
	}
	if r.waitPlatform() == nil {
		r.p.Release()
	}
	if r.k != nil {
		r.k.releaseLoaded()
	}
	r.mf.Release()
	return err
}

// startMemory starts the memory load at once when the memory size is known
// up front (the image's manifest): it then runs while the kernel objects
// decode.
func (r *restorer) startMemory() error {
	size := r.o.MemorySize
	if r.o.LoadMemory == nil || size == 0 {
		return nil
	}
	if size%pageSize != 0 || size > uint64(len(r.mf.mapping)) {
		return fmt.Errorf("%w: memory size %#x not page aligned or beyond the %d-byte reservation", ErrBadState, size, len(r.mf.mapping))
	}
	if err := unix.Ftruncate(r.mf.fd, int64(size)); err != nil {
		return fmt.Errorf("size memory file to %d bytes: %w", size, err)
	}
	r.startLoad(size)
	return nil
}

// startLazy starts loading a lazy restore's working set, which runs while
// the kernel objects decode.
func (r *restorer) startLazy() error {
	size := r.o.MemorySize
	if size%pageSize != 0 || size == 0 || size > uint64(len(r.mf.mapping)) {
		return fmt.Errorf("%w: memory size %#x zero, not page aligned or beyond the %d-byte reservation", ErrBadState, size, len(r.mf.mapping))
	}
	if err := unix.Ftruncate(r.mf.fd, int64(size)); err != nil {
		return fmt.Errorf("size memory file to %d bytes: %w", size, err)
	}
	r.loader = &MemoryLoader{f: r.mf, size: size}
	l, err := newLazyLoad(r.o.Lazy, r.loader)
	if err != nil {
		return err
	}
	r.lazy = l
	r.loadDone = make(chan error, 1)
	tm := r.tm
	// S/R-SAFE: writes the fresh memory file only; the kernel does not
	// run before the load is waited for.
	go func() {
		start := time.Now()
		err := l.loadEager()
		tm.Since(StepWorkingSet, start)
		r.loadDone <- err
	}()
	return nil
}

// decode decodes the kernel objects (StepReadState, StepDecode,
// StepAfterLoad) and checks that the result can run.
func (r *restorer) decode(state io.Reader) error {
	cfg := r.o.Config
	stdio := [3]*os.File{cfg.Stdin, cfg.Stdout, cfg.Stderr}
	for i, f := range stdio {
		if f == nil {
			stdio[i] = []*os.File{os.Stdin, os.Stdout, os.Stderr}[i]
		}
	}
	lctx := vfs.WithRestoreStdio(r.ctx, stdio)
	if r.o.Stdio != nil {
		lctx = vfs.WithRestoreStdioSet(lctx, r.o.Stdio)
	}
	if cfg.Root != "" {
		lctx = vfs.WithRestoreRoot(lctx, cfg.Root)
	}
	if len(cfg.Binds) > 0 {
		binds := map[string]string{}
		for _, spec := range cfg.Binds {
			b, err := ParseBind(spec)
			if err != nil {
				return err
			}
			binds[path.Clean(b.Point)] = b.Host
		}
		lctx = vfs.WithRestoreBinds(lctx, binds)
	}
	var rerrs vfs.RestoreErrors
	lctx = vfs.WithRestoreErrors(lctx, &rerrs)
	if r.tm != nil {
		last := time.Now()
		names := map[string]string{stateify.PhaseRead: StepReadState,
			stateify.PhaseDecode: StepDecode, stateify.PhaseAfterLoad: StepAfterLoad}
		lctx = stateify.WithPhaseHook(lctx, func(phase string) {
			r.tm.Since(names[phase], last)
			last = time.Now()
		})
	}
	k := new(Kernel)
	if err := stateify.Load(lctx, state, k); err != nil {
		// A partly decoded kernel is not walked (its task set may be
		// incomplete).
		return fmt.Errorf("load kernel state: %w", err)
	}
	r.k = k
	if err := rerrs.Err(); err != nil {
		return fmt.Errorf("restore files: %w", err)
	}
	if k.mf == nil || k.tasks == nil {
		return fmt.Errorf("%w: no memory file or task set", ErrBadState)
	}
	if err := k.vdso.check(); err != nil {
		return err
	}
	return nil
}

// configure requires a task to resume and applies this host's
// configuration to the decoded kernel.
func (r *restorer) configure() error {
	defer r.tm.Since(StepConfigure, time.Now())
	k, cfg := r.k, r.o.Config
	live := false
	for _, t := range k.tasks.all() {
		live = live || t.runState != nil
	}
	if !live {
		return fmt.Errorf("%w: no task to resume (the program had ended)", ErrBadState)
	}
	if r.savedMinor < minorThreadCreds {
		k.adoptLegacyCreds()
	}
	// Images from before the mqueue filesystem have no /dev/mqueue.
	k.root.Mounts().MountMqueue(k.ipc())
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
	k.monotonicOffset = r.savedMonotonic - ts.Nano()
	return nil
}

// sizeMemory gives the fresh memory file the saved size, and starts the
// memory load if startMemory did not.
func (r *restorer) sizeMemory() error {
	size := r.k.mf.size
	if size > uint64(len(r.mf.mapping)) {
		return fmt.Errorf("%w: memory file of %d bytes exceeds the %d-byte reservation", ErrBadState, size, len(r.mf.mapping))
	}
	if r.loader != nil && size < r.loader.size {
		return fmt.Errorf("%w: memory file of %d bytes, but the image holds %d", ErrBadState, size, r.loader.size)
	}
	// Growing the file under a running loader is safe: it writes below
	// the old size only.
	if err := unix.Ftruncate(r.mf.fd, int64(size)); err != nil {
		return fmt.Errorf("size memory file to %d bytes: %w", size, err)
	}
	if r.o.LoadMemory != nil && r.loader == nil {
		r.startLoad(size)
	}
	return nil
}

// attach makes an address space for every MM. The address spaces map the
// memory file while it loads: nothing touches it through them before the
// tasks run.
func (r *restorer) attach() error {
	defer r.tm.Since(StepAttach, time.Now())
	if err := r.waitPlatform(); err != nil {
		return err
	}
	if l := r.lazy; l != nil {
		if l.base != nil {
			if err := r.setBase(); err != nil {
				return err
			}
			if err := r.waitBaseCopy(); err != nil {
				return err
			}
		}
		// From here on the kernel's memory file loads on first touch.
		l.attach(r.k)
	}
	r.mms = map[*MM]bool{}
	for _, tg := range r.k.threadGroups() {
		if r.mms[tg.mm] {
			continue
		}
		r.mms[tg.mm] = true
		as, err := r.p.NewAddressSpace()
		if err == nil {
			err = tg.mm.attachAddressSpace(as)
		}
		if err != nil {
			return fmt.Errorf("restore address space of process %d: %w", tg.tgid, err)
		}
	}
	return nil
}

func (r *restorer) waitMemory() error {
	if r.loadDone == nil {
		return nil
	}
	defer r.tm.Since(StepWaitMemory, time.Now())
	err := <-r.loadDone
	r.loadDone = nil
	if err != nil {
		return fmt.Errorf("load memory: %w", err)
	}
	return nil
}

// startKernel gives the kernel its platform and memory, and starts its
// clock.
func (r *restorer) startKernel() error {
	defer r.tm.Since(StepStartKernel, time.Now())
	k := r.k
	k.platform = r.p
	k.mf.fd, k.mf.mapping = r.mf.fd, r.mf.mapping
	k.mf.onShrink = k.sharedFileShrunk
	k.applyLimits()
	// The parameter page came back with the rest of the memory, at the
	// same addresses in every address space; it gets a line for this
	// host's TSC that starts at the saved CLOCK_MONOTONIC. A kernel saved
	// before there was a vDSO gets one for the programs it starts now.
	if k.vdso.Range.Length() == 0 {
		if err := k.setupVDSO(); err != nil {
			k.platform = nil // fail releases it
			return err
		}
	}
	if err := k.startClock(r.savedMonotonic); err != nil {
		k.platform = nil
		return err
	}
	if k.root != nil {
		// Images from before mount tables get the default one here.
		k.root.Mounts().SetPages(k.mf)
		k.root.Mounts().SetJobControl(jobControl{k})
		k.root.Mounts().SetSigioSender(k)
	}
	k.rearmAsync()
	return nil
}

// prefault maps the restored pages into the new address spaces in bulk,
// on the side: a first touch then costs the application no fault in the
// host kernel, and the restore does not wait for it.
func (r *restorer) prefault() {
	for mm := range r.mms {
		// S/R-SAFE: prefaultPresent changes no kernel state (only host
		// page tables) and holds mm.mu for reading one batch at a time,
		// so Pause, a save and Release proceed around it.
		go mm.prefaultPresent()
	}
}

// populate pre-faults b, a view of the memory file, with one
// MADV_POPULATE_WRITE, so that filling it costs no fault per page. Kernels
// without it fall back to first-touch faults.
func populate(b []byte) {
	if len(b) > 0 {
		_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	}
}

// OnFirstSwitch makes fn run once, on a task goroutine, when an
// application thread first comes back to the sentry (a system call, a
// fault, an interrupt) after Resume: the restored program has run. Call it
// before Resume; fn must not block.
func (k *Kernel) OnFirstSwitch(fn func()) { k.firstSwitch.Store(&fn) }

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
