/*
 * memtouch N_MIB OUTFILE [TICKS]: the peers' reference workload for memory
 * checkpoints. It maps N_MIB MiB of anonymous memory without transparent
 * huge pages and touches every page: odd pages are written with zeros,
 * even pages hold a xorshift64 pattern in groups of 8 words that share one
 * random value x (odd words x, even words x & 0x0000ffff0000ffff), which
 * compresses about as well as a real heap. The memory is 16 slices, each
 * with a checksum taken at the start. Every 100 ms it re-verifies one
 * slice, in turn, and appends "<counter> <slice> <ok|BAD> <unix_time>" to
 * OUTFILE (opened once, O_APPEND). It stops after TICKS lines (forever
 * when TICKS is 0 or absent) and exits 3 after a BAD line.
 *
 * A checkpoint benchmark saves it at 1 GiB and restores it: the restored
 * program must go on with the next counter and "ok".
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define SLICES 16

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint64_t checksum(const uint64_t *p, size_t words)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < words; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

int main(int argc, char **argv)
{
	if (argc < 3 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: memtouch N_MIB OUTFILE [TICKS]\n");
		return 2;
	}
	size_t size = (size_t)atol(argv[1]) << 20;
	long ticks = argc > 3 ? atol(argv[3]) : 0;
	uint64_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	madvise(p, size, MADV_NOHUGEPAGE);
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	const size_t page_words = PAGE / sizeof(uint64_t);
	for (size_t pg = 0; pg < size / PAGE; pg++) {
		uint64_t *w = p + pg * page_words;
		if (pg % 2 == 1) {
			memset(w, 0, PAGE); /* touched, zero */
			continue;
		}
		for (size_t g = 0; g < page_words; g += 8) {
			uint64_t x = xorshift64(&s);
			for (size_t i = 0; i < 8; i++)
				w[g + i] = i % 2 ? x : x & 0x0000ffff0000ffffULL;
		}
	}
	size_t slice_words = size / SLICES / sizeof(uint64_t);
	uint64_t sums[SLICES];
	for (int i = 0; i < SLICES; i++)
		sums[i] = checksum(p + i * slice_words, slice_words);
	int fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0) {
		perror(argv[2]);
		return 2;
	}
	struct timespec ts = {0, 100000000};
	for (long k = 1; ticks <= 0 || k <= ticks; k++) {
		int i = (int)((k - 1) % SLICES);
		int ok = checksum(p + i * slice_words, slice_words) == sums[i];
		char line[96];
		int n = snprintf(line, sizeof line, "%ld %d %s %lld\n", k, i, ok ? "ok" : "BAD", (long long)time(NULL));
		if (write(fd, line, n) != n) {
			perror("write");
			return 2;
		}
		if (!ok)
			return 3;
		nanosleep(&ts, NULL);
	}
	return 0;
}
