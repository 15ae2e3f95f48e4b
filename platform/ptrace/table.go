//go:build linux && amd64

package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// stubTable is the page a stub reads the sentry's data from while it runs
// injected code: the table of a batch (injectBatch) and the path of the
// base file (openBaseLocked). The sentry maps it writable; the stub maps
// it read-only and shared at stubTableAddr.
//
// The application runs in the stub's address space, so it can write any
// page the stub maps writable, from any of its threads, while the stub
// runs a batch for another (a fork's remaps, a write watch, a lazy load's
// remaps all run while the process's other threads run). A table in such
// a page could be rewritten between the sentry's write and the stub's
// read, and the stub would then run host system calls of the
// application's choosing. The stub therefore reads nothing but registers,
// its code and this page, which no host system call the application can
// make reaches: its memfd is sealed against new writable mappings before
// the stub gets it, and the stub closes its descriptor at once.
type stubTable []byte

// newStubTable makes a table page: its memfd, which the caller passes to
// a new stub as stubTableFDInStub and then closes, and the sentry's
// mapping of it.
func newStubTable() (stubTable, int, error) {
	fd, err := unix.MemfdCreate("snap-stub-table", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, -1, fmt.Errorf("memfd_create for a stub's table page: %w", err)
	}
	if err := unix.Ftruncate(fd, pageSize); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("size a stub's table page: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("map a stub's table page: %w", err)
	}
	// F_SEAL_FUTURE_WRITE keeps the mapping above writable and refuses
	// every writable mapping and write made from now on, the stub's
	// included.
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_FUTURE_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, -1, fmt.Errorf("seal a stub's table page: %w", err)
	}
	return stubTable(mem), fd, nil
}

// release unmaps the sentry's mapping of the table. The stub's own
// mapping goes with the stub.
func (t stubTable) release() {
	if t != nil {
		unix.Munmap(t)
	}
}
