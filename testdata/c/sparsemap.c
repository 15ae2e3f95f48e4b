/*
 * sparsemap: a sparse 4 GiB tmpfs file (/dev/shm) mapped shared whole
 * costs only the pages touched. Mapping it allocates nothing (st_blocks
 * stays 0); its holes read as zero through the mapping and through
 * pread(2), which allocates nothing; a few pages written through the
 * mapping far apart are seen by pread(2), a pwrite(2) into a hole is seen
 * through the mapping, write(2) from an untouched part of the mapping
 * sends zeros and read(2) into one fills it; st_blocks stays far below the
 * file's size (under 8 MiB). A second mapping of part of the file sees the
 * same bytes; ftruncate that cuts the file short makes a touch past the
 * new end raise SIGBUS.
 *
 * sparsemap hold N: the checkpoint workload. The same file, mapped whole;
 * every 100 ms tick K writes a new page far from the others through the
 * mapping, then checks every page written so far through the mapping and
 * with pread(2), a hole after each, and that st_blocks stays under
 * 8 MiB. It prints "tick K ok" (or "tick K CORRUPT what") N times, then
 * "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIZE (4ULL << 30)
#define SMALL (8ULL << 20)

static char path[64];
static sigjmp_buf jb;
static volatile int sigcode;

static void die(const char *what)
{
	printf("%s: %s\n", what, strerror(errno));
	fflush(stdout);
	unlink(path);
	exit(1);
}

static void onbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sigcode = si->si_code;
	siglongjmp(jb, 1);
}

static long long blocks_bytes(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		die("fstat");
	return (long long)st.st_blocks * 512;
}

static int open_sparse(void)
{
	snprintf(path, sizeof(path), "/dev/shm/sparsemap-%d", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		die("open");
	if (ftruncate(fd, (off_t)SIZE) != 0)
		die("ftruncate");
	return fd;
}

/* offset of the page tick k writes: spread over the whole file */
static uint64_t tick_off(int k)
{
	return ((uint64_t)k * 97 * (32ULL << 20) + (uint64_t)k * 4096) % (SIZE - 4096);
}

static int hold(int n)
{
	int fd = open_sparse();
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (int k = 1; k <= n; k++) {
		uint64_t off = tick_off(k);
		memset(p + off, 'a' + k % 26, 4096);
		const char *bad = NULL;
		for (int j = 1; j <= k && !bad; j++) {
			uint64_t o = tick_off(j);
			unsigned char b = 0;
			if (p[o] != 'a' + j % 26 || p[o + 4095] != 'a' + j % 26)
				bad = "mapping";
			else if (pread(fd, &b, 1, (off_t)(o + 100)) != 1 || b != 'a' + j % 26)
				bad = "pread";
			else if (p[o + 4096 + 64 * 1024] != 0)
				bad = "hole";
		}
		if (!bad && blocks_bytes(fd) >= (long long)SMALL)
			bad = "st_blocks";
		if (bad)
			printf("tick %d CORRUPT %s\n", k, bad);
		else
			printf("tick %d ok\n", k);
		fflush(stdout);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	munmap(p, SIZE);
	close(fd);
	unlink(path);
	printf("done\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "hold") == 0)
		return hold(atoi(argv[2]));

	int fd = open_sparse();
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	printf("mmap 4 GiB sparse shared: st_blocks %lld\n", blocks_bytes(fd) / 512);

	/* holes through pread(2): zeros, nothing allocated */
	unsigned char buf[4096];
	memset(buf, 1, sizeof(buf));
	int zero = pread(fd, buf, sizeof(buf), (off_t)(3ULL << 30)) == (ssize_t)sizeof(buf);
	for (size_t i = 0; i < sizeof(buf); i++)
		zero = zero && buf[i] == 0;
	printf("pread of a hole: zeros %s, st_blocks %lld\n", zero ? "yes" : "no", blocks_bytes(fd) / 512);

	/* holes through the mapping: zeros */
	printf("mapping reads zeros at 0, 2 GiB, end: %s\n",
	       p[0] == 0 && p[2ULL << 30] == 0 && p[SIZE - 1] == 0 ? "yes" : "no");

	/* a few pages written far apart */
	static const uint64_t offs[] = {4096, (1ULL << 30) + 123, (3ULL << 30) + 4095, SIZE - 1};
	for (int i = 0; i < 4; i++)
		p[offs[i]] = (unsigned char)('A' + i);
	int seen = 1;
	for (int i = 0; i < 4; i++) {
		unsigned char b = 0;
		seen = seen && pread(fd, &b, 1, (off_t)offs[i]) == 1 && b == 'A' + i;
	}
	printf("writes through the mapping seen by pread: %s\n", seen ? "yes" : "no");

	/* pwrite(2) into a hole, seen through the mapping */
	uint64_t pw = (2ULL << 30) + 77777;
	if (pwrite(fd, "pwritten", 8, (off_t)pw) != 8)
		die("pwrite");
	printf("pwrite into a hole seen through the mapping: %s\n", memcmp(p + pw, "pwritten", 8) == 0 ? "yes" : "no");

	/* the sentry's (the kernel's) own access to untouched pages */
	int pfd[2];
	if (pipe(pfd) != 0)
		die("pipe");
	uint64_t src = (1ULL << 30) + (512ULL << 20);
	memset(buf, 1, 64);
	int wz = write(pfd[1], p + src, 64) == 64 && read(pfd[0], buf, 64) == 64;
	for (int i = 0; i < 64; i++)
		wz = wz && buf[i] == 0;
	printf("write(2) from an untouched page sends zeros: %s\n", wz ? "yes" : "no");
	uint64_t dst = (3ULL << 30) + (512ULL << 20) + 8;
	int rd = write(pfd[1], "into the map", 12) == 12 && read(pfd[0], p + dst, 12) == 12;
	unsigned char back[12] = {0};
	rd = rd && pread(fd, back, 12, (off_t)dst) == 12 && memcmp(back, "into the map", 12) == 0;
	printf("read(2) into an untouched page, seen by pread: %s\n", rd ? "yes" : "no");

	long long used = blocks_bytes(fd);
	printf("st_blocks under 8 MiB after touching: %s, nonzero: %s\n", used < (long long)SMALL ? "yes" : "no",
	       used > 0 ? "yes" : "no");

	/* a second mapping of part of the file */
	unsigned char *q = mmap(NULL, 1 << 20, PROT_READ, MAP_SHARED, fd, (off_t)(1ULL << 30));
	if (q == MAP_FAILED)
		die("mmap part");
	p[(1ULL << 30) + 5000] = 'Z';
	printf("second mapping sees the first: %s %s\n", q[123] == 'B' ? "yes" : "no", q[5000] == 'Z' ? "yes" : "no");
	munmap(q, 1 << 20);

	/* cut short: a touch past the new end raises SIGBUS */
	if (ftruncate(fd, (off_t)(1ULL << 30)) != 0)
		die("ftruncate short");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = onbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	volatile unsigned char *vp = p;
	int bus = 0;
	if (sigsetjmp(jb, 1) == 0) {
		(void)vp[(2ULL << 30) + 4096];
	} else {
		bus = 1;
	}
	printf("after truncate to 1 GiB: SIGBUS past the end %s (BUS_ADRERR %s), below it zero %s, kept %s\n",
	       bus ? "yes" : "no", sigcode == BUS_ADRERR ? "yes" : "no", vp[(1ULL << 30) - 4096] == 0 ? "yes" : "no",
	       vp[4096] == 'A' ? "yes" : "no");

	munmap(p, SIZE);
	close(fd);
	unlink(path);
	return 0;
}
