/*
 * counter [N [MIB]]: the zdtm-style workload for checkpoint/restore. Keeps a
 * counter and a region of MIB MiB (256 by default, at most 256) of
 * interleaved data pages and zero pages,
 * prints "count K sum OK" every 100 ms (stdout flushed each line), rewrites
 * one data page per line, and before every line verifies every page of the
 * region against the generator and every previous rewrite. Stops after N
 * lines (forever when N is 0 or absent).
 *
 * A checkpoint test should check: after `snap save` and `snap restore`, the
 * first line printed is "count K+1 sum OK" where K was the last line before
 * the save; no line says "CORRUPT" (exit status 3: a page lost or changed)
 * or "CLOCK BACKWARD" (exit status 4: CLOCK_MONOTONIC went backward across
 * the restore).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define REGION (256UL << 20)
#define PAGE 4096UL
#define NPAGES (REGION / PAGE)
#define WORDS (PAGE / 8)

/* npages is the region's size in pages (MIB). */
static uint64_t npages = NPAGES;

/* gen[p] is the generation of data page p (p even); odd pages stay zero. */
static uint32_t gen[NPAGES];

/* word is compressible on purpose: a page holds a few distinct high halves. */
static uint64_t word(uint64_t page, uint64_t gen, uint64_t i)
{
	return (page << 40) | (gen << 20) | (i & 0x3f);
}

static void write_page(uint64_t *region, uint64_t p)
{
	uint64_t *w = region + p * WORDS;
	for (uint64_t i = 0; i < WORDS; i++)
		w[i] = word(p, gen[p], i);
}

/* check returns the first page that does not hold what it should, or -1. */
static long check(const uint64_t *region)
{
	for (uint64_t p = 0; p < npages; p++) {
		const uint64_t *w = region + p * WORDS;
		uint64_t diff = 0;
		if (p % 2 == 1) {
			for (uint64_t i = 0; i < WORDS; i++)
				diff |= w[i];
		} else {
			uint64_t base = word(p, gen[p], 0);
			for (uint64_t i = 0; i < WORDS; i++)
				diff |= w[i] ^ (base | (i & 0x3f));
		}
		if (diff != 0)
			return (long)p;
	}
	return -1;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long limit = argc > 1 ? atol(argv[1]) : 0;
	if (argc > 2) {
		long mib = atol(argv[2]);
		if (mib < 1 || mib > (long)(REGION >> 20)) {
			fprintf(stderr, "counter: MIB must be 1..%lu\n", REGION >> 20);
			return 2;
		}
		npages = (uint64_t)mib << 20 >> 12;
	}
	uint64_t *region = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (uint64_t p = 0; p < npages; p += 2)
		write_page(region, p);

	int64_t last = now_ns();
	for (long count = 1; limit == 0 || count <= limit; count++) {
		long bad = check(region);
		if (bad >= 0) {
			printf("CORRUPT page %ld at count %ld\n", bad, count);
			fflush(stdout);
			return 3;
		}
		printf("count %ld sum OK\n", count);
		fflush(stdout);

		uint64_t p = ((uint64_t)count * 7919 * 2) % npages;
		gen[p]++;
		write_page(region, p);

		struct timespec req = {0, 100 * 1000 * 1000}, rem;
		while (nanosleep(&req, &rem) != 0 && errno == EINTR)
			req = rem;
		int64_t t = now_ns();
		if (t < last) {
			printf("CLOCK BACKWARD by %lld ns at count %ld\n", (long long)(last - t), count);
			fflush(stdout);
			return 4;
		}
		last = t;
	}
	return 0;
}
