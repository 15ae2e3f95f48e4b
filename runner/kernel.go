package runner

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// KernelOptions configure a kernel-backed sandbox.
type KernelOptions struct {
	// Platform is the platform name ("ptrace" if empty).
	Platform string
	// Rootfs is the host directory the program sees as "/" ("/" if empty).
	Rootfs string
	// ReadOnly keeps the root read-only instead of a writable overlay
	// (ignored on restore: the saved mounts come back).
	ReadOnly bool
	// Binds are host directories to mount, "HOST:PATH[:ro]"; on restore
	// they remap saved bind mounts (see kernel.Config).
	Binds []string
	// Debug and Log are the kernel's debug options.
	Debug bool
	Log   io.Writer
	// Argv, Env, Cwd and RequireCwd start the program (ignored on
	// restore); see kernel.StartOptions.
	Argv       []string
	Env        []string
	Cwd        string
	RequireCwd bool
	// Stdin, Stdout and Stderr are the program's stdio; the process's own
	// if nil.
	Stdin, Stdout, Stderr *os.File
	// ID names the sandbox in image metadata.
	ID string
	// Version is snap's version, recorded in images.
	Version string
	// Diag receives the runner's own diagnostics (timings); nil: none.
	Diag *log.Logger
	// Limits bound the sandbox (zero fields: the defaults; on restore,
	// the saved limits).
	Limits kernel.Limits
	// VerifyKey, on restore, requires the image to be signed by this key
	// (see OpenImage); nil accepts unsigned images.
	VerifyKey ed25519.PublicKey
	// Tmpfs are the extra tmpfs mount points (ignored on restore: the
	// saved mounts come back); see kernel.Config.
	Tmpfs []string
	// Publish are the ports to publish (kernel.Kernel.Publish); on
	// restore, nil publishes the image's mappings again.
	Publish []kernel.PortMapping
	// Network is the network mode (kernel.NetworkSandbox if empty); on
	// restore, empty keeps the image's (kernel.Kernel.SetNetwork).
	Network string
	// Timings, on restore, records its steps (see RestoreKernel); nil:
	// none unless Diag is set.
	Timings *kernel.Timings
	// Lazy, on restore, starts the program before its memory is loaded
	// (kernel.LazyMemory), with the image's working set loaded first
	// unless NoWorkingSet. The first lazy restore of an image records its
	// working set.
	Lazy, NoWorkingSet bool

	// workingSet is the working set of a lazy restore, set by
	// newLazyRestore.
	workingSet []int

	// Cache, on a restore that is neither lazy nor parked, is the restore
	// cache (restore_cache.go): the memory is restored as a copy-on-write
	// view of the image's copy there, or the load writes that copy.
	Cache RestoreCache

	// Park, on restore, leaves the tasks parked (a pool member): the
	// sandbox implements Parked, and runs once Unpark gives it its stdio
	// (Stdin, Stdout and Stderr are then ignored).
	Park bool
	// BaseDir, with Park, is the pool's directory of base files
	// (StateDir.PoolBaseDir): the memory is restored as a copy-on-write
	// view of the image's base there, made first if missing
	// (pool_base.go). If that fails the member loads its own copy.
	BaseDir string
}

// KernelSandbox is a Sandbox running on a kernel.Kernel in this process.
type KernelSandbox struct {
	k    *kernel.Kernel
	opts KernelOptions
	// last is written by Save, which the Server runs one at a time.
	last SaveStats
	// base is the save that dirty tracking has run since, if any (see
	// liveBase). Written by Save, like last.
	base *liveBase
	// ran, for a restored sandbox, is closed once its program has run
	// (WaitRan); nil for a started one.
	ran chan struct{}
	// lazy is the lazy load of a lazily restored sandbox, nil otherwise.
	lazy *lazyRestore
	// tm, uri and memSize, for a restored sandbox, are its restore's
	// timings, image and memory size; immutable.
	tm      *kernel.Timings
	uri     string
	memSize uint64
	// parked is set for a sandbox restored with KernelOptions.Park.
	parked *parking
	// resumed is when the restored program was let run; written before
	// the tasks run, read by the first one.
	resumed time.Time
	// record, if set, records the chunks of the base copied so far
	// (recordWritesLater); recordTimer runs it, or Wait or Release does first,
	// once (recorded). record and recordTimer are immutable once the
	// program runs.
	record      func()
	recordTimer *time.Timer
	recorded    sync.Once
	// doubt is a migration whose outcome the source could not learn: the
	// sandbox stays paused until a save asks the target again or a
	// SIGKILL ends it. Accessed atomically.
	doubt atomic.Pointer[migrationDoubt]
}

// StartKernel creates a kernel and starts argv in it.
func StartKernel(o KernelOptions) (*KernelSandbox, error) {
	k, err := kernel.New(kernel.Config{Platform: o.Platform, Root: o.Rootfs, Debug: o.Debug, Log: o.Log, Limits: o.Limits, Tmpfs: o.Tmpfs, ReadOnly: o.ReadOnly, Binds: o.Binds, Network: o.Network})
	if err != nil {
		return nil, err
	}
	if err := k.Publish(o.Publish); err != nil {
		k.Release()
		return nil, err
	}
	if err := k.Start(kernel.StartOptions{Argv: o.Argv, Env: o.Env, Cwd: o.Cwd, RequireCwd: o.RequireCwd,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr}); err != nil {
		k.Release()
		return nil, fmt.Errorf("run %s: %w", o.Argv[0], err)
	}
	return &KernelSandbox{k: k, opts: o}, nil
}

// Kernel returns the sandbox's kernel.
func (s *KernelSandbox) Kernel() *kernel.Kernel { return s.k }

// Kill sends sig to the init process. A parked sandbox ends as if
// killed by sig, without running (Discard).
func (s *KernelSandbox) Kill(sig int) error {
	if sig == int(unix.SIGKILL) && s.doubt.Swap(nil) != nil {
		// Paused since a migration in doubt: it ends without running.
		s.k.Discard()
		return nil
	}
	if s.parked != nil {
		if err := s.Discard(sig); err == nil {
			return nil
		}
	}
	err := s.k.SignalInit(sig)
	if errors.Is(err, kernel.ErrNoInit) {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	return err
}

// Wait waits for the program to end. After a lazy restore whose program
// ended before its memory was all loaded, it stops the load and waits
// until what the program touched is recorded as the image's working set.
func (s *KernelSandbox) Wait() ExitStatus {
	if p := s.parked; p != nil {
		select {
		case <-p.discarded:
			return p.status
		case <-s.k.Exited():
		}
	}
	st := s.k.Wait()
	if s.recordTimer != nil {
		s.recordTimer.Stop()
		s.recordOnce() // the program ended before the delay: what it wrote
	}
	if s.lazy != nil {
		s.k.StopLazyLoad()
		<-s.lazy.done
	}
	return ExitStatus{Code: st.Code, Signal: st.Signal}
}

// Release frees the kernel; the program must have ended (or a parked
// sandbox been discarded).
func (s *KernelSandbox) Release() {
	if s.recordTimer != nil {
		s.recordTimer.Stop()
		s.recordOnce() // or waits for the timer's to end
	}
	s.k.Release()
	if p := s.parked; p != nil {
		closeFiles(p.held[:])
	}
}

// Argv returns the program's argument vector (from the image for a
// restored sandbox).
func (s *KernelSandbox) Argv() []string { return s.opts.Argv }
