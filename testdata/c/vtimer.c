/*
 * vtimer [N]: an ITIMER_VIRTUAL interval timer of 50 ms of CPU time while
 * the program spins; it prints "vtick K" for each of N ticks (default 60)
 * from the main loop, then exits.
 *
 * A checkpoint test saves it between ticks and restores it: the ticks
 * continue with the next K (the timer and the CPU time it counts are saved).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks;
static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 60;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGVTALRM, &sa, NULL);
	struct itimerval it = {{0, 50000}, {0, 50000}};
	setitimer(ITIMER_VIRTUAL, &it, NULL);
	int seen = 0;
	while (seen < n) {
		if (ticks != seen) {
			seen = ticks;
			printf("vtick %d\n", seen);
		}
	}
	return 0;
}
