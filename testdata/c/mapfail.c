// mapfail: makes a host munmap of the sandbox's stub fail and checks that
// the memory stays the program's own. Unmapping a page in the middle of a
// mapping splits it in two, which the host refuses (ENOMEM) once the
// process holds vm.max_map_count mappings; a program gets there by
// mapping enough small pieces. Until 2026-12-07 the sentry gave the
// page's memory back anyway while the stub still mapped it, and the next
// allocation, another process's included, got it.
//
//   mapfail MAX
//
// It maps a region of three pages, fills them with 'A', 'B' and 'C',
// then maps single pages, each apart from the others (so none merge),
// until a mapping fails or MAX are made, and unmaps the region's middle
// page. It prints "fill: failed" (or "fill: MAX reached") and
// "munmap: ok" or "munmap: ENOMEM", unmaps the single pages, forks a
// child that maps pages and writes "CHILD" in them, and prints what the
// middle page holds: "middle: own" (all 'B') if it is still the
// program's own, "middle: unmapped" if it faults, and "middle: CHILD",
// "middle: zero" or "middle: other" if it was given back (the fork's
// copy of one of the program's pages for the child may be what got
// it). It prints "done" at the end.
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL

static sigjmp_buf jb;

static void on_segv(int sig) {
	(void)sig;
	siglongjmp(jb, 1);
}

static void child(int in, int out) {
	char c;
	if (read(in, &c, 1) != 1)
		_exit(1);
	for (int k = 0; k < 64; k++) {
		char *p = mmap(0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		memset(p, 0, PG);
		strcpy(p, "CHILD");
	}
	if (write(out, "k", 1) != 1)
		_exit(1);
	if (read(in, &c, 1) < 0)
		_exit(1);
	_exit(0);
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: mapfail MAX\n");
		return 2;
	}
	long max = atol(argv[1]);
	char *r = mmap(0, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *base = mmap(0, 2 * PG * max, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED || base == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (int i = 0; i < 3; i++)
		memset(r + i * PG, 'A' + i, PG);
	munmap(base, 2 * PG * max);
	long n = 0;
	for (; n < max; n++) {
		char *p = mmap(base + 2 * PG * n, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			break;
	}
	puts(n < max ? "fill: failed" : "fill: MAX reached");
	int rc = munmap(r + PG, PG);
	printf("munmap: %s\n", rc == 0 ? "ok" : errno == ENOMEM ? "ENOMEM" : strerror(errno));
	for (long i = n - 1; i >= 0; i--)
		munmap(base + 2 * PG * i, PG);
	int go[2], ready[2];
	if (pipe(go) || pipe(ready)) {
		perror("pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		child(go[0], ready[1]);
	}
	close(go[0]);
	close(ready[1]);
	char c;
	if (write(go[1], "g", 1) != 1 || read(ready[0], &c, 1) != 1) {
		perror("child");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, 0);
	if (sigsetjmp(jb, 1))
		puts("middle: unmapped");
	else {
		volatile char *m = r + PG;
		if (m[0] == 'B' && m[PG - 1] == 'B')
			puts("middle: own");
		else if (m[0] == 'C' && m[1] == 'H')
			puts("middle: CHILD");
		else if (m[0] == 0)
			puts("middle: zero");
		else
			printf("middle: other (%#x)\n", m[0]);
	}
	close(go[1]);
	waitpid(pid, 0, 0);
	puts("done");
	return 0;
}
