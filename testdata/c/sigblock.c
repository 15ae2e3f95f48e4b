/*
 * sigblock: blocked signals stay pending until unblocked, then their
 * handlers run before sigprocmask returns. Standard signals coalesce,
 * real-time signals queue with their values in FIFO order; a signal sent to
 * the process with kill is pending too; sigsuspend runs a handler and
 * restores the mask; SIGKILL and SIGSTOP cannot be blocked. (The order in
 * which different signals' handlers run is not printed: Linux nests frames,
 * which POSIX does not require.)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t count[65];
/* values[i] records the si_value of each queued delivery of SIGRTMIN+i. */
static volatile int values[2][8];
static volatile int nvalues[2];

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	count[sig]++;
	int rt = sig - SIGRTMIN;
	if ((rt == 0 || rt == 1) && si->si_code == SI_QUEUE && nvalues[rt] < 8)
		values[rt][nvalues[rt]++] = si->si_value.sival_int;
}

static void install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) != 0) {
		perror("sigaction");
		_exit(2);
	}
}

static void mask(int how, int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	sigprocmask(how, &s, NULL);
}

static const char *pending(int sig)
{
	sigset_t p;
	sigpending(&p);
	return sigismember(&p, sig) ? "yes" : "no";
}

static void print_values(int rt)
{
	printf("SIGRTMIN+%d values:", rt);
	for (int i = 0; i < nvalues[rt]; i++)
		printf(" %d", values[rt][i]);
	printf("\n");
}

int main(void)
{
	install(SIGUSR1);
	install(SIGUSR2);
	install(SIGRTMIN);
	install(SIGRTMIN + 1);

	sigset_t old;
	sigprocmask(SIG_BLOCK, NULL, &old);
	printf("initially blocked SIGUSR1: %s\n", sigismember(&old, SIGUSR1) ? "yes" : "no");

	/* A standard signal raised three times while blocked is delivered once. */
	mask(SIG_BLOCK, SIGUSR1);
	raise(SIGUSR1);
	raise(SIGUSR1);
	raise(SIGUSR1);
	printf("raised 3x while blocked: handler count %d, sigpending SIGUSR1 %s, SIGUSR2 %s\n", count[SIGUSR1],
	       pending(SIGUSR1), pending(SIGUSR2));
	mask(SIG_UNBLOCK, SIGUSR1);
	printf("unblocked: handler count %d, still pending %s\n", count[SIGUSR1], pending(SIGUSR1));

	/* kill(getpid()) is process-directed; it is pending until unblocked too. */
	mask(SIG_BLOCK, SIGUSR2);
	kill(getpid(), SIGUSR2);
	printf("kill(getpid(), SIGUSR2) while blocked: handler count %d, pending %s\n", count[SIGUSR2],
	       pending(SIGUSR2));
	mask(SIG_UNBLOCK, SIGUSR2);
	printf("unblocked: handler count %d, still pending %s\n", count[SIGUSR2], pending(SIGUSR2));

	/* Real-time signals queue: three of each, with values, FIFO per signal. */
	mask(SIG_BLOCK, SIGRTMIN);
	mask(SIG_BLOCK, SIGRTMIN + 1);
	for (int i = 0; i < 3; i++) {
		union sigval v;
		v.sival_int = 100 + i;
		if (sigqueue(getpid(), SIGRTMIN + 1, v) != 0)
			printf("sigqueue: errno %d\n", errno);
		v.sival_int = 200 + i;
		if (sigqueue(getpid(), SIGRTMIN, v) != 0)
			printf("sigqueue: errno %d\n", errno);
	}
	printf("queued 3+3: counts %d %d, pending SIGRTMIN %s, SIGRTMIN+1 %s\n", count[SIGRTMIN],
	       count[SIGRTMIN + 1], pending(SIGRTMIN), pending(SIGRTMIN + 1));
	mask(SIG_UNBLOCK, SIGRTMIN + 1);
	printf("unblocked SIGRTMIN+1: counts %d %d\n", count[SIGRTMIN], count[SIGRTMIN + 1]);
	print_values(1);
	mask(SIG_UNBLOCK, SIGRTMIN);
	printf("unblocked SIGRTMIN: counts %d %d\n", count[SIGRTMIN], count[SIGRTMIN + 1]);
	print_values(0);

	/* Several different signals unblocked at once: all handled before return. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGUSR1);
	raise(SIGUSR2);
	raise(SIGRTMIN);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	printf("unblock three at once: counts SIGUSR1 %d SIGUSR2 %d SIGRTMIN %d\n", count[SIGUSR1], count[SIGUSR2],
	       count[SIGRTMIN]);

	/* sigsuspend: wait with SIGUSR2 unblocked, then the old mask is back. */
	mask(SIG_BLOCK, SIGUSR2);
	raise(SIGUSR2);
	sigset_t waitmask, after;
	sigprocmask(SIG_BLOCK, NULL, &waitmask);
	sigdelset(&waitmask, SIGUSR2);
	int before = count[SIGUSR2];
	errno = 0;
	int r = sigsuspend(&waitmask);
	int e = errno;
	sigprocmask(SIG_BLOCK, NULL, &after);
	printf("sigsuspend: returned %d EINTR %s, handler ran: %s, SIGUSR2 blocked again: %s\n", r,
	       e == EINTR ? "yes" : "no", count[SIGUSR2] == before + 1 ? "yes" : "no",
	       sigismember(&after, SIGUSR2) ? "yes" : "no");

	/* SIGKILL and SIGSTOP cannot be blocked. */
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	sigprocmask(SIG_BLOCK, NULL, &after);
	printf("block all: SIGKILL blocked %s, SIGSTOP blocked %s, SIGTERM blocked %s\n",
	       sigismember(&after, SIGKILL) ? "yes" : "no", sigismember(&after, SIGSTOP) ? "yes" : "no",
	       sigismember(&after, SIGTERM) ? "yes" : "no");
	return 0;
}
