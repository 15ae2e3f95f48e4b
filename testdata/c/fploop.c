/*
 * fploop [N]: holds the FP/SSE state across N (default 200) raw nanosleep
 * system calls of 50 ms and prints "fp K ok" after the K-th, or
 * "fp K CORRUPT: what" and exits 3.
 *
 * The rounding mode is FE_UPWARD for the whole run (set once, in MXCSR and
 * the x87 control word, as glibc's fesetround does). In each iteration
 * inline asm loads a pattern that depends on K into every vector register
 * the CPU has (xmm0-xmm15; ymm0-ymm15 with AVX; zmm0-zmm31 and k1-k7 with
 * AVX-512), makes the nanosleep with a raw `syscall` instruction and stores
 * the registers back; then the registers, MXCSR, the x87 control word and
 * the rounding SSE division does are checked.
 *
 * A checkpoint test saves it while it sleeps and restores it: the lines
 * continue with the next K and say ok (the FP state is saved).
 */
#include <fenv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned get_mxcsr(void)
{
	unsigned m;
	__asm__ volatile("stmxcsr %0" : "=m"(m));
	return m;
}

static unsigned short get_fcw(void)
{
	unsigned short c;
	__asm__ volatile("fnstcw %0" : "=m"(c));
	return c;
}

/* set_round sets the rounding mode (an FE_* constant: bits 10-11 of the
 * x87 control word, bits 13-14 of MXCSR) of both units. */
static void set_round(int mode)
{
	unsigned short c = (unsigned short)((get_fcw() & ~0xc00u) | (unsigned)mode);
	unsigned m = (get_mxcsr() & ~0x6000u) | (unsigned)mode << 3;
	__asm__ volatile("fldcw %0" : : "m"(c));
	__asm__ volatile("ldmxcsr %0" : : "m"(m));
}

/* divide is one SSE division done when called, rounded as MXCSR says. */
static double divide(double a, double b)
{
	__asm__ volatile("divsd %1, %0" : "+x"(a) : "x"(b));
	return a;
}

/* A fingerprint of the SSE rounding mode. */
struct quotients {
	double third, tenth, minus_third;
};

static struct quotients quotients(void)
{
	struct quotients q = {divide(1, 3), divide(1, 10), divide(-1, 3)};
	return q;
}

/* The register file image: zmm0-zmm31 (64 bytes each), then k1-k7 (2
 * bytes each). Without AVX-512 only the first 32 bytes of zmm0-zmm15 are
 * used, without AVX the first 16. */
#define ZMM_BYTES (32 * 64)
#define IMAGE_BYTES (ZMM_BYTES + 7 * 2)

#define NANOSLEEP                                                                                  \
	"mov $35, %%eax\n\t"                                                                       \
	"mov %[ts], %%rdi\n\t"                                                                     \
	"xor %%esi, %%esi\n\t"                                                                     \
	"syscall\n\t"

#define R16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define R32(M)                                                                                            \
	R16(M) M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30) \
	    M(31)
#define XMM_CLOBBERS                                                                                     \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
	    "xmm12", "xmm13", "xmm14", "xmm15"
#define HIGH_CLOBBERS                                                                                    \
	"xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", \
	    "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"

#define LOAD_XMM(r) "movdqu " #r "*64(%[in]), %%xmm" #r "\n\t"
#define STORE_XMM(r) "movdqu %%xmm" #r ", " #r "*64(%[out])\n\t"
#define LOAD_YMM(r) "vmovdqu " #r "*64(%[in]), %%ymm" #r "\n\t"
#define STORE_YMM(r) "vmovdqu %%ymm" #r ", " #r "*64(%[out])\n\t"
#define LOAD_ZMM(r) "vmovdqu64 " #r "*64(%[in]), %%zmm" #r "\n\t"
#define STORE_ZMM(r) "vmovdqu64 %%zmm" #r ", " #r "*64(%[out])\n\t"
#define K7(M) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define LOAD_K(r) "kmovw 2048+2*(" #r "-1)(%[in]), %%k" #r "\n\t"
#define STORE_K(r) "kmovw %%k" #r ", 2048+2*(" #r "-1)(%[out])\n\t"

static void sleep_sse(const unsigned char *in, unsigned char *out, const struct timespec *ts)
{
	__asm__ volatile(R16(LOAD_XMM) NANOSLEEP R16(STORE_XMM)
			 :
			 : [in] "r"(in), [out] "r"(out), [ts] "r"(ts)
			 : "rax", "rcx", "rdi", "rsi", "r11", "memory", XMM_CLOBBERS);
}

__attribute__((target("avx"))) static void sleep_avx(const unsigned char *in, unsigned char *out,
						      const struct timespec *ts)
{
	__asm__ volatile(R16(LOAD_YMM) NANOSLEEP R16(STORE_YMM) "vzeroupper\n\t"
			 :
			 : [in] "r"(in), [out] "r"(out), [ts] "r"(ts)
			 : "rax", "rcx", "rdi", "rsi", "r11", "memory", XMM_CLOBBERS);
}

__attribute__((target("avx512f"))) static void sleep_avx512(const unsigned char *in, unsigned char *out,
							     const struct timespec *ts)
{
	__asm__ volatile(R32(LOAD_ZMM) K7(LOAD_K) NANOSLEEP R32(STORE_ZMM) K7(STORE_K) "vzeroupper\n\t"
			 :
			 : [in] "r"(in), [out] "r"(out), [ts] "r"(ts)
			 : "rax", "rcx", "rdi", "rsi", "r11", "memory", XMM_CLOBBERS, HIGH_CLOBBERS, "k1", "k2",
			   "k3", "k4", "k5", "k6", "k7");
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 200;
	setvbuf(stdout, NULL, _IOLBF, 0);
	__builtin_cpu_init();
	int avx512 = __builtin_cpu_supports("avx512f"), avx = __builtin_cpu_supports("avx");
	/* The bytes of the image that the registers in use cover. */
	size_t width = avx512 ? 64 : avx ? 32 : 16;

	struct quotients nearest = quotients();
	set_round(FE_UPWARD);
	struct quotients upward = quotients();
	if (memcmp(&nearest, &upward, sizeof nearest) == 0) {
		printf("fp 0 CORRUPT: FE_UPWARD does not change 1/3\n");
		return 3;
	}
	unsigned mxcsr = get_mxcsr();
	unsigned short fcw = get_fcw();

	static unsigned char in[IMAGE_BYTES], out[IMAGE_BYTES];
	struct timespec ts = {0, 50 * 1000 * 1000};
	for (int k = 1; k <= n; k++) {
		for (size_t i = 0; i < sizeof in; i++)
			in[i] = (unsigned char)(k * 131 + i * 29 + 0x5a);
		memset(out, 0, sizeof out);
		if (avx512)
			sleep_avx512(in, out, &ts);
		else if (avx)
			sleep_avx(in, out, &ts);
		else
			sleep_sse(in, out, &ts);

		const char *bad = NULL;
		for (int r = 0; r < (avx512 ? 32 : 16) && bad == NULL; r++)
			if (memcmp(in + r * 64, out + r * 64, width) != 0)
				bad = "vector register";
		if (bad == NULL && avx512 && memcmp(in + ZMM_BYTES, out + ZMM_BYTES, 7 * 2) != 0)
			bad = "opmask register";
		if (bad == NULL && get_mxcsr() != mxcsr)
			bad = "MXCSR";
		if (bad == NULL && get_fcw() != fcw)
			bad = "x87 control word";
		struct quotients q = quotients();
		if (bad == NULL && memcmp(&q, &upward, sizeof q) != 0)
			bad = "rounding of 1/3, 1/10, -1/3";
		if (bad != NULL) {
			printf("fp %d CORRUPT: %s\n", k, bad);
			return 3;
		}
		printf("fp %d ok\n", k);
	}
	return 0;
}
