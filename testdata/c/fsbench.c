/*
 * fsbench io DIR MIB: writes MIB MiB to DIR/data in 1 MiB writes, reads it
 * back and checks it, removes it; prints "io MIB ok".
 * fsbench files DIR N: creates N files of 100 bytes in DIR, stats each,
 * removes each; prints "files N ok".
 * e2e's BenchmarkOverlay times it natively on a tmpfs and under snap in
 * the overlay root (N or MIB 0 gives the start-up cost to subtract).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[1 << 20];

static int io(const char *dir, long mib) {
	char p[4096];
	snprintf(p, sizeof p, "%s/data", dir);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 1;
	for (long i = 0; i < mib; i++) {
		memset(buf, (int)(i & 0xff), sizeof buf);
		if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
			return 1;
	}
	for (long i = 0; i < mib; i++) {
		if (pread(fd, buf, sizeof buf, i * (long)sizeof buf) != (ssize_t)sizeof buf)
			return 1;
		if (buf[0] != (char)(i & 0xff) || buf[sizeof buf - 1] != (char)(i & 0xff))
			return 1;
	}
	close(fd);
	unlink(p);
	printf("io %ld ok\n", mib);
	return 0;
}

static int files(const char *dir, long n) {
	char p[4096];
	struct stat st;
	for (long i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/f%ld", dir, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || write(fd, buf, 100) != 100)
			return 1;
		close(fd);
	}
	for (long i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/f%ld", dir, i);
		if (stat(p, &st) < 0 || st.st_size != 100)
			return 1;
	}
	for (long i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/f%ld", dir, i);
		if (unlink(p) < 0)
			return 1;
	}
	printf("files %ld ok\n", n);
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: fsbench io|files DIR N\n");
		return 2;
	}
	long n = atol(argv[3]);
	if (!strcmp(argv[1], "io"))
		return io(argv[2], n);
	return files(argv[2], n);
}
