/*
 * asyncio: O_ASYNC. With F_SETFL O_ASYNC or FIOASYNC and an owner
 * (F_SETOWN, F_SETOWN_EX), a pipe's read end is sent SIGIO (SI_KERNEL)
 * when data arrives, and with F_SETSIG a real-time signal whose siginfo
 * carries si_code POLL_IN or POLL_OUT, si_band and si_fd: a full pipe's
 * write end when a read makes room, a FIFO, a Unix stream socket (owner a
 * thread), a TCP connection and a UDP socket over loopback and a pty
 * slave when data comes in; a process group owner (negative pid) reaches
 * a forked child too.
 * eventfd keeps the flag but sends nothing (it has no fasync in Linux);
 * FIOASYNC 0 stops the signals.
 *
 * Its last part is where the zdtm mode saves it: "waiting for stdin with
 * O_ASYNC set" is printed with a pipe's read end set up; after the line
 * from stdin, a write to the pipe must still signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int rtsig;

/* waitsig waits up to 10 s for sig and describes what came. */
static const char *waitsig(int sig, int fd)
{
	static char buf[128];
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	struct timespec ts = {10, 0};
	siginfo_t si;
	if (sigtimedwait(&set, &si, &ts) != sig)
		return "none";
	if (sig == SIGIO) {
		snprintf(buf, sizeof buf, "SIGIO, si_code %s", si.si_code == SI_KERNEL ? "SI_KERNEL" : "other");
		return buf;
	}
	const char *code = si.si_code == POLL_IN ? "POLL_IN" : si.si_code == POLL_OUT ? "POLL_OUT" : "other";
	snprintf(buf, sizeof buf, "%s, si_fd %s, si_band %#lx", code, si.si_fd == fd ? "right" : "wrong", (long)si.si_band);
	return buf;
}

/* pending takes sig without waiting: 1 if it was pending. */
static int pending(int sig)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	struct timespec zero = {0, 0};
	return sigtimedwait(&set, NULL, &zero) == sig;
}

/* setasync makes fd signal sig (0: SIGIO) to this process. */
static void setasync(int fd, int sig)
{
	fcntl(fd, F_SETOWN, getpid());
	if (sig)
		fcntl(fd, F_SETSIG, sig);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
}

static void pipes(void)
{
	int p[2];
	pipe(p);
	setasync(p[0], 0);
	printf("F_GETFL has O_ASYNC: %s\n", fcntl(p[0], F_GETFL) & O_ASYNC ? "yes" : "no");
	write(p[1], "x", 1);
	printf("pipe read end: %s\n", waitsig(SIGIO, p[0]));
	close(p[0]);
	close(p[1]);

	/* The last close of the other end signals too. */
	pipe(p);
	setasync(p[0], rtsig);
	close(p[1]);
	printf("read end, the writer closed: %s\n", waitsig(rtsig, p[0]));
	close(p[0]);
	pipe(p);
	setasync(p[1], rtsig);
	close(p[0]);
	printf("write end, the reader closed: %s\n", waitsig(rtsig, p[1]));
	close(p[1]);

	pipe(p);
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	char buf[65536];
	memset(buf, 'a', sizeof buf);
	size_t filled = 0;
	ssize_t n;
	while ((n = write(p[1], buf, 4096)) > 0)
		filled += n;
	int wfd = dup(p[1]);
	setasync(wfd, rtsig);
	n = read(p[0], buf, sizeof buf);
	printf("full pipe (%zu), write end after a read of %zd: %s\n", filled, n, waitsig(rtsig, wfd));
	close(wfd);
	close(p[1]);
	close(p[0]);
}

static void fifo(const char *dir)
{
	char path[512];
	snprintf(path, sizeof path, "%s/fifo", dir);
	mkfifo(path, 0600);
	int r = open(path, O_RDONLY | O_NONBLOCK);
	int w = open(path, O_WRONLY);
	setasync(r, rtsig);
	write(w, "y", 1);
	printf("fifo read end: %s\n", waitsig(rtsig, r));
	close(r);
	close(w);
	unlink(path);
}

static void sockets(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct f_owner_ex own = {F_OWNER_TID, (pid_t)syscall(SYS_gettid)};
	fcntl(sv[0], F_SETOWN_EX, &own);
	fcntl(sv[0], F_SETSIG, rtsig);
	int on = 1;
	printf("FIOASYNC: %s\n", ioctl(sv[0], FIOASYNC, &on) == 0 ? "ok" : strerror(errno));
	struct f_owner_ex got;
	fcntl(sv[0], F_GETOWN_EX, &got);
	printf("F_GETOWN_EX: type %s\n", got.type == F_OWNER_TID ? "F_OWNER_TID" : "other");
	write(sv[1], "z", 1);
	printf("unix socket, thread owner: %s\n", waitsig(rtsig, sv[0]));
	char c;
	read(sv[0], &c, 1);
	on = 0;
	ioctl(sv[0], FIOASYNC, &on);
	write(sv[1], "z", 1);
	struct pollfd pfd = {sv[0], POLLIN, 0};
	poll(&pfd, 1, -1);
	printf("after FIOASYNC 0: F_GETFL has O_ASYNC: %s, signal: %s\n", fcntl(sv[0], F_GETFL) & O_ASYNC ? "yes" : "no", pending(rtsig) ? "yes" : "no");
	close(sv[0]);
	close(sv[1]);

	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	bind(l, (struct sockaddr *)&a, sizeof a);
	listen(l, 1);
	getsockname(l, (struct sockaddr *)&a, &alen);
	int c1 = socket(AF_INET, SOCK_STREAM, 0);
	connect(c1, (struct sockaddr *)&a, sizeof a);
	int s1 = accept(l, NULL, NULL);
	setasync(s1, rtsig);
	write(c1, "tcp", 3);
	printf("tcp connection: %s\n", waitsig(rtsig, s1));
	close(s1);
	close(c1);
	close(l);

	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t ualen = sizeof ua;
	bind(u, (struct sockaddr *)&ua, sizeof ua);
	getsockname(u, (struct sockaddr *)&ua, &ualen);
	setasync(u, rtsig);
	int us = socket(AF_INET, SOCK_DGRAM, 0);
	sendto(us, "udp", 3, 0, (struct sockaddr *)&ua, sizeof ua);
	printf("udp socket: %s\n", waitsig(rtsig, u));
	close(u);
	close(us);
}

static void ptys(void)
{
	int m, s;
	if (openpty(&m, &s, NULL, NULL, NULL) < 0) {
		printf("openpty: %s\n", strerror(errno));
		return;
	}
	setasync(s, rtsig);
	write(m, "line\n", 5);
	printf("pty slave: %s\n", waitsig(rtsig, s));
	close(s);
	close(m);

	/* Without an owner, O_ASYNC on a terminal makes the caller it (a
	 * slave's foreground group were there one). */
	openpty(&m, &s, NULL, NULL, NULL);
	fcntl(s, F_SETFL, O_ASYNC);
	int on = 1;
	ioctl(m, FIOASYNC, &on);
	printf("pty without an owner: slave's is me %s, master's is me %s\n",
	       fcntl(s, F_GETOWN) == getpid() ? "yes" : "no", fcntl(m, F_GETOWN) == getpid() ? "yes" : "no");
	close(s);
	close(m);
}

static void others(void)
{
	int e = eventfd(0, 0);
	setasync(e, rtsig);
	uint64_t one = 1;
	write(e, &one, sizeof one);
	printf("eventfd: F_GETFL has O_ASYNC: %s, signal: %s\n", fcntl(e, F_GETFL) & O_ASYNC ? "yes" : "no", pending(rtsig) ? "yes" : "no");
	close(e);

	/* A group of its own, so that the signal reaches no one else. */
	setpgid(0, 0);
	int p[2];
	pipe(p);
	fcntl(p[0], F_SETOWN, -getpgrp());
	fcntl(p[0], F_SETFL, O_ASYNC);
	pid_t child = fork();
	if (child == 0) {
		close(p[1]);
		_exit(strcmp(waitsig(SIGIO, -1), "none") != 0);
	}
	/* The child is in the group already; the signal goes when data comes. */
	write(p[1], "g", 1);
	const char *mine = waitsig(SIGIO, p[0]);
	int status;
	waitpid(child, &status, 0);
	printf("group owner: parent %s, child got SIGIO: %s\n", mine, WIFEXITED(status) && WEXITSTATUS(status) == 1 ? "yes" : "no");
	close(p[0]);
	close(p[1]);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	rtsig = SIGRTMIN + 1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	sigaddset(&set, rtsig);
	sigprocmask(SIG_BLOCK, &set, NULL);

	pipes();
	if (argc > 1)
		fifo(argv[1]);
	sockets();
	ptys();
	others();

	int p[2];
	pipe(p);
	setasync(p[0], rtsig);
	printf("waiting for stdin with O_ASYNC set\n");
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	write(p[1], "after", 5);
	printf("after the line: %s\n", waitsig(rtsig, p[0]));
	printf("done\n");
	return 0;
}
