// Package early does, for a command that starts or restores a sandbox in
// this process (a foreground `snap run` or `snap restore`, or a detached
// sandbox's `snap sentry`: SandboxPlatform), the start-up work that pays
// off only if done before nearly everything else:
//
//   - It starts making the sandbox's platform (a ptrace stub process: a
//     fork and an exec) and memory file on another goroutine (package
//     platform/prewarm), which on this 2-core machine runs on the other
//     core while the rest of snap initialises and cobra parses the command
//     line; kernel.New or kernel.Restore then takes them.
//   - It then populates, in one call, the 4 MiB of Go heap around its
//     newest object.
//
// Go initialises packages in dependency order, taking at each step the
// ready package whose path sorts first. This package imports only the
// platform registry, the platforms and what they need (os, fmt,
// x/sys/unix), not the kernel and its dependencies (compression, crypto,
// msgpack, the filesystem code), so it runs once those basic packages are
// ready, well before the kernel's. It reads its command line from
// /proc/self with system calls.
//
// A first touch of a page costs about 11 µs in this VM (a demand fault;
// 12-16 µs on a loaded host), populating it with MADV_POPULATE_WRITE about
// 0.6 µs (2-3 µs loaded). `snap run` of a static hello world touches about
// 430 pages of heap, most of them during package initialisation and the
// kernel's start, within 1-3 MiB of where the heap's allocations were when
// this package ran (perf record -e page-faults -d). Populating 4 MiB
// around that point then costs about 1 ms and saves most of those faults
// (`snap run` hello world: about 710 page faults before, 415-480 after,
// perf stat); the rest fall in heap chunks that Go maps later. The
// platform is started first: the populate is on the main goroutine's
// path, the platform is not.
//
// Only commands that start or restore a sandbox do it (SandboxPlatform): the others use
// far less memory, and it costs up to 4 MiB of resident memory. A pool member's
// sentry does not either: it waits, maybe long, with that memory resident.
package early

import (
	"syscall"
	"unsafe"

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
		if !poolMember(args) {
			populateHeap()
		}
		populateHeap()
	}
}

// poolMember reports whether args start a pool member's sentry (--pool):
// it may wait long, and there memory counts more than start speed.
func poolMember(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--pool" || hasPrefix(a, "--pool=") {
			return true
		}
	}
	return false
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

// heapPopulateBytes bounds how much of the heap populateHeap populates.
const heapPopulateBytes = 4 << 20

const pageSize = 4096

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), which package
// syscall does not name.
const madvPopulateWrite = 23

// heapProbe is a heap object whose address tells where the heap is.
var heapProbe *[64]byte

// populateHeap populates, for writing, up to heapPopulateBytes of the
// mapping that holds the heap's newest allocations. Errors are ignored: it
// is an optimization only, and a kernel without MADV_POPULATE_WRITE leaves
// the pages to be faulted in as before.
func populateHeap() {
	heapProbe = new([64]byte)
	maps, err := readProcSelf("maps")
	if err != nil {
		return
	}
	lo, hi, ok := heapRange(maps, uint64(uintptr(unsafe.Pointer(heapProbe))), heapPopulateBytes)
	if !ok {
		return
	}
	// The range is part of a read-write mapping that Go's heap owns and
	// never unmaps; madvise only faults its pages in.
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), madvPopulateWrite)
}

// heapRange finds, in the text of /proc/self/maps, the read-write mapping
// that holds addr and returns the range to populate: limit bytes centred
// on addr's page, within the mapping. (The heap in use surrounds the
// newest small object: `snap run` touched 1-3 MiB around it, and the
// mapping, 4 to 8 MiB, does not start where the heap in use does.)
func heapRange(maps []byte, addr, limit uint64) (lo, hi uint64, ok bool) {
	for len(maps) > 0 {
		line := maps
		if i := indexByte(maps, '\n'); i >= 0 {
			line, maps = maps[:i], maps[i+1:]
		} else {
			maps = nil
		}
		start, n := parseHex(line)
		if n == 0 || n >= len(line) || line[n] != '-' {
			continue
		}
		line = line[n+1:]
		end, n := parseHex(line)
		if n == 0 || n+3 >= len(line) || line[n] != ' ' {
			continue
		}
		perms := line[n+1 : n+4]
		if addr < start || addr >= end || perms[0] != 'r' || perms[1] != 'w' {
			continue
		}
		lo = max(start, (addr&^(pageSize-1))-limit/2)
		hi = min(end, (addr&^(pageSize-1))+limit/2)
		return lo, hi, true
	}
	return 0, 0, false
}

// parseHex parses the lowercase hexadecimal number at the start of b and
// returns it with the number of digits.
func parseHex(b []byte) (uint64, int) {
	var v uint64
	for i, c := range b {
		switch {
		case i >= 16:
			return v, i
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return v, i
		}
	}
	return v, len(b)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
