/*
 * cputimerother: a POSIX timer on another process's CPU clock
 * (clock_getcpuclockid of a child, then timer_create). While the child
 * sleeps its clock stands still and the timer does not fire; once the
 * child spins, the timer fires after that much of the child's CPU time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

/* waitsig waits up to ms for SIGUSR1 and reports whether it came. */
static int waitsig(long ms)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	return sigtimedwait(&set, NULL, &ts) == SIGUSR1;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int go[2];
	if (pipe(go) != 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		/* Spins, with a system call now and then. */
		for (;;) {
			for (volatile int i = 0; i < 1000000; i++)
				;
			getppid();
		}
	}
	clockid_t c;
	printf("clock_getcpuclockid(child): %s\n", clock_getcpuclockid(child, &c) == 0 ? "ok" : "failed");
	struct sigevent sev = {0};
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	timer_t tm;
	printf("timer_create on the child's clock: %s\n", timer_create(c, &sev, &tm) == 0 ? "ok" : strerror(errno));
	struct itimerspec its = {{0, 0}, {0, 50 * 1000000L}};
	printf("timer_settime 50 ms: %s\n", timer_settime(tm, 0, &its, NULL) == 0 ? "ok" : strerror(errno));
	printf("fired while the child slept 200 ms: %s\n", yesno(waitsig(200)));
	struct itimerspec left;
	timer_gettime(tm, &left);
	printf("still armed: %s\n", yesno(left.it_value.tv_sec != 0 || left.it_value.tv_nsec != 0));
	if (write(go[1], "g", 1) != 1)
		return 1;
	printf("fired once the child spun: %s\n", yesno(waitsig(5000)));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	timer_delete(tm);
	return 0;
}
