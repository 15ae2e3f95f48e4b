package runner

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"snapshotter/kernel"
)

// KernelOptions configure a kernel-backed sandbox.
type KernelOptions struct {
	// Platform is the platform name ("ptrace" if empty).
	Platform string
	// Rootfs is the host directory the program sees as "/" ("/" if empty).
	Rootfs string
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
	// Timings, on restore, records its steps (see RestoreKernel); nil:
	// none unless Diag is set.
	Timings *kernel.Timings
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
}

// StartKernel creates a kernel and starts argv in it.
func StartKernel(o KernelOptions) (*KernelSandbox, error) {
	k, err := kernel.New(kernel.Config{Platform: o.Platform, Root: o.Rootfs, Debug: o.Debug, Log: o.Log, Limits: o.Limits, Tmpfs: o.Tmpfs})
	if err != nil {
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

// Kill sends sig to the init process.
func (s *KernelSandbox) Kill(sig int) error {
	err := s.k.SignalInit(sig)
	if errors.Is(err, kernel.ErrNoInit) {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	return err
}

// Wait waits for the program to end.
func (s *KernelSandbox) Wait() ExitStatus {
	st := s.k.Wait()
	return ExitStatus{Code: st.Code, Signal: st.Signal}
}

// Release frees the kernel; the program must have ended.
func (s *KernelSandbox) Release() { s.k.Release() }

// Argv returns the program's argument vector (from the image for a
// restored sandbox).
func (s *KernelSandbox) Argv() []string { return s.opts.Argv }
