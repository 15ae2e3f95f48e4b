/*
 * sleeper [N]: sleeps 100 ms at a time with nanosleep (resuming with the
 * remaining time after EINTR) and prints "slept K" after each sleep. Each
 * sleep must last at least 100 ms on CLOCK_MONOTONIC, otherwise it prints
 * "SHORT SLEEP" and exits 3; a clock that goes backward prints "CLOCK
 * BACKWARD" and exits 4. Stops after N sleeps (forever when N is 0 or absent).
 *
 * A checkpoint test should check: saved while blocked in nanosleep and
 * restored, the program prints the next "slept K+1" (the interrupted sleep
 * restarts with its remaining time, it is neither lost nor restarted from
 * scratch by the program) and never SHORT SLEEP or CLOCK BACKWARD.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long limit = argc > 1 ? atol(argv[1]) : 0;
	const int64_t period = 100 * 1000 * 1000;
	for (long k = 1; limit == 0 || k <= limit; k++) {
		int64_t start = now_ns();
		struct timespec req = {0, period}, rem;
		while (nanosleep(&req, &rem) != 0) {
			if (errno != EINTR) {
				perror("nanosleep");
				return 2;
			}
			req = rem;
		}
		int64_t elapsed = now_ns() - start;
		if (elapsed < 0) {
			printf("CLOCK BACKWARD by %lld ns in sleep %ld\n", (long long)-elapsed, k);
			fflush(stdout);
			return 4;
		}
		if (elapsed < period) {
			printf("SHORT SLEEP %lld ns in sleep %ld\n", (long long)elapsed, k);
			fflush(stdout);
			return 3;
		}
		printf("slept %ld\n", k);
		fflush(stdout);
	}
	return 0;
}
