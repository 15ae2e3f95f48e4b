/*
 * procvm: process_vm_readv and process_vm_writev on the caller itself and
 * on a child (scattered on both sides), a copy cut short by an unmapped
 * page, faults, a read-only target, errors, and (as root) Linux's access
 * rule: a process whose IDs differ from the target's is refused, the root
 * parent with CAP_SYS_PTRACE is not. Also epoll_pwait2: a timespec timeout,
 * a ready descriptor, a signal mask that lets one signal through during
 * the wait and is gone afterwards, and errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }
static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static char shared_text[64] = "the child's own words";

static pid_t child_waiting(int *go, int drop_to)
{
	int ready[2], g[2];
	pipe(ready);
	pipe(g);
	pid_t pid = fork();
	if (pid == 0) {
		if (drop_to && setresgid(drop_to, drop_to, drop_to) == 0)
			setresuid(drop_to, drop_to, drop_to);
		write(ready[1], "r", 1);
		char c;
		read(g[0], &c, 1);
		_exit(strcmp(shared_text, "written by the parent") == 0 ? 0 : 1);
	}
	close(ready[1]);
	close(g[0]);
	char c;
	read(ready[0], &c, 1);
	close(ready[0]);
	*go = g[1];
	return pid;
}

static void own(void)
{
	char src[32] = "copied from myself", dst[32] = {0};
	struct iovec l = {dst, sizeof dst}, r = {src, sizeof src};
	long n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
	printf("readv of myself: %ld, \"%s\"\n", n, dst);
	char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(two + 4096, 4096);
	memset(two, 'x', 4096);
	char big[8192];
	l = (struct iovec){big, sizeof big};
	r = (struct iovec){two + 4096 - 100, 4196};
	printf("readv running into an unmapped page: %ld\n", (long)process_vm_readv(getpid(), &l, 1, &r, 1, 0));
	r = (struct iovec){two + 4096, 100};
	printf("readv of an unmapped page: %s\n", res(process_vm_readv(getpid(), &l, 1, &r, 1, 0)));
	mprotect(two, 4096, PROT_READ);
	r = (struct iovec){two, 16};
	l = (struct iovec){src, 16};
	printf("writev into a read-only page: %s\n", res(process_vm_writev(getpid(), &l, 1, &r, 1, 0)));
	l = (struct iovec){two + 4096, 16};
	r = (struct iovec){dst, 16};
	printf("writev from an unmapped local page: %s\n", res(process_vm_writev(getpid(), &l, 1, &r, 1, 0)));
	printf("flags: %s\n", res(process_vm_readv(getpid(), &l, 1, &r, 1, 1)));
	printf("too many iovecs: %s\n", res(process_vm_readv(getpid(), &l, 1025, &r, 1, 0)));
	printf("no iovecs: %ld\n", (long)process_vm_readv(getpid(), NULL, 0, NULL, 0, 0));
	munmap(two, 4096);
}

static void child(void)
{
	int go;
	pid_t pid = child_waiting(&go, 0);
	char a[5] = {0}, b[64] = {0};
	struct iovec l[2] = {{a, 4}, {b, sizeof b}};
	struct iovec r[2] = {{shared_text, 10}, {shared_text + 10, sizeof shared_text - 10}};
	long n = process_vm_readv(pid, l, 2, r, 2, 0);
	printf("readv of a child, 2 iovecs each side: %ld, \"%s\" + \"%s\"\n", n, a, b);
	char words[] = "written by the parent";
	struct iovec w[2] = {{words, 8}, {words + 8, sizeof words - 8}};
	struct iovec rw = {shared_text, sizeof words};
	n = process_vm_writev(pid, w, 2, &rw, 1, 0);
	printf("writev into the child: %ld, parent's copy unchanged %s\n", n, yesno(strcmp(shared_text, "the child's own words") == 0));
	write(go, "g", 1);
	int st;
	waitpid(pid, &st, 0);
	printf("child saw the parent's words: %s\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	printf("readv of a reaped child: %s\n", res(process_vm_readv(pid, l, 2, r, 2, 0)));
}

static void access_rule(void)
{
	if (geteuid() != 0) {
		printf("access rule: not root, skipped\n");
		return;
	}
	int go;
	pid_t target = child_waiting(&go, 1234);
	char buf[8];
	struct iovec l = {buf, sizeof buf}, r = {shared_text, sizeof buf};
	printf("root parent reads a child with other IDs: %s\n", res(process_vm_readv(target, &l, 1, &r, 1, 0)));
	pid_t other = fork();
	if (other == 0) {
		setresgid(4321, 4321, 4321);
		setresuid(4321, 4321, 4321);
		long rc = process_vm_readv(target, &l, 1, &r, 1, 0);
		_exit(rc < 0 && errno == EPERM ? 0 : 1);
	}
	int st;
	waitpid(other, &st, 0);
	printf("a process with other IDs is refused (EPERM): %s\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	kill(target, SIGKILL);
	waitpid(target, &st, 0);
	close(go);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static void pwait2(void)
{
	int ep = epoll_create1(0), p[2];
	pipe(p);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7};
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	struct timespec ts = {0, 20000000};
	printf("epoll_pwait2, nothing ready, 20 ms: %ld\n", (long)syscall(SYS_epoll_pwait2, ep, &ev, 1, &ts, NULL, 8));
	write(p[1], "x", 1);
	long n = syscall(SYS_epoll_pwait2, ep, &ev, 1, NULL, NULL, 8);
	printf("epoll_pwait2, a pipe ready, no timeout: %ld, data %u\n", n, ev.data.u32);
	char c;
	read(p[0], &c, 1);
	ts = (struct timespec){0, -1};
	printf("bad timespec: %s\n", res(syscall(SYS_epoll_pwait2, ep, &ev, 1, &ts, NULL, 8)));
	printf("bad sigset size: %s\n", res(syscall(SYS_epoll_pwait2, ep, &ev, 1, NULL, &(sigset_t){0}, 4)));

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t block, during, now;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR1);
	sigemptyset(&during);
	ts = (struct timespec){5, 0};
	errno = 0;
	n = syscall(SYS_epoll_pwait2, ep, &ev, 1, &ts, &during, 8);
	int e = errno;
	sigprocmask(SIG_BLOCK, NULL, &now);
	printf("pending SIGUSR1 let through by the mask: %ld %s, handler ran %s, blocked again after %s\n", n,
	       n < 0 ? strerror(e) : "", yesno(got_usr1), yesno(sigismember(&now, SIGUSR1)));
	got_usr1 = 0;
	kill(getpid(), SIGUSR1);
	ts = (struct timespec){0, 1000000};
	n = syscall(SYS_epoll_pwait, ep, &ev, 1, 1, &block, 8);
	printf("epoll_pwait with SIGUSR1 still blocked: %ld, handler ran %s\n", n, yesno(got_usr1));
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	printf("unblocked: handler ran %s\n", yesno(got_usr1));
	close(ep);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	own();
	child();
	access_rule();
	pwait2();
	return 0;
}
