// Package prewarm starts making a sandbox's platform while the rest of snap
// initialises, when the command line says a sandbox will be started.
//
// Package initialisation of snap takes several milliseconds (minio-go's
// packages alone about 2 to 4 ms here), and the platform of a new sandbox
// takes a few more (a ptrace stub process is a fork and an exec). This
// package has few dependencies and a path that sorts early, so Go
// initialises it soon after the kernel and the platforms, before most of
// the rest: its init looks at os.Args and, for a foreground `snap run` or
// a detached sandbox's `snap sentry` that starts a program, calls
// kernel.Prewarm, which makes the platform on another goroutine (and, on
// this 2-core machine, on the other core) while the remaining packages
// initialise and cobra parses the command line. kernel.New then takes what
// was made. A command line this package does not understand prewarms
// nothing: the command then runs as it would without it.
package prewarm

import (
	"os"
	"strings"

	"snapshotter/kernel"
	// The platforms must be registered before init looks them up.
	_ "snapshotter/platform/ptrace"
)

func init() {
	if name, ok := SandboxPlatform(os.Args[1:]); ok {
		kernel.Prewarm(name)
	}
}

// Flags snap's commands take that need a value (as the next argument or
// after "="). Boolean flags are listed in boolFlags; any other flag makes
// SandboxPlatform give up.
var valueFlags = map[string]bool{
	// global
	"--state-dir": true, "--store": true,
	// run and sentry
	"--rootfs": true, "--platform": true,
	// run -d (an error without -d) and sentry
	"--id": true, "--stdin": true, "--stdout": true, "--stderr": true,
	// sentry
	"--ready-fd": true,
}

var boolFlags = map[string]bool{"--debug": true}

// SandboxPlatform reports whether args (snap's arguments without the
// program name) start a sandbox running a program in this process — `snap
// run` without -d, or `snap sentry` without --restore — and with which
// platform.
func SandboxPlatform(args []string) (string, bool) {
	platform := "ptrace"
	command := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			if command == "" && a != "--" {
				command = a
				if command != "run" && command != "sentry" {
					return "", false
				}
				continue
			}
			// The program follows.
			if a == "--" {
				i++
			}
			if command == "" || i >= len(args) {
				return "", false
			}
			return platform, true
		}
		name, value, hasValue := strings.Cut(a, "=")
		switch {
		case name == "--detach" || name == "-d" || name == "--restore":
			return "", false
		case boolFlags[name]:
		case valueFlags[name]:
			if !hasValue {
				i++
				if i >= len(args) {
					return "", false
				}
				value = args[i]
			}
			if name == "--platform" {
				platform = value
			}
		default:
			return "", false
		}
	}
	return "", false
}
