/*
 * waitmask: the signal mask argument of ppoll, pselect6 and epoll_pwait.
 * With SIGUSR1 blocked and pending, a wait whose mask unblocks it returns
 * EINTR after the handler ran, and the old mask is back; a wait with a
 * ready descriptor returns it and leaves the signal pending; a signal sent
 * by a child during the wait interrupts it; a mask that keeps the signal
 * blocked lets the wait time out. (GNU make's jobserver waits for SIGCHLD
 * this way.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }
static volatile sig_atomic_t handled;
static void on_usr1(int sig) { (void)sig; handled++; }

static int pfd[2], ep;

static int do_wait(const char *kind, const sigset_t *mask, long timeout_ms)
{
	struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000};
	struct timespec *tsp = timeout_ms < 0 ? NULL : &ts;
	if (strcmp(kind, "ppoll") == 0) {
		struct pollfd p = {pfd[0], POLLIN, 0};
		return ppoll(&p, 1, tsp, mask);
	}
	if (strcmp(kind, "pselect") == 0) {
		fd_set r;
		FD_ZERO(&r);
		FD_SET(pfd[0], &r);
		return pselect(pfd[0] + 1, &r, NULL, NULL, tsp, mask);
	}
	struct epoll_event ev;
	return epoll_pwait(ep, &ev, 1, (int)timeout_ms, mask);
}

static int usr1_state(int pending)
{
	sigset_t s;
	if (pending)
		sigpending(&s);
	else
		sigprocmask(SIG_BLOCK, NULL, &s);
	return sigismember(&s, SIGUSR1);
}

static void check(const char *kind)
{
	sigset_t empty, usr1;
	sigemptyset(&empty);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);

	handled = 0;
	raise(SIGUSR1);
	int rc = do_wait(kind, &empty, -1);
	int e = errno;
	printf("%s, pending signal unblocked by the mask: %d %s, handler ran: %s, mask restored: %s\n", kind, rc,
	       rc < 0 ? strerror(e) : "", yesno(handled == 1), yesno(usr1_state(0)));

	handled = 0;
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		struct timespec d = {0, 50000000};
		nanosleep(&d, NULL);
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	rc = do_wait(kind, &empty, -1);
	e = errno;
	waitpid(p, NULL, 0);
	printf("%s, signal sent during the wait: %d %s, handler ran: %s\n", kind, rc, rc < 0 ? strerror(e) : "",
	       yesno(handled == 1));

	handled = 0;
	raise(SIGUSR1);
	rc = do_wait(kind, &usr1, 30);
	printf("%s, mask keeping it blocked: timed out: %s, still pending: %s\n", kind, yesno(rc == 0),
	       yesno(usr1_state(1)));

	write(pfd[1], "x", 1);
	rc = do_wait(kind, &empty, -1);
	printf("%s, ready descriptor: %d, handler ran: %s, still pending: %s\n", kind, rc, yesno(handled != 0),
	       yesno(usr1_state(1)));
	char c;
	read(pfd[0], &c, 1);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	sigwaitinfo(&one, NULL);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	pipe(pfd);
	ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = pfd[0]};
	epoll_ctl(ep, EPOLL_CTL_ADD, pfd[0], &ev);
	check("ppoll");
	check("pselect");
	check("epoll_pwait");
	return 0;
}
