/*
 * sockbench: benchmark workloads for Unix sockets (e2e BenchmarkUnixSocket).
 *   pingpong N   two processes bounce one byte N times over a stream
 *                socketpair.
 *   bulk M       a child writes M MiB through a stream socketpair in
 *                64 KiB writes; the parent reads them in 64 KiB reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK 65536

static int pingpong(long n)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pid_t c = fork();
	char b = 'x';
	if (c == 0) {
		for (long i = 0; i < n; i++)
			if (read(sv[1], &b, 1) != 1 || write(sv[1], &b, 1) != 1)
				_exit(1);
		_exit(0);
	}
	long done = 0;
	for (; done < n; done++)
		if (write(sv[0], &b, 1) != 1 || read(sv[0], &b, 1) != 1)
			break;
	int st;
	waitpid(c, &st, 0);
	printf("%ld round trips\n", done);
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int bulk(long mib)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	static char buf[CHUNK];
	long long total = mib << 20;
	pid_t c = fork();
	if (c == 0) {
		close(sv[0]);
		memset(buf, 'b', sizeof buf);
		for (long long sent = 0; sent < total;) {
			ssize_t w = write(sv[1], buf, sizeof buf);
			if (w <= 0)
				_exit(1);
			sent += w;
		}
		_exit(0);
	}
	close(sv[1]);
	long long got = 0;
	ssize_t r;
	while ((r = read(sv[0], buf, sizeof buf)) > 0)
		got += r;
	int st;
	waitpid(c, &st, 0);
	printf("%lld MiB received\n", got >> 20);
	return got != total;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "pingpong") == 0)
		return pingpong(atol(argv[2]));
	if (argc == 3 && strcmp(argv[1], "bulk") == 0)
		return bulk(atol(argv[2]));
	fprintf(stderr, "usage: sockbench pingpong N | bulk MIB\n");
	return 2;
}
