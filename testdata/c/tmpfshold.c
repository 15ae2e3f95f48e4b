/*
 * tmpfshold DIR N: fills DIR (a tmpfs under snap) with files, then every
 * 100 ms checks every byte of them and prints "tick K ok" (or "tick K
 * CORRUPT what"), N times, then "done". A checkpoint test saves and
 * restores it in the middle.
 *
 * The files: big (8 MiB of a pseudo-random stream), small, a directory
 * tree with a symlink and a hard link, a sparse file (64 MiB with data at
 * both ends), an unlinked file of 4 MiB kept open, an O_TMPFILE file never
 * named, and log, which gets one line a tick (so the files change between
 * saves).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

#define BIG (8 << 20)
#define UNLINKED (4 << 20)
#define SPARSE (64 << 20)

static char buf[1 << 20];

/* fill writes n bytes of the stream seeded with seed to fd at off. */
static void fill(int fd, uint64_t seed, long n, off_t off) {
	uint64_t x = seed;
	for (long done = 0; done < n;) {
		long m = n - done < (long)sizeof buf ? n - done : (long)sizeof buf;
		for (long i = 0; i < m; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = (char)x;
		}
		if (pwrite(fd, buf, m, off + done) != m) {
			printf("setup CORRUPT pwrite: %s\n", strerror(errno));
			exit(1);
		}
		done += m;
	}
}

/* same reports whether fd holds n bytes of the stream seeded with seed at off. */
static int same(int fd, uint64_t seed, long n, off_t off) {
	uint64_t x = seed;
	for (long done = 0; done < n;) {
		long m = n - done < (long)sizeof buf ? n - done : (long)sizeof buf;
		if (pread(fd, buf, m, off + done) != m)
			return 0;
		for (long i = 0; i < m; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			if (buf[i] != (char)x)
				return 0;
		}
		done += m;
	}
	return 1;
}

static int openat_or_die(int dir, const char *name, int flags) {
	int fd = openat(dir, name, flags, 0644);
	if (fd < 0) {
		printf("setup CORRUPT open %s: %s\n", name, strerror(errno));
		exit(1);
	}
	return fd;
}

static const char *check(int dir, int unlinked, int tmp, int ticks) {
	int fd = openat(dir, "big", O_RDONLY);
	int ok = fd >= 0 && same(fd, 1, BIG, 0);
	close(fd);
	if (!ok)
		return "big";
	fd = openat(dir, "tree/hard", O_RDONLY);
	ok = fd >= 0 && same(fd, 2, 5000, 0);
	close(fd);
	if (!ok)
		return "tree/hard";
	char link[64];
	ssize_t n = readlinkat(dir, "tree/sub/link", link, sizeof link);
	if (n != 9 || memcmp(link, "../../big", 9))
		return "tree/sub/link";
	fd = openat(dir, "tree/sub/link", O_RDONLY);
	ok = fd >= 0 && same(fd, 1, 4096, 0);
	close(fd);
	if (!ok)
		return "read through tree/sub/link";
	struct stat st;
	if (fstatat(dir, "small", &st, 0) < 0 || st.st_nlink != 2 || st.st_size != 5000)
		return "small: nlink or size";
	fd = openat(dir, "sparse", O_RDONLY);
	ok = fd >= 0 && fstat(fd, &st) == 0 && st.st_size == SPARSE && same(fd, 3, 4096, 0) &&
	     same(fd, 4, 4096, SPARSE - 4096);
	if (ok && pread(fd, buf, 4096, SPARSE / 2) == 4096)
		for (int i = 0; i < 4096; i++)
			ok = ok && buf[i] == 0;
	close(fd);
	if (!ok)
		return "sparse";
	if (fstat(unlinked, &st) < 0 || st.st_nlink != 0 || !same(unlinked, 5, UNLINKED, 0))
		return "unlinked";
	if (faccessat(dir, "unlinked", F_OK, 0) == 0)
		return "unlinked has a name again";
	if (!same(tmp, 6, 12345, 0))
		return "tmpfile";
	fd = openat(dir, "log", O_RDONLY);
	n = fd < 0 ? -1 : pread(fd, buf, sizeof buf, 0);
	close(fd);
	if (n < 0)
		return "log";
	buf[n] = 0;
	char want[32];
	char *p = buf;
	for (int k = 1; k < ticks; k++) {
		int m = snprintf(want, sizeof want, "line %d\n", k);
		if (strncmp(p, want, m))
			return "log contents";
		p += m;
	}
	return *p ? "log has more" : NULL;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: tmpfshold DIR N\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	mkdir(argv[1], 0755);
	int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (dir < 0) {
		printf("setup CORRUPT %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int fd = openat_or_die(dir, "big", O_WRONLY | O_CREAT | O_TRUNC);
	fill(fd, 1, BIG, 0);
	close(fd);
	fd = openat_or_die(dir, "small", O_WRONLY | O_CREAT | O_TRUNC);
	fill(fd, 2, 5000, 0);
	close(fd);
	mkdirat(dir, "tree", 0755);
	mkdirat(dir, "tree/sub", 0700);
	linkat(dir, "small", dir, "tree/hard", 0);
	symlinkat("../../big", dir, "tree/sub/link");
	fd = openat_or_die(dir, "sparse", O_WRONLY | O_CREAT | O_TRUNC);
	ftruncate(fd, SPARSE);
	fill(fd, 3, 4096, 0);
	fill(fd, 4, 4096, SPARSE - 4096);
	close(fd);
	int unlinked = openat_or_die(dir, "unlinked", O_RDWR | O_CREAT | O_TRUNC);
	fill(unlinked, 5, UNLINKED, 0);
	unlinkat(dir, "unlinked", 0);
	int tmp = openat_or_die(dir, ".", O_TMPFILE | O_RDWR);
	fill(tmp, 6, 12345, 0);
	close(openat_or_die(dir, "log", O_WRONLY | O_CREAT | O_TRUNC));
	int n = atoi(argv[2]);
	for (int k = 1; k <= n; k++) {
		const char *bad = check(dir, unlinked, tmp, k);
		if (bad)
			printf("tick %d CORRUPT %s\n", k, bad);
		else
			printf("tick %d ok\n", k);
		fd = openat_or_die(dir, "log", O_WRONLY | O_CREAT | O_APPEND);
		dprintf(fd, "line %d\n", k);
		close(fd);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	printf("done\n");
	return 0;
}
