/*
 * itimer [N]: an ITIMER_REAL interval timer fires every 100 ms; the program
 * waits in sigsuspend and prints "tick K" after each wake-up (stdout flushed
 * each line). CLOCK_MONOTONIC going backward prints "CLOCK BACKWARD" and
 * exits 4; a timer found disarmed prints "DISARMED" and exits 3. Stops after
 * N ticks (forever when N is 0 or absent).
 *
 * A checkpoint test should check: after save and restore the ticks continue
 * with the next K (the timer is still armed with its interval and keeps
 * firing), and neither DISARMED nor CLOCK BACKWARD appears.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t fired;

static void on_alarm(int sig)
{
	(void)sig;
	fired++;
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
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);

	sigset_t block, wait;
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &wait);
	sigdelset(&wait, SIGALRM);

	struct itimerval it = {.it_interval = {0, 100000}, .it_value = {0, 100000}};
	if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
		perror("setitimer");
		return 2;
	}
	int64_t last = now_ns();
	for (long k = 1; limit == 0 || k <= limit; k++) {
		sig_atomic_t before = fired;
		while (fired == before)
			sigsuspend(&wait);
		int64_t t = now_ns();
		if (t < last) {
			printf("CLOCK BACKWARD by %lld ns at tick %ld\n", (long long)(last - t), k);
			fflush(stdout);
			return 4;
		}
		last = t;
		struct itimerval cur;
		getitimer(ITIMER_REAL, &cur);
		if (cur.it_interval.tv_usec != 100000 || (cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0)) {
			printf("DISARMED at tick %ld\n", k);
			fflush(stdout);
			return 3;
		}
		printf("tick %ld\n", k);
		fflush(stdout);
	}
	return 0;
}
