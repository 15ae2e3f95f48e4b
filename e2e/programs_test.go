package e2e

import (
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
	// they block).
	{name: "counter", prog: "counter", zdtm: zdtmSpec{blockedAfter: "count 1 sum OK"}, spec: spec{args: []string{"3"}, want: []string{"count 1 sum OK", "count 3 sum OK"}}},
	{name: "sleeper", prog: "sleeper", zdtm: zdtmSpec{blockedAfter: "slept 1"}, spec: spec{args: []string{"3"}, want: []string{"slept 1", "slept 3"}}},
	{name: "stdinreader", prog: "stdinreader", zdtm: zdtmSpec{blockedAfter: "ready"}, spec: spec{
		stdin: "one\ntwo words\n\nlast without newline",
		want:  []string{"ready", "got: one", "got: two words", "got: ", "got: last without newline", "eof after 4 lines"},
	}},
	{name: "sigpending", prog: "sigpending", zdtm: zdtmSpec{blockedAfter: "waiting 1: SIGUSR1 pending yes, SIGUSR2 pending no"}, spec: spec{args: []string{"3"}, want: []string{
		"waiting 3: SIGUSR1 pending yes, SIGUSR2 pending no", "delivered SIGUSR1 1 SIGUSR2 0",
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
	// Fast; and a save while the memfd is open is refused (STATUS.md).
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
	{name: "itimer", prog: "itimer", zdtm: zdtmSpec{blockedAfter: "tick 1"}, spec: spec{args: []string{"3"}, want: []string{"tick 1", "tick 3"}}},
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
	// Exact errors of small calls, against native Linux.
	{name: "exacterr", prog: "exacterr", spec: spec{want: []string{
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
		"SIGCHLD: code CLD_EXITED yes, pid is the child yes, status 3: yes",
	}}},
	// Unix domain sockets: pairs, an abstract-name server, descriptors and
	// credentials in messages, options, readiness, interruption.
	{name: "unixsock", prog: "unixsock", spec: spec{want: []string{
		"recv joins the sends: 7 'abcdefg'",
		"after the peer closed with unread data: ECONNRESET, then 0, write EPIPE, SIGPIPEs 2",
		"boundaries: 5 7 0",
		"MSG_TRUNC returns the full length: 10",
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
	// Linux starts a signal handler with the initial FP state.
	{name: "fpstate-handler-init", prog: "fpstate", zdtm: zdtmSpec{fast: true}, spec: spec{args: []string{"handler-init"}, want: []string{
		"SIGUSR1 from raw kill: handler ran with round to nearest: yes",
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
