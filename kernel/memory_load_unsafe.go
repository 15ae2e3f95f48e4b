package kernel

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawPwrite is pwrite(2) of b (not empty) at offset off of fd as a raw
// system call, which the Go scheduler does not see (see
// MemoryLoader.writeRun for when that is right).
func rawPwrite(fd int, b []byte, off uint64) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_PWRITE64, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
	runtime.KeepAlive(b)
	return int(n), errno
}

// addrOf returns the host address of b[off], for system calls that take
// addresses (process_vm_writev's remote iovecs).
//
// Preconditions: off < len(b), and b stays mapped while the address is used.
func addrOf(b []byte, off uint64) uintptr {
	return uintptr(unsafe.Pointer(&b[off]))
}
