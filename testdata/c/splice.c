/*
 * splice: splice between pipes and between a pipe and a memfd (with and
 * without offsets, a short splice into a full pipe, /dev/null), tee,
 * vmsplice both ways, copy_file_range and sendfile between memfds, and
 * Linux's errors for each (EINVAL, ESPIPE, EBADF, EAGAIN, EPIPE).
 *
 * Its last part is where the zdtm mode saves it: "splicing what a child
 * reads from stdin" is printed, then the parent waits in splice on an
 * empty pipe that a child fills with the line it reads from stdin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static int memfd(const char *name, const char *data)
{
	int fd = syscall(SYS_memfd_create, name, 0);
	if (data)
		write(fd, data, strlen(data));
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static void drain(int fd, char *buf, size_t n)
{
	memset(buf, 0, n);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	ssize_t got = read(fd, buf, n - 1);
	if (got < 0)
		buf[0] = 0;
	fcntl(fd, F_SETFL, fl);
}

static void splices(void)
{
	int p[2], q[2];
	char buf[256];
	pipe(p);
	pipe(q);
	int m = memfd("m", NULL);
	write(p[1], "hello splice world", 18);
	loff_t off = 5;
	long n = splice(p[0], NULL, m, &off, 100, 0);
	memset(buf, 0, sizeof buf);
	pread(m, buf, sizeof buf - 1, 5);
	printf("pipe -> memfd at 5: %ld, offset now %lld, position %lld, memfd from 5 \"%s\"\n", n, (long long)off,
	       (long long)lseek(m, 0, SEEK_CUR), buf);
	off = 5;
	n = splice(m, &off, p[1], NULL, 5, 0);
	drain(p[0], buf, sizeof buf);
	printf("memfd at 5 -> pipe: %ld, offset now %lld, pipe \"%s\"\n", n, (long long)off, buf);
	lseek(m, 5, SEEK_SET);
	n = splice(m, NULL, p[1], NULL, 6, SPLICE_F_MOVE | SPLICE_F_MORE);
	drain(p[0], buf, sizeof buf);
	printf("memfd at its position -> pipe: %ld, position now %lld, pipe \"%s\"\n", n, (long long)lseek(m, 0, SEEK_CUR), buf);
	write(p[1], "abcdef", 6);
	n = splice(p[0], NULL, q[1], NULL, 4, 0);
	drain(q[0], buf, sizeof buf);
	printf("pipe -> pipe, 4 of 6: %ld, out \"%s\"", n, buf);
	drain(p[0], buf, sizeof buf);
	printf(", left in \"%s\"\n", buf);
	write(p[1], "to nowhere", 10);
	int null = open("/dev/null", O_WRONLY);
	printf("pipe -> /dev/null: %ld\n", (long)splice(p[0], NULL, null, NULL, 100, 0));
	close(null);

	char *big = malloc(200000);
	memset(big, 'b', 200000);
	int mb = memfd("big", NULL);
	write(mb, big, 200000);
	fcntl(p[1], F_SETPIPE_SZ, 65536);
	off = 0;
	printf("200000 bytes into a 65536-byte pipe: %ld\n", (long)splice(mb, &off, p[1], NULL, 200000, 0));
	printf("into the full pipe, SPLICE_F_NONBLOCK: %s\n", res(splice(mb, &off, p[1], NULL, 10, SPLICE_F_NONBLOCK)));
	off = 0;
	printf("the full pipe -> memfd: %ld\n", (long)splice(p[0], NULL, mb, &off, 200000, 0));
	free(big);
	close(mb);

	printf("splice from an empty pipe, SPLICE_F_NONBLOCK: %s\n", res(splice(p[0], NULL, q[1], NULL, 10, SPLICE_F_NONBLOCK)));
	printf("length 0: %ld\n", (long)splice(p[0], NULL, q[1], NULL, 0, 0));
	printf("memfd -> memfd: %s\n", res(splice(m, NULL, m, NULL, 10, 0)));
	off = 0;
	printf("an offset for a pipe: %s\n", res(splice(p[0], &off, m, NULL, 10, 0)));
	off = -1;
	printf("a negative offset: %s\n", res(splice(m, &off, p[1], NULL, 10, 0)));
	printf("one pipe both ways: %s\n", res(splice(p[0], NULL, p[1], NULL, 10, 0)));
	printf("bad flags: %s\n", res(splice(p[0], NULL, q[1], NULL, 10, 0x100)));
	printf("in not open for reading: %s\n", res(splice(q[1], NULL, p[1], NULL, 10, 0)));
	printf("a closed descriptor: %s\n", res(splice(999, NULL, p[1], NULL, 10, 0)));
	int ma = memfd("append", NULL);
	fcntl(ma, F_SETFL, O_APPEND);
	write(p[1], "x", 1);
	printf("into an O_APPEND file: %s\n", res(splice(p[0], NULL, ma, NULL, 10, 0)));
	drain(p[0], buf, sizeof buf);
	close(ma);

	int w[2];
	pipe(w);
	close(w[1]);
	printf("from a pipe with no writer: %ld\n", (long)splice(w[0], NULL, q[1], NULL, 10, 0));
	close(w[0]);
	pipe(w);
	close(w[0]);
	signal(SIGPIPE, SIG_IGN);
	printf("into a pipe with no reader: %s\n", res(splice(m, NULL, w[1], NULL, 10, 0)));
	close(w[1]);
	close(m);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void tees(void)
{
	int p[2], q[2];
	char buf[64];
	pipe(p);
	pipe(q);
	write(p[1], "teedata", 7);
	long n = tee(p[0], q[1], 100, 0);
	drain(q[0], buf, sizeof buf);
	printf("tee: %ld, copy \"%s\"", n, buf);
	drain(p[0], buf, sizeof buf);
	printf(", original still \"%s\"\n", buf);
	printf("tee from an empty pipe, SPLICE_F_NONBLOCK: %s\n", res(tee(p[0], q[1], 10, SPLICE_F_NONBLOCK)));
	int m = memfd("t", "abc");
	printf("tee from a memfd: %s\n", res(tee(m, q[1], 10, 0)));
	printf("tee onto one pipe: %s\n", res(tee(p[0], p[1], 10, 0)));
	printf("tee write end to read end: %s\n", res(tee(q[1], p[0], 10, 0)));
	close(m);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void vmsplices(void)
{
	int p[2];
	char buf[64];
	pipe(p);
	char a[] = "vm", b[] = "splice";
	struct iovec in[2] = {{a, 2}, {b, 6}};
	long n = vmsplice(p[1], in, 2, 0);
	char x[3] = {0}, y[6] = {0};
	struct iovec out[2] = {{x, 2}, {y, 5}};
	long m = vmsplice(p[0], out, 2, 0);
	printf("vmsplice in: %ld, out: %ld, \"%s\" + \"%s\"\n", n, m, x, y);
	drain(p[0], buf, sizeof buf);
	printf("left in the pipe: \"%s\"\n", buf);
	printf("vmsplice out of an empty pipe, SPLICE_F_NONBLOCK: %s\n", res(vmsplice(p[0], out, 2, SPLICE_F_NONBLOCK)));
	int mf = memfd("v", NULL);
	printf("vmsplice on a memfd: %s\n", res(vmsplice(mf, in, 2, 0)));
	printf("vmsplice, bad flags: %s\n", res(vmsplice(p[1], in, 2, 0x100)));
	printf("vmsplice, no segments: %ld\n", (long)vmsplice(p[1], in, 0, 0));
	close(mf);
	close(p[0]);
	close(p[1]);
}

static void copies(void)
{
	char buf[64] = {0};
	int a = memfd("a", "0123456789"), b = memfd("b", "..........");
	loff_t oi = 2, oo = 5;
	long n = copy_file_range(a, &oi, b, &oo, 4, 0);
	pread(b, buf, 10, 0);
	printf("copy_file_range 4 at 2 -> at 5: %ld, offsets %lld %lld, b \"%s\"\n", n, (long long)oi, (long long)oo, buf);
	lseek(a, 7, SEEK_SET);
	lseek(b, 0, SEEK_SET);
	n = copy_file_range(a, NULL, b, NULL, 100, 0);
	pread(b, buf, 10, 0);
	printf("at the positions, 100 asked: %ld, positions %lld %lld, b \"%s\"\n", n, (long long)lseek(a, 0, SEEK_CUR),
	       (long long)lseek(b, 0, SEEK_CUR), buf);
	printf("at the end of the input: %ld\n", (long)copy_file_range(a, NULL, b, NULL, 100, 0));
	oi = 0;
	oo = 3;
	printf("overlapping ranges of one file: %s\n", res(copy_file_range(a, &oi, a, &oo, 5, 0)));
	oo = 20;
	n = copy_file_range(a, &oi, a, &oo, 5, 0);
	memset(buf, 0, sizeof buf);
	pread(a, buf, 5, 20);
	printf("same file, apart: %ld, \"%s\"\n", n, buf);
	printf("flags: %s\n", res(copy_file_range(a, NULL, b, NULL, 1, 1)));
	int p[2];
	pipe(p);
	printf("from a pipe: %s\n", res(copy_file_range(p[0], NULL, b, NULL, 1, 0)));
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", b);
	int ro = open(path, O_RDONLY);
	printf("into a read-only descriptor: %s\n", res(copy_file_range(a, NULL, ro, NULL, 1, 0)));
	fcntl(b, F_SETFL, O_APPEND);
	printf("into an O_APPEND descriptor: %s\n", res(copy_file_range(a, NULL, b, NULL, 1, 0)));
	int c = memfd("c", NULL);
	off_t so = 1;
	n = sendfile(c, a, &so, 3);
	memset(buf, 0, sizeof buf);
	pread(c, buf, 10, 0);
	printf("sendfile memfd -> memfd: %ld, offset %lld, \"%s\"\n", n, (long long)so, buf);
	close(ro);
	close(p[0]);
	close(p[1]);
	close(a);
	close(b);
	close(c);
}

static void across_save(void)
{
	int p[2], q[2];
	pipe(p);
	pipe(q);
	pid_t pid = fork();
	if (pid == 0) {
		char line[64];
		close(p[0]);
		if (fgets(line, sizeof line, stdin) != NULL)
			write(p[1], line, strcspn(line, "\n"));
		_exit(0);
	}
	close(p[1]);
	printf("splicing what a child reads from stdin\n");
	fflush(stdout);
	long n;
	while ((n = splice(p[0], NULL, q[1], NULL, 100, 0)) < 0 && errno == EINTR)
		;
	char buf[64];
	drain(q[0], buf, sizeof buf);
	waitpid(pid, NULL, 0);
	printf("spliced %ld: \"%s\"\n", n, buf);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	splices();
	tees();
	vmsplices();
	copies();
	across_save();
	return 0;
}
