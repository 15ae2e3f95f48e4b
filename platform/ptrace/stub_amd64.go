//go:build linux && amd64

package ptrace

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Address space layout of a stub process (x86-64, 4-level paging):
//
//	0x0000_0000_0000 ┬──────────────────────────────┐
//	                 │ unusable (below mmap_min_addr)│
//	minUserAddress   ├──────────────────────────────┤
//	                 │ application mappings          │
//	                 │ (memory file, MAP_SHARED)     │
//	maxUserAddress = ├──────────────────────────────┤
//	stubBase         │ stub image, one page, r-x     │
//	stubScratch      ├──────────────────────────────┤
//	                 │ nothing (the set-up's scratch │
//	                 │ page until its last call)     │
//	stubTableAddr    ├──────────────────────────────┤
//	                 │ table page, r--, shared with  │
//	                 │ the sentry (stubTable)        │
//	                 ├──────────────────────────────┤
//	                 │ nothing (stack, vdso, vvar    │
//	                 │ unmapped after exec)          │
//	taskEnd          └──────────────────────────────┘
//
// stubBase lies below the range where Linux randomizes the initial stack
// (the top 16 GiB) so that exec never collides with it. Nothing the stub
// maps is writable: the application runs in the same address space (see
// stubTable).
const (
	minUserAddress = 0x1_0000
	stubBase       = 0x7ff0_0000_0000
	maxUserAddress = stubBase
	taskEnd        = 0x7fff_ffff_f000
	pageSize       = 0x1000
	stubScratch    = stubBase + pageSize
	stubTableAddr  = stubScratch + pageSize
)

// Offsets inside the stub image (which is mapped at stubBase from file
// offset 0, ELF header included).
const (
	stubSigactOff = 0x100 // struct kernel_sigaction{SIG_IGN, 0, 0, 0}
	stubNameOff   = 0x120 // "snap-stub\0", the name ps shows
	stubCodeOff   = 0x140 // start of the code below
)

// stubName is the stub's process name (PR_SET_NAME); without it ps would
// show the descriptor number it was executed from.
const stubName = "snap-stub"

// Entry points of the stub code, relative to stubCodeOff.
//
//	+0x00 syscallEntry:  syscall; int3
//	+0x04 cloneEntry:    syscall; test rax,rax; jz child; int3
//	+0x0c child:         prctl(PR_SET_PDEATHSIG, SIGKILL)
//	                     if getppid() != r15 { exit(0) }
//	               loop: pause(); jmp loop
//	+0x40 batchEntry:    for each of r13 entries of 7 words at r12
//	                     (number, six arguments): syscall, stop at
//	                     the first error; then int3
//
// The tracer of the stub's first thread injects a system call by setting
// rip to syscallEntry (or cloneEntry) and the arguments in registers, then
// PTRACE_CONT; the int3 after the syscall stops the thread again with
// SIGTRAP and rax holds the result. A thread created at cloneEntry resumes
// at the same instruction with rax = 0 and so takes the child branch: it
// arranges to die with its parent (r15 holds the parent's pid, set by the
// injector, so a child orphaned before prctl exits at once) and then
// sleeps in pause until a sentry thread seizes it.
//
// A batch (injectBatch) runs several system calls in one stop: the
// injector writes their table into the stub's table page (stubTable; a
// new stub's own set-up uses the scratch page, written with
// process_vm_writev, before any application code exists), sets r12 to it
// and r13 to the count, and continues the thread at batchEntry. At the int3, r13 is 0 if every call
// succeeded; otherwise r13 entries were left (the first of them failed)
// and rax holds its -errno.
const (
	stubSyscallEntry = stubBase + stubCodeOff + 0x00
	stubCloneEntry   = stubBase + stubCodeOff + 0x04
	stubBatchEntry   = stubBase + stubCodeOff + stubBatchOff
	stubEntry        = stubSyscallEntry + 2 // an int3; exec stops before it runs
)

// stubBatchOff is where batchEntry lies in the stub code.
const stubBatchOff = 0x40

// batchEntrySize is the size of one entry of a batch's table: the system
// call number and six arguments; batchMax entries fit the scratch page.
const (
	batchEntrySize = 7 * 8
	batchMax       = pageSize / batchEntrySize
)

var stubCode = []byte{
	// +0x00 syscallEntry
	0x0f, 0x05, // syscall
	0xcc, // int3
	0xcc, // int3 (padding)
	// +0x04 cloneEntry
	0x0f, 0x05, // syscall
	0x48, 0x85, 0xc0, // test rax, rax
	0x74, 0x01, // jz child
	0xcc, // int3
	// +0x0c child
	0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax, SYS_prctl (157)
	0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, PR_SET_PDEATHSIG (1)
	0xbe, 0x09, 0x00, 0x00, 0x00, // mov esi, SIGKILL (9)
	0x0f, 0x05, // syscall
	0xb8, 0x6e, 0x00, 0x00, 0x00, // mov eax, SYS_getppid (110)
	0x0f, 0x05, // syscall
	0x4c, 0x39, 0xf8, // cmp rax, r15
	0x75, 0x09, // jne die
	// loop:
	0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, SYS_pause (34)
	0x0f, 0x05, // syscall
	0xeb, 0xf7, // jmp loop
	// die:
	0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, SYS_exit (60)
	0x31, 0xff, // xor edi, edi
	0x0f, 0x05, // syscall
	0xcc,                   // int3
	0xcc, 0xcc, 0xcc, 0xcc, // int3 (padding to stubBatchOff)
	// +0x40 batchEntry
	0x49, 0x8b, 0x04, 0x24, // loop: mov rax, [r12]
	0x49, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [r12+8]
	0x49, 0x8b, 0x74, 0x24, 0x10, // mov rsi, [r12+16]
	0x49, 0x8b, 0x54, 0x24, 0x18, // mov rdx, [r12+24]
	0x4d, 0x8b, 0x54, 0x24, 0x20, // mov r10, [r12+32]
	0x4d, 0x8b, 0x44, 0x24, 0x28, // mov r8, [r12+40]
	0x4d, 0x8b, 0x4c, 0x24, 0x30, // mov r9, [r12+48]
	0x0f, 0x05, // syscall
	0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, // cmp rax, -4095
	0x73, 0x09, // jae done
	0x49, 0x83, 0xc4, 0x38, // add r12, 56
	0x49, 0xff, 0xcd, // dec r13
	0x75, 0xcb, // jnz loop
	0xcc, // done: int3
}

// ELF constants used by buildStubImage.
const (
	stubPhnum      = 3 // the code, the scratch page, the stack's flags
	elfHeaderSize  = 64
	elfPhdrSize    = 56
	elfPTLoad      = 1
	elfPTGNUStack  = 0x6474e551
	elfPFX         = 1
	elfPFW         = 2
	elfPFR         = 4
	elfETExec      = 2
	elfEMX8664     = 62
	elfClass64     = 2
	elfData2LSB    = 1
	elfVersionCurr = 1
)

// buildStubImage returns the stub executable: a static ELF64 with one
// read-execute PT_LOAD of its whole file at stubBase, a read-write
// anonymous PT_LOAD of the scratch page and a non-executable PT_GNU_STACK. It has no sections and no interpreter; the image is a few
// hundred bytes and deterministic.
func buildStubImage() []byte {
	img := make([]byte, stubCodeOff+len(stubCode))
	le := binary.LittleEndian

	// ELF header.
	copy(img[0:], []byte{0x7f, 'E', 'L', 'F', elfClass64, elfData2LSB, elfVersionCurr})
	le.PutUint16(img[16:], elfETExec)
	le.PutUint16(img[18:], elfEMX8664)
	le.PutUint32(img[20:], elfVersionCurr)
	le.PutUint64(img[24:], stubEntry)
	le.PutUint64(img[32:], elfHeaderSize) // e_phoff
	le.PutUint64(img[40:], 0)             // e_shoff
	le.PutUint32(img[48:], 0)             // e_flags
	le.PutUint16(img[52:], elfHeaderSize)
	le.PutUint16(img[54:], elfPhdrSize)
	le.PutUint16(img[56:], stubPhnum)
	le.PutUint16(img[58:], 64)
	le.PutUint16(img[60:], 0)
	le.PutUint16(img[62:], 0)

	// PT_LOAD: the whole file, r-x, at stubBase.
	ph := img[elfHeaderSize:]
	le.PutUint32(ph[0:], elfPTLoad)
	le.PutUint32(ph[4:], elfPFR|elfPFX)
	le.PutUint64(ph[8:], 0)
	le.PutUint64(ph[16:], stubBase)
	le.PutUint64(ph[24:], stubBase)
	le.PutUint64(ph[32:], uint64(len(img)))
	le.PutUint64(ph[40:], uint64(len(img)))
	le.PutUint64(ph[48:], pageSize)

	// PT_LOAD: the scratch page, rw-, anonymous (no file bytes), which
	// the exec maps: the batch that strips the stub down uses it, and
	// unmaps it last.
	ph = img[elfHeaderSize+elfPhdrSize:]
	le.PutUint32(ph[0:], elfPTLoad)
	le.PutUint32(ph[4:], elfPFR|elfPFW)
	le.PutUint64(ph[16:], stubScratch)
	le.PutUint64(ph[24:], stubScratch)
	le.PutUint64(ph[40:], pageSize) // p_memsz; p_filesz is 0
	le.PutUint64(ph[48:], pageSize)

	// PT_GNU_STACK: rw-, so the kernel does not imply exec for reads.
	ph = img[elfHeaderSize+2*elfPhdrSize:]
	le.PutUint32(ph[0:], elfPTGNUStack)
	le.PutUint32(ph[4:], elfPFR|elfPFW)
	le.PutUint64(ph[48:], 16)

	// struct kernel_sigaction for rt_sigaction(SIGCHLD, SIG_IGN).
	le.PutUint64(img[stubSigactOff:], 1) // SIG_IGN

	copy(img[stubNameOff:], stubName)

	copy(img[stubCodeOff:], stubCode)
	return img
}

// userCS and userSS are the x86-64 user code and stack selectors Linux
// uses for 64-bit processes.
const (
	userCS = 0x33
	userSS = 0x2b
)

// Syscall numbers injected into the stub.
const (
	sysMmap        = unix.SYS_MMAP
	sysMunmap      = unix.SYS_MUNMAP
	sysMadvise     = unix.SYS_MADVISE
	sysMprotect    = unix.SYS_MPROTECT
	sysClone       = unix.SYS_CLONE
	sysRtSigaction = unix.SYS_RT_SIGACTION
	sysPrctl       = unix.SYS_PRCTL
	sysOpenat      = unix.SYS_OPENAT
	sysCloseRange  = unix.SYS_CLOSE_RANGE
	sysSeccomp     = unix.SYS_SECCOMP
	// Stub threads share the leader's memory and descriptor table (a base
	// file opened through any of them serves them all).
	cloneThreadFlag = unix.CLONE_VM | unix.CLONE_FILES | uint64(unix.SIGCHLD)
)
