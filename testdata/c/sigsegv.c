/*
 * sigsegv: SIGSEGV handlers that leave with siglongjmp. Faults on a NULL
 * pointer (three times, so the signal mask must be restored each time), on a
 * write to a read-only page, a read of a PROT_NONE page and an access to an
 * unmapped page; prints the si_code and whether si_addr is the faulting
 * address.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile void *fault_addr;
static volatile int fault_code;
static volatile int fault_signo;
static volatile int handled;

/* volatile, so the compiler cannot prove it is NULL and emit a trap instead. */
static int *volatile nullp;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_signo = si->si_signo == sig ? sig : -1;
	fault_addr = si->si_addr;
	fault_code = si->si_code;
	handled++;
	siglongjmp(env, 1);
}

static const char *code_name(int code)
{
	switch (code) {
	case SEGV_MAPERR:
		return "SEGV_MAPERR";
	case SEGV_ACCERR:
		return "SEGV_ACCERR";
	default:
		return "other";
	}
}

static void report(const char *what, void *want)
{
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	printf("%s: caught %s, %s, si_addr matches: %s, SIGSEGV unblocked after siglongjmp: %s\n", what,
	       fault_signo == SIGSEGV ? "SIGSEGV" : "?", code_name(fault_code), fault_addr == want ? "yes" : "no",
	       sigismember(&cur, SIGSEGV) ? "no" : "yes");
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0) {
		perror("sigaction");
		return 2;
	}

	for (int i = 0; i < 3; i++) {
		if (sigsetjmp(env, 1) == 0) {
			nullp[2] = 1; /* address 8 */
			printf("no fault?\n");
			return 1;
		}
		char what[32];
		snprintf(what, sizeof what, "null write %d", i + 1);
		report(what, (void *)8);
	}

	long pg = sysconf(_SC_PAGESIZE);
	volatile char *ro = mmap(NULL, 3 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	if (sigsetjmp(env, 1) == 0) {
		ro[100] = 1;
		printf("no fault?\n");
		return 1;
	}
	report("write to PROT_READ", (void *)(ro + 100));

	if (mprotect((void *)(ro + pg), pg, PROT_NONE) != 0) {
		perror("mprotect");
		return 2;
	}
	if (sigsetjmp(env, 1) == 0) {
		char c = ro[pg + 7];
		printf("no fault? %d\n", c);
		return 1;
	}
	report("read of PROT_NONE", (void *)(ro + pg + 7));

	if (munmap((void *)(ro + 2 * pg), pg) != 0) {
		perror("munmap");
		return 2;
	}
	if (sigsetjmp(env, 1) == 0) {
		char c = ro[2 * pg + 9];
		printf("no fault? %d\n", c);
		return 1;
	}
	report("read of unmapped page", (void *)(ro + 2 * pg + 9));

	/* The read-only page is still readable after all this. */
	printf("PROT_READ page still reads zero: %s\n", ro[0] == 0 ? "yes" : "no");
	printf("handled %d faults\n", handled);
	return 0;
}
