/*
 * pidfd: pidfd_open (errors, PIDFD_NONBLOCK, close-on-exec), poll and
 * epoll on a pidfd (readable when the process exits, POLLHUP once reaped),
 * waitid(P_PIDFD) (blocking, and EAGAIN on a non-blocking pidfd),
 * pidfd_send_signal (a caught signal, SIGTERM, signal 0, a zombie, a
 * reaped process, siginfo errors), pidfd_getfd (a pipe and an eventfd of a
 * child, errors), clone(CLONE_PIDFD) and clone3 with CLONE_PIDFD.
 *
 * Its last part is where the zdtm mode saves it: "polling a child that
 * reads stdin" is printed, then the parent waits in poll on the pidfd of a
 * child blocked reading stdin; after the line arrives the child exits 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

static const char *yesno(int b) { return b ? "yes" : "no"; }
static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static int pidfd_open(pid_t pid, unsigned flags) { return syscall(SYS_pidfd_open, pid, flags); }
static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags)
{
	return syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}
static int pidfd_getfd(int fd, int target, unsigned flags) { return syscall(SYS_pidfd_getfd, fd, target, flags); }

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

/* child_waiting forks a child that tells the parent it is ready, then
 * waits for a byte on a pipe and exits with code. */
static pid_t child_waiting(int code, int *release)
{
	int ready[2], go[2];
	pipe(ready);
	pipe(go);
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		write(ready[1], "r", 1);
		char c;
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(code);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	read(ready[0], &c, 1);
	close(ready[0]);
	*release = go[1];
	return pid;
}

static void opens(void)
{
	errno = 0;
	printf("pidfd_open(0): %s\n", res(pidfd_open(0, 0)));
	printf("pidfd_open(-1): %s\n", res(pidfd_open(-1, 0)));
	printf("pidfd_open(self, bad flags): %s\n", res(pidfd_open(getpid(), 1)));
	int fd = pidfd_open(getpid(), 0);
	printf("pidfd_open(self): %s, close-on-exec: %s\n", res(fd), yesno(fcntl(fd, F_GETFD) & FD_CLOEXEC));
	char buf[8];
	printf("read of a pidfd: %s\n", res(read(fd, buf, sizeof buf)));
	struct pollfd p = {fd, POLLIN, 0};
	printf("poll of a live process: %d\n", poll(&p, 1, 0));
	close(fd);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	printf("pidfd_open(reaped child): %s\n", res(pidfd_open(pid, 0)));
}

static void polls(void)
{
	int release;
	pid_t pid = child_waiting(5, &release);
	int fd = pidfd_open(pid, 0);
	struct pollfd p = {fd, POLLIN, 0};
	printf("running child: poll %d\n", poll(&p, 1, 0));
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 99};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	printf("running child: epoll_wait %d\n", epoll_wait(ep, &ev, 1, 0));
	write(release, "g", 1);
	close(release);
	int n = poll(&p, 1, -1);
	printf("exited child: poll %d, POLLIN %s, POLLHUP %s\n", n, yesno(p.revents & POLLIN), yesno(p.revents & POLLHUP));
	n = epoll_wait(ep, &ev, 1, -1);
	printf("exited child: epoll_wait %d, data %u, EPOLLIN %s\n", n, ev.data.u32, yesno(ev.events & EPOLLIN));
	printf("signal 0 to a zombie: %s\n", res(pidfd_send_signal(fd, 0, NULL, 0)));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int rc = waitid(P_PIDFD, fd, &si, WEXITED);
	printf("waitid(P_PIDFD): %s, pid matches %s, CLD_EXITED %s, status %d\n", res(rc), yesno(si.si_pid == pid),
	       yesno(si.si_code == CLD_EXITED), si.si_status);
	p.revents = 0;
	n = poll(&p, 1, 0);
	printf("reaped child: poll %d, POLLIN %s, POLLHUP %s\n", n, yesno(p.revents & POLLIN), yesno(p.revents & POLLHUP));
	printf("signal 0 to a reaped process: %s\n", res(pidfd_send_signal(fd, 0, NULL, 0)));
	printf("waitid(P_PIDFD) again: %s\n", res(waitid(P_PIDFD, fd, &si, WEXITED)));
	close(ep);
	close(fd);
}

static void nonblocking(void)
{
	int release;
	pid_t pid = child_waiting(6, &release);
	int fd = pidfd_open(pid, PIDFD_NONBLOCK);
	siginfo_t si;
	printf("waitid on a PIDFD_NONBLOCK pidfd of a running child: %s\n", res(waitid(P_PIDFD, fd, &si, WEXITED)));
	memset(&si, 0, sizeof si);
	printf("same with WNOHANG: %s, si_pid 0 %s\n", res(waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG)), yesno(si.si_pid == 0));
	write(release, "g", 1);
	close(release);
	struct pollfd p = {fd, POLLIN, 0};
	poll(&p, 1, -1);
	memset(&si, 0, sizeof si);
	printf("after the exit: %s, status %d\n", res(waitid(P_PIDFD, fd, &si, WEXITED)), si.si_status);
	close(fd);
}

static void signals(void)
{
	int release;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	int fd = pidfd_open(getpid(), 0);
	long rc = pidfd_send_signal(fd, SIGUSR1, NULL, 0);
	printf("SIGUSR1 to self: %s, handler ran %s\n", res(rc), yesno(got_usr1));
	got_usr1 = 0;
	rc = pidfd_send_signal(fd, SIGUSR1, NULL, 2); /* PIDFD_SIGNAL_THREAD_GROUP */
	printf("SIGUSR1 to self's thread group: %s, handler ran %s\n", res(rc), yesno(got_usr1));
	char proc[32];
	snprintf(proc, sizeof proc, "/proc/%d", (int)getpid());
	int dir = open(proc, O_RDONLY | O_DIRECTORY);
	got_usr1 = 0;
	rc = pidfd_send_signal(dir, SIGUSR1, NULL, 0);
	printf("SIGUSR1 through /proc/self's directory: %s, handler ran %s\n", res(rc), yesno(got_usr1));
	printf("waitid on a /proc directory: %s\n", res(waitid(P_PIDFD, dir, &(siginfo_t){0}, WEXITED | WNOHANG)));
	close(dir);
	dir = open("/proc", O_RDONLY | O_DIRECTORY);
	printf("pidfd_send_signal on /proc itself: %s\n", res(pidfd_send_signal(dir, SIGUSR1, NULL, 0)));
	close(dir);
	printf("bad signal: %s\n", res(pidfd_send_signal(fd, 99, NULL, 0)));
	printf("bad flags: %s\n", res(pidfd_send_signal(fd, SIGUSR1, NULL, 8)));
	printf("two scopes: %s\n", res(pidfd_send_signal(fd, SIGUSR1, NULL, 3)));
	printf("not a pidfd: %s\n", res(pidfd_send_signal(1, SIGUSR1, NULL, 0)));
	printf("closed descriptor: %s\n", res(pidfd_send_signal(999, SIGUSR1, NULL, 0)));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGUSR2;
	si.si_code = SI_QUEUE;
	printf("siginfo with another signal: %s\n", res(pidfd_send_signal(fd, SIGUSR1, &si, 0)));
	close(fd);

	pid_t pid = child_waiting(0, &release);
	fd = pidfd_open(pid, 0);
	si.si_signo = SIGTERM;
	si.si_code = SI_USER;
	printf("SI_USER siginfo to another process: %s\n", res(pidfd_send_signal(fd, SIGTERM, &si, 0)));
	printf("SIGTERM to a child: %s\n", res(pidfd_send_signal(fd, SIGTERM, NULL, 0)));
	memset(&si, 0, sizeof si);
	waitid(P_PIDFD, fd, &si, WEXITED);
	printf("child: CLD_KILLED %s, by SIGTERM %s\n", yesno(si.si_code == CLD_KILLED), yesno(si.si_status == SIGTERM));
	close(release);
	close(fd);
}

static void getfds(void)
{
	int ready[2], go[2];
	pipe(ready);
	pipe(go);
	pid_t pid = fork();
	if (pid == 0) {
		int p[2];
		pipe(p);
		write(p[1], "from the child", 14);
		dup2(p[0], 100);
		int e = eventfd(41, 0);
		dup2(e, 101);
		write(ready[1], "r", 1);
		char c;
		read(go[0], &c, 1);
		uint64_t v = 0;
		read(101, &v, sizeof v);
		_exit(v == 1 ? 0 : 1); /* the parent read 41, then added 1 */
	}
	char c;
	read(ready[0], &c, 1);
	int fd = pidfd_open(pid, 0);
	int got = pidfd_getfd(fd, 100, 0);
	char buf[32] = {0};
	read(got, buf, sizeof buf - 1);
	printf("pidfd_getfd of a child's pipe: %s, read \"%s\", close-on-exec %s\n", res(got), buf,
	       yesno(fcntl(got, F_GETFD) & FD_CLOEXEC));
	int ev = pidfd_getfd(fd, 101, 0);
	uint64_t v = 0;
	read(ev, &v, sizeof v);
	printf("pidfd_getfd of a child's eventfd: %s, counter %llu\n", res(ev), (unsigned long long)v);
	v = 1;
	write(ev, &v, sizeof v);
	printf("pidfd_getfd of a closed descriptor: %s\n", res(pidfd_getfd(fd, 555, 0)));
	printf("pidfd_getfd with flags: %s\n", res(pidfd_getfd(fd, 100, 1)));
	printf("pidfd_getfd of a non-pidfd: %s\n", res(pidfd_getfd(got, 100, 0)));
	write(go[1], "g", 1);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	waitid(P_PIDFD, fd, &si, WEXITED);
	printf("child saw the eventfd write: %s\n", yesno(si.si_code == CLD_EXITED && si.si_status == 0));
	close(got);
	close(ev);
	close(fd);
}

static void clones(void)
{
	int pfd = -1;
	long rc = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &pfd, 0, 0);
	if (rc == 0)
		_exit(7);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	int w = waitid(P_PIDFD, pfd, &si, WEXITED);
	printf("clone(CLONE_PIDFD): %s, pidfd close-on-exec %s, waitid %s, pid matches %s, status %d\n", res(rc),
	       yesno(fcntl(pfd, F_GETFD) & FD_CLOEXEC), res(w), yesno(si.si_pid == rc), si.si_status);
	close(pfd);
	int dummy;
	printf("clone(CLONE_PIDFD|CLONE_PARENT_SETTID): %s\n",
	       res(syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &dummy, 0, 0)));

	struct clone_args_v2 args;
	memset(&args, 0, sizeof args);
	int pfd3 = -1;
	args.flags = CLONE_PIDFD;
	args.pidfd = (uintptr_t)&pfd3;
	args.exit_signal = SIGCHLD;
	rc = syscall(SYS_clone3, &args, sizeof args);
	if (rc == 0)
		_exit(9);
	memset(&si, 0, sizeof si);
	w = waitid(P_PIDFD, pfd3, &si, WEXITED);
	printf("clone3(CLONE_PIDFD): %s, waitid %s, pid matches %s, status %d\n", res(rc), res(w), yesno(si.si_pid == rc),
	       si.si_status);
	close(pfd3);
	printf("clone3 with a short size: %s\n", res(syscall(SYS_clone3, &args, 8)));
	args.flags = SIGCHLD;
	printf("clone3 with a signal in flags: %s\n", res(syscall(SYS_clone3, &args, sizeof args)));
	args.flags = 0;
	args.stack_size = 4096;
	printf("clone3 with a stack size but no stack: %s\n", res(syscall(SYS_clone3, &args, sizeof args)));
}

static void across_save(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		char line[64];
		if (fgets(line, sizeof line, stdin) == NULL)
			_exit(1);
		_exit(3);
	}
	int fd = pidfd_open(pid, 0);
	printf("polling a child that reads stdin\n");
	fflush(stdout);
	struct pollfd p = {fd, POLLIN, 0};
	int n;
	while ((n = poll(&p, 1, -1)) < 0 && errno == EINTR)
		;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	waitid(P_PIDFD, fd, &si, WEXITED);
	printf("child exited: poll %d, POLLIN %s, status %d\n", n, yesno(p.revents & POLLIN), si.si_status);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	opens();
	polls();
	nonblocking();
	signals();
	getfds();
	clones();
	across_save();
	return 0;
}
