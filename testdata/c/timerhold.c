/*
 * timerhold [N]: a periodic POSIX timer (CLOCK_MONOTONIC, 100 ms, SIGUSR1
 * blocked, sigev_value 42) read through a signalfd, a periodic timerfd
 * (CLOCK_MONOTONIC, 30 ms), a one-shot POSIX timer an hour away and a
 * one-shot timerfd that expires after 50 ms and is never read; the first
 * three are watched with epoll. Each timer signal read prints "tick K timerfd T":
 * K counts the signals read, T the timerfd expirations read so far. It
 * prints "tick K CORRUPT ..." when the signal is not the timer's, the
 * timerfd did not advance over two of its periods, the hour-long timer's
 * remaining time did not shrink, or the unread timerfd is not readable. Stops after N ticks (forever when N is 0
 * or absent).
 *
 * A checkpoint test should check: saved and restored, the ticks continue
 * from K+1 (the POSIX timer keeps firing and the signalfd reads it) with T
 * still growing (the timerfd keeps counting, the unread one keeps its
 * expiration), never CORRUPT.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }

int main(int argc, char **argv)
{
	long limit = argc > 1 ? atol(argv[1]) : 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, 0);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	sev.sigev_value.sival_int = 42;
	timer_t tick, hour;
	timer_create(CLOCK_MONOTONIC, &sev, &tick);
	struct sigevent none;
	memset(&none, 0, sizeof none);
	none.sigev_notify = SIGEV_NONE;
	timer_create(CLOCK_MONOTONIC, &none, &hour);
	struct itimerspec its = {{0, 100000000}, {0, 100000000}}, hr = {{0, 0}, {3600, 0}};
	timer_settime(tick, 0, &its, NULL);
	timer_settime(hour, 0, &hr, NULL);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec fast = {{0, 30000000}, {0, 30000000}};
	timerfd_settime(tfd, 0, &fast, NULL);
	/* A one-shot timerfd that expires after 50 ms and is never read: its
	 * expiration must stay readable. */
	int unread = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec once = {{0, 0}, {0, 50000000}};
	timerfd_settime(unread, 0, &once, NULL);
	struct timespec created;
	clock_gettime(CLOCK_MONOTONIC, &created);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	uint64_t total = 0, last_total = 0;
	int64_t last_left = 3600LL * 1000000000, last_check = 0;
	for (long k = 1; limit == 0 || k <= limit;) {
		struct epoll_event out[2];
		int n = epoll_wait(ep, out, 2, -1);
		for (int i = 0; i < n; i++) {
			if (out[i].data.fd == tfd) {
				uint64_t v;
				if (read(tfd, &v, sizeof v) == sizeof v)
					total += v;
				continue;
			}
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) != sizeof si)
				continue;
			uint64_t v;
			if (read(tfd, &v, sizeof v) == sizeof v)
				total += v;
			struct itimerspec cur;
			timer_gettime(hour, &cur);
			int64_t left = ns(cur.it_value);
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			/* Two timerfd periods since the last check: it must have
			 * expired meanwhile. */
			int stuck = last_check != 0 && ns(now) - last_check >= 60000000 && total <= last_total;
			struct pollfd upfd = {unread, POLLIN, 0};
			int lost = ns(now) - ns(created) > 60000000 && poll(&upfd, 1, 0) != 1;
			if (si.ssi_signo != SIGUSR1 || si.ssi_code != SI_TIMER || si.ssi_int != 42)
				printf("tick %ld CORRUPT signal %u code %d int %d\n", k, si.ssi_signo, si.ssi_code, si.ssi_int);
			else if (lost)
				printf("tick %ld CORRUPT the unread timerfd expiration is gone\n", k);
			else if (stuck)
				printf("tick %ld CORRUPT timerfd stuck at %llu\n", k, (unsigned long long)total);
			else if (left <= 0 || left >= last_left)
				printf("tick %ld CORRUPT hour timer %lld ns left after %lld\n", k, (long long)left,
				       (long long)last_left);
			else
				printf("tick %ld timerfd %llu\n", k, (unsigned long long)total);
			fflush(stdout);
			last_total = total;
			last_left = left;
			last_check = ns(now);
			k++;
		}
	}
	return 0;
}
