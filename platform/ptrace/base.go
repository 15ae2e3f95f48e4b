//go:build linux && amd64

package ptrace

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// A base file (platform.BaseMapper) is a second file that address spaces
// map read-only beside the memory file. Stubs started before the base was
// named do not have it, and new ones are started from the same spare
// machinery, so each stub opens it itself on its first MapBase: an
// injected openat of /proc/<sentry pid>/fd/<n>, the platform's duplicate,
// whose path is written into the stub's scratch page first. The open
// needs only what the stub's own exec needed (the sentry's /proc entry,
// same credentials); the descriptor it gets stays the stub's for its
// life.

var (
	_ platform.BaseMapper       = (*Platform)(nil)
	_ platform.BaseAddressSpace = (*addressSpace)(nil)
)

// SetBaseFile implements platform.BaseMapper.
func (p *Platform) SetBaseFile(fd int, populate bool) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return fmt.Errorf("ptrace: base file: dup fd %d: %w", fd, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released || p.baseFD > 0 {
		unix.Close(dup)
		return fmt.Errorf("ptrace: base file: %w", ErrBaseSet)
	}
	p.baseFD, p.basePopulate = dup, populate
	return nil
}

// basePath returns the path through which a stub opens the base file, or
// false if none was set.
func (p *Platform) basePath() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.baseFD <= 0 {
		return "", false
	}
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), p.baseFD), true
}

// populateBase reports whether MapBase populates (SetBaseFile).
func (p *Platform) populateBase() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.basePopulate
}

// MapBase implements platform.BaseAddressSpace.
func (a *addressSpace) MapBase(addr, offset, length uint64, at platform.AccessType, populate bool) error {
	if err := checkRange(addr, length); err != nil {
		return fmt.Errorf("ptrace: map base: %w", err)
	}
	if offset%pageSize != 0 || offset+length < offset {
		return fmt.Errorf("ptrace: map base: offset %#x: %w", offset, ErrBadRange)
	}
	at.Write = false
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.isReleased() {
		return fmt.Errorf("ptrace: map base: %w", ErrReleased)
	}
	fd, err := a.openBaseLocked()
	if err != nil {
		return err
	}
	// Populated if asked (SetBaseFile, and this call): the base's pages are all there (in the page
	// cache of the base file), and mapping them now spares the program a
	// host fault per first touch, as the prefault of a restore does; but
	// a restore that runs at once would wait for all of them, most of
	// which its program does not touch soon.
	flags := uint64(unix.MAP_SHARED | unix.MAP_FIXED)
	if populate && a.p.populateBase() {
		flags |= unix.MAP_POPULATE
	}
	call := stubCall{sysMmap, [6]uint64{addr, length, hostProt(at), flags, fd, offset}}
	if a.queuing() {
		a.pending = append(a.pending, call)
		a.mu.Lock()
		a.unwatchLocked(addr, addr+length)
		a.setMappingLocked(addr, addr+length, &at)
		a.mu.Unlock()
		return a.flushIfFullLocked()
	}
	got, err := a.syscall(call.nr, call.args)
	if err == nil && got != addr {
		err = fmt.Errorf("mmap returned %#x, want %#x", got, addr)
	}
	if err != nil {
		return fmt.Errorf("ptrace: map base [%#x, +%#x) at offset %#x %v in stub %d: %w", addr, length, offset, at, a.pid, err)
	}
	a.mu.Lock()
	a.unwatchLocked(addr, addr+length)
	a.setMappingLocked(addr, addr+length, &at)
	a.mu.Unlock()
	return nil
}

// openBaseLocked returns the stub's descriptor of the base file, opening
// it on first use.
//
// Preconditions: a.opMu is held.
func (a *addressSpace) openBaseLocked() (uint64, error) {
	if a.baseOpen {
		return a.baseInStub, nil
	}
	path, ok := a.p.basePath()
	if !ok {
		return 0, fmt.Errorf("ptrace: map base: %w", ErrNoBase)
	}
	// The table page holds a batch's table only from its flush, which
	// writes it, to its end, under opMu: the path may use it now, even
	// with calls queued.
	if len(path)+1 > len(a.table) {
		return 0, fmt.Errorf("ptrace: map base: path of %d bytes: %w", len(path), unix.ENAMETOOLONG)
	}
	copy(a.table, path)
	a.table[len(path)] = 0
	atFDCWD := uint64(0xffffffffffffff9c) // AT_FDCWD, -100
	fd, err := a.syscall(sysOpenat, [6]uint64{atFDCWD, stubTableAddr, unix.O_RDONLY | unix.O_CLOEXEC})
	// The program can read the table page: the host path is none of its
	// business.
	clear(a.table[:len(path)+1])
	if err != nil {
		return 0, fmt.Errorf("ptrace: map base: open %s in stub %d: %w", path, a.pid, err)
	}
	a.baseOpen, a.baseInStub = true, fd
	return fd, nil
}
