//go:build linux && amd64

package ptrace

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The stub's seccomp filter. The program's own system calls never reach
// it: PTRACE_SYSEMU stops each at its entry, before seccomp, and the host
// skips it. What the stub executes natively is what the sentry injects (and
// the few calls of a new stub thread's code), so the filter allows exactly
// those and kills the stub for anything else. It bounds what a way around
// the stub's other defences (its read-only pages, registers set by the
// sentry; see stubTable) could do to the host: map and unmap memory in the
// stub's own address space, and not much else.
//
// Allowed, installed as the last step but one of a new stub's set-up (so
// its own earlier calls, rt_sigaction, PR_SET_NAME and close_range, need
// no entry):
//   - mmap, munmap, mprotect, madvise: the sentry's mapping changes;
//   - clone with exactly the flags of a stub thread (cloneThreadFlag);
//   - openat of the path in the table page, read-only: the base file;
//   - userfaultfd and close: a write watch's descriptor, made and closed;
//   - prctl(PR_SET_PDEATHSIG, SIGKILL), getppid, pause and exit: a new
//     stub thread's code.

// Offsets of the filter program in the table page when the set-up batch
// installs it (later batches overwrite it: the host copies a filter when it
// is installed).
const (
	stubFilterProgOff = 2048 // struct sock_fprog
	stubFilterOff     = stubFilterProgOff + 16
)

// bpf instruction helpers.
func bpfStmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

func bpfJump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// seccomp_data offsets.
const (
	seccompNrOff   = 0
	seccompArchOff = 4
	seccompArgsOff = 16
)

// stubFilter returns the stub's filter program.
func stubFilter() []unix.SockFilter {
	const (
		ld   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		kill = unix.SECCOMP_RET_KILL_PROCESS
		ok   = unix.SECCOMP_RET_ALLOW
	)
	// argLo and argHi load the low and high 32 bits of argument i.
	argLo := func(i int) unix.SockFilter { return bpfStmt(ld, uint32(seccompArgsOff+8*i)) }
	argHi := func(i int) unix.SockFilter { return bpfStmt(ld, uint32(seccompArgsOff+8*i+4)) }
	var p []unix.SockFilter
	p = append(p,
		bpfStmt(ld, seccompArchOff),
		bpfJump(jeq, unix.AUDIT_ARCH_X86_64, 1, 0),
		bpfStmt(ret, kill),
		bpfStmt(ld, seccompNrOff),
	)
	for _, nr := range []uint32{unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MPROTECT, unix.SYS_MADVISE,
		unix.SYS_USERFAULTFD, unix.SYS_CLOSE, unix.SYS_GETPPID, unix.SYS_PAUSE, unix.SYS_EXIT} {
		p = append(p, bpfJump(jeq, nr, 0, 1), bpfStmt(ret, ok))
	}
	// Calls allowed with fixed arguments, each a block: the number (else
	// past the block), then for each argument its low and high halves
	// (else to the kill after the allow), the allow, the kill, and the
	// number loaded again. A jump counts from the next instruction.
	type arg struct {
		i int
		v uint64
	}
	for _, c := range []struct {
		nr   uint32
		args []arg
	}{
		{unix.SYS_CLONE, []arg{{0, cloneThreadFlag}}},
		{unix.SYS_PRCTL, []arg{{0, unix.PR_SET_PDEATHSIG}, {1, uint64(unix.SIGKILL)}}},
		{unix.SYS_OPENAT, []arg{{1, stubTableAddr}, {2, unix.O_RDONLY | unix.O_CLOEXEC}}},
	} {
		checks := 4 * len(c.args)
		p = append(p, bpfJump(jeq, c.nr, 0, uint8(checks+2)))
		for k, a := range c.args {
			left := checks - 4*k // instructions from this argument's first to the allow
			p = append(p,
				argLo(a.i), bpfJump(jeq, uint32(a.v), 0, uint8(left-1)),
				argHi(a.i), bpfJump(jeq, uint32(a.v>>32), 0, uint8(left-3)))
		}
		p = append(p, bpfStmt(ret, ok), bpfStmt(ret, kill), bpfStmt(ld, seccompNrOff))
	}
	return append(p, bpfStmt(ret, kill))
}

// putStubFilter writes the filter program and its struct sock_fprog into
// the table page at stubFilterProgOff, as the stub will see them.
func putStubFilter(table stubTable) {
	prog := stubFilter()
	le := binary.LittleEndian
	le.PutUint16(table[stubFilterProgOff:], uint16(len(prog)))
	le.PutUint64(table[stubFilterProgOff+8:], stubTableAddr+stubFilterOff)
	for i, f := range prog {
		b := table[stubFilterOff+8*i:]
		le.PutUint16(b, f.Code)
		b[2], b[3] = f.Jt, f.Jf
		le.PutUint32(b[4:], f.K)
	}
}
