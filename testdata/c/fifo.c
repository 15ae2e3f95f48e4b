/*
 * fifo: named pipes and Unix sockets bound to paths in a tmpfs
 * (/dev/shm), or in the directory $FIFO_DIR names (a directory of the
 * overlay root). mkfifo and mknod (FIFO, regular file, an unknown type); a
 * non-blocking write-only open without a reader is ENXIO; non-blocking
 * opens of both ends pass bytes; a blocking open for reading waits for a
 * forked writer (and the writer for it) and reads to end of file; O_RDWR
 * never waits; EPIPE without readers; fstat, lseek, F_GETPIPE_SZ. A stream
 * socket bound to a path (stat says socket; EADDRINUSE twice) accepts a
 * forked client; getsockname names the path; connect to a socket file
 * mknod made, to a FIFO, and to a closed server's file is ECONNREFUSED; a
 * datagram socket bound to a path receives from another.
 *
 * fifo hold N: the checkpoint workload. A FIFO open at both ends always
 * holds the line written the tick before, and a stream socket listens on
 * a path; every 100 ms the program reads the old line back and writes a
 * new one, and a forked client connects by path and sends the tick
 * number. It prints "tick K ok" (or "tick K CORRUPT what") N times, then
 * "done".
 *
 * fifo wait: prints "waiting" and blocks opening a new FIFO for reading
 * while a forked child waits for a line on stdin before it opens the FIFO
 * for writing and writes "hello"; then prints "read: hello" (a checkpoint
 * test saves while the open waits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static void path(char *p, size_t n, const char *what)
{
	const char *dir = getenv("FIFO_DIR");

	snprintf(p, n, "%s/fifo-%s-%d", dir && *dir ? dir : "/dev/shm", what, (int)getpid());
}

static int unaddr(struct sockaddr_un *a, const char *p)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	strncpy(a->sun_path, p, sizeof a->sun_path - 1);
	return sizeof *a;
}

static void fifos(void)
{
	char p[64];
	path(p, sizeof p, "f");
	umask(022);
	int r = mkfifo(p, 0666);
	struct stat st;
	stat(p, &st);
	printf("mkfifo: %d, FIFO %s, mode %o\n", r, yesno(S_ISFIFO(st.st_mode)), st.st_mode & 0777);
	errno = 0;
	int w = open(p, O_WRONLY | O_NONBLOCK);
	printf("write-only non-blocking open without a reader: %d ENXIO %s\n", w, yesno(errno == ENXIO));
	int rd = open(p, O_RDONLY | O_NONBLOCK);
	w = open(p, O_WRONLY | O_NONBLOCK);
	char buf[64] = {0};
	errno = 0;
	ssize_t n = read(rd, buf, sizeof buf);
	printf("non-blocking opens: %s %s; empty read %zd EAGAIN %s\n", yesno(rd >= 0), yesno(w >= 0), n, yesno(errno == EAGAIN));
	write(w, "abc", 3);
	n = read(rd, buf, sizeof buf);
	printf("read %zd \"%.*s\"\n", n, (int)n, buf);
	struct stat fst;
	fstat(rd, &fst);
	errno = 0;
	off_t o = lseek(rd, 0, SEEK_CUR);
	printf("fstat: FIFO %s, same inode %s; lseek %lld ESPIPE %s; F_GETPIPE_SZ %d\n", yesno(S_ISFIFO(fst.st_mode)),
	       yesno(fst.st_ino == st.st_ino), (long long)o, yesno(errno == ESPIPE), fcntl(w, F_GETPIPE_SZ));
	close(w);
	printf("read after the writer closed: %zd\n", read(rd, buf, sizeof buf));
	close(rd);

	pid_t c = fork();
	if (c == 0) {
		int cw = open(p, O_WRONLY);
		const char *msg = "hello from the child";
		write(cw, msg, strlen(msg));
		_exit(0);
	}
	rd = open(p, O_RDONLY);
	size_t got = 0;
	while ((n = read(rd, buf + got, sizeof buf - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
	int ws;
	waitpid(c, &ws, 0);
	printf("blocking open and read to EOF: \"%s\"\n", buf);
	close(rd);

	c = fork();
	if (c == 0) {
		int cr = open(p, O_RDONLY);
		char cb[8] = {0};
		read(cr, cb, 2);
		_exit(strcmp(cb, "ok") == 0 ? 0 : 1);
	}
	w = open(p, O_WRONLY);
	write(w, "ok", 2);
	waitpid(c, &ws, 0);
	close(w);
	printf("blocking open for writing met its reader: %s\n", yesno(WIFEXITED(ws) && WEXITSTATUS(ws) == 0));

	int rw = open(p, O_RDWR);
	printf("O_RDWR open does not wait: %s\n", yesno(rw >= 0));
	close(rw);

	signal(SIGPIPE, SIG_IGN);
	rd = open(p, O_RDONLY | O_NONBLOCK);
	w = open(p, O_WRONLY | O_NONBLOCK);
	close(rd);
	errno = 0;
	n = write(w, "x", 1);
	printf("write without readers: %zd EPIPE %s\n", n, yesno(errno == EPIPE));
	close(w);
	unlink(p);

	path(p, sizeof p, "reg");
	r = mknod(p, S_IFREG | 0600, 0);
	stat(p, &st);
	printf("mknod S_IFREG: %d, regular %s\n", r, yesno(S_ISREG(st.st_mode)));
	unlink(p);
	errno = 0;
	r = mknod(p, 0160000 | 0600, 0);
	printf("mknod unknown type: %d EINVAL %s\n", r, yesno(errno == EINVAL));
}

static void sockets(void)
{
	char p[64];
	path(p, sizeof p, "sock");
	struct sockaddr_un a;
	int len = unaddr(&a, p);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	int b = bind(s, (struct sockaddr *)&a, len);
	struct stat st;
	stat(p, &st);
	int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
	errno = 0;
	int b2 = bind(s2, (struct sockaddr *)&a, len);
	printf("bind: %d, socket file %s, mode %o; again %d EADDRINUSE %s\n", b, yesno(S_ISSOCK(st.st_mode)), st.st_mode & 0777, b2,
	       yesno(errno == EADDRINUSE));
	close(s2);
	listen(s, 4);
	pid_t c = fork();
	if (c == 0) {
		int cs = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(cs, (struct sockaddr *)&a, len) != 0)
			_exit(1);
		write(cs, "ping", 4);
		_exit(0);
	}
	int as = accept(s, NULL, NULL);
	char buf[16] = {0};
	read(as, buf, 4);
	int ws;
	waitpid(c, &ws, 0);
	struct sockaddr_un got;
	socklen_t gl = sizeof got;
	getsockname(s, (struct sockaddr *)&got, &gl);
	printf("accepted a client by path: \"%s\"; getsockname is the path %s\n", buf, yesno(strcmp(got.sun_path, p) == 0));
	close(as);
	close(s);
	int cs = socket(AF_UNIX, SOCK_STREAM, 0);
	errno = 0;
	int r = connect(cs, (struct sockaddr *)&a, len);
	printf("connect after the server closed: %d ECONNREFUSED %s\n", r, yesno(errno == ECONNREFUSED));
	close(cs);
	unlink(p);

	char q[64];
	path(q, sizeof q, "node");
	mknod(q, S_IFSOCK | 0600, 0);
	len = unaddr(&a, q);
	cs = socket(AF_UNIX, SOCK_STREAM, 0);
	errno = 0;
	r = connect(cs, (struct sockaddr *)&a, len);
	printf("connect to a socket file mknod made: %d ECONNREFUSED %s\n", r, yesno(errno == ECONNREFUSED));
	unlink(q);
	mkfifo(q, 0600);
	errno = 0;
	r = connect(cs, (struct sockaddr *)&a, len);
	printf("connect to a FIFO: %d ECONNREFUSED %s\n", r, yesno(errno == ECONNREFUSED));
	close(cs);
	unlink(q);

	len = unaddr(&a, p);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	bind(d, (struct sockaddr *)&a, len);
	int d2 = socket(AF_UNIX, SOCK_DGRAM, 0);
	ssize_t n = sendto(d2, "dgram", 5, 0, (struct sockaddr *)&a, len);
	memset(buf, 0, sizeof buf);
	ssize_t m = recv(d, buf, sizeof buf, 0);
	printf("datagram by path: sent %zd, received %zd \"%s\"\n", n, m, buf);
	close(d);
	close(d2);
	unlink(p);
}

static int hold(int n)
{
	char p[64], q[64];
	path(p, sizeof p, "hold");
	path(q, sizeof q, "holdsock");
	unlink(p);
	unlink(q);
	if (mkfifo(p, 0600) != 0)
		return 1;
	int rw = open(p, O_RDWR);
	struct sockaddr_un a;
	int len = unaddr(&a, q);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (rw < 0 || s < 0 || bind(s, (struct sockaddr *)&a, len) != 0 || listen(s, 4) != 0)
		return 1;
	char line[32];
	int ll = snprintf(line, sizeof line, "line %04d\n", 0);
	write(rw, line, ll);
	for (int i = 1; i <= n; i++) {
		pid_t c = fork();
		if (c == 0) {
			int cs = socket(AF_UNIX, SOCK_STREAM, 0);
			if (connect(cs, (struct sockaddr *)&a, len) != 0)
				_exit(1);
			write(cs, &i, sizeof i);
			_exit(0);
		}
		int as = accept(s, NULL, NULL);
		int v = 0;
		read(as, &v, sizeof v);
		close(as);
		int ws;
		waitpid(c, &ws, 0);
		char got[32] = {0}, want[32];
		read(rw, got, ll);
		snprintf(want, sizeof want, "line %04d\n", i - 1);
		if (v != i)
			printf("tick %d CORRUPT socket got %d\n", i, v);
		else if (strcmp(got, want) != 0)
			printf("tick %d CORRUPT fifo got \"%s\"\n", i, got);
		else
			printf("tick %d ok\n", i);
		snprintf(line, sizeof line, "line %04d\n", i);
		write(rw, line, ll);
		usleep(100000);
	}
	unlink(p);
	unlink(q);
	printf("done\n");
	return 0;
}

static int waitopen(void)
{
	char p[64];
	path(p, sizeof p, "wait");
	unlink(p);
	if (mkfifo(p, 0600) != 0)
		return 1;
	pid_t c = fork();
	if (c == 0) {
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			_exit(1);
		int w = open(p, O_WRONLY);
		write(w, "hello", 5);
		_exit(0);
	}
	printf("waiting\n");
	int r = open(p, O_RDONLY);
	char buf[16] = {0};
	ssize_t n = read(r, buf, sizeof buf - 1);
	int ws;
	waitpid(c, &ws, 0);
	unlink(p);
	printf("read: %.*s\n", (int)(n > 0 ? n : 0), buf);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "wait") == 0)
		return waitopen();
	if (argc == 3 && strcmp(argv[1], "hold") == 0)
		return hold(atoi(argv[2]));
	fifos();
	sockets();
	return 0;
}
