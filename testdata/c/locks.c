/*
 * locks FILE: advisory locks between processes. flock on FILE (opened
 * read-only): exclusive and shared conflicts with LOCK_NB, the inherited
 * description being the same owner, a blocked LOCK_EX granted when the
 * holder unlocks, ended by a signal (EINTR) and by SIGKILL, release at the
 * last close of a description, conversion. POSIX record locks on a memfd:
 * F_GETLK reporting the conflicting range and pid, ranges split and
 * merged, negative l_len, EAGAIN, EBADF and EINVAL, release when the
 * process closes any descriptor of the file and when it exits, a blocked
 * F_SETLKW granted at the unlock, EDEADLK for a wait that would close a
 * cycle. OFD locks: a different owner from the
 * process's POSIX locks, shared through fork, released at the last close.
 * Each probe runs in a forked child; the parent waits for it, so the
 * output order is fixed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#define F_OFD_SETLKW 38
#endif

static const char *path;
static int mfd;
static pid_t parent;
static int ready[2], go[2];

static const char *res(int rc)
{
	if (rc == 0)
		return "ok";
	return errno == EWOULDBLOCK ? "EWOULDBLOCK" : errno == EDEADLK ? "EDEADLK" : strerror(errno);
}

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000 * 1000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* child runs f in a child process and waits for it; returns its status. */
static int child(void (*f)(void))
{
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		f();
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(p, &st, 0);
	return st;
}

static int flock_own(int op)
{
	int fd = open(path, O_RDONLY);
	int rc = flock(fd, op | LOCK_NB);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static void probe_ex(void) { printf("  other description LOCK_EX|LOCK_NB: %s\n", res(flock_own(LOCK_EX))); }
static void probe_sh(void) { printf("  other description LOCK_SH|LOCK_NB: %s\n", res(flock_own(LOCK_SH))); }

static int held_fd;

static void probe_inherited(void)
{
	printf("  inherited description LOCK_EX|LOCK_NB: %s\n", res(flock(held_fd, LOCK_EX | LOCK_NB)));
	probe_ex();
	probe_sh();
}

static void blocked_flock(void)
{
	int fd = open(path, O_RDONLY);
	write(ready[1], "r", 1);
	int rc = flock(fd, LOCK_EX);
	char c;
	fcntl(go[0], F_SETFL, O_NONBLOCK);
	int released = read(go[0], &c, 1) == 1;
	printf("  blocked LOCK_EX: %s, granted after the holder's unlock: %s\n", res(rc), released ? "yes" : "no");
}

static void on_alarm(int sig) { (void)sig; }

static void interrupted_flock(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 0}, {0, 50000}};
	setitimer(ITIMER_REAL, &it, NULL);
	int fd = open(path, O_RDONLY);
	int rc = flock(fd, LOCK_EX);
	printf("  blocked LOCK_EX with SIGALRM (no SA_RESTART): %s\n", rc == 0 ? "ok" : strerror(errno));
}

static void killed_flock(void)
{
	int fd = open(path, O_RDONLY);
	write(ready[1], "r", 1);
	flock(fd, LOCK_EX);
	printf("  killed LOCK_EX returned: must not happen\n");
}

/* wait_ready reads the child's ready byte, then gives it time to block. */
static void wait_ready(void)
{
	char c;
	read(ready[0], &c, 1);
	nap_ms(100);
}

static void flocks(void)
{
	printf("flock:\n");
	held_fd = open(path, O_RDONLY);
	printf("  LOCK_EX: %s\n", res(flock(held_fd, LOCK_EX)));
	child(probe_inherited);

	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		blocked_flock();
		fflush(stdout);
		_exit(0);
	}
	wait_ready();
	write(go[1], "u", 1);
	flock(held_fd, LOCK_UN);
	waitpid(p, NULL, 0);
	child(probe_ex);

	flock(held_fd, LOCK_EX);
	child(interrupted_flock);
	fflush(stdout);
	p = fork();
	if (p == 0) {
		killed_flock();
		_exit(0);
	}
	wait_ready();
	kill(p, SIGKILL);
	int st;
	waitpid(p, &st, 0);
	printf("  blocked LOCK_EX ended by SIGKILL: %s\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "yes" : "no");
	close(held_fd);
	printf("  after close of the only descriptor:\n");
	child(probe_ex);

	int a = open(path, O_RDONLY);
	flock(a, LOCK_EX);
	int b = dup(a);
	close(a);
	printf("  after closing one of two descriptors of the holder:\n");
	child(probe_ex);
	close(b);
	printf("  after closing the other:\n");
	child(probe_ex);

	a = open(path, O_RDONLY);
	printf("  LOCK_SH: %s\n", res(flock(a, LOCK_SH)));
	child(probe_sh);
	child(probe_ex);
	printf("  LOCK_SH -> LOCK_EX: %s\n", res(flock(a, LOCK_EX)));
	child(probe_sh);
	printf("  LOCK_UN: %s\n", res(flock(a, LOCK_UN)));
	child(probe_ex);
	printf("  bad operation: %s\n", res(flock(a, 3)));
	close(a);
}

static int setlk(int fd, int cmd, short type, short whence, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = whence, .l_start = start, .l_len = len};
	return fcntl(fd, cmd, &fl);
}

static const char *typename(short t) { return t == F_RDLCK ? "F_RDLCK" : t == F_WRLCK ? "F_WRLCK" : t == F_UNLCK ? "F_UNLCK" : "?"; }

static void getlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	if (fcntl(fd, cmd, &fl) != 0) {
		printf("    %s %s %lld+%lld: %s\n", cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", typename(type), (long long)start,
		       (long long)len, strerror(errno));
		return;
	}
	const char *who = fl.l_pid == parent ? "parent" : fl.l_pid == -1 ? "-1" : "other";
	if (fl.l_type == F_UNLCK)
		printf("    %s %s %lld+%lld: F_UNLCK\n", cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", typename(type),
		       (long long)start, (long long)len);
	else
		printf("    %s %s %lld+%lld: %s at %lld+%lld, pid %s\n", cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK",
		       typename(type), (long long)start, (long long)len, typename(fl.l_type), (long long)fl.l_start,
		       (long long)fl.l_len, who);
}

static void probe_whole(void)
{
	getlk(mfd, F_GETLK, F_RDLCK, 0, 0);
	getlk(mfd, F_GETLK, F_WRLCK, 0, 0);
}

static void probe_ranges(void)
{
	getlk(mfd, F_GETLK, F_RDLCK, 50, 10);
	getlk(mfd, F_GETLK, F_WRLCK, 30, 0);
	printf("    F_SETLK F_RDLCK 50+10: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, 50, 10)));
	printf("    F_SETLK F_RDLCK 100+100: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, 100, 100)));
}

static void blocked_setlkw(void)
{
	write(ready[1], "r", 1);
	int rc = setlk(mfd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 0);
	char c;
	fcntl(go[0], F_SETFL, O_NONBLOCK);
	int released = read(go[0], &c, 1) == 1;
	printf("    blocked F_SETLKW: %s, granted after the holder's unlock: %s\n", res(rc), released ? "yes" : "no");
	probe_whole(); /* its own lock: no conflict */
}

/* deadlock: the parent holds byte 0 and waits for byte 1, which a child
 * holds; the child then asks for byte 0 and gets EDEADLK, and exits, which
 * gives the parent its byte. */
static void deadlock(void)
{
	int held[2], blocking[2];
	pipe(held);
	pipe(blocking);
	setlk(mfd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		setlk(mfd, F_SETLK, F_WRLCK, SEEK_SET, 1, 1);
		write(held[1], "h", 1);
		char c;
		read(blocking[0], &c, 1);
		nap_ms(100);
		printf("    child F_SETLKW of the parent's byte while the parent waits for the child's: %s\n",
		       res(setlk(mfd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
		printf("    child F_SETLK of it: %s\n", res(setlk(mfd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
		fflush(stdout);
		_exit(0);
	}
	char c;
	read(held[0], &c, 1);
	write(blocking[1], "b", 1);
	int rc = setlk(mfd, F_SETLKW, F_WRLCK, SEEK_SET, 1, 1);
	printf("  parent F_SETLKW of the child's byte, granted at its exit: %s\n", res(rc));
	waitpid(p, NULL, 0);
	setlk(mfd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);
	close(held[0]);
	close(held[1]);
	close(blocking[0]);
	close(blocking[1]);
}

static void records(void)
{
	printf("POSIX locks:\n");
	mfd = memfd_create("locks", 0);
	ftruncate(mfd, 4096);
	printf("  F_WRLCK 0+100: %s\n", res(setlk(mfd, F_SETLK, F_WRLCK, SEEK_SET, 0, 100)));
	child(probe_ranges);
	printf("  F_UNLCK 20+10: %s\n", res(setlk(mfd, F_SETLK, F_UNLCK, SEEK_SET, 20, 10)));
	child(probe_ranges);
	getlk(mfd, F_GETLK, F_WRLCK, 0, 0); /* own locks never conflict */

	int d = dup(mfd);
	close(d);
	printf("  after closing a duplicate descriptor:\n");
	child(probe_whole);

	printf("  F_RDLCK 0+10: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, 0, 10)));
	printf("  F_RDLCK 10+10: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, 10, 10)));
	child(probe_whole);
	printf("  F_WRLCK 5+5: %s\n", res(setlk(mfd, F_SETLK, F_WRLCK, SEEK_SET, 5, 5)));
	child(probe_whole);
	lseek(mfd, 100, SEEK_SET);
	printf("  F_UNLCK whole: %s\n", res(setlk(mfd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0)));
	printf("  F_RDLCK SEEK_CUR+10 len -5: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_CUR, 10, -5)));
	child(probe_whole);
	printf("  F_RDLCK SEEK_END-96 len 0: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_END, -96, 0)));
	child(probe_whole);
	printf("  bad type: %s, bad whence: %s, negative start: %s, len before 0: %s\n",
	       res(setlk(mfd, F_SETLK, 7, SEEK_SET, 0, 1)), res(setlk(mfd, F_SETLK, F_RDLCK, 9, 0, 1)),
	       res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, -1, 1)), res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, 2, -5)));
	int ro = open(path, O_RDONLY);
	printf("  read-only file: F_WRLCK %s\n", res(setlk(ro, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
	printf("  read-only file: F_RDLCK %s\n", res(setlk(ro, F_SETLK, F_RDLCK, SEEK_SET, 0, 1)));
	close(ro);

	setlk(mfd, F_SETLK, F_WRLCK, SEEK_SET, 0, 0);
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		blocked_setlkw();
		fflush(stdout);
		_exit(0);
	}
	wait_ready();
	write(go[1], "u", 1);
	setlk(mfd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);
	waitpid(p, NULL, 0);
	printf("  after the waiter exited:\n");
	child(probe_whole);
	deadlock();
}

static int ofd_fd;

static void probe_ofd(void)
{
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", ofd_fd);
	int fd = open(link, O_RDWR);
	getlk(fd, F_OFD_GETLK, F_RDLCK, 0, 0);
	printf("    F_OFD_SETLK F_RDLCK 0+1 on another description: %s\n", res(setlk(fd, F_OFD_SETLK, F_RDLCK, SEEK_SET, 0, 1)));
	printf("    F_OFD_SETLK F_WRLCK 0+1 on the inherited one: %s\n", res(setlk(mfd, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
	close(fd);
}

static void ofd(void)
{
	printf("OFD locks:\n");
	ofd_fd = mfd;
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
	int other = open(link, O_RDWR);
	printf("  F_OFD_SETLK F_WRLCK 0+10: %s\n", res(setlk(mfd, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
	printf("  same process, POSIX F_RDLCK 5+1: %s\n", res(setlk(mfd, F_SETLK, F_RDLCK, SEEK_SET, 5, 1)));
	getlk(mfd, F_GETLK, F_RDLCK, 0, 0);
	getlk(mfd, F_OFD_GETLK, F_WRLCK, 0, 0);
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_pid = 1};
	printf("  F_OFD_SETLK with l_pid 1: %s\n", res(fcntl(mfd, F_OFD_SETLK, &fl)));
	child(probe_ofd);
	close(mfd);
	ofd_fd = other;
	printf("  after the last close of the locked description:\n");
	child(probe_ofd);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: locks FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	path = argv[1];
	parent = getpid();
	pipe(ready);
	pipe(go);
	flocks();
	records();
	ofd();
	return 0;
}
