// intercept: the cost of one intercepted system call under each mechanism
// this host offers a user-space kernel, measured with no sentry at all: a
// child makes getppid calls that its parent answers (42), and the parent
// prints the mean nanoseconds of one round trip.
//
//   intercept MODE COUNT CHILDCPU
//
// MODE is one of
//   native        the call itself, unintercepted (no child)
//   sysemu        ptrace: PTRACE_SYSEMU, wait, GETREGS, SETREGS (what snap does)
//   trace         ptrace: a seccomp filter returning SECCOMP_RET_TRACE, PTRACE_CONT
//   notif         seccomp user notification: RECV, SEND (arguments in, one value out)
//   notif-sync    the same with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
//   sigsys        SECCOMP_RET_TRAP: a SIGSYS handler in the child whose own
//                 system call is a user notification, and which writes the
//                 answer into the signal frame (full registers, as a
//                 signal-based platform would have)
// The parent runs on CPU 0; the child on CHILDCPU (0: the same CPU).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef PTRACE_SYSEMU
#define PTRACE_SYSEMU 31
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define WARMUP 100
#define ANSWER 42

static long count;

static void die(const char *what) {
	fprintf(stderr, "intercept: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static void pin(int cpu) {
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof s, &s))
		die("sched_setaffinity");
}

// child_loop makes the calls and checks every answer.
static void child_loop(void) {
	for (long i = 0; i < count + WARMUP; i++)
		if (syscall(SYS_getppid) != ANSWER)
			_exit(3);
	syscall(SYS_exit_group, 0);
}

// filter installs a filter that returns action for getppid and, if
// also_notif, SECCOMP_RET_USER_NOTIF for getpid; it returns the listener
// (or 0).
static int filter(unsigned action, int also_notif) {
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, action),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, also_notif ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof f / sizeof f[0], f};
	int listen = action == SECCOMP_RET_USER_NOTIF || also_notif;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die("PR_SET_NO_NEW_PRIVS");
	long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, listen ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &prog);
	if (fd < 0)
		die("seccomp");
	return (int)fd;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
	(void)sig;
	(void)si;
	((ucontext_t *)uc)->uc_mcontext.gregs[REG_RAX] = syscall(SYS_getpid);
}

static double run_ptrace(int child_cpu, int trace) {
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		pin(child_cpu);
		if (trace)
			filter(SECCOMP_RET_TRACE, 0);
		raise(SIGSTOP);
		child_loop();
	}
	int st;
	if (waitpid(c, &st, WSTOPPED) != c)
		die("waitpid");
	if (ptrace(PTRACE_SEIZE, c, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL))
		die("PTRACE_SEIZE");
	kill(c, SIGCONT);
	if (waitpid(c, &st, __WALL) != c) // the SIGCONT's signal-delivery stop
		die("waitpid");
	int req = trace ? PTRACE_CONT : PTRACE_SYSEMU;
	if (ptrace(req, c, 0, 0))
		die("resume");
	double start = 0;
	for (long i = 0; i < count + WARMUP;) {
		if (waitpid(c, &st, __WALL) != c)
			die("waitpid");
		if (!WIFSTOPPED(st)) {
			fprintf(stderr, "intercept: child ended: status %#x\n", st);
			exit(1);
		}
		struct user_regs_struct r;
		if (ptrace(PTRACE_GETREGS, c, 0, &r))
			die("PTRACE_GETREGS");
		if (r.orig_rax == SYS_getppid) {
			r.rax = ANSWER;
			r.orig_rax = -1; // skipped (seccomp) or already skipped (sysemu)
			if (ptrace(PTRACE_SETREGS, c, 0, &r))
				die("PTRACE_SETREGS");
			if (++i == WARMUP)
				start = now_ns();
		}
		if (ptrace(req, c, 0, 0))
			die("resume");
	}
	double ns = (now_ns() - start) / count;
	kill(c, SIGKILL);
	waitpid(c, &st, __WALL);
	return ns;
}

static double run_notif(int child_cpu, int sync, int sigsys) {
	int p[2];
	if (pipe(p))
		die("pipe");
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		pin(child_cpu);
		int fd;
		if (sigsys) {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_sigaction = on_sigsys;
			sa.sa_flags = SA_SIGINFO;
			if (sigaction(SIGSYS, &sa, 0))
				die("sigaction");
			fd = filter(SECCOMP_RET_TRAP, 1);
		} else {
			fd = filter(SECCOMP_RET_USER_NOTIF, 0);
		}
		if (write(p[1], &fd, sizeof fd) != sizeof fd)
			die("write");
		// The calls wait in the listener's queue until the parent
		// holds it.
		child_loop();
	}
	int fd;
	if (read(p[0], &fd, sizeof fd) != sizeof fd)
		die("read");
	int pidfd = syscall(SYS_pidfd_open, c, 0);
	if (pidfd < 0)
		die("pidfd_open");
	int lfd = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (lfd < 0)
		die("pidfd_getfd");
	if (sync && ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0))
		die("SECCOMP_IOCTL_NOTIF_SET_FLAGS");
	close(p[0]);
	close(p[1]);
	double start = 0;
	for (long i = 0; i < count + WARMUP; i++) {
		struct seccomp_notif n;
		struct seccomp_notif_resp r;
		memset(&n, 0, sizeof n);
		if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &n))
			die("SECCOMP_IOCTL_NOTIF_RECV");
		memset(&r, 0, sizeof r);
		r.id = n.id;
		r.val = ANSWER;
		if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, &r))
			die("SECCOMP_IOCTL_NOTIF_SEND");
		if (i + 1 == WARMUP)
			start = now_ns();
	}
	double ns = (now_ns() - start) / count;
	int st;
	if (waitpid(c, &st, 0) != c)
		die("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "intercept: child status %#x\n", st);
		exit(1);
	}
	return ns;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: intercept MODE COUNT CHILDCPU\n");
		return 2;
	}
	const char *mode = argv[1];
	count = atol(argv[2]);
	int child_cpu = atoi(argv[3]);
	if (count <= 0) {
		fprintf(stderr, "intercept: bad count %s\n", argv[2]);
		return 2;
	}
	pin(0);
	double ns;
	if (!strcmp(mode, "native")) {
		pin(child_cpu);
		for (int i = 0; i < WARMUP; i++)
			syscall(SYS_getppid);
		double start = now_ns();
		for (long i = 0; i < count; i++)
			syscall(SYS_getppid);
		ns = (now_ns() - start) / count;
	} else if (!strcmp(mode, "sysemu")) {
		ns = run_ptrace(child_cpu, 0);
	} else if (!strcmp(mode, "trace")) {
		ns = run_ptrace(child_cpu, 1);
	} else if (!strcmp(mode, "notif")) {
		ns = run_notif(child_cpu, 0, 0);
	} else if (!strcmp(mode, "notif-sync")) {
		ns = run_notif(child_cpu, 1, 0);
	} else if (!strcmp(mode, "sigsys")) {
		ns = run_notif(child_cpu, 1, 1);
	} else {
		fprintf(stderr, "intercept: unknown mode %s\n", mode);
		return 2;
	}
	printf("%.0f\n", ns);
	return 0;
}
