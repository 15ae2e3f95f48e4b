/*
 * credhold [N]: as root, takes groups 4 5, gids 100 101 102, keeps its
 * capabilities (PR_SET_KEEPCAPS) through setresuid(1000, 1001, 1002); a
 * second thread then changes only its own IDs with the raw syscall to 1000
 * 1000 1000 (each thread has its own credentials). Every 100 ms both check
 * their IDs, groups and capability sets, and the main thread prints "tick
 * K creds OK", or "tick K CORRUPT ..." with what changed. Stops after N
 * ticks (forever when N is 0 or absent).
 *
 * A checkpoint test should check: saved and restored, the ticks continue
 * with "creds OK" (every ID of both threads, the groups and the
 * capabilities survived).
 */
#define _GNU_SOURCE
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct cap_header {
	unsigned version;
	int pid;
};
struct cap_data {
	unsigned effective, permitted, inheritable;
};

static unsigned long long start_prm;
static atomic_int thread_bad = -1; /* -1: not checked yet */

static unsigned long long permitted(unsigned *eff)
{
	struct cap_header h = {0x20080522, 0};
	struct cap_data d[2];
	syscall(SYS_capget, &h, d);
	*eff = d[0].effective | d[1].effective;
	return (unsigned long long)d[1].permitted << 32 | d[0].permitted;
}

/* check returns NULL or what is wrong with the calling thread's creds. */
static const char *check(unsigned ur, unsigned ue, unsigned us)
{
	unsigned r, e, s, gr, ge, gs, eff;
	syscall(SYS_getresuid, &r, &e, &s);
	syscall(SYS_getresgid, &gr, &ge, &gs);
	if (r != ur || e != ue || s != us)
		return "uids";
	if (gr != 100 || ge != 101 || gs != 102)
		return "gids";
	gid_t g[8];
	if (getgroups(8, g) != 2 || g[0] != 4 || g[1] != 5)
		return "groups";
	if (permitted(&eff) != start_prm || eff != 0)
		return "capabilities";
	if (prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0) != 1)
		return "keepcaps";
	return NULL;
}

static void nap(void)
{
	struct timespec ts = {0, 100 * 1000 * 1000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void *thread_main(void *arg)
{
	(void)arg;
	if (syscall(SYS_setresuid, 1000, 1000, 1000) != 0) {
		printf("thread setresuid failed\n");
		exit(2);
	}
	for (;;) {
		thread_bad = check(1000, 1000, 1000) != NULL;
		nap();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long limit = argc > 1 ? atol(argv[1]) : 0;
	unsigned eff;
	start_prm = permitted(&eff);
	gid_t gs[] = {5, 4};
	if (setgroups(2, gs) != 0 || setresgid(100, 101, 102) != 0 || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 ||
	    setresuid(1000, 1001, 1002) != 0) {
		printf("cannot set up the credentials (not root?)\n");
		return 2;
	}
	pthread_t th;
	pthread_create(&th, NULL, thread_main, NULL);
	for (long k = 1; limit == 0 || k <= limit; k++) {
		nap();
		const char *bad = check(1000, 1001, 1002);
		if (bad)
			printf("tick %ld CORRUPT %s\n", k, bad);
		else if (thread_bad == 1)
			printf("tick %ld CORRUPT second thread\n", k);
		else
			printf("tick %ld creds OK\n", k);
		fflush(stdout);
	}
	return 0;
}
