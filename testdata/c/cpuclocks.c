/*
 * cpuclocks: the CPU clocks tell the truth. After 200 ms of spinning,
 * CLOCK_PROCESS_CPUTIME_ID reads more than 100 ms and lies between two
 * getrusage readings around it; the CPU clock of an idle thread (its own
 * and by pthread_getcpuclockid) stays near 0 while another thread spins;
 * a child's clock read by clock_getcpuclockid grows while it spins and
 * stands still while it sleeps; a child's time from its first instruction
 * counts (wait4 reports it); system time grows with many system calls.
 * Every reading of a clock is checked against the one before it, so a
 * save and restore in between must not make a clock go back. Only
 * properties are printed, so native and sandboxed output are equal.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static int wentBack;

/* readClock reads clock c in ns and notes if it went below *last. */
static long long readClock(clockid_t c, long long *last)
{
	struct timespec ts;
	if (clock_gettime(c, &ts) != 0)
		return -1;
	long long ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
	if (ns < *last)
		wentBack = 1;
	*last = ns;
	return ns;
}

static long long tvns(const struct timeval *tv) { return tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL; }

static long long lastRusage;

/* rusageNS returns RUSAGE_SELF's user plus system time (and its system
 * time in *sys) in ns, and notes if it went back. */
static long long rusageNS(long long *sys)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long long ns = tvns(&ru.ru_utime) + tvns(&ru.ru_stime);
	if (ns < lastRusage)
		wentBack = 1;
	lastRusage = ns;
	if (sys)
		*sys = tvns(&ru.ru_stime);
	return ns;
}

static long long wallMS(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long lastProcess, lastThread;

/* spin runs in user mode until the process clock grew by ms (or 30 s of
 * wall time pass) and returns whether it did. */
static int spin(long ms)
{
	long long start = readClock(CLOCK_PROCESS_CPUTIME_ID, &lastProcess);
	long long deadline = wallMS() + 30000;
	volatile unsigned long x = 0;
	while (wallMS() < deadline) {
		for (int i = 0; i < 1000000; i++)
			x += i;
		readClock(CLOCK_THREAD_CPUTIME_ID, &lastThread);
		if (readClock(CLOCK_PROCESS_CPUTIME_ID, &lastProcess) - start >= ms * 1000000LL)
			return 1;
	}
	return 0;
}

static int idleGo[2], idleDone[2];
static long long idleGrew = -1;

/* idle reads its own clock, sleeps until told (reading a pipe), then
 * reports how much its clock grew. */
static void *idle(void *arg)
{
	(void)arg;
	long long last = 0;
	long long start = readClock(CLOCK_THREAD_CPUTIME_ID, &last);
	char c;
	if (read(idleGo[0], &c, 1) != 1)
		return NULL;
	idleGrew = readClock(CLOCK_THREAD_CPUTIME_ID, &last) - start;
	if (write(idleDone[1], "d", 1) != 1)
		return NULL;
	return NULL;
}

static void msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void processClock(void)
{
	printf("spun 200 ms: %s\n", yesno(spin(200)));
	long long before = rusageNS(NULL);
	long long clock = readClock(CLOCK_PROCESS_CPUTIME_ID, &lastProcess);
	long long after = rusageNS(NULL);
	printf("CLOCK_PROCESS_CPUTIME_ID > 100 ms: %s\n", yesno(clock > 100000000LL));
	/* getrusage has microseconds: allow one either side. */
	printf("within getrusage before and after: %s\n", yesno(before - 1000 <= clock && clock <= after + 1000));
}

static void idleThread(void)
{
	if (pipe(idleGo) != 0 || pipe(idleDone) != 0)
		exit(1);
	pthread_t th;
	pthread_create(&th, NULL, idle, NULL);
	clockid_t c;
	int ok = pthread_getcpuclockid(th, &c) == 0;
	printf("pthread_getcpuclockid: %s\n", yesno(ok));
	long long last = 0;
	long long start = readClock(c, &last);
	long long mine = readClock(CLOCK_THREAD_CPUTIME_ID, &lastThread);
	int spun = spin(200);
	long long seen = readClock(c, &last) - start;
	long long mineGrew = readClock(CLOCK_THREAD_CPUTIME_ID, &lastThread) - mine;
	if (write(idleGo[1], "g", 1) != 1)
		exit(1);
	char d;
	if (read(idleDone[0], &d, 1) != 1)
		exit(1);
	pthread_join(th, NULL);
	printf("another thread spun 200 ms: %s, its thread clock grew > 100 ms: %s\n", yesno(spun), yesno(mineGrew > 100000000LL));
	printf("idle thread's clock by its ID grew < 20 ms: %s\n", yesno(seen >= 0 && seen < 20000000LL));
	printf("idle thread's own clock grew < 20 ms: %s\n", yesno(idleGrew >= 0 && idleGrew < 20000000LL));
}

static void childClock(void)
{
	int go[2], done[2];
	if (pipe(go) != 0 || pipe(done) != 0)
		exit(1);
	pid_t child = fork();
	if (child == 0) {
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		/* Spin until the parent says stop (a poll now and then). */
		volatile unsigned long x = 0;
		for (;;) {
			for (int i = 0; i < 1000000; i++)
				x += i;
			struct timeval tv = {0, 0};
			fd_set set;
			FD_ZERO(&set);
			FD_SET(go[0], &set);
			if (select(go[0] + 1, &set, NULL, NULL, &tv) > 0)
				break;
		}
		if (read(go[0], &c, 1) != 1 || write(done[1], "d", 1) != 1)
			_exit(1);
		/* Sleeps until the parent kills it. */
		read(go[0], &c, 1);
		_exit(0);
	}
	clockid_t c;
	printf("clock_getcpuclockid(child): %s\n", yesno(clock_getcpuclockid(child, &c) == 0));
	long long last = 0;
	msleep(50);
	long long a = readClock(c, &last);
	msleep(100);
	long long b = readClock(c, &last);
	printf("sleeping child's clock stood still: %s\n", yesno(b - a < 10000000LL));
	if (write(go[1], "g", 1) != 1)
		exit(1);
	long long deadline = wallMS() + 30000, now = b;
	while (now - b < 50000000LL && wallMS() < deadline) {
		msleep(5);
		now = readClock(c, &last);
	}
	printf("spinning child's clock grew by 50 ms: %s\n", yesno(now - b >= 50000000LL));
	char d;
	if (write(go[1], "s", 1) != 1 || read(done[0], &d, 1) != 1)
		exit(1);
	msleep(50);
	a = readClock(c, &last);
	msleep(100);
	b = readClock(c, &last);
	printf("child asleep again, its clock stood still: %s\n", yesno(b - a < 10000000LL));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

/* firstRun: a child made by the raw fork system call spins from its first
 * instruction to its exit without a system call or a memory access, and
 * its parent's wait4 reports that time. */
static void firstRun(void)
{
	pid_t child = syscall(SYS_fork);
	if (child == 0) {
		unsigned long x = 0;
		for (unsigned long i = 0; i < 500000000UL; i++) {
			x += i;
			__asm__ volatile("" : "+r"(x));
		}
		syscall(SYS_exit, 0);
	}
	struct rusage ru;
	int status;
	pid_t got = wait4(child, &status, 0, &ru);
	printf("raw fork's child spun and exited: %s\n", yesno(got == child && WIFEXITED(status)));
	printf("wait4: its user time > 50 ms: %s\n", yesno(tvns(&ru.ru_utime) > 50000000LL));
}

static void systemTime(void)
{
	long long sys0, sys;
	rusageNS(&sys0);
	long long deadline = wallMS() + 30000;
	int grew = 0;
	while (!grew && wallMS() < deadline) {
		for (int i = 0; i < 1000; i++)
			syscall(SYS_getppid);
		rusageNS(&sys);
		grew = sys - sys0 >= 10000000LL;
	}
	printf("system time grew by 10 ms with getppid calls: %s\n", yesno(grew));
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	processClock();
	idleThread();
	childClock();
	firstRun();
	systemTime();
	readClock(CLOCK_PROCESS_CPUTIME_ID, &lastProcess);
	readClock(CLOCK_THREAD_CPUTIME_ID, &lastThread);
	rusageNS(NULL);
	printf("no clock went back: %s\n", yesno(!wentBack));
	return 0;
}
