package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"snapshotter/internal/prereq"
)

// A cCase runs testdata/c/<prog>.c, built with each libc. Its knownBroken key
// is "<libc>/<name>".
type cCase struct {
	name string
	prog string
	spec spec
	// setup, if set, creates files in dir and completes the spec (arguments
	// naming those files, lines derived from their contents).
	setup func(t *testing.T, dir string, s *spec)
	// zdtm says where the zdtm mode saves the program (zdtm_test.go).
	zdtm zdtmSpec
}

func exitCase(name string, args []string, status int, want ...string) cCase {
	return cCase{name: name, prog: "exit", spec: spec{args: args, status: status, want: want}, zdtm: zdtmSpec{fast: true}}
}

var cCases = []cCase{
	{name: "hello", prog: "hello", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{"hello, world"}}},
	{name: "auxv", prog: "auxv", zdtm: zdtmSpec{fast: true}, spec: spec{
		args: []string{"one", "two words", ""},
		env:  []string{"E2E_VAR=a value with spaces"},
		want: []string{
			"argc=4", "argv[1]=one", "argv[2]=two words", "argv[3]=", "argv[argc]==NULL: yes",
			"env[5]=E2E_VAR=a value with spaces", "envp==argv+argc+1: yes", "environ==envp: yes",
			"AT_PAGESZ=4096", "AT_RANDOM present: yes, 16 bytes not all zero: yes",
			"AT_PHDR==ehdr+e_phoff: yes", "AT_PHENT=56", "AT_ENTRY==_start: yes", "AT_BASE=0",
			"AT_UID==getuid: yes", "AT_EUID==geteuid: yes", "AT_GID==getgid: yes", "AT_EGID==getegid: yes",
			"AT_SECURE=0",
		},
	}},
	{name: "hostfile", prog: "hostfile", zdtm: zdtmSpec{fast: true}, setup: setupHostFile},
	// Natively in a fresh host directory; under snap in a tmpfs mounted
	// there (--tmpfs), which hides the host directory and leaves it alone.
	{name: "fsops", prog: "fsops", zdtm: zdtmSpec{fast: true}, setup: setupTmpfsDir, spec: spec{want: []string{
		"create f: ok",
		"size 104, read 104, zeros in the hole 88, tail tail",
		"renameat2 EXCHANGE a b: ok",
		"after unlink: nlink 0, read still here, write 1",
		"linkat AT_EMPTY_PATH: ok",
		"punch hole: ok, bytes ab0000gh",
		"cleanup: ok",
	}}},
	{name: "boundary", prog: "boundary", spec: spec{args: []string{"sentry"}, want: []string{
		"/dev/null: write all yes, read EOF yes",
		"/dev/zero: zeros yes",
		"cpu/online readable yes, count == affinity count yes",
		"/proc lists the process: yes, self: yes",
		"/proc/self -> pid: yes",
		"/proc/self is a directory: yes",
		"/proc/self lists status: yes, fd: yes",
		"/proc/self/fd lists a new descriptor: yes",
		"/proc/<pid>/fd/<fd> is a link to /dev/null: yes, yes",
		"statfs: /proc/self/status on procfs: yes, cpu/online on sysfs: yes",
		"chdir /proc/self: yes, comm there: boundary",
	}}},
	{name: "mem", prog: "mem", spec: spec{want: []string{
		"mmap 64 MiB: zero: yes",
		"read-only: same sum: yes",
		"writable again: verify: yes",
		"mremap 64->128 MiB: old part verify: yes, new part zero: yes",
		"MAP_FIXED into hole: zero: yes, neighbours verify: yes yes",
		"MADV_DONTNEED: zero: yes, rest kept: yes",
		"mremap shrink: verify: yes",
		"brk shrink+regrow: kept part verify: yes, regrown part zero: yes",
	}}},
	{name: "sigtimer-itimer", prog: "sigtimer", spec: spec{args: []string{"itimer"}, want: []string{
		"getitimer: interval 5000 us, armed: yes", "ticks >= 20: yes", "disarmed: yes",
		"spun in user mode: yes", "handler saw only SIGALRM: yes",
	}}},
	{name: "sigtimer-alarm", prog: "sigtimer", spec: spec{args: []string{"alarm"}, want: []string{
		"first alarm() returned 0", "alarm(0) returned remaining 9..10: yes", "alarm fired while spinning: yes",
	}}},
	{name: "sigsegv", prog: "sigsegv", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"null write 3: caught SIGSEGV, SEGV_MAPERR, si_addr matches: yes, SIGSEGV unblocked after siglongjmp: yes",
		"write to PROT_READ: caught SIGSEGV, SEGV_ACCERR, si_addr matches: yes, SIGSEGV unblocked after siglongjmp: yes",
		"read of PROT_NONE: caught SIGSEGV, SEGV_ACCERR, si_addr matches: yes, SIGSEGV unblocked after siglongjmp: yes",
		"read of unmapped page: caught SIGSEGV, SEGV_MAPERR, si_addr matches: yes, SIGSEGV unblocked after siglongjmp: yes",
		"handled 6 faults",
	}}},
	{name: "sigaltstack-raise", prog: "sigaltstack", zdtm: zdtmSpec{fast: true}, spec: spec{args: []string{"raise"}, want: []string{
		"handler ran: yes, on alt stack: yes, SS_ONSTACK inside: yes",
		"SS_ONSTACK after return: no",
		"after SS_DISABLE: handler ran: yes, on alt stack: no",
	}}},
	{name: "sigaltstack-overflow", prog: "sigaltstack", zdtm: zdtmSpec{fast: true}, spec: spec{args: []string{"overflow"}, want: []string{
		"stack overflow caught: yes, handler on alt stack: yes",
	}}},
	{name: "sigblock", prog: "sigblock", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"raised 3x while blocked: handler count 0, sigpending SIGUSR1 yes, SIGUSR2 no",
		"unblocked: handler count 1, still pending no",
		"kill(getpid(), SIGUSR2) while blocked: handler count 0, pending yes",
		"SIGRTMIN+1 values: 100 101 102",
		"SIGRTMIN+0 values: 200 201 202",
		"unblock three at once: counts SIGUSR1 2 SIGUSR2 2 SIGRTMIN 4",
		"sigsuspend: returned -1 EINTR yes, handler ran: yes, SIGUSR2 blocked again: yes",
		"block all: SIGKILL blocked no, SIGSTOP blocked no, SIGTERM blocked yes",
	}}},
	exitCase("exit-0", []string{"0"}, 0, "exit: 0", "buffered line flushed by exit"),
	exitCase("exit-1", []string{"1"}, 1, "exit: 1", "buffered line flushed by exit"),
	exitCase("exit-42", []string{"42"}, 42, "exit: 42", "buffered line flushed by exit"),
	exitCase("exit-255", []string{"255"}, 255, "exit: 255", "buffered line flushed by exit"),
	exitCase("exit-_exit-7", []string{"_exit", "7"}, 7, "exit: _exit"),
	exitCase("exit-abort", []string{"abort"}, 128+6, "exit: abort"),
	exitCase("exit-sigterm", []string{"term"}, 128+15, "exit: term"),
	exitCase("exit-sigsegv", []string{"segv"}, 128+11, "exit: segv"),
	// The checkpoint/restore workloads (the zdtm mode saves them where
	// they block). They run 20 rounds of 100 ms, so that a save after the
	// first line has about two seconds to arrive, also on a loaded machine.
	{name: "counter", prog: "counter", zdtm: zdtmSpec{blockedAfter: "count 1 sum OK"}, spec: spec{args: []string{"20"}, want: []string{"count 1 sum OK", "count 20 sum OK"}}},
	{name: "sleeper", prog: "sleeper", zdtm: zdtmSpec{blockedAfter: "slept 1"}, spec: spec{args: []string{"20"}, want: []string{"slept 1", "slept 20"}}},
	{name: "randmem", prog: "randmem", spec: spec{args: []string{"4", "2"}, want: []string{"filled 4 MiB", "tick 2 sum OK"}}},
	{name: "scatterwrite", prog: "scatterwrite", spec: spec{args: []string{"4", "10", "2"}, want: []string{"filled 4 MiB", "round 2", "check 2 OK"}}},
	{name: "stdinreader", prog: "stdinreader", zdtm: zdtmSpec{blockedAfter: "ready"}, spec: spec{
		stdin: "one\ntwo words\n\nlast without newline",
		want:  []string{"ready", "got: one", "got: two words", "got: ", "got: last without newline", "eof after 4 lines"},
	}},
	{name: "sigpending", prog: "sigpending", zdtm: zdtmSpec{blockedAfter: "waiting 1: SIGUSR1 pending yes, SIGUSR2 pending no"}, spec: spec{args: []string{"20"}, want: []string{
		"waiting 20: SIGUSR1 pending yes, SIGUSR2 pending no", "delivered SIGUSR1 1 SIGUSR2 0",
	}}},
	{name: "fdalias", prog: "fdalias", zdtm: zdtmSpec{fast: true}, spec: spec{stdin: "from stdin\n"}, setup: func(t *testing.T, dir string, s *spec) {
		s.args = []string{writeFile(t, dir, "abc.txt", "abcdef")}
		s.want = []string{
			"/dev/fd/0: open ok yes, new fd yes, read 11: from stdin",
			"written through /proc/self/fd/1", "/proc/self/fd/1: open ok yes, wrote all yes",
			"written through /dev/stdout", "/dev/stdout: wrote all yes",
			"reopened file: read 3 and 3, second from offset 0: yes, first offset still 3: yes",
			"O_NOFOLLOW: fd<0 yes, ELOOP yes",
			"closed descriptor: fd<0 yes, ENOENT yes",
			"pipe write end reopened for reading: read 3 \"xyz\"",
			"no reader left: write fails yes, EPIPE yes",
		}
	}},
	{name: "jobctl", prog: "jobctl", spec: spec{want: []string{
		"waitid(WSTOPPED|WNOWAIT): 0, CLD_STOPPED status SIGSTOP, pid matches yes",
		"stop: SIGCHLD CLD_STOPPED status 19, from child yes",
		"waitpid(WUNTRACED): pid matches yes, WIFSTOPPED yes, WSTOPSIG==SIGSTOP yes",
		"again with WNOHANG: 0",
		"continue: SIGCHLD CLD_CONTINUED status 18, from child yes",
		"waitpid(WCONTINUED): pid matches yes, WIFCONTINUED yes",
		"waitid(P_ALL, WSTOPPED): 0, CLD_STOPPED status SIGTSTP",
		"consumed by waitid: 0",
		"killed while stopped: pid matches yes, WIFSIGNALED yes, WTERMSIG==SIGKILL yes",
		"kill: SIGCHLD CLD_KILLED status 9, from child yes",
		"exit during sigtimedwait: SIGCHLD CLD_EXITED status 3, from child yes",
		"exited: pid matches yes, status 3",
		"signal while stopped in sigsuspend: returned yes",
		"SA_NOCLDSTOP stop: SIGCHLD pending no",
		"SA_NOCLDSTOP continue: SIGCHLD pending no",
		"SA_NOCLDSTOP exit: SIGCHLD pending yes",
		"SIG_IGN: wait returns -1, ECHILD yes",
		"SA_NOCLDWAIT: wait returns -1, ECHILD yes, handler ran yes",
	}}},
	{name: "execthreads-main", prog: "execthreads", spec: spec{args: []string{"main"}, status: 3, want: []string{
		"three threads running, exec from the main thread",
		"after exec: pid unchanged yes, tid==pid yes", "new thread after exec: created yes",
	}}},
	{name: "execthreads-thread", prog: "execthreads", spec: spec{args: []string{"thread"}, status: 3, want: []string{
		"three threads running, exec from the thread thread",
		"after exec: pid unchanged yes, tid==pid yes", "new thread after exec: created yes",
	}}},
	{name: "cputimer", prog: "cputimer", spec: spec{want: []string{
		"ITIMER_VIRTUAL: after 300 ms asleep: fired no, remaining > 25 ms yes",
		"ITIMER_VIRTUAL: while a child spun 200 ms: fired no",
		"ITIMER_VIRTUAL: fired while spinning: yes, after >= 25 ms yes",
		"ITIMER_VIRTUAL: 5 ticks of 10 ms: yes, took >= 30 ms yes",
		"ITIMER_PROF: after 300 ms asleep: fired no, remaining > 25 ms yes",
		"ITIMER_PROF: while a child spun 200 ms: fired no",
		"ITIMER_PROF: fired while spinning: yes, after >= 25 ms yes",
		"ITIMER_PROF: 5 ticks of 10 ms: yes, took >= 30 ms yes",
	}}},
	{name: "rusage", prog: "rusage", spec: spec{want: []string{
		"spun: ru_utime grew by 150 ms: yes",
		"RUSAGE_THREAD <= RUSAGE_SELF: yes", "ended thread counted in RUSAGE_SELF: yes",
		"RUSAGE_CHILDREN before a child: 0: yes", "child spun: yes",
		"RUSAGE_CHILDREN ru_utime >= 100 ms: yes", "times: tms_cutime > 0: yes, tms_utime > 0: yes",
		"after execve: ru_utime >= 150 ms: yes",
	}}},
	{name: "cputimerother", prog: "cputimerother", spec: spec{want: []string{
		"clock_getcpuclockid(child): ok", "timer_create on the child's clock: ok",
		"timer_settime 50 ms: ok", "fired while the child slept 200 ms: no", "still armed: yes",
		"fired once the child spun: yes",
	}}},
	{name: "cpuclocks", prog: "cpuclocks", spec: spec{want: []string{
		"spun 200 ms: yes", "CLOCK_PROCESS_CPUTIME_ID > 100 ms: yes", "within getrusage before and after: yes",
		"pthread_getcpuclockid: yes",
		"another thread spun 200 ms: yes, its thread clock grew > 100 ms: yes",
		"idle thread's clock by its ID grew < 20 ms: yes", "idle thread's own clock grew < 20 ms: yes",
		"clock_getcpuclockid(child): yes", "sleeping child's clock stood still: yes",
		"spinning child's clock grew by 50 ms: yes", "child asleep again, its clock stood still: yes",
		"system time grew by 10 ms with getppid calls: yes", "no clock went back: yes",
	}}},
	{name: "procmaps", prog: "procmaps", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"lines parse, names in column 74: yes",
		"3-page mapping: one r--p line of 3 pages yes",
		"shared anonymous: rw-s yes",
		"stack: [stack] yes, rw-p yes",
		"main: r-xp yes, named by the program yes",
		"after mprotect of the middle page: r--p rw-p r--p",
		"after munmap of the middle page: hole yes, neighbours yes",
		"stat: 0, regular yes, mode 444, size 0",
		"writing fails: yes",
	}}},
	// Fast; checkpoint.TestFifoAndSocketPathAcrossRestore saves its workload.
	{name: "fifo", prog: "fifo", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"write-only non-blocking open without a reader: -1 ENXIO yes",
		"blocking open and read to EOF: \"hello from the child\"",
		"blocking open for writing met its reader: yes",
		"write without readers: -1 EPIPE yes",
		"accepted a client by path: \"ping\"; getsockname is the path yes",
		"connect to a socket file mknod made: -1 ECONNREFUSED yes",
		"datagram by path: sent 5, received 5 \"dgram\"",
	}}},
	// The same in a new directory of the host's /tmp, which is then not
	// empty, so that under snap it is the overlay root's.
	{name: "fifo-overlay", prog: "fifo", zdtm: zdtmSpec{fast: true}, setup: setupHostTmpDir("FIFO_DIR"), spec: spec{want: []string{
		"write-only non-blocking open without a reader: -1 ENXIO yes",
		"blocking open and read to EOF: \"hello from the child\"",
		"accepted a client by path: \"ping\"; getsockname is the path yes",
		"connect to a socket file mknod made: -1 ECONNREFUSED yes",
		"datagram by path: sent 5, received 5 \"dgram\"",
	}}},
	{name: "tmpfsperm", prog: "tmpfsperm", setup: needRoot, zdtm: zdtmSpec{fast: true}, spec: spec{want: tmpfspermWant}},
	// The same in a new directory of the host's /tmp: the overlay root's.
	{name: "tmpfsperm-overlay", prog: "tmpfsperm", setup: setupHostTmpDirAsRoot("TMPFSPERM_DIR"), zdtm: zdtmSpec{fast: true}, spec: spec{want: tmpfspermWant}},
	{name: "procsys", prog: "procsys", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"meminfo: MemTotal > 0 yes, MemFree <= MemTotal yes, MemAvailable yes, SwapTotal yes",
		"stat: cpu line has 10 numbers, cpu0 yes, btime yes, processes yes, procs_running yes",
		"loadavg: 6 fields, running <= total yes",
		"hostname is uname's: yes",
		"environ has PATH: yes",
		"limits: header yes, open files as getrlimit yes, lines 17",
		"fdinfo: pos 5, O_CLOEXEC yes, mnt_id yes, ino yes",
		"comm write: 23, name now \"renamed-to-a-lo\"",
	}}},
	// Fast; checkpoint.TestSharedMappingsAcrossRestore saves its workload.
	{name: "shmfile", prog: "shmfile", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"mapping a -> read(2): \"through a\"; mapping b sees it: yes",
		"pwrite -> mappings: yes yes",
		"mremap grow: yes, the file's pages: yes yes, a write through it read(2): \"grown\"",
		"child sees the parent's write: yes; parent reads the child's: \"from the child\" and in a: yes",
		"maps: r--s offset 0x2000 inode matches yes, /memfd:coh (deleted)",
		"mapping outlives the descriptor: yes",
		"past EOF in the last page: ok; the page after: SIGBUS BUS_ADRERR",
		"after a truncate to one page: page 0 ok, page 1 read SIGBUS BUS_ADRERR, write SIGBUS BUS_ADRERR",
		"write through the regrown mapping seen by read(2): z",
		"pwrite seen in the read-only mapping: yes",
		"unlinked file still mapped: yes",
		"pshared semaphores across fork: 300 rounds; pshared mutex in a memfd: count 40000",
		"F_SEAL_WRITE with a writable shared mapping: -1 EBUSY yes",
		"writable shared mapping when sealed: EPERM yes",
		"F_SEAL_FUTURE_WRITE: 0; old mapping still writes: yes; pwrite -1 EPERM yes; new writable mapping EPERM yes; shrink EPERM yes",
		"MFD_NOEXEC_SEAL: mode 666, seals 0x20, chmod +x -1 EPERM yes",
	}}},
	// Fast; checkpoint.TestSparseSharedMappingAcrossRestore saves its
	// workload.
	{name: "sparsemap", prog: "sparsemap", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"mmap 4 GiB sparse shared: st_blocks 0",
		"pread of a hole: zeros yes, st_blocks 0",
		"mapping reads zeros at 0, 2 GiB, end: yes",
		"writes through the mapping seen by pread: yes",
		"pwrite into a hole seen through the mapping: yes",
		"write(2) from an untouched page sends zeros: yes",
		"read(2) into an untouched page, seen by pread: yes",
		"st_blocks under 8 MiB after touching: yes, nonzero: yes",
		"second mapping sees the first: yes yes",
		"after truncate to 1 GiB: SIGBUS past the end yes (BUS_ADRERR yes), below it zero yes, kept yes",
	}}},
	// Fast; checkpoint.TestSharedMappingsAcrossRestore saves memfds too.
	{name: "memfd", prog: "memfd", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"memfd_create: ok yes, cloexec yes",
		"write 11, read back 11 \"hello memfd\"",
		"ftruncate 8192: 0, size 8192, pread past old end zero yes (16)",
		"readlink: /memfd:test (deleted)",
		"reopened: ok yes, reads from offset 0: \"hello\", original offset still 8192: yes",
		"private mapping: yes, contents \"hello memfd\"",
		"child reads it through the inherited fd: yes",
		"write after F_SEAL_WRITE: -1, EPERM yes",
		"name of 299 bytes: -1, EINVAL yes",
	}}},
	{name: "credhold", prog: "credhold", setup: needRoot, spec: spec{args: []string{"3"}, want: []string{"tick 1 creds OK", "tick 3 creds OK"}}},
	{name: "itimer", prog: "itimer", zdtm: zdtmSpec{blockedAfter: "tick 1"}, spec: spec{args: []string{"20"}, want: []string{"tick 1", "tick 20"}}},
	{name: "vdsoclock", prog: "vdsoclock", spec: spec{args: []string{"3"}, want: []string{"tick 1 reads-ok", "tick 3 reads-ok"}}},
	{name: "vdso", prog: "vdso", spec: spec{want: vdsoWant}},
	// The same with the sentry told not to use the TSC: the vDSO then
	// makes the system calls.
	{name: "vdso-syscall", prog: "vdso", spec: spec{env: []string{"SNAP_NO_TSC_CLOCK=1"}, want: vdsoWant}},
	// The FP/SSE state (XSAVE area) across syscalls, signals, sigreturn,
	// fork and clone. The ymm/zmm lines are left out of want: their text
	// says whether the CPU has AVX; the run under snap must still match.
	{name: "fpstate", prog: "fpstate", spec: spec{want: []string{
		"the four rounding modes round 1/3, 1/10, -1/3 differently: yes",
		"starts with round to nearest: yes",
		"xmm0-xmm15 kept across one syscall: yes",
		"xmm0-xmm15 kept across 1000 syscalls: yes",
		"FE_UPWARD (MXCSR and x87 control word) kept across 1000 syscalls: yes",
		"SIGUSR1 from raw kill: handler ran: yes",
		"SIGUSR1 from raw kill: xmm5 and xmm12 kept: yes",
		"SIGUSR1 from raw kill: FE_UPWARD kept: yes",
		"SIGALRM while spinning: xmm5 and xmm12 kept: yes",
		"SIGALRM while spinning: FE_UPWARD kept: yes",
		"sigreturn: xmm5 from the frame: yes, xmm12 kept: yes",
		"sigreturn: MXCSR rounding from the frame: yes",
		"fork: child xmm5 kept: yes, child FE_TOWARDZERO: yes, parent kept both: yes",
		"pthread: new thread starts with FE_DOWNWARD: yes",
		"pthread: both threads keep their own xmm0-xmm15 across 1000 syscalls: yes",
		"pthread: thread's FE_UPWARD kept: yes, creator's FE_DOWNWARD untouched: yes",
		"back to round to nearest: yes",
	}}},
	// fork copies private memory (zero pages included) and shares MAP_SHARED.
	{name: "forkmem", prog: "forkmem", spec: spec{want: []string{
		"child saw the parent's memory: yes",
		"grandchild saw the child's memory: yes",
		"parent's private memory unchanged: yes",
		"shared mapping shared: yes",
	}}},
	// fork shares private memory copy-on-write: neither side sees the
	// other's writes.
	{name: "cowfork", prog: "cowfork", spec: spec{want: []string{
		"child saw only its own writes (pages, heap, stack, data, read(2), MADV_DONTNEED, grandchild): yes",
		"parent saw only its own writes: pages yes, untouched pages yes, heap yes, stack yes, data yes",
		"parent's pages where the child wrote: yes",
		"parent writes every page after the child exited: yes",
		"a thread writing a page while another forks 20 times: yes",
	}}},
	// Host file pages are shared through the file cache and copied on
	// write.
	{name: "filemap", prog: "filemap", setup: setupFileMap},
	// Saved between two mremaps that grow a host file's mapping.
	{name: "mremapfile", prog: "mremapfile", setup: setupMremapFile, zdtm: zdtmSpec{blockedAfter: "whole file mapped: yes", fast: true}, spec: spec{stdin: "x"}},
	// vfork children run in the parent's memory; the parent waits for
	// their exec or exit.
	{name: "vforkshare", prog: "vforkshare", spec: spec{want: []string{
		"vfork: parent saw the child's write: yes, exit 3: yes",
		"vfork: parent ran only after the child's _exit: yes, exit 0: yes",
		"vfork: SIGUSR1 from the child handled after its _exit: yes",
		"vfork: SIGTERM ends the waiting parent: yes, before the child's _exit: yes",
		"clone(CLONE_VM|CLONE_VFORK): parent saw the child's write: yes, exit 0: yes",
		"vfork+execve: parent saw the pre-exec write: yes, exit 0: yes",
		"execve in another thread did not wait for the vfork child: yes",
		"execve in another thread: exit 0: yes",
		"posix_spawn of a missing program: ENOENT: yes",
		"posix_spawn of this program: ok: yes, exit 0: yes",
	}}},
	// Exact errors of small calls, against native Linux. Saved only at its
	// start: it opens a memfd, which a save refuses.
	{name: "exacterr", prog: "exacterr", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"getpeername on stdin: -1 ENOTSOCK",
		"getpeername on a pipe: -1 ENOTSOCK", "shutdown on a file: -1 ENOTSOCK", "getsockopt on a closed fd: -1 EBADF",
		"fstat of the pipe: fifo yes, size 0",
		"F_SETPIPE_SZ 100000: 131072", "F_GETPIPE_SZ on the other end: 131072",
		"nonblocking write of 6000 into an empty one-page pipe: 4096",
		"F_SETPIPE_SZ 4096 with 6000 buffered: -1 EBUSY",
		"ftruncate on a pipe: -1 EINVAL",
		"fallocate on a pipe's write end: -1 ESPIPE", "fallocate on a read-only file: -1 EBADF",
		"memfd size after fallocate: 8192",
		"getdents lists what getdents64 lists: yes, more than 3 entries: yes", "getdents on a regular file: -1 ENOTDIR",
		"utimes with 1000000 us: -1 EINVAL", "futimesat of a closed fd: -1 EBADF",
		"msync misaligned: -1 EINVAL", "msync over a hole: -1 ENOMEM",
		"file position after it: 3", "what it read matches pread: yes", "preadv2 with an unknown flag: -1 EOPNOTSUPP",
		"mode 2, nodes 1", "set_mempolicy BIND node 1: -1 EINVAL", "mbind over a hole: -1 EFAULT",
		"prlimit of pid -1: -1 ESRCH",
		"clock_settime MONOTONIC: -1 EINVAL",
		"clock_settime REALTIME without CAP_SYS_TIME: -1 EPERM", "settimeofday without CAP_SYS_TIME: -1 EPERM",
		"raw getpriority after nice 5: 15", "libc getpriority: 5 errno 0",
		"thread set nice 7: raw 13; main still nice 5: yes",
		"fork child's raw getpriority: 15",
		"sched_getscheduler: 3", "sched_setscheduler FIFO priority 100: -1 EINVAL",
		"fork child's policy lost RESET_ON_FORK: yes", "fork child keeps SCHED_BATCH without the flag: yes",
		"now only the first cpu: yes",
		"personality query: 262144",
		"unshare(0): 0", "unshare(CLONE_VM) with two threads: -1 EINVAL",
		"membarrier PRIVATE_EXPEDITED unregistered: -1 EPERM", "membarrier PRIVATE_EXPEDITED: 0",
		"PR_GET_TIMERSLACK: 123456", "fork child inherits the slack, and 0 restores it: yes",
		"handler got value 42, SI_QUEUE yes", "rt_tgsigqueueinfo SI_USER from another thread: EPERM",
	}}},
	// Threads meeting at condition variables, barriers and a contended
	// mutex: musl requeues a broadcast's waiters to the mutex.
	{name: "condbarrier", prog: "condbarrier", spec: spec{want: []string{
		"3 threads met 4000 times at a condition-variable barrier: sums right: yes",
		"pthread_barrier_wait 2000 times: ok",
	}}},
	{name: "mutexcount", prog: "mutexcount", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"8 threads at the start gate, then 20000 increments each: counter = 160000, exact: yes",
	}}},
	// Fast; and its counts change if a save interrupts a requeued waiter:
	// the wait restarts at its first address, as after a signal on Linux.
	{name: "futexops", prog: "futexops", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"FUTEX_CMP_REQUEUE a->b: moved 3, woke 0",
		"FUTEX_CMP_REQUEUE with a stale value: -1 EAGAIN",
		"FUTEX_WAKE a (now empty): 0",
		"FUTEX_REQUEUE b->a, wake 1, move 1: 2, woke 1",
		"FUTEX_WAKE_OP a, c += 3 if c == 5: 1, c = 8, woke 2",
		"FUTEX_WAKE_OP b, c = 1<<6 if c > 100: 1, c = 64, woke 3",
		"FUTEX_REQUEUE to an unaligned word: -1 EINVAL",
		"FUTEX_CMP_REQUEUE moving -1: -1 EINVAL",
		"FUTEX_WAKE_OP with operation 7: -1 ENOSYS, c = 64",
		"FUTEX_WAKE_OP with comparison 9: -1 ENOSYS, c = 1",
	}}},
	// Credentials: the run starts as root (CI runs as root); setresuid,
	// setreuid, setfsuid, keepcaps, capset, the bounding set, execve and a
	// setuid broadcast to a second thread by the libc.
	{name: "creds", prog: "creds", setup: needRoot, spec: spec{want: []string{
		"start: uid 0 0 0 fsuid 0 gid 0 0 0",
		"after setgroups: getgroups 3: 3 27 50",
		"after setreuid: uid 1000 2000 2000 fsuid 2000 gid 0 0 0",
		"setuid(0) after setreuid: Operation not permitted",
		"setfsuid(0) returned 1000",
		"after capset: capget 0 eff 0000000000000080 prm 0000000000000080 inh 0000000000000000",
		"regained: uid 0 0 0 fsuid 0 gid 0 0 0",
		"PR_CAPBSET_READ(CAP_NET_RAW) 0",
		"exec'd: AT_UID 1000 AT_EUID 0 AT_GID 7 AT_EGID 8 AT_SECURE 1",
		"exec'd after drop: capget 0 eff 0000000000000000 prm 0000000000000000 inh 0000000000000000",
		"second thread: uid 1000 1000 1000 gid 100 100 100",
		"setuid(0) after the drop: Operation not permitted",
		"dropped: Uid:\t1000\t1000\t1000\t1000",
		"dropped: Groups:\t3 27 50 ",
		"forked child: uid 1000 1000 1000 fsuid 1000 gid 100 100 100",
		"uid 1000 kill(root's process, SIGTERM): Operation not permitted",
		"uid 1000 kill(root's process, SIGCONT), same session: ok",
		"its own child killed by SIGTERM: yes",
	}}},
	// Advisory locks between processes: flock on a host file, POSIX and
	// OFD record locks on a memfd.
	{name: "locks", prog: "locks", setup: setupLockFile, spec: spec{want: []string{
		"  inherited description LOCK_EX|LOCK_NB: ok",
		"  other description LOCK_SH|LOCK_NB: EWOULDBLOCK",
		"  blocked LOCK_EX: ok, granted after the holder's unlock: yes",
		"  blocked LOCK_EX with SIGALRM (no SA_RESTART): Interrupted system call",
		"  blocked LOCK_EX ended by SIGKILL: yes",
		"    F_GETLK F_RDLCK 50+10: F_WRLCK at 30+70, pid parent",
		"    F_GETLK F_WRLCK 0+0: F_RDLCK at 0+20, pid parent",
		"    F_GETLK F_RDLCK 0+0: F_WRLCK at 5+5, pid parent",
		"    F_GETLK F_WRLCK 0+0: F_RDLCK at 105+5, pid parent",
		"  read-only file: F_WRLCK Bad file descriptor",
		"    blocked F_SETLKW: ok, granted after the holder's unlock: yes",
		"    child F_SETLKW of the parent's byte while the parent waits for the child's: EDEADLK",
		"  parent F_SETLKW of the child's byte, granted at its exit: ok",
		"  same process, POSIX F_RDLCK 5+1: EWOULDBLOCK",
		"    F_OFD_SETLK F_RDLCK 0+1 on another description: EWOULDBLOCK",
		"    F_OFD_SETLK F_RDLCK 0+1 on another description: ok",
	}}},
	// POSIX timers: signals with SI_TIMER, overruns, SIGEV_NONE,
	// SIGEV_THREAD_ID and the libc's SIGEV_THREAD, absolute expiries.
	{name: "ptimer", prog: "ptimer", spec: spec{want: []string{
		"ticks >= 3: yes, SI_TIMER: yes, si_value 42: yes, si_timerid: yes",
		"one-shot 10 s: remaining 9..10 s: yes, interval 0: yes",
		"blocked 50 ms with a 1 ms timer: signal: yes, si_overrun > 0: yes, timer_getoverrun == si_overrun: yes",
		"SIGEV_NONE: armed yes, expired after 60 ms: yes",
		"SIGEV_THREAD_ID: the target thread got it: yes, SI_TIMER: yes, value 7: yes",
		"SIGEV_THREAD: ok, the function ran with value 99: yes",
		"TIMER_ABSTIME CLOCK_REALTIME: fired: yes, not before the time: yes",
		"forked child: timer_gettime of the parent's timer: Invalid argument",
		"CLOCK_PROCESS_CPUTIME_ID timer: ok, armed: yes, fired while spinning: yes",
		"CLOCK_THREAD_CPUTIME_ID timer: ok, armed: yes, fired while spinning: yes",
	}}},
	// timerfd and signalfd, alone and through poll and epoll.
	{name: "tfd", prog: "tfd", spec: spec{want: []string{
		"after 70 ms: >= 3 expirations: yes",
		"poll until the expiry: 1, POLLIN: yes",
		"epoll_wait: 1, data 77: yes, EPOLLIN: yes",
		"forked child read the inherited timerfd: yes",
		"sigqueue: signo User defined signal 1, code -1, pid self yes, uid yes, int 5",
		"three queued SIGRTMIN in one read: 384 bytes, values 1 2 3",
		"blocking read of a timer's signal: 128 bytes, SI_TIMER yes, ssi_tid is the timer: yes, int 31: yes",
		"epoll: then the signalfd: yes",
		"forked child: its own signal polls ready on the inherited signalfd: yes, read: yes",
		"SIGCHLD: code CLD_EXITED yes, pid is the child yes, status 3: yes",
	}}},
	// The signal mask argument of ppoll, pselect6 and epoll_pwait.
	{name: "waitmask", prog: "waitmask", spec: spec{want: []string{
		"ppoll, pending signal unblocked by the mask: -1 Interrupted system call, handler ran: yes, mask restored: yes",
		"pselect, signal sent during the wait: -1 Interrupted system call, handler ran: yes",
		"epoll_pwait, mask keeping it blocked: timed out: yes, still pending: yes",
		"epoll_pwait, ready descriptor: 1, handler ran: no, still pending: yes",
	}}},
	{name: "pidfd", prog: "pidfd", zdtm: zdtmSpec{blockedAfter: "polling a child that reads stdin"}, spec: spec{stdin: "go\n", want: []string{
		"pidfd_open(self): ok, close-on-exec: yes",
		"exited child: poll 1, POLLIN yes, POLLHUP no",
		"exited child: epoll_wait 1, data 99, EPOLLIN yes",
		"reaped child: poll 1, POLLIN yes, POLLHUP yes",
		"SIGUSR1 to self: ok, handler ran yes",
		"SIGUSR1 through /proc/self's directory: ok, handler ran yes",
		"child: CLD_KILLED yes, by SIGTERM yes",
		"pidfd_getfd of a child's pipe: ok, read \"from the child\", close-on-exec yes",
		"pidfd_getfd of a child's eventfd: ok, counter 41",
		"child saw the eventfd write: yes",
		"clone(CLONE_PIDFD): ok, pidfd close-on-exec yes, waitid ok, pid matches yes, status 7",
		"clone3(CLONE_PIDFD): ok, waitid ok, pid matches yes, status 9",
		"child exited: poll 1, POLLIN yes, status 3",
	}}},
	{name: "procvm", prog: "procvm", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"readv of myself: 32, \"copied from myself\"",
		"readv running into an unmapped page: 100",
		"readv of a child, 2 iovecs each side: 64, \"the \" + \"child's own words\"",
		"writev into the child: 22, parent's copy unchanged yes",
		"child saw the parent's words: yes",
		"epoll_pwait2, a pipe ready, no timeout: 1, data 7",
		"pending SIGUSR1 let through by the mask: -1 Interrupted system call, handler ran yes, blocked again after yes",
		"epoll_pwait with SIGUSR1 still blocked: 0, handler ran no",
	}}},
	// splice works on memfds until its blocking point, and a save is
	// refused while a memfd is open: no random save point (fast), but the
	// start and the blocking point.
	{name: "chroot", prog: "chroot", zdtm: zdtmSpec{blockedAfter: "chrooted, waiting for stdin"}, spec: spec{stdin: "go\n", want: []string{
		"uid 1000: chroot /: Operation not permitted",
		"/proc/PID/root of the chrooted child is DIR: yes",
		"/proc/PID/root/hello of the chrooted child: inside",
		"/proc/PID/root/.. of the chrooted child: exists",
		"dot-dot: /../../../hello -> inside",
		"absolute symlink: /abs -> inside",
		"climbing symlink: /sub/up -> inside",
		"outside: open /outside: No such file or directory",
		"no proc in the root: open /proc/self/status: No such file or directory",
		"forked child: /hello -> inside",
		"after the line: /hello -> inside",
		"outside: getcwd (unreachable)BASE",
		"after the thread's chroot: /inner -> in t",
		"after the thread's chroot: getcwd (unreachable)BASE/jail",
		"chdir /proc/self/..: ok",
		"in /proc/self/..: getcwd /proc",
		"done",
	}}, setup: func(t *testing.T, dir string, s *spec) { needRoot(t, dir, s); setupTmpfsDir(t, dir, s) }},
	// Natively in a new IPC namespace (the program unshares it), so that
	// the host's objects stay out of the listing.
	{name: "ipcinfo", prog: "ipcinfo", zdtm: zdtmSpec{blockedAfter: "objects made, waiting for stdin"}, setup: needRoot, spec: spec{stdin: "go\n", want: []string{
		"IDs: sems 0 1, queue 0, segment 0",
		"after a removal the next set is 2, then 3",
		"SEM_INFO: 1, sets 2, semaphores 4",
		"MSG_INFO: 0, queues 1, messages 2, bytes 12",
		"SHM_INFO: 0, segments 1, pages 3, swapped 0",
		"uid 1234: SHM_STAT of a 0600 segment: Permission denied, SHM_STAT_ANY: ok",
		"uid 1234: mq_open number 257: No space left on device",
		"SHMMNI: 4095 more segments, then No space left on device",
		"sem row (85 bytes): 4660 0 640 3 0 0 0 0 0 T",
		"shm row (170 bytes): 12852 0 600 10000 self other 1 0 0 0 0 T T T 4096 0",
		"0x00001234 0          root       640        3         ",
		"max number of segments = 4096",
		"allocated semaphores = 4",
		"done",
	}}},
	// Natively on a fresh mqueue filesystem the program mounts on dir in
	// new mount and IPC namespaces; under snap the sandbox's /dev/mqueue.
	{name: "mqueuefs", prog: "mqueuefs", zdtm: zdtmSpec{blockedAfter: "queues made, waiting for stdin"}, setup: setupMqueueDir, spec: spec{stdin: "go\n", want: []string{
		"mq_open's descriptor: /q1, mode 100640 size 80, F_GETFL 0x2",
		"listing: q1",
		"directory: mode 41777 nlink 2 uid 0",
		"stat q1: mode 100640 size 80 nlink 1 uid 0 gid 0",
		"statfs: ok, magic 0x19800202",
		"status: [QSIZE:11         NOTIFY:0     SIGNO:0     NOTIFY_PID:0     ] (60 bytes)",
		"fstat: mode 100640 size 80",
		"mq_receive on the file: ok world! prio 2",
		"mq_getattr on the file: maxmsg 4 msgsize 16 curmsgs 1",
		"made by creat: maxmsg 10 msgsize 8192",
		"mkdir: Operation not permitted",
		"listing with made: made q1",
		"mq_open /made after: No such file or directory",
		"/proc/self/mounts: mqueue yes, mountinfo: mqueue yes",
		"after the line: q1",
		"status after the line: [QSIZE:5          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     ] (60 bytes)",
		"after the line: ok again prio 0",
		"at the end:",
		"done",
	}}},
	{name: "cpuclock", prog: "cpuclock", zdtm: zdtmSpec{blockedAfter: "timer armed on the busy thread's clock"}, spec: spec{stdin: "go\n", want: []string{
		"clock_getcpuclockid(child): ok",
		"child clock_gettime: ok",
		"thread clock goes forward: yes",
		"another process's thread clock: Invalid argument",
		"timer on the process clock by ID fired: yes",
		"timer on another thread's clock fired: yes",
		"periodic timer on the busy thread's clock fires after the line: yes",
		"done",
	}}},
	{name: "inotify", prog: "inotify", zdtm: zdtmSpec{blockedAfter: "waiting for stdin with queued events"}, setup: setupTmpfsDir, spec: spec{stdin: "go\n", want: []string{
		"dir: wd 1 MOVED_FROM c1 f",
		"dir: wd 1 MOVED_TO c1 g",
		"file: wd 2 DELETE_SELF",
		"after close: wd 3 DELETE_SELF",
		"moves: wd 3 MOVE_SELF",
		"overflow: 16385 events, 1 overflow, last wd -1",
		"blocking read woken: yes woke",
		"queued: wd 1 CREATE before",
		"queued: wd 2 ATTRIB",
		"after: wd 2 DELETE_SELF",
		"next wd: 3",
		"done",
	}}},
	{name: "dnotify", prog: "dnotify", zdtm: zdtmSpec{blockedAfter: "waiting for stdin with a watch set"}, setup: setupTmpfsDir, spec: spec{stdin: "go\n", want: []string{
		"F_NOTIFY on a file: Not a directory",
		"SIGIO after a create: 1, si_code SI_KERNEL",
		"one-shot: SIGIO after a second create: 1",
		"DN_RENAME: create=0 write=0 trunc=0 read=0 chmod=0 utimes=0 link=0 symlink=0 rename=1 mkdir=0 out=0 in=0 inner=0 unlink=0 list=0 chmoddir=0 rmdir=0",
		"siginfo fields right: yes",
		"after closing a dup: 0",
		"after a child closed its copy: 1",
		"child got the signal: yes, si_fd matches: yes",
		"group owner, signals: 1",
		"after the line: 2 signals",
		"SIGIO after the line: 1",
		"done",
	}}},
	{name: "asyncio", prog: "asyncio", zdtm: zdtmSpec{blockedAfter: "waiting for stdin with O_ASYNC set"}, setup: setupTmpfsDir, spec: spec{stdin: "go\n", want: []string{
		"F_GETFL has O_ASYNC: yes",
		"pipe read end: SIGIO, si_code SI_KERNEL",
		"read end, the writer closed: POLL_IN, si_fd right, si_band 0x41",
		"write end, the reader closed: POLL_OUT, si_fd right, si_band 0x304",
		"full pipe (65536), write end after a read of 65536: POLL_OUT, si_fd right, si_band 0x304",
		"fifo read end: POLL_IN, si_fd right, si_band 0x41",
		"FIOASYNC: ok",
		"F_GETOWN_EX: type F_OWNER_TID",
		"unix socket, thread owner: POLL_IN, si_fd right, si_band 0x41",
		"after FIOASYNC 0: F_GETFL has O_ASYNC: no, signal: no",
		"tcp connection: POLL_IN, si_fd right, si_band 0x41",
		"udp socket: POLL_IN, si_fd right, si_band 0x41",
		"pty slave: POLL_IN, si_fd right, si_band 0x41",
		"pty without an owner: slave's is me yes, master's is me yes",
		"eventfd: F_GETFL has O_ASYNC: no, signal: no",
		"group owner: parent SIGIO, si_code SI_KERNEL, child got SIGIO: yes",
		"after the line: POLL_IN, si_fd right, si_band 0x41",
		"done",
	}}},
	{name: "splice", prog: "splice", zdtm: zdtmSpec{blockedAfter: "splicing what a child reads from stdin", fast: true}, spec: spec{stdin: "line from stdin\n", want: []string{
		"pipe -> memfd at 5: 18, offset now 23, position 0, memfd from 5 \"hello splice world\"",
		"memfd at its position -> pipe: 6, position now 11, pipe \"hello \"",
		"pipe -> pipe, 4 of 6: 4, out \"abcd\", left in \"ef\"",
		"200000 bytes into a 65536-byte pipe: 65536",
		"tee: 7, copy \"teedata\", original still \"teedata\"",
		"vmsplice in: 8, out: 7, \"vm\" + \"splic\"",
		"copy_file_range 4 at 2 -> at 5: 4, offsets 6 9, b \".....2345.\"",
		"sendfile memfd -> memfd: 3, offset 4, \"123\"",
		"spliced 15: \"line from stdin\"",
	}}},
	{name: "ipc", prog: "ipc", zdtm: zdtmSpec{blockedAfter: "waiting in msgrcv for a child that reads stdin"}, spec: spec{stdin: "sent after the line\n", want: []string{
		"semop of two at once: ok, values 0 2 7, GETPID is me yes",
		"all or nothing, IPC_NOWAIT: Resource temporarily unavailable, sem 1 still 2",
		"a child waits: GETNCNT 1, GETZCNT 0",
		"SEM_UNDO at exit: child saw 0 yes, values back to 1 and 2",
		"semop ended by a handled signal (SA_RESTART): Interrupted system call",
		"IPC_STAT: 4 messages, 19 bytes, qbytes 16384, lspid is me yes",
		"lowest type <= 2: 4 \"two\" type 1",
		"receive order: high/5/5 mid/3/4 mid2/3/5 low/1/4",
		"notified: yes, SI_MESGQ yes, value 77",
		"msgrcv: 20 \"sent after the line\"",
		"semaphore still 5",
		"System V queue still holds \"kept 1\" and \"kept 2\"",
		"POSIX queue still holds \"posix 2\" and \"posix 1\"",
		"a child saw it attached twice: yes, and wrote \"child was here\"; nattch back to 1",
		"IPC_RMID while attached: ok, IPC_STAT after works",
		"shared memory holds \"written before\" and \"written by the child\"",
	}}},
	// chmod, chown, utimes and unlink in the mqueue filesystem, as root and
	// as uid 1000, and its listing by ls -l (mqueuefs's setup).
	{name: "mqueueperm", prog: "mqueueperm", setup: setupMqueueDir, spec: spec{want: []string{
		"a create moves the directory's mtime: yes, ctime: yes",
		"after fchmod: mode 100644 uid 0 gid 0 size 80 nlink 1",
		"after chown: mode 100644 uid 1000 gid 1000 size 80 nlink 1",
		"times: atime 1234567890.0 mtime 1234567890.0",
		"an unlink moves the directory's mtime: yes",
		"uid 1000: chmod root's queue: Operation not permitted",
		"uid 1000: utimes now, no write permission: Permission denied",
		"uid 1000: mine after: mode 100604 uid 1000 gid 1000 size 80 nlink 1",
		"uid 1000: unlink root's queue: Operation not permitted",
		"uid 1000: mq_unlink root's queue: Permission denied",
		"uid 1000: unlink given queue: ok",
		"directory before ls: mode 41777 uid 0 gid 0 size 100 nlink 2",
		"-rw-rw-rw- 1 root     root     80 1500000001 root666",
		"done",
	}}},
	// mq_notify's SIGEV_THREAD through the libc's netlink socket, and its
	// cookies read raw; mqnotify-hold is saved with both registered.
	{name: "mqnotify", prog: "mqnotify", spec: spec{want: []string{
		"status registered: [QSIZE:0          NOTIFY:2     SIGNO:0    ] pid mine: yes",
		"after a child's message: 1 run(s): 42",
		"after its own message: 2 run(s): 42 43",
		"after removal and a non-empty queue: 3 run(s): 42 43 45",
		"rounds: 40, each value once in order: yes",
		"raw woken: 32 bytes, cookie kept: yes, last byte 1, from family 16 pid 0",
		"raw removed: 32 bytes, cookie kept: yes, last byte 2, from family 16 pid 0",
		"raw removed by a close: 32 bytes, cookie kept: yes, last byte 2, from family 16 pid 0",
		"raw removed by the child's exit: 32 bytes, cookie kept: yes, last byte 2, from family 16 pid 0",
		"bad queue and bad cookie: Bad address",
		"done",
	}}},
	{name: "mqnotify-hold", prog: "mqnotify", zdtm: zdtmSpec{blockedAfter: "registered, waiting for stdin"}, spec: spec{args: []string{"hold"}, stdin: "go\n", want: []string{
		"after the line: 1 run(s): 7",
		"raw after the line: 32 bytes, cookie kept: yes, last byte 1, from family 16 pid 0",
		"registered again: 2 run(s): 7 8",
		"done",
	}}},
	// Unix domain sockets: pairs, an abstract-name server, descriptors and
	// credentials in messages, options, readiness, interruption.
	{name: "unixsock", prog: "unixsock", spec: spec{want: []string{
		"recv joins the sends: 7 'abcdefg'",
		"after the peer closed with unread data: ECONNRESET, then 0, write EPIPE, SIGPIPEs 2",
		"boundaries: 5 7 0",
		"MSG_TRUNC returns the full length: 10",
		"sendmmsg of 3: 3, msg_len 3 5 7",
		"recvmmsg of 5 with MSG_WAITFORONE: 3, msg_len 3 5 7, 'fifteen'",
		"recvmmsg with a zero timeout: 1, then with MSG_DONTWAIT: 2, on empty: EAGAIN",
		"after the peer closed: recv 0, send EPIPE, SIGPIPEs 2",
		"listener poll with pending: 1 revents 0x1",
		"SO_PEERCRED of the accepted socket: pid is the child: yes, uid: yes, gid: yes",
		"child says: peer is my parent: yes",
		"recvfrom gives the sender's name: yes",
		"child got 2 fds with 'hi', file is ELF: yes",
		"queue dropped: POLLHUP: yes",
		"control room for one fd: got 1, MSG_CTRUNC: yes",
		"stream read with files: 'abcd', 1 fd",
		"SCM_CREDENTIALS attached: pid self: yes, uid: yes, gid: yes",
		"SO_SNDBUF default is wmem_default: yes; set 65536 gives 131072",
		"SO_RCVTIMEO 50 ms: 0, recv on empty: EAGAIN, read back about 50 ms: yes",
		"SO_SNDTIMEO 30 ms on a full socket: EAGAIN",
		"epoll after the peer closed: 1, events 0x2015",
		"poll waits until the child drains: 1, POLLOUT: yes",
		"with SA_RESTART the recv goes on: 1, alarms 2",
		"done",
	}}},
	// TCP and UDP on the sandbox's loopback, IPv4 and IPv6, against the
	// host's loopback natively (ports chosen by bind to port 0).
	{name: "inet", prog: "inet", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"v4: accepted from 127.0.0.1 (length 16), local 127.0.0.1, same port: yes",
		"v6: accepted from ::1 (length 28), local ::1, same port: yes",
		"v4: peer closed with unread data: read -1 ECONNRESET, then 0",
		"v4: peer closed: empty send 0 , write 1, then -1 EPIPE, send MSG_NOSIGNAL -1 EPIPE, empty -1 EPIPE, SIGPIPEs 1, read 0",
		"v4: SO_LINGER 0 close: peer reads -1 ECONNRESET",
		"v6: bind to a listener's port: EADDRINUSE, with SO_REUSEADDR on both: EADDRINUSE",
		"v4: connect to a port without listener: ECONNREFUSED",
		"v6: non-blocking connect: -1 EINPROGRESS, then POLLOUT yes, SO_ERROR 0, connect again ok",
		"v4: set: SO_REUSEADDR 1 SO_REUSEPORT 1 SO_KEEPALIVE 1 TCP_NODELAY 1 TCP_CORK 1 TCP_KEEPIDLE 60 SO_RCVBUF 131072 SO_SNDBUF 65536",
		"v4: TCP_INFO of a connection: state 1 (ESTABLISHED yes), length positive: yes, SIOCOUTQ 0",
		"v6: udp FIONREAD 3, got 3 from ::1, sender port matches: yes, MSG_TRUNC 4, empty datagram 0",
		"v4: connected udp peer 127.0.0.1, send ok, server got 2; after the server closed: send 4, recv ECONNREFUSED",
		"dual: IPv4 client of [::]: ok, seen as ::ffff:127.0.0.1 (family AF_INET6 yes)",
		"dual: with IPV6_V6ONLY an IPv4 client: ECONNREFUSED; IPV6_V6ONLY after bind: EINVAL",
		"getaddrinfo localhost (AF_INET): 0, 127.0.0.1: yes",
		"getaddrinfo localhost (AI_ADDRCONFIG): 0, 127.0.0.1 among them: yes",
		"done",
	}}},
	// --network none keeps the loopback: the same program, the same output.
	{name: "inet-network-none", prog: "inet", zdtm: zdtmSpec{skip: true}, spec: spec{
		snapFlags: []string{"--network", "none"},
		want:      []string{"dual: IPv4 client of [::]: ok, seen as ::ffff:127.0.0.1 (family AF_INET6 yes)", "done"},
	}},
	// --network host: the same program on host sockets, talking to itself
	// through the host's loopback, prints what it prints natively.
	{name: "inet-network-host", prog: "inet", zdtm: zdtmSpec{skip: true}, spec: spec{
		snapFlags: []string{"--network", "host"},
		want:      []string{"dual: IPv4 client of [::]: ok, seen as ::ffff:127.0.0.1 (family AF_INET6 yes)", "done"},
	}},
	// lo as getifaddrs, if_nameindex, SIOCGIFCONF and a raw NETLINK_ROUTE
	// socket see it (only lo printed: natively the host has more).
	{name: "ifaces", prog: "ifaces", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"getifaddrs: lo AF_PACKET flags UP 1 LOOPBACK 1 RUNNING 1",
		"getifaddrs: lo AF_INET 127.0.0.1 netmask 255.0.0.0",
		"if_nameindex: 1 lo",
		"SIOCGIFCONF: lo 127.0.0.1",
		"RTM_GETLINK 1: from port 0, seq ok yes, type RTM_NEWLINK yes, index 1, name lo, loopback yes",
		"RTM_GETLINK 9999: from port 0, seq ok yes, error ENODEV",
		"done",
	}}},
	// Under --network host the interfaces are the host's: every one of
	// them, with its addresses and flags, as natively.
	{name: "ifaces-network-host", prog: "ifaces", zdtm: zdtmSpec{skip: true}, spec: spec{
		args: []string{"all"}, snapFlags: []string{"--network", "host"},
		want: []string{"if_nameindex: 1 lo", "done"},
	}},
	// kill, getpgid, getsid and prlimit of a zombie succeed until it is reaped.
	{name: "killzombie", prog: "killzombie", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"kill(zombie, 0): 0", "kill(zombie, SIGTERM): 0", "kill(reaped, 0): No such process",
		"getpgid(zombie) is ours: 1", "getsid(zombie) is ours: 1", "prlimit(zombie): 0",
		"getpgid(reaped): No such process",
	}}},
	// Linux starts a signal handler with the initial FP state.
	{name: "fpstate-handler-init", prog: "fpstate", zdtm: zdtmSpec{fast: true}, spec: spec{args: []string{"handler-init"}, want: []string{
		"SIGUSR1 from raw kill: handler ran with round to nearest: yes",
	}}},
	// Pseudo-terminals: /dev/ptmx, /dev/pts, the line discipline, the
	// controlling terminal and job control.
	{name: "pty", prog: "pty", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"open before unlockpt: -1 EIO",
		"slave: chr yes, same as the name yes, as the peer yes; master chr yes, major 5 yes",
		"isatty: master 1, slave 1; ttyname is ptsname: yes",
		"slave read: abd\\n", "echo: abc\\b \\bd\\r\\n",
		"VEOF after ab: ab, VEOF alone: 0",
		"VMIN 3 with 2 queued: readable no, after 2 more: read xyz\\n",
		"TIOCPKT: 0, TIOCGPKT 1, data \\x00p, after a flush: poll 0x3, read \\x01",
		"slave closed: master read -1 EIO, poll 0x10",
		"child: SIGWINCH yes", "child: SIGINT yes", "echo of ^C: ^C", "child: SIGTSTP yes", "child: SIGQUIT yes",
		"child: background read: stopped by Stopped (tty input)",
		"child: background tcsetattr: stopped by Stopped (tty output)",
		"child: background read in an orphaned group: read -1 EIO",
		"child: after setsid /dev/tty ENXIO yes, tcgetpgrp ENOTTY yes",
		"child: SIGHUP yes, SIGCONT yes; read 0 0, write -1 EIO",
		"done",
	}}},
	// A pty pair with a line queued each way, its termios, window size,
	// foreground group and session, saved and restored while it waits.
	{name: "notty", prog: "notty", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"leader: TIOCSCTTY ok",
		"member: /dev/tty ok, tty_nr set yes",
		"member: TIOCNOTTY ok",
		"member: /dev/tty ENXIO, tty_nr 0",
		"member: TIOCNOTTY again ENOTTY",
		"member: TIOCGPGRP ENOTTY",
		"member: session is the leader's yes, group leader's",
		"member: background write ok",
		"member's child: /dev/tty ENXIO, tty_nr 0",
		"member exited",
		"leader: /dev/tty ok, tty_nr set yes",
		"leader: TIOCGPGRP ok, foreground is the leader's yes",
		"master got 3 bytes",
		"done",
	}}},
	{name: "devnlink", prog: "devnlink", zdtm: zdtmSpec{fast: true}, spec: spec{want: []string{
		"/dev: st_nlink is 2 + subdirectories: yes",
		"/dev: has subdirectories: yes",
		"/dev/pts: st_nlink is 2 + subdirectories: yes",
		"/dev/pts: has subdirectories: no",
		"done",
	}}},
	{name: "pty-hold", prog: "pty", zdtm: zdtmSpec{blockedAfter: "queued"}, spec: spec{args: []string{"hold"}, want: []string{
		"slave reads: to the slve\\n", "master reads: to the master\\r\\n", "then: half\\n",
		"window 33x99, VERASE X yes, ECHO no, foreground is the child yes, its session yes",
		"child exited 0",
	}}},
}

// needRoot is the setup of cases whose expected lines assume root with the
// full capability set CI runs with.
func needRoot(t *testing.T, _ string, _ *spec) {
	if os.Geteuid() != 0 {
		prereq.Missing(t, "this case runs as root")
	}
}

// TestPrograms runs every C case built with every libc natively and under
// snap and requires the same stdout, stderr and exit status.
func TestPrograms(t *testing.T) {
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			for _, c := range cCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					bin := program(t, lc, c.prog)
					s := c.spec
					s.zdtm = c.zdtm
					if c.setup != nil {
						c.setup(t, t.TempDir(), &s)
					}
					compare(t, lc.Name+"/"+c.name, append([]string{bin}, s.args...), s)
				})
			}
		})
	}
}

// hostFileData is the deterministic content of the host file that hostfile
// and the busybox cases read: an odd size, not a multiple of any buffer.
func hostFileData() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 1<<20+12345)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// setupHostFile writes dir/data.bin and a symlink dir/link -> data.bin, and
// has hostfile read the file through the link; its SHA-256, computed here,
// must be in the output.
// setupMqueueDir runs mqueuefs as root on dir natively (where it mounts
// an mqueue filesystem) and on /dev/mqueue under snap.
func setupMqueueDir(t *testing.T, dir string, s *spec) {
	needRoot(t, dir, s)
	s.args = []string{dir}
	s.snapFlags = []string{"--env", "MQUEUEFS_DIR=/dev/mqueue"}
}

// setupTmpfsDir gives the program a directory of its own to work in:
// natively dir itself, under snap a tmpfs mounted at dir.
func setupTmpfsDir(t *testing.T, dir string, s *spec) {
	s.args = []string{dir}
	s.snapFlags = []string{"--tmpfs", dir}
}

// setupHostTmpDir returns a setup that makes a new directory in the host's
// /tmp (not t.TempDir, which $TMPDIR may move elsewhere) and names it in
// the environment variable env: under snap it is a directory of the
// overlay root, /tmp being the overlay's when the host's is not empty.
func setupHostTmpDir(env string) func(*testing.T, string, *spec) {
	return func(t *testing.T, _ string, s *spec) {
		dir, err := os.MkdirTemp("/tmp", "snap-ovl-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o1777); err != nil {
			t.Fatal(err)
		}
		s.env = append(s.env, env+"="+dir)
	}
}

// setupHostTmpDirAsRoot is setupHostTmpDir for a case that runs as root.
func setupHostTmpDirAsRoot(env string) func(*testing.T, string, *spec) {
	return func(t *testing.T, dir string, s *spec) {
		needRoot(t, dir, s)
		setupHostTmpDir(env)(t, dir, s)
	}
}

// setupLockFile makes the file the locks case takes flock locks on.
func setupLockFile(t *testing.T, dir string, s *spec) {
	p := filepath.Join(dir, "locked")
	if err := os.WriteFile(p, []byte("locked\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.args = []string{p}
}

func setupHostFile(t *testing.T, dir string, s *spec) {
	data := hostFileData()
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("data.bin", link); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	s.args = []string{link}
	s.want = []string{
		"lstat: symlink: yes",
		"readlink=data.bin",
		"sha256=" + hex.EncodeToString(sum[:]),
		"lseek(SEEK_END)==size: yes",
		"offset unchanged by pread: yes",
		"openat(dirfd, name): same sha256: yes",
		"O_NOFOLLOW on symlink: fd<0 yes, ELOOP yes",
		"missing file: fd<0 yes, ENOENT yes",
	}
}

// vdsoWant are the lines of vdso.c that hold with either libc.
var vdsoWant = []string{
	"AT_SYSINFO_EHDR present: yes",
	"ELF shared object: yes",
	"maps: [vdso] starts at AT_SYSINFO_EHDR: yes, r-xp: yes; [vvar] r--p below it: yes",
	"symbols@LINUX_2.6: clock_gettime yes, gettimeofday yes, time yes, getcpu yes, clock_getres yes",
	"vdso CLOCK_MONOTONIC: returns 0: yes, raw before <= it <= raw after: yes, never back: yes",
	"vdso CLOCK_REALTIME: returns 0: yes, raw before <= it <= raw after: yes",
	"vdso CLOCK_BOOTTIME: returns 0: yes, raw before <= it <= raw after: yes",
	"vdso gettimeofday: returns 0: yes, raw before <= it <= raw after: yes, timezone written: yes",
	"vdso time: raw before <= it <= raw after: yes, stored the same: yes",
	"libc CLOCK_MONOTONIC: returns 0: yes, raw before <= it <= raw after: yes, never back: yes",
	"libc CLOCK_REALTIME: returns 0: yes, raw before <= it <= raw after: yes",
	"libc time: raw before <= it <= raw after: yes, stored the same: yes",
	"vdso getcpu: returns 0: yes, cpu and node written: yes",
	"libc sched_getcpu >= 0: yes",
	"vdso clock_getres CLOCK_MONOTONIC: returns 0: yes, same as raw: yes",
	"libc clock_getres CLOCK_REALTIME: returns 0: yes, same as raw: yes",
	"vdso CLOCK_PROCESS_CPUTIME_ID: returns 0: yes, not back: yes",
	"vdso clock 12345: -22",
	"libc clock 12345: -1",
	"fork: the child's vDSO at the same address works: yes",
	"after execve: AT_SYSINFO_EHDR present: yes, libc clock ordered: yes",
	"execve child status: 0",
}

// setupMremapFile writes dir/pages.bin for mremapfile: three pages, page i
// filled with 'A'+i.
func setupMremapFile(t *testing.T, dir string, s *spec) {
	var data []byte
	for i := range 3 {
		data = append(data, bytes.Repeat([]byte{byte('A' + i)}, 4096)...)
	}
	name := filepath.Join(dir, "pages.bin")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s.args = []string{name}
	s.want = []string{
		"grown to 2 pages: file's next page: yes",
		"whole file mapped: yes",
		"after the wait: 2 pages kept: yes, whole file kept: yes",
		"grown to 3 pages: file's third page: yes",
	}
}

// setupFileMap writes dir/pages.bin for filemap: five pages, page i filled
// with 'A'+i, then 123 bytes of 'F'.
func setupFileMap(t *testing.T, dir string, s *spec) {
	var data []byte
	for i := range 5 {
		data = append(data, bytes.Repeat([]byte{byte('A' + i)}, 4096)...)
	}
	data = append(data, bytes.Repeat([]byte{'F'}, 123)...)
	name := filepath.Join(dir, "pages.bin")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s.args = []string{name}
	s.want = []string{
		"two private mappings read the file: yes",
		"maps: r--p, offset, device and inode: yes",
		"write after mprotect: seen: yes, other mapping unchanged: yes, file unchanged: yes, neighbours kept: yes",
		"maps after the write: one rw-p line: yes",
		"MADV_DONTNEED: file page back: yes",
		"read(2) into the mapping: seen: yes, other mapping unchanged: yes",
		"fork: child's write stayed in the child: yes, parent's page kept: yes",
		"mremap: moved: yes, contents kept: yes",
		"mremap grows a read-only private mapping: file's next pages: yes",
		"mremap grows a writable private mapping: file's next pages: yes",
		"munmap of the middle page: ends kept: yes",
		"last page: file bytes: yes, zero after the end: yes",
		"shared read-only mapping: reads the file: yes, mprotect(PROT_WRITE) EACCES: yes",
		"maps: r--s at offset 0: yes",
	}
}

// tmpfspermWant is what tmpfsperm prints as uid 1000, natively as under
// snap, in a tmpfs (case tmpfsperm) and in the overlay root
// (tmpfsperm-overlay).
var tmpfspermWant = []string{
	"read-write a 0000 file: ok",
	"read root's 0600: EACCES",
	"read-write 0060 of a supplementary group: ok",
	"write own 0406 (others may): EACCES",
	"look up in root's 0700 directory: EACCES",
	"list root's 0711 directory: EACCES",
	"create in root's 0755 directory: EACCES",
	"create in a 1777 directory: ok",
	"O_TMPFILE in root's 0700 directory: EACCES",
	"access X_OK a 0000 file: EACCES",
	"access W_OK root's 0644: EACCES",
	"access F_OK in root's 0700 directory: EACCES",
	"stat in root's 0700 directory: EACCES",
	"chdir to root's 0700 directory: EACCES",
	"readlink in root's 0700 directory: EACCES",
	"statfs in root's 0700 directory: EACCES",
	"link root's 0644 there: EPERM",
	"link root's 0666 there: ok",
	"link own 0406 there: ok",
	"link from root's 0700 directory: EACCES",
	"link own 0406 into root's 0755 directory: EACCES",
	"linkat AT_EMPTY_PATH into root's 0755 directory: EACCES",
	"linkat AT_EMPTY_PATH into root's 0700 directory: EACCES",
	"linkat /proc/self/fd into root's 0755 directory: EACCES",
	"linkat AT_EMPTY_PATH into a 1777 directory: ok",
	"linkat /proc/self/fd into a 1777 directory: ok",
	"linkat AT_EMPTY_PATH of an O_EXCL O_TMPFILE: ENOENT",
	"linkat /proc/self/fd of an O_EXCL O_TMPFILE: ENOENT",
	"getxattr user.* of root's 0600: EACCES",
	"setxattr user.* of root's 0644: EACCES",
	"setxattr user.* of root's 0666: ok",
	"setxattr user.* of root's 1777 directory: EPERM",
	"setxattr trusted.* of root's 0666: EPERM",
	"listxattr of root's 0666: user.* 1, trusted.* 0",
	"getxattr in root's 0700 directory: EACCES",
	"reopen O_PATH root's 0644 read-only: ok",
	"reopen O_PATH root's 0644 read-write: EACCES",
	"reopen O_PATH root's 0600 read-only: EACCES",
	"reopen O_PATH root's 0666 read-write: ok",
	"connect to root's 0777 socket: ok",
	"connect to root's 0755 socket: EACCES",
	"connect to a socket in root's 0700 directory: EACCES",
	"connect to root's 0666 regular file: Connection refused",
	"connect to root's 0644 regular file: EACCES",
	"unlink root's file in a 1777 directory: EPERM",
	"rename own file in a 1777 directory: ok",
	"chgrp own file to another group: EPERM",
	"touch root's 0644: EACCES",
	"set times of root's 0666: EPERM",
	"chmod 02755 of own file of another group: mode 755",
	"memfd owner 1000:1000, fchmod: ok",
	"write a 0000 file: EACCES",
}
