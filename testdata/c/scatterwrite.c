/*
 * scatterwrite MIB PAGES [ROUNDS]: fills MIB MiB of anonymous memory
 * (every page non-zero) and prints "filled MIB MiB"; then each SIGUSR1
 * starts a round K that writes one byte, K, in each of PAGES pages spread
 * evenly over the region and prints "round K", and each SIGUSR2 checks
 * every page and prints "check K OK" (or "check K BAD page N" and exits
 * 3). With ROUNDS, it runs that many rounds and a check by itself and
 * exits.
 *
 * The checkpoint workload of TestIncrementalScatteredPages: an
 * incremental save after a round stores about PAGES pages, not the region.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static volatile sig_atomic_t usr1, usr2;

static void on_usr1(int sig) { (void)sig; usr1 = 1; }
static void on_usr2(int sig) { (void)sig; usr2 = 1; }

static unsigned char *p;
static size_t n, stride, pages;
static int round_;

static void write_round(void)
{
	round_++;
	for (size_t k = 0; k < pages; k++)
		p[k * stride * 4096 + 100] = (unsigned char)round_;
	printf("round %d\n", round_);
	fflush(stdout);
}

static void check(void)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char want = (unsigned char)(i % 251) + 1;
		for (size_t b = 0; b < 4096; b++) {
			int written = round_ > 0 && b == 100 && i % stride == 0 && i / stride < pages;
			if (p[i * 4096 + b] != (written ? (unsigned char)round_ : want)) {
				printf("check %d BAD page %zu\n", round_, i);
				exit(3);
			}
		}
	}
	printf("check %d OK\n", round_);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	size_t mib = strtoul(argv[1], 0, 10);
	int rounds = argc > 3 ? atoi(argv[3]) : 0;
	pages = strtoul(argv[2], 0, 10);
	n = mib << 8;
	if (pages == 0 || pages > n)
		return 2;
	stride = n / pages;
	p = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 2;
	for (size_t i = 0; i < n; i++)
		memset(p + i * 4096, (int)(i % 251) + 1, 4096);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, on_usr2);
	printf("filled %zu MiB\n", mib);
	fflush(stdout);
	if (rounds > 0) {
		for (int r = 0; r < rounds; r++)
			write_round();
		check();
		return 0;
	}
	for (;;) {
		while (!usr1 && !usr2)
			sigsuspend(&old);
		if (usr1) {
			usr1 = 0;
			write_round();
		}
		if (usr2) {
			usr2 = 0;
			check();
		}
	}
}
