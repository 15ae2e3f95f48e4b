/*
 * pastdeadline: waits whose absolute deadline has already passed return at
 * once, as Linux does: clock_nanosleep(TIMER_ABSTIME) on CLOCK_MONOTONIC
 * and CLOCK_REALTIME, and a futex wait with an absolute CLOCK_REALTIME
 * timeout (pthread_cond_timedwait). After a restore an absolute deadline
 * computed before the save is often in the past; a sentry that treated a
 * negative remaining time as "never" hung there forever.
 *
 * A deadline is "sec seconds ago" clamped at the clock's zero: on a machine
 * up for less than 1000 s, CLOCK_MONOTONIC minus 1000 s would be negative,
 * which Linux rejects with EINVAL. The output does not depend on the
 * machine's uptime or clock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

/* ago returns clock c's time sec seconds ago, or its zero if that is
 * earlier (sec == 0 means one millisecond ago, just past). */
static struct timespec ago(clockid_t c, long sec)
{
	struct timespec t;
	clock_gettime(c, &t);
	long long ns = t.tv_sec * 1000000000LL + t.tv_nsec;
	ns -= sec ? sec * 1000000000LL : 1000000LL;
	if (ns < 0)
		ns = 0;
	t.tv_sec = ns / 1000000000LL;
	t.tv_nsec = ns % 1000000000LL;
	return t;
}

int main(void)
{
	static const struct { const char *name; clockid_t id; } clocks[] = {
		{"CLOCK_MONOTONIC", CLOCK_MONOTONIC},
		{"CLOCK_REALTIME", CLOCK_REALTIME},
	};
	for (unsigned i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
		for (long sec = 0; sec <= 1000; sec = sec ? sec * 1000 : 1) {
			struct timespec t = ago(clocks[i].id, sec);
			int r = clock_nanosleep(clocks[i].id, TIMER_ABSTIME, &t, NULL);
			if (sec)
				printf("clock_nanosleep(%s, ABSTIME, %ld s ago or 0) = %d\n", clocks[i].name, sec, r);
			else
				printf("clock_nanosleep(%s, ABSTIME, 1 ms ago) = %d\n", clocks[i].name, r);
		}
	}
	struct timespec epoch = {0, 0};
	printf("clock_nanosleep(CLOCK_MONOTONIC, ABSTIME, 0) = %d\n",
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &epoch, NULL));

	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	pthread_mutex_lock(&mu);
	struct timespec t = ago(CLOCK_REALTIME, 1);
	int r = pthread_cond_timedwait(&cv, &mu, &t);
	printf("pthread_cond_timedwait(1 s ago) timed out: %s\n", yesno(r == ETIMEDOUT));
	pthread_mutex_unlock(&mu);
	return 0;
}
