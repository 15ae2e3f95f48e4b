/*
 * fdalias FILE: opens the magic links that name the process's own
 * descriptors (/dev/stdin, /dev/fd/N, /proc/self/fd/N, /dev/stdout) and
 * checks that they behave as on Linux: stdin (a pipe) read through
 * /dev/fd/0, a line written through /proc/self/fd/1, a regular file opened
 * again with its own offset, a pipe's write end opened for reading gives the
 * read end, O_NOFOLLOW on a magic link is ELOOP, a closed descriptor ENOENT;
 * the same file through /proc/<pid>/fd/N, /proc/<pid>/task/<tid>/fd/N,
 * /proc/thread-self/fd/N and /proc/self/task/<tid>/fd/N, and from a child
 * through its parent's /proc/<ppid>/fd/N; then the program runs itself again
 * through /proc/self/exe.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv)
{
	char path[64], buf[256];
	if (argc == 3 && strcmp(argv[2], "again") == 0) {
		printf("run again through /proc/self/exe\n");
		return 0;
	}
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

	/* The file through the other /proc paths of this process's descriptors. */
	f = open(argv[1], O_RDONLY);
	int pid = getpid(), tid = (int)syscall(SYS_gettid);
	char paths[4][96];
	snprintf(paths[0], sizeof paths[0], "/proc/%d/fd/%d", pid, f);
	snprintf(paths[1], sizeof paths[1], "/proc/%d/task/%d/fd/%d", pid, tid, f);
	snprintf(paths[2], sizeof paths[2], "/proc/thread-self/fd/%d", f);
	snprintf(paths[3], sizeof paths[3], "/proc/self/task/%d/fd/%d", tid, f);
	const char *names[] = {"/proc/<pid>/fd/N", "/proc/<pid>/task/<tid>/fd/N", "/proc/thread-self/fd/N",
			       "/proc/self/task/<tid>/fd/N"};
	for (int i = 0; i < 4; i++) {
		memset(b, 0, sizeof b);
		g = open(paths[i], O_RDONLY);
		m = g < 0 ? -1 : read(g, b, 3);
		printf("%s: open ok %s, read \"%s\"%s%s\n", names[i], yesno(g >= 0), b, g < 0 ? ", " : "",
		       g < 0 ? strerror(errno) : "");
		if (g >= 0)
			close(g);
	}
	snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, 1000);
	g = open(path, O_RDONLY);
	printf("/proc/<pid>/fd/<not open>: fd<0 %s, ENOENT %s\n", yesno(g < 0), yesno(g < 0 && errno == ENOENT));
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getppid(), f);
		memset(b, 0, sizeof b);
		g = open(path, O_RDONLY);
		m = g < 0 ? -1 : read(g, b, 3);
		printf("child through /proc/<ppid>/fd/N: open ok %s, read \"%s\"\n", yesno(g >= 0), b);
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	close(f);

	char *again[] = {argv[0], argv[1], "again", NULL};
	execv("/proc/self/exe", again);
	printf("execv /proc/self/exe: %s\n", strerror(errno));
	return 1;
}
