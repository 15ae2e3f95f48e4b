/*
 * cpuclock: the CPU clocks of processes and threads by their clock IDs
 * (clock_getcpuclockid, pthread_getcpuclockid): clock_gettime and
 * clock_getres on the caller's, a child's and another thread's, Linux's
 * errors for a missing process, another process's thread and a bad clock
 * type, and POSIX timers on the caller's process clock and on another
 * thread's clock given by ID, which fire once that CPU time is used.
 *
 * Where the zdtm mode saves it: "timer armed on the busy thread's clock"
 * is printed while a thread spins waiting for a line from stdin; the
 * timer, armed on that thread's clock, fires after the restore.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fired;
static volatile int stop;

static void on_alarm(int sig)
{
	(void)sig;
	fired++;
}

static const char *err(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static long ns(const struct timespec *t) { return t->tv_sec * 1000000000L + t->tv_nsec; }

static void *spin(void *arg)
{
	(void)arg;
	while (!stop)
		;
	return NULL;
}

static void *spin_until_line(void *arg)
{
	(void)arg;
	while (!stop)
		;
	return NULL;
}

/* start_spinner starts fn in a thread that blocks SIGUSR1, so that the
 * timers' signals reach the main thread. */
static void start_spinner(pthread_t *th, void *(*fn)(void *))
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	pthread_create(th, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* arm arms a one-shot timer of 30 ms on clock c and returns it. */
static timer_t arm(clockid_t c)
{
	struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	timer_t tm;
	if (timer_create(c, &sev, &tm) != 0) {
		printf("timer_create: %s\n", strerror(errno));
		return 0;
	}
	struct itimerspec its = {.it_value = {0, 30000000}};
	timer_settime(tm, 0, &its, NULL);
	return tm;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_alarm);
	struct timespec a, b, res;
	clockid_t c;

	printf("clock_getcpuclockid(self): %s\n", err(-clock_getcpuclockid(getpid(), &c)));
	clock_gettime(c, &a);
	for (volatile int i = 0; i < 1000000; i++)
		;
	clock_gettime(c, &b);
	printf("own process clock goes forward: %s, getres %s\n", ns(&b) >= ns(&a) ? "yes" : "no", err(clock_getres(c, &res)));

	pid_t child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	printf("clock_getcpuclockid(child): %s\n", err(-clock_getcpuclockid(child, &c)));
	printf("child clock_gettime: %s\n", err(clock_gettime(c, &a)));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	printf("clock_getcpuclockid(reaped child) fails: %s\n", clock_getcpuclockid(child, &c) != 0 ? "yes" : "no");
	printf("clock_gettime of a reaped child's clock: %s\n", err(clock_gettime(c, &a)));

	pthread_t th;
	start_spinner(&th, spin);
	clockid_t tc;
	printf("pthread_getcpuclockid: %s\n", err(-pthread_getcpuclockid(th, &tc)));
	printf("thread clock is not CLOCK_THREAD_CPUTIME_ID: %s\n", tc != CLOCK_THREAD_CPUTIME_ID ? "yes" : "no");
	clock_gettime(tc, &a);
	clock_gettime(tc, &b);
	printf("thread clock goes forward: %s\n", ns(&b) >= ns(&a) ? "yes" : "no");
	clockid_t bad = (tc & ~3) | 3;
	printf("clock type 3: %s\n", err(clock_gettime(bad, &a)));

	/* A thread of another process: its thread clock is EINVAL. */
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	clockid_t other = (~child << 3) | 4 | 2;
	printf("another process's thread clock: %s\n", err(clock_gettime(other, &a)));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);

	/* Timers: on the process clock by its ID, used by this thread. */
	clock_getcpuclockid(getpid(), &c);
	timer_t tm = arm(c);
	while (!fired)
		;
	printf("timer on the process clock by ID fired: yes\n");
	timer_delete(tm);

	/* On the spinning thread's clock: this thread only waits. */
	fired = 0;
	tm = arm(tc);
	while (!fired)
		pause();
	printf("timer on another thread's clock fired: yes\n");
	timer_delete(tm);
	stop = 1;
	pthread_join(th, NULL);

	/* The zdtm point: a thread spins until a line arrives. */
	stop = 0;
	fired = 0;
	start_spinner(&th, spin_until_line);
	pthread_getcpuclockid(th, &tc);
	struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	timer_create(tc, &sev, &tm);
	struct itimerspec its = {.it_value = {0, 30000000}, .it_interval = {0, 30000000}};
	timer_settime(tm, 0, &its, NULL);
	printf("timer armed on the busy thread's clock\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		printf("no line\n");
	int before = fired;
	while (fired == before)
		pause();
	printf("periodic timer on the busy thread's clock fires after the line: yes\n");
	stop = 1;
	pthread_join(th, NULL);
	timer_delete(tm);
	printf("done\n");
	return 0;
}
