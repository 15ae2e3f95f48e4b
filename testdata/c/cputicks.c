/*
 * cputicks: every 20 ms it spins until its process CPU clock grew by 2 ms
 * and prints "tick K cpu MS" with CLOCK_PROCESS_CPUTIME_ID in ms, forever.
 *
 * A checkpoint test saves it between ticks and restores it twice: each
 * restored copy's CPU clock continues from the saved value, neither going
 * back nor jumping by the time the restore took.
 */
#include <stdio.h>
#include <time.h>

static long long cpuNS(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int k = 1;; k++) {
		long long start = cpuNS();
		volatile unsigned long x = 0;
		while (cpuNS() - start < 2000000LL)
			for (int i = 0; i < 10000; i++)
				x += i;
		printf("tick %d cpu %lld\n", k, cpuNS() / 1000000);
		struct timespec d = {0, 20 * 1000 * 1000};
		nanosleep(&d, NULL);
	}
}
