/*
 * randmem MIB [N]: fills MIB MiB of anonymous memory with pseudo-random
 * (incompressible) bytes, prints "filled MIB MiB", then every 100 ms
 * checks the whole region against its generator and prints "tick K sum OK"
 * (or "tick K CORRUPT" and exits 3). Stops after N ticks (forever when N
 * is 0 or absent).
 *
 * A checkpoint test uses it for a save that takes a while to upload: its
 * memory does not compress. After a failed or aborted save the program
 * must go on printing "tick K+1 sum OK".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static int check(const uint64_t *p, size_t n)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < n; i++)
		if (p[i] != next(&s))
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1;
	long limit = argc > 2 ? atol(argv[2]) : 0;
	size_t n = (mib << 20) / sizeof(uint64_t);
	uint64_t *p = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < n; i++)
		p[i] = next(&s);
	printf("filled %zu MiB\n", mib);
	fflush(stdout);
	const struct timespec tick = {0, 100 * 1000 * 1000};
	for (long k = 1; limit == 0 || k <= limit; k++) {
		nanosleep(&tick, NULL);
		if (!check(p, n)) {
			printf("tick %ld CORRUPT\n", k);
			fflush(stdout);
			return 3;
		}
		printf("tick %ld sum OK\n", k);
		fflush(stdout);
	}
	return 0;
}
