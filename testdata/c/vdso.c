/*
 * vdso: checks the vDSO as a program uses it. AT_SYSINFO_EHDR points at an
 * ELF image that /proc/self/maps names [vdso] (r-xp, a [vvar] r--p below
 * it); the image defines __vdso_clock_gettime, __vdso_gettimeofday,
 * __vdso_time, __vdso_getcpu and __vdso_clock_getres with version
 * LINUX_2.6 (looked up here through its dynamic section, as musl does),
 * and calling each directly agrees with the raw system call: for
 * CLOCK_MONOTONIC, CLOCK_REALTIME, gettimeofday and time, raw before <=
 * vDSO <= raw after, many times, and CLOCK_MONOTONIC never goes back. The
 * libc wrappers (clock_gettime, gettimeofday, time, sched_getcpu,
 * clock_getres) agree the same way. Clocks the vDSO does not serve (CPU
 * time, an invalid id) still work through it. A forked child finds the
 * vDSO at the same address and it works there; a program started by
 * execve gets one too. Only ordering is checked, never durations.
 *
 * Run with an argument N, it instead reads CLOCK_MONOTONIC through libc N
 * times and prints how long that took in ns per call (the benchmark).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

typedef int (*cgt_fn)(clockid_t, struct timespec *);
typedef int (*gtod_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);
typedef int (*getcpu_fn)(unsigned *, unsigned *, void *);

static const unsigned char *vbase;
static const Elf64_Sym *vsyms;
static const char *vstrs;
static const uint16_t *vversym;
static const Elf64_Verdef *vverdef;
static size_t vnsyms;

/* vdso_init finds the dynamic symbol table of the image at ehdr. */
static int vdso_init(const Elf64_Ehdr *eh)
{
	const Elf64_Phdr *ph = (const void *)((const char *)eh + eh->e_phoff);
	const Elf64_Dyn *dyn = 0;
	long bias = -1;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && bias < 0)
			bias = (long)eh + ph[i].p_offset - ph[i].p_vaddr;
		else if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const void *)((const char *)eh + ph[i].p_offset);
	}
	if (!dyn || bias < 0)
		return 0;
	vbase = (const unsigned char *)bias;
	const uint32_t *hash = 0;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		const void *p = vbase + dyn->d_un.d_ptr;
		switch (dyn->d_tag) {
		case DT_SYMTAB: vsyms = p; break;
		case DT_STRTAB: vstrs = p; break;
		case DT_HASH: hash = p; break;
		case DT_VERSYM: vversym = p; break;
		case DT_VERDEF: vverdef = p; break;
		}
	}
	if (!vsyms || !vstrs || !hash)
		return 0;
	vnsyms = hash[1];
	return 1;
}

/* version_of returns the name of version index ndx. */
static const char *version_of(uint16_t ndx)
{
	for (const Elf64_Verdef *d = vverdef; d; d = d->vd_next ? (const void *)((const char *)d + d->vd_next) : 0) {
		if ((d->vd_ndx & 0x7fff) == (ndx & 0x7fff)) {
			const Elf64_Verdaux *a = (const void *)((const char *)d + d->vd_aux);
			return vstrs + a->vda_name;
		}
	}
	return "";
}

static void *vdso_sym(const char *name)
{
	for (size_t i = 0; i < vnsyms; i++) {
		const Elf64_Sym *s = &vsyms[i];
		if (s->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s->st_info) != STT_FUNC)
			continue;
		if (strcmp(vstrs + s->st_name, name) != 0)
			continue;
		if (!vversym || !vverdef || strcmp(version_of(vversym[i]), "LINUX_2.6") != 0)
			continue;
		return (void *)(vbase + s->st_value);
	}
	return 0;
}

static int64_t ns(struct timespec ts) { return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec; }

static int64_t raw_clock(clockid_t c)
{
	struct timespec ts;
	if (syscall(SYS_clock_gettime, c, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return ns(ts);
}

static int64_t raw_gtod_us(void)
{
	struct timeval tv;
	syscall(SYS_gettimeofday, &tv, 0);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

enum { rounds = 2000 };

/* check_clock compares clock c read through cgt with the raw syscall. */
static void check_clock(const char *what, cgt_fn cgt, clockid_t c, const char *cname)
{
	int ordered = 1, monotonic = 1, ok = 1;
	int64_t last = 0;
	for (int i = 0; i < rounds; i++) {
		struct timespec ts;
		int64_t before = raw_clock(c);
		ok &= cgt(c, &ts) == 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000;
		int64_t after = raw_clock(c);
		int64_t v = ns(ts);
		ordered &= before <= v && v <= after;
		monotonic &= v >= last;
		last = v;
	}
	printf("%s %s: returns 0: %s, raw before <= it <= raw after: %s", what, cname, yesno(ok), yesno(ordered));
	if (c == CLOCK_MONOTONIC)
		printf(", never back: %s", yesno(monotonic));
	printf("\n");
}

static void check_gtod(const char *what, gtod_fn gtod)
{
	int ordered = 1, ok = 1, tzok = 1;
	for (int i = 0; i < rounds; i++) {
		struct timeval tv;
		struct timezone tz = {-1, -1};
		int64_t before = raw_gtod_us();
		ok &= gtod(&tv, &tz) == 0 && tv.tv_usec >= 0 && tv.tv_usec < 1000000;
		int64_t after = raw_gtod_us();
		int64_t v = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
		ordered &= before <= v && v <= after;
		tzok &= tz.tz_minuteswest != -1 && tz.tz_dsttime != -1;
	}
	printf("%s gettimeofday: returns 0: %s, raw before <= it <= raw after: %s, timezone written: %s\n", what,
	       yesno(ok), yesno(ordered), yesno(tzok));
}

static void check_time(const char *what, time_fn tf)
{
	int ordered = 1, same = 1;
	for (int i = 0; i < rounds; i++) {
		time_t t2 = 0;
		time_t before = syscall(SYS_time, 0);
		time_t t = tf(&t2);
		time_t after = syscall(SYS_time, 0);
		/* SYS_time reads the kernel's coarse clock, which lags the fine
		 * one by up to a tick: musl's time() reads the fine one, so
		 * across a second's boundary it can be one second ahead. */
		ordered &= before <= t && t <= after + 1;
		same &= t == t2;
	}
	printf("%s time: raw before <= it <= raw after: %s, stored the same: %s\n", what, yesno(ordered), yesno(same));
}

static int bench(long n)
{
	struct timespec a, b, ts;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f ns per clock_gettime\n", n > 0 ? (double)(ns(b) - ns(a)) / n : 0.0);
	printf("read the clock %ld times\n", n);
	return 0;
}

static void check_maps(unsigned long ehdr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) {
		perror("/proc/self/maps");
		exit(1);
	}
	char line[512];
	int vdso_at = 0, vdso_perms = 0, vvar_below = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long start, end;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3)
			continue;
		if (strstr(line, "[vdso]")) {
			vdso_at = start == ehdr;
			vdso_perms = strcmp(perms, "r-xp") == 0;
		}
		if (strstr(line, "[vvar]"))
			vvar_below = end <= ehdr && strcmp(perms, "r--p") == 0;
	}
	fclose(f);
	printf("maps: [vdso] starts at AT_SYSINFO_EHDR: %s, r-xp: %s; [vvar] r--p below it: %s\n", yesno(vdso_at),
	       yesno(vdso_perms), yesno(vvar_below));
}

/* ordered_reads reads CLOCK_MONOTONIC through cgt between raw ones. */
static int ordered_reads(cgt_fn cgt, int n)
{
	int ok = 1;
	for (int i = 0; i < n; i++) {
		struct timespec ts;
		int64_t before = raw_clock(CLOCK_MONOTONIC);
		ok &= cgt(CLOCK_MONOTONIC, &ts) == 0;
		int64_t after = raw_clock(CLOCK_MONOTONIC);
		ok &= before <= ns(ts) && ns(ts) <= after;
	}
	return ok;
}

static int wait_child(pid_t pid)
{
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
		printf("after execve: AT_SYSINFO_EHDR present: %s, libc clock ordered: %s\n",
		       yesno(getauxval(AT_SYSINFO_EHDR) != 0), yesno(ordered_reads(clock_gettime, rounds)));
		return 0;
	}
	if (argc > 1)
		return bench(atol(argv[1]));

	unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
	printf("AT_SYSINFO_EHDR present: %s\n", yesno(ehdr != 0));
	if (!ehdr)
		return 1;
	const Elf64_Ehdr *eh = (const void *)ehdr;
	printf("ELF shared object: %s\n", yesno(memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_type == ET_DYN));
	check_maps(ehdr);
	if (!vdso_init(eh)) {
		printf("no dynamic symbol table\n");
		return 1;
	}
	cgt_fn cgt = vdso_sym("__vdso_clock_gettime");
	gtod_fn gtod = vdso_sym("__vdso_gettimeofday");
	time_fn tf = vdso_sym("__vdso_time");
	getcpu_fn gc = vdso_sym("__vdso_getcpu");
	cgt_fn getres = vdso_sym("__vdso_clock_getres");
	printf("symbols@LINUX_2.6: clock_gettime %s, gettimeofday %s, time %s, getcpu %s, clock_getres %s\n",
	       yesno(cgt != 0), yesno(gtod != 0), yesno(tf != 0), yesno(gc != 0), yesno(getres != 0));
	if (!cgt || !gtod || !tf || !gc || !getres)
		return 1;
	fflush(stdout);

	check_clock("vdso", cgt, CLOCK_MONOTONIC, "CLOCK_MONOTONIC");
	check_clock("vdso", cgt, CLOCK_REALTIME, "CLOCK_REALTIME");
	check_clock("vdso", cgt, CLOCK_BOOTTIME, "CLOCK_BOOTTIME");
	check_gtod("vdso", gtod);
	check_time("vdso", tf);
	check_clock("libc", clock_gettime, CLOCK_MONOTONIC, "CLOCK_MONOTONIC");
	check_clock("libc", clock_gettime, CLOCK_REALTIME, "CLOCK_REALTIME");
	check_gtod("libc", (gtod_fn)gettimeofday);
	check_time("libc", time);

	unsigned cpu = ~0u, node = ~0u;
	int r = gc(&cpu, &node, 0);
	printf("vdso getcpu: returns 0: %s, cpu and node written: %s\n", yesno(r == 0), yesno(cpu != ~0u && node != ~0u));
	printf("libc sched_getcpu >= 0: %s\n", yesno(sched_getcpu() >= 0));

	struct timespec res = {-1, -1}, rawres = {-2, -2};
	r = getres(CLOCK_MONOTONIC, &res);
	syscall(SYS_clock_getres, CLOCK_MONOTONIC, &rawres);
	printf("vdso clock_getres CLOCK_MONOTONIC: returns 0: %s, same as raw: %s\n", yesno(r == 0),
	       yesno(res.tv_sec == rawres.tv_sec && res.tv_nsec == rawres.tv_nsec));
	r = clock_getres(CLOCK_REALTIME, &res);
	syscall(SYS_clock_getres, CLOCK_REALTIME, &rawres);
	printf("libc clock_getres CLOCK_REALTIME: returns 0: %s, same as raw: %s\n", yesno(r == 0),
	       yesno(res.tv_sec == rawres.tv_sec && res.tv_nsec == rawres.tv_nsec));

	/* Served by the system call behind the vDSO. */
	struct timespec cpu1, cpu2;
	int r1 = cgt(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
	for (volatile int i = 0; i < 1000000; i++)
		;
	int r2 = cgt(CLOCK_PROCESS_CPUTIME_ID, &cpu2);
	printf("vdso CLOCK_PROCESS_CPUTIME_ID: returns 0: %s, not back: %s\n", yesno(r1 == 0 && r2 == 0),
	       yesno(ns(cpu2) >= ns(cpu1)));
	struct timespec bad;
	printf("vdso clock 12345: %d\n", cgt(12345, &bad));
	printf("libc clock 12345: %d\n", clock_gettime(12345, &bad) == -1 ? -1 : 0);
	fflush(stdout);

	pid_t pid = fork();
	if (pid == 0)
		_exit(getauxval(AT_SYSINFO_EHDR) == ehdr && ordered_reads(cgt, rounds) ? 0 : 1);
	printf("fork: the child's vDSO at the same address works: %s\n", yesno(wait_child(pid) == 0));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execl(argv[0], argv[0], "exec-child", (char *)0);
		_exit(127);
	}
	printf("execve child status: %d\n", wait_child(pid));
	return 0;
}
