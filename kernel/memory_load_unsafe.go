package kernel

import "unsafe"

// addrOf returns the host address of b[off], for system calls that take
// addresses (process_vm_writev's remote iovecs).
//
// Preconditions: off < len(b), and b stays mapped while the address is used.
func addrOf(b []byte, off uint64) uintptr {
	return uintptr(unsafe.Pointer(&b[off]))
}
