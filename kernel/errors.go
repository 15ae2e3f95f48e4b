package kernel

import "errors"

// Sentinel errors of package kernel. Callers test them with errors.Is; the
// returned errors wrap them with what failed.
var (
	// ErrNoExec means a program cannot be executed (ENOEXEC): not an ELF
	// file nor a "#!" script, the wrong architecture or ELF type, a
	// malformed header, or a "#!" line that names no interpreter.
	ErrNoExec = errors.New("exec format error")

	// ErrNoMemory means the memory file or an address space ran out of room.
	ErrNoMemory = errors.New("out of memory")

	// ErrBadAddress means an access to application memory hit an address
	// that is unmapped or lacks the needed permission. Syscalls turn it into
	// EFAULT.
	ErrBadAddress = errors.New("bad address")

	// ErrBusError means an access hit a page of a shared file mapping
	// past the end of its file: the task gets SIGBUS (BUS_ADRERR).
	ErrBusError = errors.New("access past the end of a mapped file")

	// ErrArgListTooLong means argv and envp do not fit on the initial
	// stack (E2BIG).
	ErrArgListTooLong = errors.New("argument list too long")

	// ErrBadCwd means the initial working directory asked for cannot be
	// entered inside the root (missing, not a directory, not searchable).
	ErrBadCwd = errors.New("cannot enter working directory")

	// ErrExited means an operation needed a running kernel or task that has
	// already exited.
	ErrExited = errors.New("kernel exited")

	// ErrBadLimit means a sandbox limit (Limits) is out of range.
	ErrBadLimit = errors.New("bad sandbox limit")

	// ErrAddressSpace means the platform failed to change an address
	// space (map, unmap or change the access of memory a vma describes):
	// a failure of the sentry, never of the program, which the program
	// may see as EIO or as a signal at its next touch of the memory.
	ErrAddressSpace = errors.New("platform address space failure")
)

// errorsIsAny reports whether err matches any of targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
