/*
 * rusage [after]: the CPU time getrusage and times report. The process
 * spins until getrusage(RUSAGE_SELF) reports 150 ms of user time (or 30 s
 * pass); a thread spins 50 ms and ends, and RUSAGE_THREAD stays within
 * RUSAGE_SELF; a child spins 150 ms and is reaped, which RUSAGE_CHILDREN
 * and times' tms_cutime then include; execve keeps the process's time
 * (the "after" run checks it). Only properties are printed, so native
 * and sandboxed output are equal.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long usec(const struct timeval *tv) { return tv->tv_sec * 1000000L + tv->tv_usec; }

static long utime_of(int who)
{
	struct rusage ru;
	if (getrusage(who, &ru) != 0)
		return -1;
	return usec(&ru.ru_utime);
}

static long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* spin runs in user mode until who's user time grew by ms or 30 s pass,
 * and returns whether it did. */
static int spin(int who, long ms)
{
	long start = utime_of(who), deadline = wall_ms() + 30000;
	volatile unsigned long x = 0;
	while (wall_ms() < deadline) {
		for (int i = 0; i < 1000000; i++)
			x += i;
		if (utime_of(who) - start >= ms * 1000)
			return 1;
	}
	return 0;
}

/* thread_utime is the spinning thread's own user time when it ends. */
static long thread_utime;

static void *thread_spin(void *arg)
{
	(void)arg;
	spin(RUSAGE_THREAD, 50);
	thread_utime = utime_of(RUSAGE_THREAD);
	return NULL;
}

static const char *yesno(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && strcmp(argv[1], "after") == 0) {
		printf("after execve: ru_utime >= 150 ms: %s\n", yesno(utime_of(RUSAGE_SELF) >= 150000));
		return 0;
	}
	int ok = spin(RUSAGE_SELF, 150);
	printf("spun: ru_utime grew by 150 ms: %s\n", yesno(ok));

	/* The ended thread's time is in RUSAGE_SELF. The kernel splits a
	 * task's run time into user and system time by tick samples, per
	 * thread and per process apart, so the sums differ by a few ms: half
	 * of the thread's 50 ms is asked for, not all of it. */
	long before = utime_of(RUSAGE_SELF);
	pthread_t th;
	pthread_create(&th, NULL, thread_spin, NULL);
	pthread_join(th, NULL);
	long self = utime_of(RUSAGE_SELF), thread = utime_of(RUSAGE_THREAD);
	printf("RUSAGE_THREAD <= RUSAGE_SELF: %s\n", yesno(thread >= 0 && thread <= self));
	printf("ended thread counted in RUSAGE_SELF: %s\n",
	       yesno(thread_utime >= 50000 && self - before >= thread_utime / 2));

	printf("RUSAGE_CHILDREN before a child: 0: %s\n", yesno(utime_of(RUSAGE_CHILDREN) == 0));
	pid_t pid = fork();
	if (pid == 0)
		_exit(spin(RUSAGE_SELF, 150) ? 0 : 1);
	int status;
	waitpid(pid, &status, 0);
	printf("child spun: %s\n", yesno(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	printf("RUSAGE_CHILDREN ru_utime >= 100 ms: %s\n", yesno(utime_of(RUSAGE_CHILDREN) >= 100000));
	struct tms t;
	times(&t);
	printf("times: tms_cutime > 0: %s, tms_utime > 0: %s\n", yesno(t.tms_cutime > 0), yesno(t.tms_utime > 0));

	char *args[] = {argv[0], "after", NULL};
	execv(argv[0], args);
	perror("execv");
	return 1;
}
