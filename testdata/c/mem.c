/*
 * mem: about 256 MiB of memory work through mmap, munmap, mprotect, mremap,
 * madvise and brk. Every step fills memory with a deterministic pattern and
 * prints a checksum of what it reads back, so a run under snap must print the
 * same lines as a native run. Any surprise prints "FAIL ..." and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MiB (1024UL * 1024UL)
#define PAGE 4096UL

static void fail(const char *what)
{
	printf("FAIL %s (errno %d)\n", what, errno);
	exit(1);
}

static uint64_t pattern(uint64_t i, uint64_t seed)
{
	uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL ^ seed;
	x ^= x >> 29;
	return x * 0xBF58476D1CE4E5B9ULL;
}

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = pattern(i, seed);
}

static uint64_t sum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0;
	for (size_t i = 0; i < len / 8; i++)
		h = (h << 7 | h >> 57) ^ w[i];
	return h;
}

static int verify(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != pattern(i, seed))
			return 0;
	return 1;
}

static int all_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != 0)
			return 0;
	return 1;
}

static void *map(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	return p;
}

int main(void)
{
	uint64_t total = 0;

	/* 1. 64 MiB anonymous: fresh memory is zero; fill and checksum. */
	size_t alen = 64 * MiB;
	uint8_t *a = map(alen, PROT_READ | PROT_WRITE);
	printf("mmap 64 MiB: zero: %s\n", all_zero(a, alen) ? "yes" : "no");
	fill(a, alen, 1);
	uint64_t s = sum(a, alen);
	printf("fill 64 MiB: sum %016llx\n", (unsigned long long)s);
	total ^= s;

	/* 2. mprotect read-only and back: contents survive. */
	if (mprotect(a, alen, PROT_READ) != 0)
		fail("mprotect PROT_READ");
	printf("read-only: same sum: %s\n", sum(a, alen) == s ? "yes" : "no");
	if (mprotect(a, alen, PROT_READ | PROT_WRITE) != 0)
		fail("mprotect PROT_READ|PROT_WRITE");
	a[12345] ^= 0xff;
	a[12345] ^= 0xff;
	printf("writable again: verify: %s\n", verify(a, alen, 1) ? "yes" : "no");

	/* 3. mremap grow to 128 MiB (may move): old part kept, new part zero. */
	size_t blen = 128 * MiB;
	uint8_t *b = mremap(a, alen, blen, MREMAP_MAYMOVE);
	if (b == MAP_FAILED)
		fail("mremap grow");
	printf("mremap 64->128 MiB: old part verify: %s, new part zero: %s\n",
	       verify(b, alen, 1) ? "yes" : "no", all_zero(b + alen, blen - alen) ? "yes" : "no");
	fill(b + alen, blen - alen, 2);
	s = sum(b, blen);
	printf("fill 128 MiB: sum %016llx\n", (unsigned long long)s);
	total ^= s;

	/* 4. Punch a 32 MiB hole, map something else into it with MAP_FIXED. */
	uint8_t *hole = b + 32 * MiB;
	if (munmap(hole, 32 * MiB) != 0)
		fail("munmap hole");
	uint8_t *f = mmap(hole, 32 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (f != hole)
		fail("mmap MAP_FIXED into hole");
	printf("MAP_FIXED into hole: zero: %s, neighbours verify: %s %s\n", all_zero(f, 32 * MiB) ? "yes" : "no",
	       verify(b, 32 * MiB, 1) ? "yes" : "no", verify(b + alen, blen - alen, 2) ? "yes" : "no");
	fill(f, 32 * MiB, 3);

	/* 5. MADV_DONTNEED on a private anonymous range reads back zero. */
	uint64_t rest = sum(b + 80 * MiB, 48 * MiB);
	if (madvise(b + 64 * MiB, 16 * MiB, MADV_DONTNEED) != 0)
		fail("madvise");
	printf("MADV_DONTNEED: zero: %s, rest kept: %s\n", all_zero(b + 64 * MiB, 16 * MiB) ? "yes" : "no",
	       sum(b + 80 * MiB, 48 * MiB) == rest ? "yes" : "no");
	s = sum(b, blen);
	printf("after hole and madvise: sum %016llx\n", (unsigned long long)s);
	total ^= s;

	/* 6. mremap shrink in place to 32 MiB, then unmap. */
	uint8_t *c = mremap(b, blen, 32 * MiB, 0);
	if (c != b)
		fail("mremap shrink");
	printf("mremap shrink: verify: %s\n", verify(c, 32 * MiB, 1) ? "yes" : "no");
	if (munmap(c, 32 * MiB) != 0)
		fail("munmap");

	/* 7. PROT_NONE reservation, then commit pieces of it with mprotect. */
	uint8_t *r = map(32 * MiB, PROT_NONE);
	for (size_t off = 0; off < 32 * MiB; off += 4 * MiB) {
		if (mprotect(r + off, 2 * MiB, PROT_READ | PROT_WRITE) != 0)
			fail("mprotect commit");
		fill(r + off, 2 * MiB, off);
	}
	s = 0;
	for (size_t off = 0; off < 32 * MiB; off += 4 * MiB)
		s ^= sum(r + off, 2 * MiB);
	printf("reserve+commit 16 of 32 MiB: sum %016llx\n", (unsigned long long)s);
	total ^= s;
	if (munmap(r, 32 * MiB) != 0)
		fail("munmap reservation");

	/* 8. brk: grow by 32 MiB, shrink by 16 MiB, grow again: regrown part is zero. */
	uintptr_t base = (uintptr_t)syscall(SYS_brk, 0);
	uintptr_t want = base + 32 * MiB;
	if ((uintptr_t)syscall(SYS_brk, want) != want)
		fail("brk grow");
	fill((void *)base, 32 * MiB, 4);
	s = sum((void *)base, 32 * MiB);
	printf("brk +32 MiB: sum %016llx\n", (unsigned long long)s);
	total ^= s;
	if ((uintptr_t)syscall(SYS_brk, base + 16 * MiB) != base + 16 * MiB)
		fail("brk shrink");
	if ((uintptr_t)syscall(SYS_brk, want) != want)
		fail("brk regrow");
	printf("brk shrink+regrow: kept part verify: %s, regrown part zero: %s\n",
	       verify((void *)base, 16 * MiB, 4) ? "yes" : "no", all_zero((void *)(base + 16 * MiB), 16 * MiB) ? "yes" : "no");
	if ((uintptr_t)syscall(SYS_brk, base) != base)
		fail("brk release");

	/* 9. Churn: 512 small mappings of 64 KiB each, written and unmapped. */
	s = 0;
	for (int i = 0; i < 512; i++) {
		uint8_t *p = map(64 * 1024, PROT_READ | PROT_WRITE);
		fill(p, 64 * 1024, (uint64_t)i);
		s ^= sum(p, 64 * 1024);
		if (munmap(p, 64 * 1024) != 0)
			fail("munmap churn");
	}
	printf("churn 512 x 64 KiB: sum %016llx\n", (unsigned long long)s);
	total ^= s;

	printf("total %016llx\n", (unsigned long long)total);
	return 0;
}
