/*
 * sigaltstack MODE: signal handlers on an alternate signal stack.
 *   raise:    a SA_ONSTACK handler for SIGUSR1 checks that its own locals
 *             lie on the alternate stack and that sigaltstack reports
 *             SS_ONSTACK inside the handler and not outside.
 *   overflow: unbounded recursion overflows the main stack; the SIGSEGV
 *             handler can only run on the alternate stack, and leaves with
 *             siglongjmp.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALT_SIZE (256 * 1024)

static char *alt;
static volatile int on_alt, onstack_flag, handler_ran;
static sigjmp_buf env;

static int within_alt(const void *p)
{
	return (const char *)p >= alt && (const char *)p < alt + ALT_SIZE;
}

static void on_usr1(int sig)
{
	(void)sig;
	volatile char local = 0;
	on_alt = within_alt((const void *)&local);
	stack_t cur;
	if (sigaltstack(NULL, &cur) == 0)
		onstack_flag = (cur.ss_flags & SS_ONSTACK) != 0;
	handler_ran = 1;
}

static void on_segv(int sig)
{
	(void)sig;
	volatile char local = 0;
	on_alt = within_alt((const void *)&local);
	handler_ran = 1;
	siglongjmp(env, 1);
}

/* never is never reached; it keeps the compiler from calling recurse infinite. */
static volatile int never = -1;

/* recurse uses stack in every frame so that it cannot become a loop. */
static int recurse(int depth)
{
	volatile char buf[1024];
	if (depth == never)
		return 0;
	buf[0] = (char)depth;
	buf[sizeof buf - 1] = (char)depth;
	return recurse(depth + 1) + buf[0] + buf[sizeof buf - 1];
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: sigaltstack raise|overflow\n");
		return 2;
	}
	alt = malloc(ALT_SIZE);
	stack_t ss = {.ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0};
	if (alt == NULL || sigaltstack(&ss, NULL) != 0) {
		perror("sigaltstack");
		return 2;
	}
	stack_t cur;
	sigaltstack(NULL, &cur);
	printf("sigaltstack set: sp matches: %s, size %zu, SS_ONSTACK outside handler: %s\n",
	       cur.ss_sp == alt ? "yes" : "no", cur.ss_size, (cur.ss_flags & SS_ONSTACK) ? "yes" : "no");

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_ONSTACK;
	if (strcmp(argv[1], "raise") == 0) {
		sa.sa_handler = on_usr1;
		if (sigaction(SIGUSR1, &sa, NULL) != 0) {
			perror("sigaction");
			return 2;
		}
		raise(SIGUSR1);
		printf("handler ran: %s, on alt stack: %s, SS_ONSTACK inside: %s\n", handler_ran ? "yes" : "no",
		       on_alt ? "yes" : "no", onstack_flag ? "yes" : "no");
		sigaltstack(NULL, &cur);
		printf("SS_ONSTACK after return: %s\n", (cur.ss_flags & SS_ONSTACK) ? "yes" : "no");
		/* Disabling the alternate stack: a later handler runs on the main stack. */
		stack_t dis = {.ss_flags = SS_DISABLE};
		sigaltstack(&dis, NULL);
		handler_ran = 0;
		raise(SIGUSR1);
		printf("after SS_DISABLE: handler ran: %s, on alt stack: %s\n", handler_ran ? "yes" : "no",
		       on_alt ? "yes" : "no");
	} else if (strcmp(argv[1], "overflow") == 0) {
		sa.sa_handler = on_segv;
		if (sigaction(SIGSEGV, &sa, NULL) != 0) {
			perror("sigaction");
			return 2;
		}
		if (sigsetjmp(env, 1) == 0) {
			int r = recurse(0);
			printf("recursion returned %d?\n", r);
			return 1;
		}
		printf("stack overflow caught: %s, handler on alt stack: %s\n", handler_ran ? "yes" : "no",
		       on_alt ? "yes" : "no");
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	return 0;
}
