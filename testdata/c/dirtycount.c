/*
 * dirtycount MIB KIB_PER_SEC [N [seq]]: a counter that keeps writing
 * memory, for tests of saves and migrations that copy memory while the
 * program runs. It maps MIB MiB of pages, each holding a pattern of its
 * page number and generation (gen[p], kept in a separate array), and every
 * 10 ms rewrites the next KIB_PER_SEC/400 pages (at least one) in a stride
 * that visits every page (with "seq": one after the other), bumping each
 * one's generation first. Every 100 ms it checks the pages against their
 * generations (all of them up to 64 MiB; beyond, a sixteenth in turn, so
 * that a 1 GiB benchmark does not spend its CPU checking) and prints
 * "count K sum OK" (stdout flushed each line). It stops after N lines
 * (forever when N is 0 or absent).
 *
 * A copy of its memory that mixes two moments (a generation from before a
 * pause with a page from after it, or the reverse) makes the check fail:
 * it prints "CORRUPT page P at count K" and exits 3. CLOCK_MONOTONIC going
 * backward prints "CLOCK BACKWARD" and exits 4.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)

static uint64_t word(uint64_t page, uint64_t gen, uint64_t i)
{
	return (page << 40) | (gen << 20) | (i & 0x3f) | 1;
}

static void write_page(uint64_t *region, uint32_t *gen, uint64_t p)
{
	uint64_t *w = region + p * WORDS;
	for (uint64_t i = 0; i < WORDS; i++)
		w[i] = word(p, gen[p], i);
}

static long check(const uint64_t *region, const uint32_t *gen, uint64_t from, uint64_t to)
{
	for (uint64_t p = from; p < to; p++) {
		const uint64_t *w = region + p * WORDS;
		uint64_t base = word(p, gen[p], 0) & ~0x3fULL, diff = 0;
		for (uint64_t i = 0; i < WORDS; i++)
			diff |= w[i] ^ (base | (i & 0x3f) | 1);
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

static void sleep_ns(long ns)
{
	struct timespec req = {0, ns}, rem;
	while (nanosleep(&req, &rem) != 0 && errno == EINTR)
		req = rem;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atol(argv[1]) <= 0 || atol(argv[2]) < 0) {
		fprintf(stderr, "usage: dirtycount MIB KIB_PER_SEC [N]\n");
		return 2;
	}
	uint64_t npages = ((uint64_t)atol(argv[1]) << 20) / PAGE;
	long per_tick = atol(argv[2]) / 400;
	if (per_tick < 1)
		per_tick = 1;
	long limit = argc > 3 ? atol(argv[3]) : 0;
	uint64_t *region = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *gen = mmap(NULL, npages * sizeof *gen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED || gen == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (uint64_t p = 0; p < npages; p++)
		write_page(region, gen, p);

	/* An odd stride visits every page when npages is a power of two, and
	 * nearly every page otherwise. */
	uint64_t next = 0, stride = 7919 % npages ? 7919 % npages : 1;
	if (argc > 4 && argv[4][0] == 's')
		stride = 1;
	uint64_t part = npages <= (64UL << 20) / PAGE ? npages : (npages + 15) / 16;
	int64_t last = now_ns();
	for (long count = 1; limit == 0 || count <= limit; count++) {
		uint64_t from = part == npages ? 0 : (uint64_t)(count % 16) * part;
		uint64_t to = from + part < npages ? from + part : npages;
		long bad = check(region, gen, from, to);
		if (bad >= 0) {
			printf("CORRUPT page %ld at count %ld\n", bad, count);
			fflush(stdout);
			return 3;
		}
		printf("count %ld sum OK\n", count);
		fflush(stdout);
		for (int tick = 0; tick < 10; tick++) {
			for (long i = 0; i < per_tick; i++) {
				gen[next]++;
				write_page(region, gen, next);
				next = (next + stride) % npages;
			}
			sleep_ns(10 * 1000 * 1000);
		}
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
