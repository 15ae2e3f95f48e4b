/*
 * sigpending [N]: blocks SIGUSR1 and SIGUSR2, raises SIGUSR1 itself, then
 * prints "waiting K: SIGUSR1 pending yes, SIGUSR2 pending yes|no" every
 * 100 ms for N lines (default 30). Then it unblocks both; the handlers run
 * before sigprocmask returns, and it prints "delivered SIGUSR1 1 SIGUSR2 M".
 * SIGUSR2 is never raised by the program: a test sends it from outside
 * (snap kill ID SIGUSR2) to have a process-directed pending signal too.
 *
 * A checkpoint test should check: saved during "waiting" and restored, the
 * lines continue with the next K, SIGUSR1 (and SIGUSR2 if it was sent before
 * the save) is still pending, and the final line reports each delivered once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t got1, got2;

static void handler(int sig)
{
	if (sig == SIGUSR1)
		got1++;
	else if (sig == SIGUSR2)
		got2++;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 30;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR1);

	for (long k = 1; k <= n; k++) {
		sigset_t p;
		sigpending(&p);
		printf("waiting %ld: SIGUSR1 pending %s, SIGUSR2 pending %s\n", k,
		       sigismember(&p, SIGUSR1) ? "yes" : "no", sigismember(&p, SIGUSR2) ? "yes" : "no");
		fflush(stdout);
		if (got1 || got2) {
			printf("BLOCKED SIGNAL DELIVERED\n");
			return 3;
		}
		struct timespec req = {0, 100 * 1000 * 1000}, rem;
		while (nanosleep(&req, &rem) != 0)
			req = rem;
	}
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	printf("delivered SIGUSR1 %d SIGUSR2 %d\n", (int)got1, (int)got2);
	return got1 == 1 ? 0 : 3;
}
