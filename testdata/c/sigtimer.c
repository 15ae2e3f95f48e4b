/*
 * sigtimer MODE: asynchronous signals delivered to a task that spins in user
 * mode without making system calls.
 *   itimer: setitimer(ITIMER_REAL) every 5 ms; the SIGALRM handler counts and
 *           the spin loop ends after 20 ticks.
 *   alarm:  alarm(1); the spin loop ends when SIGALRM has been handled.
 * Prints only deterministic facts (never the number of spins or ticks beyond
 * the threshold).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;
static volatile sig_atomic_t wrong_signal;

static void on_alarm(int sig)
{
	if (sig != SIGALRM)
		wrong_signal = 1;
	ticks++;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: sigtimer itimer|alarm\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0) {
		perror("sigaction");
		return 2;
	}
	unsigned long spins = 0;
	if (strcmp(argv[1], "itimer") == 0) {
		struct itimerval it = {.it_interval = {0, 5000}, .it_value = {0, 5000}};
		if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
			perror("setitimer");
			return 2;
		}
		struct itimerval cur;
		getitimer(ITIMER_REAL, &cur);
		printf("getitimer: interval %ld us, armed: %s\n", (long)cur.it_interval.tv_usec,
		       cur.it_value.tv_sec != 0 || cur.it_value.tv_usec != 0 ? "yes" : "no");
		while (ticks < 20)
			spins++;
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
		getitimer(ITIMER_REAL, &cur);
		printf("ticks >= 20: yes\n");
		printf("disarmed: %s\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0 ? "yes" : "no");
	} else if (strcmp(argv[1], "alarm") == 0) {
		unsigned left = alarm(10);
		printf("first alarm() returned %u\n", left);
		left = alarm(0);
		printf("alarm(0) returned remaining 9..10: %s\n", left >= 9 && left <= 10 ? "yes" : "no");
		alarm(1);
		while (ticks == 0)
			spins++;
		printf("alarm fired while spinning: yes\n");
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	printf("spun in user mode: %s\n", spins > 0 ? "yes" : "no");
	printf("handler saw only SIGALRM: %s\n", wrong_signal ? "no" : "yes");
	return 0;
}
