/*
 * vdsoclock [N]: the checkpoint workload for the vDSO. Reads CLOCK_MONOTONIC
 * through libc (which calls the vDSO's __vdso_clock_gettime, found through
 * AT_SYSINFO_EHDR) in a tight loop without other system calls, and after
 * every 20 ms of that clock prints "tick K reads-ok" (stdout flushed each
 * line). Stops after N lines (forever when N is 0 or absent).
 *
 * A checkpoint test should check: after each `snap save` and `snap
 * restore`, the first line printed is "tick K+1 reads-ok" where K was the
 * last line before the save (the vDSO still works at the address libc
 * saved, and the clock keeps advancing), and no line says "CLOCK BACKWARD"
 * (exit status 4: one reading was below the one before, across a restore
 * or not).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <time.h>

static int64_t now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0;
	if (getauxval(AT_SYSINFO_EHDR) == 0) {
		printf("no vDSO\n");
		return 1;
	}
	int64_t last = now(), tick = last;
	for (long k = 1; n == 0 || k <= n;) {
		int64_t v = now();
		if (v < last) {
			printf("CLOCK BACKWARD: %lld after %lld\n", (long long)v, (long long)last);
			fflush(stdout);
			return 4;
		}
		last = v;
		if (v - tick >= 20000000) {
			printf("tick %ld reads-ok\n", k++);
			fflush(stdout);
			tick = v;
		}
	}
	return 0;
}
