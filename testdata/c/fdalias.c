/*
 * fdalias FILE: opens the magic links that name the process's own
 * descriptors (/dev/stdin, /dev/fd/N, /proc/self/fd/N, /dev/stdout) and
 * checks that they behave as on Linux: stdin (a pipe) read through
 * /dev/fd/0, a line written through /proc/self/fd/1, a regular file opened
 * again with its own offset, a pipe's write end opened for reading gives the
 * read end, O_NOFOLLOW on a magic link is ELOOP, a closed descriptor ENOENT.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv)
{
	char path[64], buf[256];
	if (argc != 2) {
		fprintf(stderr, "usage: fdalias FILE\n");
		return 2;
	}

	/* stdin through /dev/fd/0: the same pipe, so the data is there. */
	int in = open("/dev/fd/0", O_RDONLY);
	ssize_t n = in < 0 ? -1 : read(in, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("/dev/fd/0: open ok %s, new fd %s, read %zd: %s", yesno(in >= 0), yesno(in > 2), n, buf);
	if (in >= 0)
		close(in);

	/* stdout through /proc/self/fd/1 and /dev/stdout. */
	fflush(stdout);
	int out = open("/proc/self/fd/1", O_WRONLY);
	const char *line = "written through /proc/self/fd/1\n";
	n = out < 0 ? -1 : write(out, line, strlen(line));
	printf("/proc/self/fd/1: open ok %s, wrote all %s\n", yesno(out >= 0), yesno(n == (ssize_t)strlen(line)));
	fflush(stdout);
	if (out >= 0)
		close(out);
	out = open("/dev/stdout", O_WRONLY | O_APPEND);
	n = out < 0 ? -1 : write(out, "written through /dev/stdout\n", 28);
	printf("/dev/stdout: wrote all %s\n", yesno(n == 28));
	if (out >= 0)
		close(out);

	/* A regular file opened again gets its own offset. */
	int f = open(argv[1], O_RDONLY);
	char a[4] = {0}, b[4] = {0};
	n = read(f, a, 3);
	snprintf(path, sizeof path, "/proc/self/fd/%d", f);
	int g = open(path, O_RDONLY);
	ssize_t m = g < 0 ? -1 : read(g, b, 3);
	printf("reopened file: read %zd and %zd, second from offset 0: %s, first offset still 3: %s\n", n, m,
	       yesno(m == 3 && memcmp(b, "abc", 3) == 0), yesno(lseek(f, 0, SEEK_CUR) == 3));
	snprintf(path, sizeof path, "/dev/fd/%d", f);
	int s = open(path, O_RDONLY | O_NOFOLLOW);
	printf("O_NOFOLLOW: fd<0 %s, ELOOP %s\n", yesno(s < 0), yesno(s < 0 && errno == ELOOP));
	if (g >= 0)
		close(g);
	close(f);
	s = open(path, O_RDONLY);
	printf("closed descriptor: fd<0 %s, ENOENT %s\n", yesno(s < 0), yesno(s < 0 && errno == ENOENT));

	/* A pipe's write end opened for reading is a reader of the same pipe. */
	int p[2];
	if (pipe(p) != 0) {
		perror("pipe");
		return 1;
	}
	snprintf(path, sizeof path, "/dev/fd/%d", p[1]);
	int r = open(path, O_RDONLY);
	n = write(p[1], "xyz", 3);
	memset(buf, 0, sizeof buf);
	m = r < 0 ? -1 : read(r, buf, sizeof buf - 1);
	printf("pipe write end reopened for reading: read %zd \"%s\"\n", m, buf);
	close(p[0]);
	close(r);
	/* With no reader left, writing gets EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	n = write(p[1], "x", 1);
	printf("no reader left: write fails %s, EPIPE %s\n", yesno(n < 0), yesno(n < 0 && errno == EPIPE));
	close(p[1]);
	return 0;
}
