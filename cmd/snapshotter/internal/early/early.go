// Package early does, for a command that starts or restores a sandbox in
// this process (a foreground `snap run` or `snap restore`, or a detached
// sandbox's `snap sentry`: SandboxPlatform), the start-up work that pays
// off only if done before nearly everything else: it starts making the
// sandbox's platform (a ptrace stub process: a fork and an exec) and
// memory file on another goroutine (package platform/prewarm), which on
// this 2-core machine runs on the other core while the rest of snap
// initialises and cobra parses the command line; kernel.New or
// kernel.Restore then takes them.
//
// A `snap pool take` is served earlier still, before the Go runtime starts,
// by snap's entry point (package fasttake); this package runs for what
// that leaves to Go.
//
// Go initialises packages in dependency order, taking at each step the
// ready package whose path sorts first. This package imports only the
// platform registry, the platforms and what they need (os, fmt,
// x/sys/unix), not the kernel and its dependencies (compression, crypto,
// msgpack, the filesystem code), so it runs once those basic packages are
// ready, well before the kernel's. Package os is among those (the
// platforms import it), so os.Args is set when it runs.
//
// It used to populate 4 MiB of Go heap with MADV_POPULATE_WRITE too, to
// save the page faults of the heap's first touches. On this host a
// populated page costs nearly as much as a fault, and a run touches about
// a third of those pages, so that cost more on the main goroutine than the
// faults it saved (docs/BENCHMARKS.md).
package early

import (
	"os"

	"snapshotter/platform/prewarm"
	// The platforms must be registered before init looks them up.
	_ "snapshotter/platform/ptrace"
)

func init() {
	if len(os.Args) < 2 {
		return
	}
	if name, ok := SandboxPlatform(os.Args[1:]); ok {
		prewarm.Start(name)
	}
}
