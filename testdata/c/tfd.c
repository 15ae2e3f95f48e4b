/*
 * tfd: timerfd and signalfd. timerfd: periodic reads counting
 * expirations, timerfd_gettime, the old value from timerfd_settime,
 * TFD_NONBLOCK, poll and epoll readiness, an absolute CLOCK_REALTIME
 * expiry, a forked child reading the inherited descriptor, and errors.
 * signalfd: signals from kill, sigqueue (values, several per read), a POSIX
 * timer and a child's exit read as signalfd_siginfo; poll and epoll
 * readiness, also in a forked child for its own signals; changing the
 * mask; errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }
static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void timerfds(void)
{
	int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = {{0, 20000000}, {0, 20000000}}, cur, old;
	printf("timerfd_settime 20 ms periodic: %s\n", res(timerfd_settime(tfd, 0, &its, NULL)));
	uint64_t n = 0;
	ssize_t r = read(tfd, &n, sizeof n);
	printf("blocking read: %zd bytes, >= 1: %s\n", r, yesno(n >= 1));
	nap_ms(70);
	read(tfd, &n, sizeof n);
	printf("after 70 ms: >= 3 expirations: %s\n", yesno(n >= 3));
	timerfd_gettime(tfd, &cur);
	printf("gettime: interval 20 ms: %s, value <= 20 ms: %s\n", yesno(cur.it_interval.tv_nsec == 20000000),
	       yesno(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000));
	struct itimerspec zero = {{0, 0}, {0, 0}};
	timerfd_settime(tfd, 0, &zero, &old);
	printf("old value: interval 20 ms: %s\n", yesno(old.it_interval.tv_nsec == 20000000));
	timerfd_gettime(tfd, &cur);
	printf("disarmed: value 0: %s\n", yesno(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0));
	close(tfd);

	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	printf("TFD_NONBLOCK read of a disarmed timerfd: %s\n", res(read(tfd, &n, sizeof n)));
	struct itimerspec once = {{0, 0}, {0, 30000000}};
	timerfd_settime(tfd, 0, &once, NULL);
	struct pollfd pfd = {tfd, POLLIN, 0};
	printf("poll before the expiry: %d\n", poll(&pfd, 1, 0));
	int pr = poll(&pfd, 1, -1);
	printf("poll until the expiry: %d, POLLIN: %s\n", pr, yesno(pfd.revents == POLLIN));
	r = read(tfd, &n, sizeof n);
	printf("read: %s, 1 expiration: %s\n", res(r), yesno(n == 1));
	printf("one-shot expired: read again: %s\n", res(read(tfd, &n, sizeof n)));

	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 77};
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	timerfd_settime(tfd, 0, &once, NULL);
	struct epoll_event out;
	int en = epoll_wait(ep, &out, 1, -1);
	printf("epoll_wait: %d, data 77: %s, EPOLLIN: %s\n", en, yesno(out.data.u32 == 77), yesno(out.events == EPOLLIN));
	read(tfd, &n, sizeof n);
	close(ep);
	close(tfd);

	tfd = timerfd_create(CLOCK_REALTIME, 0);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct itimerspec abs = {{0, 0}, {now.tv_sec, now.tv_nsec}};
	abs.it_value.tv_nsec += 20000000;
	if (abs.it_value.tv_nsec >= 1000000000) {
		abs.it_value.tv_sec++;
		abs.it_value.tv_nsec -= 1000000000;
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &abs, NULL);
	read(tfd, &n, sizeof n);
	clock_gettime(CLOCK_REALTIME, &now);
	printf("TFD_TIMER_ABSTIME CLOCK_REALTIME: 1 expiration: %s, not early: %s\n", yesno(n == 1),
	       yesno(now.tv_sec > abs.it_value.tv_sec ||
		     (now.tv_sec == abs.it_value.tv_sec && now.tv_nsec >= abs.it_value.tv_nsec)));
	timerfd_settime(tfd, 0, &once, NULL);
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		read(tfd, &n, sizeof n);
		printf("forked child read the inherited timerfd: %s\n", yesno(n == 1));
		fflush(stdout);
		_exit(0);
	}
	waitpid(p, NULL, 0);

	uint32_t small;
	printf("read of 4 bytes: %s\n", res(read(tfd, &small, sizeof small)));
	printf("write: %s\n", res(write(tfd, &n, sizeof n)));
	printf("bad clock: %s\n", res(timerfd_create(99, 0)));
	printf("bad flags: %s\n", res(timerfd_create(CLOCK_MONOTONIC, 0x10)));
	printf("settime bad flags: %s\n", res(timerfd_settime(tfd, 0x10, &once, NULL)));
	struct itimerspec bad = {{0, 0}, {0, 1000000000}};
	printf("settime tv_nsec 1e9: %s\n", res(timerfd_settime(tfd, 0, &bad, NULL)));
	int pp[2];
	pipe(pp);
	printf("settime on a pipe: %s\n", res(timerfd_settime(pp[0], 0, &once, NULL)));
	printf("gettime on a bad descriptor: %s\n", res(timerfd_gettime(999, &cur)));
	close(pp[0]);
	close(pp[1]);
	close(tfd);
}

static void show(const char *what, struct signalfd_siginfo *si)
{
	printf("%s: signo %s, code %d, pid self %s, uid %s, int %d\n", what, strsignal(si->ssi_signo), si->ssi_code,
	       yesno(si->ssi_pid == (uint32_t)getpid()), yesno(si->ssi_uid == getuid()), si->ssi_int);
}

static void signalfds(void)
{
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	int sfd = signalfd(-1, &m, SFD_NONBLOCK);
	struct signalfd_siginfo si[4];
	printf("signalfd: %s, read with nothing pending: %s\n", res(sfd), res(read(sfd, si, sizeof si[0])));
	struct pollfd pfd = {sfd, POLLIN, 0};
	printf("poll with nothing pending: %d\n", poll(&pfd, 1, 0));
	kill(getpid(), SIGUSR1);
	int pr = poll(&pfd, 1, 0);
	printf("poll after kill: %d, POLLIN %s\n", pr, yesno(pfd.revents == POLLIN));
	ssize_t r = read(sfd, si, sizeof si);
	printf("read: %zd bytes\n", r);
	show("kill", &si[0]);
	union sigval v = {.sival_int = 5};
	sigqueue(getpid(), SIGUSR1, v);
	read(sfd, si, sizeof si);
	show("sigqueue", &si[0]);

	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGRTMIN);
	printf("new mask on the same descriptor: %s\n", res(signalfd(sfd, &m, 0) == sfd ? 0 : -1));
	kill(getpid(), SIGUSR1);
	kill(getpid(), SIGUSR2);
	r = read(sfd, si, sizeof si);
	printf("read: %zd bytes, SIGUSR2: %s\n", r, yesno(si[0].ssi_signo == SIGUSR2));
	sigset_t pend;
	sigpending(&pend);
	printf("SIGUSR1 still pending: %s\n", yesno(sigismember(&pend, SIGUSR1)));
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	sigwaitinfo(&one, NULL);

	for (int i = 1; i <= 3; i++) {
		v.sival_int = i;
		sigqueue(getpid(), SIGRTMIN, v);
	}
	r = read(sfd, si, sizeof si);
	printf("three queued SIGRTMIN in one read: %zd bytes, values %d %d %d\n", r, si[0].ssi_int, si[1].ssi_int,
	       si[2].ssi_int);

	int bfd = signalfd(-1, &m, SFD_CLOEXEC);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR2;
	sev.sigev_value.sival_int = 31;
	timer_t t;
	timer_create(CLOCK_MONOTONIC, &sev, &t);
	struct itimerspec its = {{0, 0}, {0, 20000000}};
	timer_settime(t, 0, &its, NULL);
	r = read(bfd, si, sizeof si);
	printf("blocking read of a timer's signal: %zd bytes, SI_TIMER %s, ssi_tid is the timer: %s, int 31: %s\n", r,
	       yesno(si[0].ssi_code == SI_TIMER), yesno(si[0].ssi_tid == (uint32_t)(long)t), yesno(si[0].ssi_int == 31));
	timer_delete(t);

	int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	struct itimerspec once = {{0, 0}, {0, 20000000}};
	timerfd_settime(tfd, 0, &once, NULL);
	struct epoll_event out[2];
	int en = epoll_wait(ep, out, 2, -1);
	printf("epoll: the timerfd first: %s\n", yesno(en == 1 && out[0].data.u32 == 2));
	uint64_t n;
	read(tfd, &n, sizeof n);
	kill(getpid(), SIGUSR2);
	en = epoll_wait(ep, out, 2, -1);
	printf("epoll: then the signalfd: %s\n", yesno(en == 1 && out[0].data.u32 == 1));
	read(sfd, si, sizeof si);
	close(ep);
	close(tfd);

	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		kill(getpid(), SIGUSR2);
		struct pollfd cp = {sfd, POLLIN, 0};
		int cr = poll(&cp, 1, 0);
		r = read(sfd, si, sizeof si);
		printf("forked child: its own signal polls ready on the inherited signalfd: %s, read: %s\n",
		       yesno(cr == 1 && cp.revents == POLLIN), yesno(r == sizeof si[0] && si[0].ssi_signo == SIGUSR2));
		fflush(stdout);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	struct timespec zero = {0, 0};
	sigtimedwait(&chld, NULL, &zero); /* this child's SIGCHLD */

	sigemptyset(&m);
	sigaddset(&m, SIGCHLD);
	int cfd = signalfd(-1, &m, 0);
	fflush(stdout);
	pid_t p = fork();
	if (p == 0)
		_exit(3);
	read(cfd, si, sizeof si);
	printf("SIGCHLD: code CLD_EXITED %s, pid is the child %s, status 3: %s\n", yesno(si[0].ssi_code == CLD_EXITED),
	       yesno(si[0].ssi_pid == (uint32_t)p), yesno(si[0].ssi_status == 3));
	waitpid(p, NULL, 0);

	printf("sizemask 4: %s\n", res(syscall(SYS_signalfd4, -1, &m, 4, 0)));
	printf("bad flags: %s\n", res(signalfd(-1, &m, 0x10)));
	int pp[2];
	pipe(pp);
	printf("signalfd on a pipe: %s\n", res(signalfd(pp[0], &m, 0)));
	char small[64];
	printf("read of 64 bytes: %s\n", res(read(sfd, small, sizeof small)));
	close(sfd);
	close(bfd);
	close(cfd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	timerfds();
	signalfds();
	return 0;
}
