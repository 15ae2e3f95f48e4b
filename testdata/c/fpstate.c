/*
 * fpstate: the application's floating point and vector state (the XSAVE
 * area: x87 control word, MXCSR, xmm/ymm/zmm registers) is kept exactly
 * across system calls, signal delivery and sigreturn, fork and thread
 * creation. Each check prints one line ending in yes or no; the program
 * exits 0 only if every line says yes.
 *
 * `fpstate handler-init` adds one check: a signal handler starts with the
 * initial FP state (round to nearest), as Linux gives it, not with the
 * interrupted context's.
 *
 * Values that must stay in a register across a system call are loaded,
 * kept and stored by inline asm around a raw `syscall` instruction: a C
 * compiler is free to spill them to memory otherwise.
 *
 * The rounding mode is set as glibc's fesetround does on x86-64 (x87
 * control word and MXCSR, see set_round) rather than with fesetround
 * itself, which static glibc keeps in libm: the program then links with
 * plain `gcc -static` and `musl-gcc -static`. Every check reads both the
 * raw control registers and the rounding that SSE division actually does.
 */
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

/* check counts a failed check and returns the word that ends its line. */
static const char *check(int ok)
{
	if (!ok)
		failures++;
	return ok ? "yes" : "no";
}

static unsigned get_mxcsr(void)
{
	unsigned m;
	__asm__ volatile("stmxcsr %0" : "=m"(m));
	return m;
}

static void set_mxcsr(unsigned m) { __asm__ volatile("ldmxcsr %0" : : "m"(m)); }

static unsigned short get_fcw(void)
{
	unsigned short c;
	__asm__ volatile("fnstcw %0" : "=m"(c));
	return c;
}

static void set_fcw(unsigned short c) { __asm__ volatile("fldcw %0" : : "m"(c)); }

/* The rounding control bits: FE_* in the x87 control word, FE_* << 3 in
 * MXCSR. */
#define FCW_RC 0xc00u
#define MXCSR_RC (FCW_RC << 3)

/* set_round sets the rounding mode (an FE_* constant) of both units. */
static void set_round(int mode)
{
	set_fcw((unsigned short)((get_fcw() & ~FCW_RC) | (unsigned)mode));
	set_mxcsr((get_mxcsr() & ~MXCSR_RC) | (unsigned)mode << 3);
}

/* get_round returns the rounding mode of both units, or -1 if they differ. */
static int get_round(void)
{
	unsigned x87 = get_fcw() & FCW_RC, sse = (get_mxcsr() & MXCSR_RC) >> 3;
	return x87 == sse ? (int)sse : -1;
}

/* divide is one SSE division, done when called (not folded or moved by the
 * compiler), so it rounds as MXCSR says at that moment. */
static double divide(double a, double b)
{
	__asm__ volatile("divsd %1, %0" : "+x"(a) : "x"(b));
	return a;
}

/* A fingerprint of the SSE rounding mode: three quotients whose last bits
 * differ between the four modes. */
struct quotients {
	double third, tenth, minus_third;
};

static struct quotients quotients(void)
{
	struct quotients q = {divide(1, 3), divide(1, 10), divide(-1, 3)};
	return q;
}

static int same_quotients(struct quotients a, struct quotients b) { return memcmp(&a, &b, sizeof a) == 0; }

static const int modes[4] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
static struct quotients reference[4];

/* learn_modes computes the fingerprint of each mode and reports whether the
 * four differ (so that arith_mode can tell them apart). */
static int learn_modes(void)
{
	int saved = get_round();
	for (int i = 0; i < 4; i++) {
		set_round(modes[i]);
		reference[i] = quotients();
	}
	set_round(saved);
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			if (same_quotients(reference[i], reference[j]))
				return 0;
	return 1;
}

/* arith_mode returns the mode that SSE division rounds with now, by
 * fingerprint, or -1 if it matches none. */
static int arith_mode(void)
{
	struct quotients q = quotients();
	for (int i = 0; i < 4; i++)
		if (same_quotients(q, reference[i]))
			return modes[i];
	return -1;
}

/* in_mode reports whether both control registers and SSE arithmetic say
 * mode. */
static int in_mode(int mode) { return get_round() == mode && arith_mode() == mode; }

/* pattern fills n bytes with a pattern that depends on seed and differs in
 * every byte of a register. */
static void pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 131 + i * 29 + 0x5a);
}

#define LOAD_XMM(r, off) "movdqu " #off "(%[in]), %%xmm" #r "\n\t"
#define STORE_XMM(r, off) "movdqu %%xmm" #r ", " #off "(%[out])\n\t"
#define ALL_XMM(M)                                                                                            \
	M(0, 0) M(1, 16) M(2, 32) M(3, 48) M(4, 64) M(5, 80) M(6, 96) M(7, 112) M(8, 128) M(9, 144) M(10, 160) \
	    M(11, 176) M(12, 192) M(13, 208) M(14, 224) M(15, 240)
#define XMM_CLOBBERS                                                                                     \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
	    "xmm12", "xmm13", "xmm14", "xmm15"

/* xmm_across_getpid loads xmm0-xmm15 from in, makes n raw getpid system
 * calls in a loop and stores xmm0-xmm15 to out. */
static void xmm_across_getpid(const unsigned char in[256], unsigned char out[256], long n)
{
	__asm__ volatile(ALL_XMM(LOAD_XMM) "1:\n\t"
					   "mov $39, %%eax\n\t"
					   "syscall\n\t"
					   "dec %[n]\n\t"
					   "jnz 1b\n\t" ALL_XMM(STORE_XMM)
			 : [n] "+r"(n)
			 : [in] "r"(in), [out] "r"(out)
			 : "rax", "rcx", "r11", "memory", "cc", XMM_CLOBBERS);
}

static int xmm_kept(long n, unsigned seed)
{
	unsigned char in[256], out[256];
	pattern(in, sizeof in, seed);
	memset(out, 0, sizeof out);
	xmm_across_getpid(in, out, n);
	return memcmp(in, out, sizeof in) == 0;
}

/* ---- signals ---- */

static volatile sig_atomic_t handled;
static volatile int handler_mode;
static unsigned char junk[16];

/* clobber is what a handler does: other values in xmm5 and xmm12, another
 * rounding mode. */
static void clobber(void)
{
	__asm__ volatile("movdqu %0, %%xmm5\n\tmovdqu %0, %%xmm12" : : "m"(junk) : "xmm5", "xmm12");
	set_round(FE_DOWNWARD);
}

static void on_signal(int sig)
{
	(void)sig;
	handler_mode = get_round();
	clobber();
	handled++;
}

/* A pattern that a handler writes into the interrupted context's saved
 * xmm5 through its ucontext, and the MXCSR rounding it sets there. */
static unsigned char frame_xmm5[16];

static void on_signal_edit_frame(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ucv;
	clobber();
	if (uc->uc_mcontext.fpregs != NULL) {
		memcpy(&uc->uc_mcontext.fpregs->_xmm[5], frame_xmm5, 16);
		uc->uc_mcontext.fpregs->mxcsr = (uc->uc_mcontext.fpregs->mxcsr & ~MXCSR_RC) | (unsigned)FE_TOWARDZERO << 3;
	}
	handled++;
}

static void handle(int sig, void (*h)(int), void (*ha)(int, siginfo_t *, void *))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (ha != NULL) {
		sa.sa_sigaction = ha;
		sa.sa_flags = SA_SIGINFO;
	} else {
		sa.sa_handler = h;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

/* xmm5_across_kill loads xmm5 and xmm12 from in, sends signal sig to
 * itself with a raw kill system call (the handler runs before the syscall
 * returns to this code) and stores xmm5 and xmm12 to out. */
static void xmm5_across_kill(const unsigned char in[32], unsigned char out[32], long sig)
{
	long pid = getpid();
	__asm__ volatile("movdqu 0(%[in]), %%xmm5\n\t"
			 "movdqu 16(%[in]), %%xmm12\n\t"
			 "mov $62, %%eax\n\t"
			 "mov %[pid], %%rdi\n\t"
			 "mov %[sig], %%rsi\n\t"
			 "syscall\n\t"
			 "movdqu %%xmm5, 0(%[out])\n\t"
			 "movdqu %%xmm12, 16(%[out])\n\t"
			 :
			 : [in] "r"(in), [out] "r"(out), [pid] "r"(pid), [sig] "r"(sig)
			 : "rax", "rcx", "rdi", "rsi", "r11", "memory", "xmm5", "xmm12");
}

/* xmm5_until_signal loads xmm5 and xmm12 from in, spins in user mode
 * without system calls until a handler has run and stores xmm5 and xmm12 to
 * out: the signal interrupts the task at an arbitrary instruction. */
static void xmm5_until_signal(const unsigned char in[32], unsigned char out[32])
{
	__asm__ volatile("movdqu 0(%[in]), %%xmm5\n\t"
			 "movdqu 16(%[in]), %%xmm12\n\t"
			 "1: cmpl $0, %[h]\n\t"
			 "je 1b\n\t"
			 "movdqu %%xmm5, 0(%[out])\n\t"
			 "movdqu %%xmm12, 16(%[out])\n\t"
			 :
			 : [in] "r"(in), [out] "r"(out), [h] "m"(handled)
			 : "memory", "cc", "xmm5", "xmm12");
}

static void check_signals(int handler_init)
{
	unsigned char in[32], out[32];
	pattern(in, sizeof in, 5);
	pattern(junk, sizeof junk, 99);

	/* A handler of a signal sent by the task's own system call. */
	handle(SIGUSR1, on_signal, NULL);
	set_round(FE_UPWARD);
	unsigned mxcsr = get_mxcsr();
	unsigned short fcw = get_fcw();
	handled = 0;
	memset(out, 0, sizeof out);
	xmm5_across_kill(in, out, SIGUSR1);
	int mode_kept = in_mode(FE_UPWARD) && get_mxcsr() == mxcsr && get_fcw() == fcw;
	set_round(FE_TONEAREST);
	printf("SIGUSR1 from raw kill: handler ran: %s\n", check(handled == 1));
	printf("SIGUSR1 from raw kill: xmm5 and xmm12 kept: %s\n", check(memcmp(in, out, sizeof in) == 0));
	printf("SIGUSR1 from raw kill: FE_UPWARD kept: %s\n", check(mode_kept));
	if (handler_init)
		/* Linux gives a handler the initial FP state (round to
		 * nearest), not the interrupted context's. */
		printf("SIGUSR1 from raw kill: handler ran with round to nearest: %s\n",
		       check(handler_mode == FE_TONEAREST));

	/* A signal that interrupts user code (an interval timer) rather than
	 * a system call. */
	handle(SIGALRM, on_signal, NULL);
	pattern(in, sizeof in, 6);
	set_round(FE_UPWARD);
	handled = 0;
	memset(out, 0, sizeof out);
	struct itimerval it = {.it_interval = {0, 0}, .it_value = {0, 20000}};
	setitimer(ITIMER_REAL, &it, NULL);
	xmm5_until_signal(in, out);
	mode_kept = in_mode(FE_UPWARD);
	set_round(FE_TONEAREST);
	printf("SIGALRM while spinning: xmm5 and xmm12 kept: %s\n", check(memcmp(in, out, sizeof in) == 0));
	printf("SIGALRM while spinning: FE_UPWARD kept: %s\n", check(mode_kept));

	/* sigreturn loads the FP state from the signal frame: what a handler
	 * writes there is what the interrupted code finds. */
	handle(SIGUSR2, NULL, on_signal_edit_frame);
	pattern(in, sizeof in, 7);
	pattern(frame_xmm5, sizeof frame_xmm5, 8);
	set_round(FE_UPWARD);
	handled = 0;
	memset(out, 0, sizeof out);
	xmm5_across_kill(in, out, SIGUSR2);
	int sse_mode = (int)((get_mxcsr() & MXCSR_RC) >> 3), sse_arith = arith_mode();
	set_round(FE_TONEAREST);
	printf("sigreturn: xmm5 from the frame: %s, xmm12 kept: %s\n",
	       check(handled == 1 && memcmp(out, frame_xmm5, 16) == 0), check(memcmp(in + 16, out + 16, 16) == 0));
	printf("sigreturn: MXCSR rounding from the frame: %s\n",
	       check(sse_mode == FE_TOWARDZERO && sse_arith == FE_TOWARDZERO));
}

/* ---- fork ---- */

/* Exit status bits of the forked child. */
enum { CHILD_XMM5 = 1, CHILD_ROUND = 2 };

static void check_fork(void)
{
	unsigned char in[16], out[16];
	pattern(in, sizeof in, 9);
	memset(out, 0, sizeof out);
	fflush(stdout);
	set_round(FE_TOWARDZERO);
	long r;
	__asm__ volatile("movdqu (%[in]), %%xmm5\n\t"
			 "mov $57, %%eax\n\t"
			 "syscall\n\t"
			 "movdqu %%xmm5, (%[out])\n\t"
			 : "=a"(r)
			 : [in] "r"(in), [out] "r"(out)
			 : "rcx", "r11", "memory", "xmm5");
	if (r == 0) {
		int status = 0;
		if (memcmp(in, out, sizeof in) != 0)
			status |= CHILD_XMM5;
		if (!in_mode(FE_TOWARDZERO))
			status |= CHILD_ROUND;
		_exit(status);
	}
	int parent_ok = memcmp(in, out, sizeof in) == 0 && in_mode(FE_TOWARDZERO);
	set_round(FE_TONEAREST);
	if (r < 0) {
		printf("fork: failed: %s\n", check(0));
		return;
	}
	int st = -1;
	pid_t w = waitpid((pid_t)r, &st, 0);
	int exited = w == r && WIFEXITED(st);
	printf("fork: child xmm5 kept: %s, child FE_TOWARDZERO: %s, parent kept both: %s\n",
	       check(exited && !(WEXITSTATUS(st) & CHILD_XMM5)), check(exited && !(WEXITSTATUS(st) & CHILD_ROUND)),
	       check(parent_ok));
}

/* ---- threads ---- */

struct thread_result {
	int inherited;	    /* started in the creator's rounding mode */
	int own_mode_kept;  /* its own FE_UPWARD held across its syscalls */
	int xmm_kept;	    /* its xmm registers held across 1000 syscalls */
};

static void *thread_main(void *arg)
{
	struct thread_result *res = arg;
	res->inherited = in_mode(FE_DOWNWARD);
	set_round(FE_UPWARD);
	res->xmm_kept = xmm_kept(1000, 11);
	res->own_mode_kept = in_mode(FE_UPWARD);
	return NULL;
}

static void check_thread(void)
{
	struct thread_result res = {0, 0, 0};
	set_round(FE_DOWNWARD);
	pthread_t th;
	int created = pthread_create(&th, NULL, thread_main, &res) == 0;
	/* The main thread makes system calls with other xmm values meanwhile. */
	int main_xmm = xmm_kept(1000, 12);
	if (created)
		pthread_join(th, NULL);
	int main_mode = in_mode(FE_DOWNWARD);
	set_round(FE_TONEAREST);
	printf("pthread: new thread starts with FE_DOWNWARD: %s\n", check(created && res.inherited));
	printf("pthread: both threads keep their own xmm0-xmm15 across 1000 syscalls: %s\n",
	       check(created && res.xmm_kept && main_xmm));
	printf("pthread: thread's FE_UPWARD kept: %s, creator's FE_DOWNWARD untouched: %s\n",
	       check(created && res.own_mode_kept), check(main_mode));
}

/* ---- AVX ---- */

/* ymm_across_getpid loads ymm5 and ymm12 (256 bits each) from in, makes a
 * raw getpid system call and stores them to out. */
__attribute__((target("avx"))) static void ymm_across_getpid(const unsigned char in[64], unsigned char out[64])
{
	__asm__ volatile("vmovdqu 0(%[in]), %%ymm5\n\t"
			 "vmovdqu 32(%[in]), %%ymm12\n\t"
			 "mov $39, %%eax\n\t"
			 "syscall\n\t"
			 "vmovdqu %%ymm5, 0(%[out])\n\t"
			 "vmovdqu %%ymm12, 32(%[out])\n\t"
			 "vzeroupper\n\t"
			 :
			 : [in] "r"(in), [out] "r"(out)
			 : "rax", "rcx", "r11", "memory", "xmm5", "xmm12");
}

/* zmm_across_getpid loads zmm5, zmm20 and zmm31 (512 bits each) and the
 * opmask k3 from in, makes a raw getpid system call and stores them to out. */
__attribute__((target("avx512f"))) static void zmm_across_getpid(const unsigned char in[200],
								   unsigned char out[200])
{
	__asm__ volatile("vmovdqu64 0(%[in]), %%zmm5\n\t"
			 "vmovdqu64 64(%[in]), %%zmm20\n\t"
			 "vmovdqu64 128(%[in]), %%zmm31\n\t"
			 "kmovw 192(%[in]), %%k3\n\t"
			 "mov $39, %%eax\n\t"
			 "syscall\n\t"
			 "vmovdqu64 %%zmm5, 0(%[out])\n\t"
			 "vmovdqu64 %%zmm20, 64(%[out])\n\t"
			 "vmovdqu64 %%zmm31, 128(%[out])\n\t"
			 "kmovw %%k3, 192(%[out])\n\t"
			 "vzeroupper\n\t"
			 :
			 : [in] "r"(in), [out] "r"(out)
			 : "rax", "rcx", "r11", "memory", "xmm5", "xmm20", "xmm31", "k3");
}

static void check_avx(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx")) {
		printf("ymm5 and ymm12 upper halves kept across a syscall: %s (no avx)\n", check(1));
	} else {
		unsigned char in[64], out[64];
		pattern(in, sizeof in, 13);
		memset(out, 0, sizeof out);
		ymm_across_getpid(in, out);
		printf("ymm5 and ymm12 upper halves kept across a syscall: %s\n", check(memcmp(in, out, sizeof in) == 0));
	}
	if (!__builtin_cpu_supports("avx512f")) {
		printf("zmm5, zmm20, zmm31 and k3 kept across a syscall: %s (no avx512f)\n", check(1));
	} else {
		unsigned char in[200], out[200];
		pattern(in, sizeof in, 14);
		memset(out, 0, sizeof out);
		zmm_across_getpid(in, out);
		printf("zmm5, zmm20, zmm31 and k3 kept across a syscall: %s\n",
		       check(memcmp(in, out, 194) == 0));
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int handler_init = argc > 1 && strcmp(argv[1], "handler-init") == 0;
	if (argc > 1 && !handler_init) {
		fprintf(stderr, "usage: fpstate [handler-init]\n");
		return 2;
	}
	printf("the four rounding modes round 1/3, 1/10, -1/3 differently: %s\n", check(learn_modes()));
	printf("starts with round to nearest: %s\n", check(in_mode(FE_TONEAREST)));

	printf("xmm0-xmm15 kept across one syscall: %s\n", check(xmm_kept(1, 1)));
	printf("xmm0-xmm15 kept across 1000 syscalls: %s\n", check(xmm_kept(1000, 2)));

	set_round(FE_UPWARD);
	unsigned mxcsr = get_mxcsr();
	unsigned short fcw = get_fcw();
	for (int i = 0; i < 1000; i++)
		getppid();
	int kept = in_mode(FE_UPWARD) && get_mxcsr() == mxcsr && get_fcw() == fcw;
	set_round(FE_TONEAREST);
	printf("FE_UPWARD (MXCSR and x87 control word) kept across 1000 syscalls: %s\n", check(kept));

	check_signals(handler_init);
	check_fork();
	check_thread();
	check_avx();
	printf("back to round to nearest: %s\n", check(in_mode(FE_TONEAREST)));
	return failures == 0 ? 0 : 1;
}
