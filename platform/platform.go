// Package platform defines how application code executes: address spaces
// into which ranges of the sandbox's MemoryFile are mapped, and contexts
// that run one application thread in an address space until it needs the
// kernel. It holds interfaces, sentinel errors and a registry only;
// implementations live in platform/<name> (platform/ptrace) and never import
// the kernel.
//
// Vocabulary:
//
//   - The memory file is one host file (a memfd owned by the sentry) that
//     holds all application memory. A Platform is created for one memory
//     file and maps offsets of that file only.
//   - An AddressSpace is one application address space (one mm_struct in
//     Linux terms). Mappings are MAP_SHARED views of memory file ranges.
//   - A Context is one application thread's execution vehicle. The kernel
//     keeps the thread's registers in a State and hands them to Switch.
//
// Lifecycle: Lookup(name) gives a Constructor; New makes a Platform for a
// memory file; NewAddressSpace and NewContext make the rest. Everything is
// released explicitly; after Platform.Release nothing it made may be used.
// A platform leaks no host process or thread even when the sentry is killed.
package platform

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// AccessType is a set of memory access permissions.
type AccessType struct {
	Read, Write, Execute bool
}

// Common access types.
var (
	NoAccess  = AccessType{}
	Read      = AccessType{Read: true}
	ReadWrite = AccessType{Read: true, Write: true}
	AnyAccess = AccessType{Read: true, Write: true, Execute: true}
)

func (a AccessType) String() string {
	b := []byte("---")
	if a.Read {
		b[0] = 'r'
	}
	if a.Write {
		b[1] = 'w'
	}
	if a.Execute {
		b[2] = 'x'
	}
	return string(b)
}

// Registers is the x86-64 general register file in the layout of Linux's
// struct user_regs_struct. At a syscall stop, OrigRax holds the syscall
// number, Rip points after the syscall instruction and the kernel writes the
// result to Rax before the next Switch.
type Registers struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8 uint64
	Rax, Rcx, Rdx, Rsi, Rdi, OrigRax               uint64
	Rip, Cs, Eflags, Rsp, Ss                       uint64
	FsBase, GsBase                                 uint64
	Ds, Es, Fs, Gs                                 uint64
}

// State is an application thread's CPU state as the kernel keeps it.
type State struct {
	Regs Registers

	// FP is the floating point and vector state in the XSAVE layout (its
	// first 512 bytes are the FXSAVE legacy area). A nil FP means the
	// initial state of a new process.
	FP []byte

	// FPInContext is set by Switch when it left the thread's floating
	// point state in the context instead of reading it into FP, which is
	// then out of date: most system calls never look at it, and reading
	// it is one more host system call per Switch. Context.FetchFP brings
	// it into FP and clears the flag; the next Switch continues from the
	// state in the context. Whoever replaces FP (an exec, a sigreturn)
	// clears the flag, and Switch then loads FP.
	FPInContext bool
}

// SignalInfo describes why Switch returned ErrFault or ErrSignal, in the
// terms of Linux's siginfo_t.
type SignalInfo struct {
	Signo int32
	Code  int32
	// Addr is the faulting address for SIGSEGV and SIGBUS.
	Addr uint64
}

// Sentinel errors returned by Context.Switch. Switch returns nil when the
// application made a syscall, and otherwise exactly one of these, possibly
// wrapped (test with errors.Is). The kernel treats any other error as a
// platform failure that kills the task loudly.
var (
	// ErrInterrupted means Interrupt was called before or during Switch.
	ErrInterrupted = errors.New("platform: context interrupted")
	// ErrFault means a memory access faulted; the SignalInfo holds the
	// address and Access the attempted access (it may be approximate: a
	// write fault can be reported as read if the hardware did not say).
	ErrFault = errors.New("platform: memory fault")
	// ErrSignal means the application raised a synchronous signal other
	// than a memory fault (SIGILL, SIGFPE, SIGTRAP, SIGBUS without an
	// address...); SignalInfo says which.
	ErrSignal = errors.New("platform: synchronous signal")
)

// Platform makes address spaces and contexts for one memory file.
type Platform interface {
	// NewAddressSpace returns an empty address space.
	NewAddressSpace() (AddressSpace, error)

	// NewContext returns a context that can run application threads.
	NewContext() (Context, error)

	// MinUserAddress and MaxUserAddress bound the addresses the kernel may
	// map into an address space: [MinUserAddress, MaxUserAddress). Whatever
	// the platform itself needs in the address space (its stub) lies
	// outside that range.
	MinUserAddress() uint64
	MaxUserAddress() uint64

	// Release frees every host resource of the platform, including all
	// address spaces and contexts it made.
	Release()
}

// AddressSpace is one application address space.
type AddressSpace interface {
	// MapFile maps length bytes of the memory file starting at offset at
	// addr with the given access, replacing whatever was there. addr,
	// offset and length are page aligned. If precommit, the pages are
	// populated now rather than on first touch.
	MapFile(addr, offset, length uint64, at AccessType, precommit bool) error

	// Unmap removes all mappings in [addr, addr+length).
	Unmap(addr, length uint64) error

	// Release frees the address space; it must not be used afterwards.
	Release()
}

// Protector is implemented by address spaces that can change the access
// of mapped ranges without replacing the mappings (mprotect keeps the
// pages that are mapped, MapFile drops them). The kernel write-protects
// memory with it to learn which pages the application writes (dirty
// tracking); without it, it uses MapFile.
type Protector interface {
	// Protect sets the access of the mapped range [addr, addr+length),
	// page aligned, to at. Every page of it must be mapped.
	Protect(addr, length uint64, at AccessType) error
}

// WriteWatcher is implemented by address spaces that can write-protect
// memory page by page without changing the access of their mappings
// (Linux's userfaultfd on the memory file's shared mappings): a write to
// a protected page waits until the kernel's handler has recorded it and
// lifted the protection, and no mapping is split or replaced, so that
// protecting memory again costs a call per range written, not per
// mapping. The kernel tracks written pages with it where it can, with
// Protector elsewhere.
type WriteWatcher interface {
	// WatchWrites readies the address space to watch writes: from now on
	// onWrite is called, on a goroutine of the platform's, with the page
	// of each write to a protected page, and must lift that page's
	// protection (Unprotect) for the writer to go on. Later calls do
	// nothing and return the first one's error; ErrWatchUnsupported if
	// the host cannot.
	WatchWrites(onWrite func(addr uint64)) error

	// WriteProtect protects every page of [addr, addr+length), mapped from
	// the memory file by MapFile (with any access), whether the page is in
	// memory or not; the part not watched yet (Watched) is made watched
	// first. Protecting a range whose pages were never written since
	// costs a walk of its page tables.
	WriteProtect(addr, length uint64) error

	// Unprotect lifts the protection of [addr, addr+length), a watched
	// range, and wakes the writers waiting there.
	Unprotect(addr, length uint64) error

	// Watched reports whether every page of [addr, addr+length) is
	// watched: given to WriteProtect since the MapFile, MapBase or Unmap
	// that last changed it.
	Watched(addr, length uint64) bool

	// UnwatchAll lifts every protection and stops watching every range
	// (which costs a walk of their page tables); WriteProtect may watch
	// them again.
	UnwatchAll()
}

// ErrWatchUnsupported means an address space cannot watch writes
// (WriteWatcher): the host kernel lacks userfaultfd write protection of
// shared memory, or forbids it.
var ErrWatchUnsupported = errors.New("platform: write watching is not supported")

// BaseMapper is implemented by platforms whose address spaces can also
// map a second file besides the memory file: a base, read-only, that a
// restored memory file starts as a copy-on-write view of (the members of
// a cold-start pool share one). SetBaseFile names it once, before any
// MapBase; the platform keeps its own duplicate of fd. MapBase maps
// length bytes of the base at offset at addr, as MapFile does, never
// writable (a write faults, and the kernel copies the page into the
// memory file), its pages populated now if SetBaseFile's and MapBase's
// populate are both set (a pool member, mapped while it waits), else
// mapped by the host on first touch (a restore about to run, which would
// wait for every page, or pages that a member copies before it runs and
// so never reads from the base).
type BaseMapper interface {
	SetBaseFile(fd int, populate bool) error
}

// BaseAddressSpace is implemented by the address spaces of a BaseMapper.
type BaseAddressSpace interface {
	MapBase(addr, offset, length uint64, at AccessType, populate bool) error
}

// ThreadReleaser is implemented by a Platform whose contexts tie host state
// to the OS thread that ran them (a tracer thread).
type ThreadReleaser interface {
	// ReleaseThread is called by a goroutine locked to its OS thread
	// whose contexts are released, before it unlocks the thread. It
	// reports whether the thread may go back to the Go runtime (to run
	// other goroutines, and later another task): true when nothing of
	// the platform that still runs is tied to it, after it undid what
	// the platform set on the thread (its CPU affinity). On false the
	// caller keeps the thread locked, so that it ends with the goroutine.
	ReleaseThread() bool
}

// Context runs application threads. A Context is used by one goroutine at a
// time, and that goroutine must have locked its OS thread
// (runtime.LockOSThread) for as long as it uses the context.
type Context interface {
	// Switch runs the application thread whose state is st in as until it
	// makes a syscall (returns nil), faults (ErrFault, with info and access
	// filled), raises a synchronous signal (ErrSignal, with info filled) or
	// is interrupted (ErrInterrupted). On return st.Regs holds the thread's
	// registers at that point, and st.FP its floating point state unless
	// Switch set st.FPInContext (see FetchFP).
	Switch(as AddressSpace, st *State, info *SignalInfo, access *AccessType) error

	// FetchFP reads the floating point state that Switch left in the
	// context into st.FP and clears st.FPInContext; it does nothing if the
	// flag is clear. It must be called by the goroutine that ran the
	// Switch, on the same OS thread, before anything reads st.FP or the
	// state moves elsewhere (a save, another address space, another OS
	// thread). If it fails, the state is lost (the host thread that held
	// it is gone) and the application thread cannot continue.
	FetchFP(st *State) error

	// Interrupt makes the current Switch, or the next one if none is
	// running, return ErrInterrupted soon. It may be called from any
	// goroutine.
	Interrupt()

	// Release frees the context.
	Release()
}

// StubClocked is implemented by contexts that run each application thread
// in a host process of its own (a stub thread, platform/ptrace), whose CPU
// clock then measures the thread's time in the application.
type StubClocked interface {
	// NotifyStub sets fn, which Switch calls before it first runs the
	// application on a host process other than the one it last reported,
	// with that process's pid and its CPU clock (CPUCLOCK_SCHED, in
	// nanoseconds) at that moment: what the clock shows beyond that value
	// is the application's time (and that of the few system calls the
	// platform later makes there on its behalf). fn runs on the goroutine
	// that called Switch, holding none of the locks Interrupt takes. Call
	// NotifyStub before the first Switch; fn may be nil.
	NotifyStub(fn func(pid int, cpu int64))
}

// Renewer is implemented by address spaces whose host resources (a host
// process) an empty address space can take over, sparing an exec the
// making of new ones. Renew returns that new address space. Until the
// receiver is released, the receiver works as before and nothing the new
// one is given takes effect; the receiver's Release hands its resources
// over, with every one of its mappings removed, and from then on the new
// address space works as any other. Releasing the new one first cancels
// the handover (the receiver keeps its resources). Nothing may run in the
// new address space before the receiver is released, and between Renew
// and that Release only the caller may use either. Renew fails if the
// receiver was released or renewed already.
type Renewer interface {
	Renew() (AddressSpace, error)
}

// Batcher is implemented by address spaces that can make a group of
// mapping changes in one go. Between BeginBatch and EndBatch, MapFile and
// Unmap may take effect only at EndBatch (or earlier), so an application
// thread that runs meanwhile in the address space may still see the old
// mappings: the caller uses it only where that is allowed, as for the
// changes a fork makes while other threads of the parent run. EndBatch
// makes every change and reports the first failure.
type Batcher interface {
	BeginBatch()
	EndBatch() error
}

// Counted is implemented by platforms that count the host work they do,
// for diagnostics (`snap run --timings`).
type Counted interface {
	// Counts returns named counts since the platform was made, in a fixed
	// order. It may be called from any goroutine.
	Counts() []Count
}

// Count is one named count of a Counted platform.
type Count struct {
	Name  string
	Value uint64
}

// Options configure a new Platform.
type Options struct {
	// MemoryFD is the host descriptor of the memory file. The platform
	// duplicates what it needs; the caller keeps ownership of MemoryFD.
	MemoryFD int
}

// Constructor makes a Platform.
type Constructor func(Options) (Platform, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Constructor{}
)

// Register makes a platform available under name. It panics if name is
// taken: registration happens in init functions, where a duplicate is a
// programming error.
func Register(name string, c Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("platform %q registered twice", name))
	}
	registry[name] = c
}

// Lookup returns the constructor registered under name.
func Lookup(name string) (Constructor, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	c, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown platform %q (have %v)", name, namesLocked())
	}
	return c, nil
}

func namesLocked() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
