/*
 * copyuphold DIR N: holds read-only descriptors of DIR/a.txt, b.txt and
 * c.txt, files of the overlay root's lower layer (the host's), while their
 * copies in the upper layer change: b.txt is copied up (appended to)
 * before the first tick, a.txt gets a line every tick, c.txt is copied up
 * at tick N-5. Each tick checks that every held descriptor reads (pread
 * from 0, and read on from its offset) and fstats what a fresh open of
 * the file reads, as Linux's overlayfs gives a description opened before
 * a copy-up, then prints "tick I ok" ("CORRUPT ..." otherwise), and
 * sleeps 100 ms. The checkpoint tests save it mid-run, after the copy-up
 * of a.txt and b.txt and before that of c.txt.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *names[] = {"a.txt", "b.txt", "c.txt"};

static void append(const char *name, const char *line)
{
	int fd = open(name, O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		printf("CORRUPT append %s\n", name);
	close(fd);
}

/* fresh reads name through a new descriptor. */
static ssize_t fresh(const char *name, char *buf, size_t size)
{
	int fd = open(name, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, size, 0);
	close(fd);
	return n;
}

static int check(int tick, int i, int fd, off_t *off)
{
	static char want[8192], got[8192];
	ssize_t wn = fresh(names[i], want, sizeof want);
	ssize_t gn = pread(fd, got, sizeof got, 0);
	struct stat st;
	fstat(fd, &st);
	if (wn < 0 || gn != wn || memcmp(got, want, wn) != 0 || st.st_size != wn) {
		printf("CORRUPT tick %d %s: pread %zd bytes, fresh %zd, fstat size %lld\n", tick, names[i], gn, wn,
		       (long long)st.st_size);
		return 0;
	}
	/* read on from the offset: what was appended since the last tick. */
	ssize_t rn = read(fd, got, sizeof got);
	if (rn != wn - *off || memcmp(got, want + *off, rn) != 0) {
		printf("CORRUPT tick %d %s: read %zd bytes at %lld, want %lld\n", tick, names[i], rn, (long long)*off,
		       (long long)(wn - *off));
		return 0;
	}
	*off = wn;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3 || chdir(argv[1]) != 0) {
		fprintf(stderr, "usage: copyuphold DIR N\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int n = atoi(argv[2]);
	int fds[3];
	off_t offs[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++)
		fds[i] = open(names[i], O_RDONLY);
	append("b.txt", "b copied up\n");
	for (int tick = 1; tick <= n; tick++) {
		char line[32];
		snprintf(line, sizeof line, "a %d\n", tick);
		append("a.txt", line);
		if (tick == n - 5)
			append("c.txt", "c copied up\n");
		int ok = 1;
		for (int i = 0; i < 3; i++)
			ok &= check(tick, i, fds[i], &offs[i]);
		if (ok)
			printf("tick %d ok\n", tick);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	printf("done\n");
	return 0;
}
