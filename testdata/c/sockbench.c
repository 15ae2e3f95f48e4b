/*
 * sockbench: benchmark workloads for Unix sockets and loopback TCP (e2e
 * BenchmarkUnixSocket and BenchmarkTCPSocket).
 *   pingpong N   two processes bounce one byte N times over a stream
 *                socketpair.
 *   bulk M       a child writes M MiB through a stream socketpair in
 *                64 KiB writes; the parent reads them in 64 KiB reads.
 *   tcppingpong N, tcpbulk M   the same over a TCP connection on
 *                127.0.0.1 (TCP_NODELAY set for the ping-pong).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK 65536

/* connected makes sv a connected stream pair: a socketpair, or with tcp
 * two ends of a TCP connection on 127.0.0.1. */
static void connected(int sv[2], int tcp)
{
	if (!tcp) {
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		return;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0)
		exit(3);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(sv[1], (struct sockaddr *)&a, sizeof a) < 0)
		exit(3);
	sv[0] = accept(l, NULL, NULL);
	close(l);
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int pingpong(long n, int tcp)
{
	int sv[2];
	connected(sv, tcp);
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

static int bulk(long mib, int tcp)
{
	int sv[2];
	connected(sv, tcp);
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
	int tcp = argc == 3 && strncmp(argv[1], "tcp", 3) == 0;
	const char *mode = tcp ? argv[1] + 3 : argv[1];
	if (argc == 3 && strcmp(mode, "pingpong") == 0)
		return pingpong(atol(argv[2]), tcp);
	if (argc == 3 && strcmp(mode, "bulk") == 0)
		return bulk(atol(argv[2]), tcp);
	fprintf(stderr, "usage: sockbench [tcp]pingpong N | [tcp]bulk MIB\n");
	return 2;
}
