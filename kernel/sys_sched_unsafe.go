package kernel

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSchedGetaffinity is the sentry's own sched_getaffinity(0, buf): unlike
// unix.SchedGetaffinity it returns the size of the host kernel's CPU mask.
func rawSchedGetaffinity(buf []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_SCHED_GETAFFINITY, 0, uintptr(len(buf)), uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// hostRRInterval is the sentry's own sched_rr_get_interval(0), in
// nanoseconds.
func hostRRInterval() (int64, error) {
	var ts unix.Timespec
	if _, _, errno := unix.RawSyscall(unix.SYS_SCHED_RR_GET_INTERVAL, 0, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, errno
	}
	return ts.Nano(), nil
}
