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
// Go initialises packages in dependency order, taking at each step the
// ready package whose path sorts first. This package imports only the
// platform registry, the platforms and what they need (os, fmt,
// x/sys/unix), not the kernel and its dependencies (compression, crypto,
// msgpack, the filesystem code), so it runs once those basic packages are
// ready, well before the kernel's. It reads its command line from
// /proc/self with system calls.
//
// It used to populate 4 MiB of Go heap with MADV_POPULATE_WRITE too, to
// save the page faults of the heap's first touches. On this host a
// populated page costs nearly as much as a fault, and a run touches about
// a third of those pages, so that cost more on the main goroutine than the
// faults it saved (docs/BENCHMARKS.md).
package early

import (
	"syscall"

	"snapshotter/platform/prewarm"
	// The platforms must be registered before init looks them up.
	_ "snapshotter/platform/ptrace"
)

// args are snap's arguments without the program name, read from
// /proc/self/cmdline (nil if it could not be read).
var args []string

func init() {
	b, err := readProcSelf("cmdline")
	if err != nil {
		return
	}
	args = splitCmdline(b)
	if name, ok := SandboxPlatform(args); ok {
		prewarm.Start(name)
	}
}

// Args returns snap's arguments without the program name, for the other
// packages that must decide before os is initialised (fasttake).
func Args() []string { return args }

// splitCmdline splits /proc/self/cmdline (NUL-terminated arguments) and
// drops the program name.
func splitCmdline(b []byte) []string {
	var args []string
	for len(b) > 0 {
		i := indexByte(b, 0)
		if i < 0 {
			i = len(b)
		}
		args = append(args, string(b[:i]))
		b = b[min(i+1, len(b)):]
	}
	if len(args) == 0 {
		return nil
	}
	return args[1:]
}

// readProcSelf reads /proc/self/<name> whole.
func readProcSelf(name string) ([]byte, error) {
	fd, err := syscall.Open("/proc/self/"+name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, 8<<10)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
