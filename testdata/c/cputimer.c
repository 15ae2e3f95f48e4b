/*
 * cputimer: ITIMER_VIRTUAL and ITIMER_PROF count the process's CPU time,
 * not real time: armed for 50 ms, they do not fire during 300 ms of
 * nanosleep nor while the process waits for a spinning child (whose CPU
 * time is its own), and getitimer shows the remaining time unchanged; they
 * fire once the process spins. An interval timer of 10 ms ticks 5 times in
 * at least 50 ms of elapsed time. (The bounds checked are looser than
 * that: on a loaded host, Linux's tick-sampled CPU time may run ahead, and
 * so may the sentry's, which also counts its own work for the process.)
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static volatile sig_atomic_t fired;
static void on_timer(int sig)
{
	(void)sig;
	fired++;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void spin_ms(long ms)
{
	long long end = now_ns() + ms * 1000000LL;
	while (now_ns() < end)
		;
}

static void check(const char *name, int which, int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_timer;
	sa.sa_flags = SA_RESTART;
	sigaction(sig, &sa, NULL);

	fired = 0;
	struct itimerval it = {{0, 0}, {0, 50000}};
	setitimer(which, &it, NULL);
	sleep_ms(300);
	struct itimerval left;
	getitimer(which, &left);
	printf("%s: after 300 ms asleep: fired %s, remaining > 25 ms %s\n", name, yesno(fired),
	       yesno(left.it_value.tv_sec == 0 && left.it_value.tv_usec > 25000));

	pid_t c = fork();
	if (c == 0) {
		spin_ms(200);
		_exit(0);
	}
	int st;
	while (waitpid(c, &st, 0) != c)
		;
	printf("%s: while a child spun 200 ms: fired %s\n", name, yesno(fired));

	long long start = now_ns();
	while (!fired && now_ns() - start < 10000000000LL)
		;
	printf("%s: fired while spinning: %s, after >= 25 ms %s\n", name, yesno(fired),
	       yesno(now_ns() - start >= 25000000LL));

	fired = 0;
	struct itimerval iv = {{0, 10000}, {0, 10000}};
	setitimer(which, &iv, NULL);
	start = now_ns();
	while (fired < 5 && now_ns() - start < 10000000000LL)
		;
	long long took = now_ns() - start;
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(which, &off, NULL);
	printf("%s: 5 ticks of 10 ms: %s, took >= 30 ms %s\n", name, yesno(fired >= 5), yesno(took >= 30000000LL));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	check("ITIMER_VIRTUAL", ITIMER_VIRTUAL, SIGVTALRM);
	check("ITIMER_PROF", ITIMER_PROF, SIGPROF);
	return 0;
}
