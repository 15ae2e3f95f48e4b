//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// The register layout of platform.Registers is Linux's user_regs_struct,
// which PTRACE_GETREGS and PTRACE_SETREGS read and write directly.
const userRegsSize = 27 * 8

var _ [userRegsSize - unsafe.Sizeof(platform.Registers{})]struct{}
var _ [unsafe.Sizeof(platform.Registers{}) - userRegsSize]struct{}

// ptraceRaw issues a ptrace request that never blocks.
func ptraceRaw(req, tid int, addr, data uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getRegs(tid int, r *platform.Registers) error {
	return ptraceRaw(unix.PTRACE_GETREGS, tid, 0, uintptr(unsafe.Pointer(r)))
}

func setRegs(tid int, r *platform.Registers) error {
	return ptraceRaw(unix.PTRACE_SETREGS, tid, 0, uintptr(unsafe.Pointer(r)))
}

// setRax writes rax alone (PTRACE_POKEUSER): about 1 us cheaper here than
// PTRACE_SETREGS, which copies and checks every register.
func setRax(tid int, v uint64) error {
	return ptraceRaw(unix.PTRACE_POKEUSR, tid, unsafe.Offsetof(platform.Registers{}.Rax), uintptr(v))
}

// getFP reads the XSAVE area of tid into buf and returns the bytes the
// kernel filled.
func getFP(tid int, buf []byte) (int, error) {
	iov := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	err := ptraceRaw(unix.PTRACE_GETREGSET, tid, unix.NT_X86_XSTATE, uintptr(unsafe.Pointer(&iov)))
	return int(iov.Len), err
}

// setFP writes the XSAVE area of tid; buf must be the kernel's full size.
func setFP(tid int, buf []byte) error {
	iov := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	return ptraceRaw(unix.PTRACE_SETREGSET, tid, unix.NT_X86_XSTATE, uintptr(unsafe.Pointer(&iov)))
}

// sigInfo is the part of siginfo_t the platform reports.
type sigInfo struct {
	signo, code int32
	addr        uint64
}

// getSigInfo reads the siginfo of the signal that stopped tid.
func getSigInfo(tid int) (sigInfo, error) {
	var buf [128]byte
	if err := ptraceRaw(unix.PTRACE_GETSIGINFO, tid, 0, uintptr(unsafe.Pointer(&buf[0]))); err != nil {
		return sigInfo{}, err
	}
	le := binary.LittleEndian
	return sigInfo{
		signo: int32(le.Uint32(buf[0:])),
		code:  int32(le.Uint32(buf[8:])),
		addr:  le.Uint64(buf[16:]),
	}, nil
}

// wait4 waits for a state change of tid (which may be a tracee of any
// thread of this process), retrying on EINTR.
func wait4(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

// wait4HandOff is wait4 that gives the calling thread's P back to the Go
// scheduler as the wait begins (see context.HandOffP), retrying on EINTR.
// An ordinary system call keeps its P until the runtime's monitor finds
// it still in the call, up to some milliseconds later, and takes it.
func wait4HandOff(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		if e := wait4Blocking(tid, &ws); e != unix.EINTR {
			if e != 0 {
				return ws, e
			}
			return ws, nil
		}
	}
}

// wait4Blocking is one wait4(tid, ws, __WALL) between
// runtime.entersyscallblock, which hands the P off at once, and
// runtime.exitsyscall, which takes one again. Nosplit: the runtime
// records this frame's stack pointer at entersyscallblock, and the stack
// must not move before exitsyscall.
//
//go:nosplit
func wait4Blocking(tid int, ws *unix.WaitStatus) unix.Errno {
	entersyscallblock()
	_, _, e := syscall.RawSyscall6(unix.SYS_WAIT4, uintptr(tid), uintptr(unsafe.Pointer(ws)), unix.WALL, 0, 0, 0)
	exitsyscall()
	return unix.Errno(e)
}

// The runtime's own entry to and exit from a blocking system call (what
// syscall.Syscall does for a call the runtime knows will block).
//
//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()

// kernelSigaction is struct sigaction as rt_sigaction takes it on x86-64.
type kernelSigaction struct {
	handler, flags, restorer, mask uint64
}

const (
	sigIGN      = 1
	saNoCldStop = 1
)

// quietSIGCHLD adds SA_NOCLDSTOP to this process's SIGCHLD action, keeping
// its handler (the Go runtime's). Without it every ptrace stop of a stub
// sends the sentry a SIGCHLD, a signal delivery and sigreturn per system
// call; wait4 is woken either way. It changes nothing for exits.
func quietSIGCHLD() error {
	var act kernelSigaction
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&act)), 8, 0, 0)
	if e != 0 {
		return fmt.Errorf("read SIGCHLD action: %w", e)
	}
	if act.handler == sigIGN || act.flags&saNoCldStop != 0 {
		return nil
	}
	act.flags |= saNoCldStop
	_, _, e = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	if e != 0 {
		return fmt.Errorf("set SA_NOCLDSTOP on SIGCHLD: %w", e)
	}
	return nil
}
