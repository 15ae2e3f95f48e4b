// Package prewarm starts making a sandbox's platform while the rest of snap
// initialises, when the command line says a sandbox will be started.
//
// Package initialisation of snap takes a few milliseconds (about 5 ms here
// since minio-go moved to the snap-s3 helper), and the platform of a new sandbox
// takes a few more (a ptrace stub process is a fork and an exec). This
// package has few dependencies and a path that sorts early, so Go
// initialises it soon after the kernel and the platforms, before most of
// the rest: its init calls kernel.Prewarm for a foreground `snap run` or
// `snap restore`, or a detached sandbox's `snap sentry`
// (early.SandboxPlatform), which makes the platform on another goroutine
// (and, on this 2-core machine, on the other core) while the remaining
// packages initialise and cobra parses the command line. kernel.New or
// kernel.Restore then takes what was made. A command line that early does not understand
// prewarms nothing: the command then runs as it would without it.
package prewarm

import (
	"os"

	"snapshotter/cmd/snapshotter/internal/early"
	"snapshotter/kernel"
	// The platforms must be registered before init looks them up.
	_ "snapshotter/platform/ptrace"
)

func init() {
	if name, ok := early.SandboxPlatform(os.Args[1:]); ok {
		kernel.Prewarm(name)
	}
}
