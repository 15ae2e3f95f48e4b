/*
 * forkmem: a forked child gets a copy of its parent's private memory and
 * shares its MAP_SHARED memory. The parent fills 48 MiB of private
 * anonymous memory with a pattern (every fourth page left untouched, so
 * zero), a heap buffer and a MAP_SHARED region; the child checks them all,
 * then overwrites the private memory and writes the shared region; the
 * parent checks that its private memory is unchanged and sees the shared
 * writes. A grandchild forked from the child sees the child's writes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGION (48UL << 20)
#define PAGE 4096UL
#define WORDS (PAGE / 8)

static uint64_t want(uint64_t page, uint64_t i, uint64_t gen)
{
	if (page % 4 == 3)
		return 0; /* never touched */
	return (page << 32) ^ (i * 0x9e3779b97f4a7c15ULL) ^ gen;
}

static void fill(uint64_t *r, uint64_t gen)
{
	for (uint64_t p = 0; p < REGION / PAGE; p++)
		if (p % 4 != 3)
			for (uint64_t i = 0; i < WORDS; i++)
				r[p * WORDS + i] = want(p, i, gen);
}

static int check(const uint64_t *r, uint64_t gen)
{
	for (uint64_t p = 0; p < REGION / PAGE; p++)
		for (uint64_t i = 0; i < WORDS; i++)
			if (r[p * WORDS + i] != want(p, i, gen))
				return 0;
	return 1;
}

static int child_status(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	uint64_t *r = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile uint64_t *shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *heap = malloc(1 << 20);
	if (r == MAP_FAILED || shared == MAP_FAILED || heap == NULL)
		return 2;
	fill(r, 1);
	memset(heap, 'h', 1 << 20);
	shared[0] = 1;

	pid_t pid = fork();
	if (pid == 0) {
		int ok = check(r, 1) && heap[0] == 'h' && heap[(1 << 20) - 1] == 'h' && shared[0] == 1;
		fill(r, 2);
		memset(heap, 'c', 1 << 20);
		shared[0] = 2;
		pid_t g = fork();
		if (g == 0)
			_exit(check(r, 2) && heap[12345] == 'c' ? 0 : 1);
		int gst = child_status(g);
		_exit(ok ? (gst == 0 ? 0 : 4) : 3);
	}
	int st = child_status(pid);
	printf("child saw the parent's memory: %s\n", st == 0 || st == 4 ? "yes" : "no");
	printf("grandchild saw the child's memory: %s\n", st == 0 ? "yes" : "no");
	printf("parent's private memory unchanged: %s\n", check(r, 1) && heap[777] == 'h' ? "yes" : "no");
	printf("shared mapping shared: %s\n", shared[0] == 2 ? "yes" : "no");
	return 0;
}
