// The sandbox's vDSO: the time functions of Linux's x86-64 vDSO, served from
// the parameter page that the sentry maps one page below this image and
// keeps right (kernel/vdso_clock.go writes it and describes its layout).
// Whatever the page cannot answer goes to the real system call, which the
// sentry handles.
//
// Built by ../gen.sh into ../vdso.so; no libc, no relocations, no global state
// other than the parameter page.

typedef unsigned int u32;
typedef unsigned long u64;
typedef long s64;

struct timespec_k {
	s64 tv_sec;
	s64 tv_nsec;
};

struct timeval_k {
	s64 tv_sec;
	s64 tv_usec;
};

// The parameter page (format 1). seq is odd while the sentry writes; a
// reader retries until it reads the same even seq before and after.
struct params {
	u32 seq;
	u32 mode;        // modeSyscall or modeTSC
	u64 tsc_base;    // TSC value at which mono_base held
	s64 mono_base;   // sandbox CLOCK_MONOTONIC at tsc_base, ns
	u64 mult;        // ns per TSC tick, 32.32 fixed point
	s64 rt_offset;   // CLOCK_REALTIME - CLOCK_MONOTONIC, ns
};

enum { modeSyscall = 0, modeTSC = 1 };

enum {
	CLOCK_REALTIME = 0,
	CLOCK_MONOTONIC = 1,
	CLOCK_MONOTONIC_RAW = 4,
	CLOCK_REALTIME_COARSE = 5,
	CLOCK_MONOTONIC_COARSE = 6,
	CLOCK_BOOTTIME = 7,
	CLOCK_TAI = 11,
};

enum {
	SYS_gettimeofday = 96,
	SYS_time = 201,
	SYS_clock_gettime = 228,
	SYS_clock_getres = 229,
};

#define NSEC_PER_SEC 1000000000L
// The resolution the sentry reports for the coarse clocks (sys_time.go).
#define COARSE_RES_NS 4000000L

// vvar_page is defined by vdso.lds one page below the image.
extern volatile struct params vvar_page __attribute__((visibility("hidden")));

static inline long syscall2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
}

#define barrier() __asm__ volatile("" ::: "memory")

// rdtsc_ordered reads the TSC after every earlier load has completed, as
// the sentry does (tsc_amd64.s).
static inline u64 rdtsc_ordered(void)
{
	u32 lo, hi;
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return ((u64)hi << 32) | lo;
}

// clock_ns reads the sandbox's CLOCK_MONOTONIC (realtime: adds rt_offset)
// into *ns. It returns 0 if the page cannot serve it (the caller then makes
// the system call).
static inline int clock_ns(int realtime, s64 *ns)
{
	volatile struct params *p = &vvar_page;
	u32 seq;
	s64 v = 0;
	do {
		seq = p->seq;
		barrier();
		if (seq & 1) {
			__asm__ volatile("pause");
			continue;
		}
		if (p->mode != modeTSC)
			return 0;
		u64 base = p->tsc_base;
		s64 mono = p->mono_base;
		u64 mult = p->mult;
		s64 off = realtime ? p->rt_offset : 0;
		u64 delta = rdtsc_ordered() - base;
		// A TSC below the base (a reader that started before an
		// update and read the TSC late) counts as the base; the seq
		// check makes it retry anyway.
		if ((s64)delta < 0)
			delta = 0;
		v = mono + (s64)(((unsigned __int128)delta * mult) >> 32) + off;
		barrier();
	} while ((seq & 1) || p->seq != seq);
	*ns = v;
	return 1;
}

// clock_kind says how the page serves clock c: -1 not at all, 0 as
// CLOCK_MONOTONIC, 1 as CLOCK_REALTIME (the sentry's clockNow does the same
// grouping).
static inline int clock_kind(long c)
{
	switch (c) {
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_BOOTTIME:
		return 0;
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_TAI:
		return 1;
	}
	return -1;
}

int __vdso_clock_gettime(long c, struct timespec_k *ts)
{
	int kind = clock_kind(c);
	s64 ns;
	if (kind < 0 || !clock_ns(kind, &ns))
		return syscall2(SYS_clock_gettime, c, (long)ts);
	ts->tv_sec = ns / NSEC_PER_SEC;
	ts->tv_nsec = ns % NSEC_PER_SEC;
	return 0;
}

int __vdso_gettimeofday(struct timeval_k *tv, void *tz)
{
	s64 ns;
	if (!clock_ns(1, &ns))
		return syscall2(SYS_gettimeofday, (long)tv, (long)tz);
	if (tv) {
		tv->tv_sec = ns / NSEC_PER_SEC;
		tv->tv_usec = ns % NSEC_PER_SEC / 1000;
	}
	if (tz) {
		// struct timezone: UTC, as the sentry reports.
		((volatile u32 *)tz)[0] = 0;
		((volatile u32 *)tz)[1] = 0;
	}
	return 0;
}

s64 __vdso_time(s64 *t)
{
	s64 ns;
	if (!clock_ns(1, &ns))
		return syscall2(SYS_time, (long)t, 0);
	s64 s = ns / NSEC_PER_SEC;
	if (t)
		*t = s;
	return s;
}

int __vdso_clock_getres(long c, struct timespec_k *res)
{
	int kind = clock_kind(c);
	if (kind < 0)
		return syscall2(SYS_clock_getres, c, (long)res);
	if (res) {
		res->tv_sec = 0;
		res->tv_nsec = (c == CLOCK_REALTIME_COARSE || c == CLOCK_MONOTONIC_COARSE) ? COARSE_RES_NS : 1;
	}
	return 0;
}

// The sentry reports CPU 0 and node 0 to getcpu; so does its vDSO.
int __vdso_getcpu(u32 *cpu, u32 *node, void *cache)
{
	(void)cache;
	if (cpu)
		*cpu = 0;
	if (node)
		*node = 0;
	return 0;
}

int clock_gettime(long, struct timespec_k *) __attribute__((weak, alias("__vdso_clock_gettime")));
int gettimeofday(struct timeval_k *, void *) __attribute__((weak, alias("__vdso_gettimeofday")));
s64 time(s64 *) __attribute__((weak, alias("__vdso_time")));
int clock_getres(long, struct timespec_k *) __attribute__((weak, alias("__vdso_clock_getres")));
int getcpu(u32 *, u32 *, void *) __attribute__((weak, alias("__vdso_getcpu")));
