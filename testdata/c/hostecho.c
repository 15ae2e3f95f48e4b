/*
 * hostecho: a line echo server for snap run --network host. It listens
 * on 127.0.0.1 at a port the host picks (bind to port 0), prints
 * "port N", then serves every connection with poll: each line it reads
 * comes back as "echo: LINE" and is printed as "got LINE"; a connection
 * that ends prints "closed", one that fails prints "error NAME" (a
 * connection established when the sandbox was saved fails with
 * ECONNRESET after a restore). With "udp [PORT]" it also binds a UDP
 * socket on 127.0.0.1 at PORT (or one the system picks; printed as "udp
 * N") that answers each datagram with "echo: " and the datagram. A first
 * argument "noreuse" leaves SO_REUSEADDR off the listener (and so off the
 * connections it accepts).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 64

static int reuse = 1;

static int bound_socket(int type, int port)
{
	int s = socket(AF_INET, type, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	int one = 1;
	if (s < 0 || ((reuse || type != SOCK_STREAM) && setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
	    bind(s, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(s, (struct sockaddr *)&a, &l) < 0) {
		perror("socket");
		return -1;
	}
	printf("%s %d\n", type == SOCK_STREAM ? "port" : "udp", ntohs(a.sin_port));
	return s;
}

static const char *ename(int e)
{
	switch (e) {
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	default: return strerror(e);
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "noreuse") == 0) {
		reuse = 0;
		argv++;
		argc--;
	}
	struct pollfd fds[MAXFD];
	int n = 0;
	int l = bound_socket(SOCK_STREAM, 0);
	if (l < 0 || listen(l, 16) < 0)
		return 1;
	fds[n++] = (struct pollfd){.fd = l, .events = POLLIN};
	int u = -1;
	if (argc > 1 && strcmp(argv[1], "udp") == 0) {
		if ((u = bound_socket(SOCK_DGRAM, argc > 2 ? atoi(argv[2]) : 0)) < 0)
			return 1;
		fds[n++] = (struct pollfd){.fd = u, .events = POLLIN};
	}
	for (;;) {
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (!fds[i].revents)
				continue;
			char buf[512], out[600];
			if (fds[i].fd == l) {
				int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
				if (c >= 0 && n < MAXFD)
					fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
				continue;
			}
			if (fds[i].fd == u) {
				struct sockaddr_storage from;
				socklen_t fl = sizeof from;
				ssize_t r = recvfrom(u, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
				if (r < 0)
					continue;
				buf[r] = 0;
				printf("udp got %s\n", buf);
				int m = snprintf(out, sizeof out, "echo: %s", buf);
				sendto(u, out, m, 0, (struct sockaddr *)&from, fl);
				continue;
			}
			ssize_t r = read(fds[i].fd, buf, sizeof buf - 1);
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				if (r < 0)
					printf("error %s\n", ename(errno));
				else
					printf("closed\n");
				close(fds[i].fd);
				fds[i--] = fds[--n];
				continue;
			}
			buf[r] = 0;
			buf[strcspn(buf, "\n")] = 0;
			printf("got %s\n", buf);
			int m = snprintf(out, sizeof out, "echo: %s\n", buf);
			write(fds[i].fd, out, m);
		}
	}
}
