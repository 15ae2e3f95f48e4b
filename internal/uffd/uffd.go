//go:build linux

// Package uffd drives a Linux userfaultfd in write-protect mode over
// shared memory mappings (memfd, shmem): a write to a protected page
// stops the writing thread in the host kernel and is reported to a
// handler, which records it and lifts the protection (Unprotect), and
// the writer goes on. Protection is a bit in each page table entry, so
// protecting or unprotecting a page never splits the mapping, and the
// calls are made from any process that holds the descriptor, whichever
// process's memory it watches (the memory of the process that created
// it).
//
// Faults are delivered in synchronous mode (the writer waits for the
// handler), not with UFFD_FEATURE_WP_ASYNC: the kernel's dirty tracking
// must see a page before its first write after a pause to copy it aside
// (kernel.MemorySnapshot), which an asynchronous resolution hides.
package uffd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// The parts of linux/userfaultfd.h that golang.org/x/sys/unix lacks (it
// has the system call number only): ioctl numbers, flags and the layout
// of the structures they take, for x86-64.
const (
	uffdAPI = 0xaa // UFFD_API

	ioctlAPI          = 0xc018aa3f // UFFDIO_API, struct uffdio_api
	ioctlRegister     = 0xc020aa00 // UFFDIO_REGISTER, struct uffdio_register
	ioctlUnregister   = 0x8010aa01 // UFFDIO_UNREGISTER, struct uffdio_range
	ioctlWake         = 0x8010aa02 // UFFDIO_WAKE, struct uffdio_range
	ioctlWriteProtect = 0xc018aa06 // UFFDIO_WRITEPROTECT, struct uffdio_writeprotect

	// UserModeOnly (UFFD_USER_MODE_ONLY) is the creation flag that makes
	// a userfaultfd report faults of user mode only; an unprivileged
	// process may create one (vm.unprivileged_userfaultfd=0 allows no
	// other), and a write by the host kernel on the process's behalf to
	// a protected page fails (EFAULT) instead of waiting.
	UserModeOnly = 1

	featureWPShmem = 1 << 12 // UFFD_FEATURE_WP_HUGETLBFS_SHMEM

	registerModeWP   = 1 << 1 // UFFDIO_REGISTER_MODE_WP
	writeProtectMode = 1 << 0 // UFFDIO_WRITEPROTECT_MODE_WP

	ioctlBitWriteProtect = 1 << 0x06 // _UFFDIO_WRITEPROTECT in uffdio_register.ioctls

	eventPagefault = 0x12   // UFFD_EVENT_PAGEFAULT
	flagWP         = 1 << 1 // UFFD_PAGEFAULT_FLAG_WP

	msgSize  = 32 // sizeof(struct uffd_msg)
	pageSize = 4096
)

type uffdioRange struct{ start, length uint64 }

type uffdioAPIArg struct{ api, features, _ uint64 } // _: ioctls

type uffdioRegister struct {
	rng          uffdioRange
	mode, ioctls uint64
}

type uffdioWriteProtect struct {
	rng  uffdioRange
	mode uint64
}

// ErrUnsupported means the host kernel cannot write-protect shared memory
// with a userfaultfd (before Linux 5.19, or built without it).
var ErrUnsupported = errors.New("userfaultfd write protection of shared memory is not supported")

// FD is a userfaultfd set up for write protection, with a goroutine that
// reads its fault reports. Its methods may be called from any goroutine.
type FD struct {
	// f is the descriptor, non-blocking, read through the runtime's
	// poller; the ioctls go through f's raw connection, so that Close
	// never closes it under one. Immutable.
	f *os.File
	// onWrite is called, on the reader goroutine, with the page of each
	// write to a protected page; the writer waits until Unprotect or
	// Wake covers its page. Immutable.
	onWrite func(addr uint64)
	// closeOnce guards Close.
	closeOnce sync.Once
}

// Create makes a userfaultfd for the calling process's memory (flags
// O_CLOEXEC|O_NONBLOCK, and UserModeOnly where creating one without it is
// not allowed) and sets it up with Open.
func Create(onWrite func(addr uint64)) (*FD, error) {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if e == unix.EPERM {
		fd, _, e = unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|UserModeOnly, 0, 0)
	}
	if e != 0 {
		if e == unix.ENOSYS {
			return nil, fmt.Errorf("userfaultfd: %w", ErrUnsupported)
		}
		return nil, fmt.Errorf("userfaultfd: %w", e)
	}
	return Open(int(fd), onWrite)
}

// Open takes over fd, a userfaultfd nobody has set up yet (created in
// another process and fetched with pidfd_getfd, or by Create): it asks for
// write protection of shared memory (ErrUnsupported if the host lacks
// it) and starts reading its reports, calling onWrite with the page of
// each write to a protected page. On failure fd is closed.
func Open(fd int, onWrite func(addr uint64)) (*FD, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("userfaultfd: non-blocking: %w", err)
	}
	api := uffdioAPIArg{api: uffdAPI, features: featureWPShmem}
	if err := ioctl(uintptr(fd), ioctlAPI, &api); err != nil {
		unix.Close(fd)
		if err == unix.EINVAL {
			return nil, fmt.Errorf("userfaultfd: %w", ErrUnsupported)
		}
		return nil, fmt.Errorf("userfaultfd: UFFDIO_API: %w", err)
	}
	if api.features&featureWPShmem == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("userfaultfd: %w", ErrUnsupported)
	}
	u := &FD{f: os.NewFile(uintptr(fd), "userfaultfd"), onWrite: onWrite}
	go u.read()
	return u, nil
}

// read reports each write fault to onWrite until the descriptor is closed.
func (u *FD) read() {
	var buf [64 * msgSize]byte
	for {
		n, err := u.f.Read(buf[:])
		if err != nil {
			return // closed (os.ErrClosed); nothing else fails a read of whole messages
		}
		for m := buf[:n-n%msgSize]; len(m) >= msgSize; m = m[msgSize:] {
			// struct uffd_msg: event u8 at 0; pagefault's flags u64 at 8
			// and address u64 at 16.
			flags := binary.LittleEndian.Uint64(m[8:])
			addr := binary.LittleEndian.Uint64(m[16:])
			if m[0] == eventPagefault && flags&flagWP != 0 {
				u.onWrite(addr &^ (pageSize - 1))
			}
		}
	}
}

// Register watches [addr, addr+length) for writes to protected pages; it
// must be mapped shared (and may-write) in the watched process, and
// protects nothing yet.
func (u *FD) Register(addr, length uint64) error {
	arg := uffdioRegister{rng: uffdioRange{addr, length}, mode: registerModeWP}
	if err := do(u, ioctlRegister, &arg); err != nil {
		return fmt.Errorf("userfaultfd: register [%#x, +%#x): %w", addr, length, err)
	}
	if arg.ioctls&ioctlBitWriteProtect == 0 {
		u.Unregister(addr, length)
		return fmt.Errorf("userfaultfd: register [%#x, +%#x): %w", addr, length, ErrUnsupported)
	}
	return nil
}

// Unregister stops watching [addr, addr+length): its pages lose their
// protection, and writers waiting there go on.
func (u *FD) Unregister(addr, length uint64) error {
	r := uffdioRange{addr, length}
	if err := do(u, ioctlUnregister, &r); err != nil {
		return fmt.Errorf("userfaultfd: unregister [%#x, +%#x): %w", addr, length, err)
	}
	return nil
}

// Protect write-protects every page of [addr, addr+length), a registered
// range, those not in memory too: the next write to each is reported.
func (u *FD) Protect(addr, length uint64) error {
	arg := uffdioWriteProtect{rng: uffdioRange{addr, length}, mode: writeProtectMode}
	if err := do(u, ioctlWriteProtect, &arg); err != nil {
		return fmt.Errorf("userfaultfd: protect [%#x, +%#x): %w", addr, length, err)
	}
	return nil
}

// Unprotect lifts the protection of [addr, addr+length), a registered
// range, and wakes the writers waiting there.
func (u *FD) Unprotect(addr, length uint64) error {
	arg := uffdioWriteProtect{rng: uffdioRange{addr, length}}
	if err := do(u, ioctlWriteProtect, &arg); err != nil {
		return fmt.Errorf("userfaultfd: unprotect [%#x, +%#x): %w", addr, length, err)
	}
	return nil
}

// Wake wakes the writers waiting in [addr, addr+length) without changing
// its protection (for a range that is no longer registered: they fault
// again, and the host kernel resolves the fault as usual).
func (u *FD) Wake(addr, length uint64) error {
	r := uffdioRange{addr, length}
	if err := do(u, ioctlWake, &r); err != nil {
		return fmt.Errorf("userfaultfd: wake [%#x, +%#x): %w", addr, length, err)
	}
	return nil
}

// Close closes the descriptor: every range is unregistered (unless
// another process holds the descriptor too) and the reader returns soon.
// It does not wait for the reader, which may be in onWrite (and onWrite
// may take locks that Close's caller holds): onWrite may still be called
// for reports read before, and its calls on u fail.
func (u *FD) Close() {
	u.closeOnce.Do(func() { u.f.Close() })
}
