/*
 * inet: TCP and UDP over the loopback, as Linux serves them, for IPv4
 * (127.0.0.1) and IPv6 (::1): a listener on port 0 and a forked client
 * (accept, getsockname, getpeername, echo, shutdown and end of stream,
 * close with unread data and ECONNRESET, EPIPE with SIGPIPE after the peer
 * closed, MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT, FIONREAD, readv/writev,
 * poll and epoll readiness), a non-blocking connect, errors
 * (ECONNREFUSED, EADDRINUSE, EADDRNOTAVAIL), socket options, UDP with
 * sender addresses, boundaries and MSG_TRUNC, a connected UDP socket told
 * ECONNREFUSED, IPv4 clients of a dual-stack IPv6 listener and
 * IPV6_V6ONLY, getaddrinfo("localhost"), and the interface lo by name and
 * index (if_nametoindex, SIOCGIFFLAGS). Ports are never printed: they
 * differ between runs.
 *
 * "inet outside" instead connects to addresses outside the sandbox (only
 * under snap: natively they would leave the host).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static const char *ename(int e)
{
	switch (e) {
	case 0: return "0";
	case EAGAIN: return "EAGAIN";
	case EPIPE: return "EPIPE";
	case EINVAL: return "EINVAL";
	case ENOTCONN: return "ENOTCONN";
	case EISCONN: return "EISCONN";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNRESET: return "ECONNRESET";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENETUNREACH: return "ENETUNREACH";
	case EINPROGRESS: return "EINPROGRESS";
	case EMSGSIZE: return "EMSGSIZE";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case ENODEV: return "ENODEV";
	}
	static char b[32];
	snprintf(b, sizeof b, "errno %d", e);
	return b;
}

static const char *res(int r) { return r < 0 ? ename(errno) : "ok"; }

static int sigpipes;
static void on_sigpipe(int s) { (void)s; sigpipes++; }

struct fam {
	const char *name;
	int af;
};

/* loopback fills sa with the loopback address of f and port. */
static socklen_t loopback(struct fam f, struct sockaddr_storage *sa, int port)
{
	memset(sa, 0, sizeof *sa);
	if (f.af == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof *in;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	in6->sin6_addr = in6addr_loopback;
	return sizeof *in6;
}

static int port_of(int fd)
{
	struct sockaddr_storage sa;
	socklen_t l = sizeof sa;
	if (getsockname(fd, (struct sockaddr *)&sa, &l) < 0)
		return -1;
	if (sa.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&sa)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

/* addr_str describes an address without its port. */
static const char *addr_str(struct sockaddr_storage *sa)
{
	static char b[64];
	if (sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, b, sizeof b);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, b, sizeof b);
	return b;
}

static int listener(struct fam f, int type, int *port)
{
	struct sockaddr_storage sa;
	int fd = socket(f.af, type, 0);
	socklen_t l = loopback(f, &sa, 0);
	if (bind(fd, (struct sockaddr *)&sa, l) < 0)
		return -1;
	if (type == SOCK_STREAM && listen(fd, 8) < 0)
		return -1;
	*port = port_of(fd);
	return fd;
}

static int connect_to(struct fam f, int port)
{
	struct sockaddr_storage sa;
	int fd = socket(f.af, SOCK_STREAM, 0);
	socklen_t l = loopback(f, &sa, port);
	if (connect(fd, (struct sockaddr *)&sa, l) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int getint(int fd, int level, int name)
{
	int v = -99;
	socklen_t l = sizeof v;
	if (getsockopt(fd, level, name, &v, &l) < 0)
		return -errno;
	return v;
}

static int setint(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof v);
}

/* tcp_pair connects a client to a new listener and accepts it. */
static void tcp_pair(struct fam f, int *cli, int *srv)
{
	int port, l = listener(f, SOCK_STREAM, &port);
	*cli = connect_to(f, port);
	*srv = accept(l, NULL, NULL);
	close(l);
}

static void tcp_server(struct fam f)
{
	int port, l = listener(f, SOCK_STREAM, &port);
	printf("%s: listener bound to a port: %s, SO_ACCEPTCONN %d\n", f.name, yesno(port > 0),
	       getint(l, SOL_SOCKET, SO_ACCEPTCONN));
	/* The client's lines go through a pipe, printed after the server's. */
	int rp[2];
	pipe(rp);
	pid_t c = fork();
	if (c == 0) {
		close(rp[0]);
		dup2(rp[1], 1);
		int fd = connect_to(f, port);
		if (fd < 0)
			_exit(2);
		write(fd, "hello", 5);
		char b[64];
		ssize_t n = read(fd, b, sizeof b);
		printf("%s: client got %zd '%.*s'\n", f.name, n, (int)(n > 0 ? n : 0), b);
		shutdown(fd, SHUT_WR);
		n = read(fd, b, sizeof b);
		printf("%s: client after its shutdown reads %zd '%.*s'\n", f.name, n, (int)(n > 0 ? n : 0), b);
		n = read(fd, b, sizeof b);
		printf("%s: client then reads end of stream: %zd\n", f.name, n);
		fflush(stdout);
		_exit(0);
	}
	close(rp[1]);
	struct sockaddr_storage peer, me;
	socklen_t pl = sizeof peer, ml = sizeof me;
	int fd = accept(l, (struct sockaddr *)&peer, &pl);
	getsockname(fd, (struct sockaddr *)&me, &ml);
	printf("%s: accepted from %s (length %u)", f.name, addr_str(&peer), pl);
	printf(", local %s, same port: %s\n", addr_str(&me), yesno(port_of(fd) == port));
	char b[64];
	ssize_t n = recv(fd, b, sizeof b, MSG_PEEK);
	printf("%s: peeked %zd, FIONREAD ", f.name, n);
	int avail = -1;
	ioctl(fd, FIONREAD, &avail);
	n = read(fd, b, sizeof b);
	printf("%d, read %zd '%.*s'\n", avail, n, (int)n, b);
	struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
	writev(fd, iov, 2);
	struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
	poll(&p, 1, -1);
	printf("%s: after the client's shutdown poll gives POLLIN %s POLLRDHUP %s POLLHUP %s\n", f.name,
	       yesno(p.revents & POLLIN), yesno(p.revents & POLLRDHUP), yesno(p.revents & POLLHUP));
	n = read(fd, b, sizeof b);
	printf("%s: server reads end of stream: %zd; can still send: %zd\n", f.name, n, write(fd, "late", 4));
	fflush(stdout);
	close(fd);
	int st;
	waitpid(c, &st, 0);
	char out[1024];
	ssize_t got = read(rp[0], out, sizeof out);
	fwrite(out, 1, got > 0 ? got : 0, stdout);
	close(rp[0]);
	close(l);
}

/* sendfile_case sends the first 4096 bytes of the program's own file over
 * a connection with sendfile and compares what arrives. */
static void sendfile_case(struct fam f, const char *self)
{
	int a, b, fd = open(self, O_RDONLY);
	char want[4096], got[4096];
	tcp_pair(f, &a, &b);
	ssize_t n = sendfile(a, fd, NULL, sizeof want);
	pread(fd, want, sizeof want, 0);
	ssize_t r = recv(b, got, sizeof got, MSG_WAITALL);
	printf("%s: sendfile of 4096 bytes: %zd, received %zd, same bytes: %s\n", f.name, n, r,
	       yesno(r == sizeof got && memcmp(want, got, sizeof got) == 0));
	close(fd);
	close(a);
	close(b);
}

static void tcp_close_cases(struct fam f)
{
	int a, b;
	char buf[16];
	tcp_pair(f, &a, &b);
	write(a, "unread", 6);
	close(b);
	ssize_t r1 = read(a, buf, sizeof buf);
	int e1 = errno;
	ssize_t r2 = read(a, buf, sizeof buf);
	printf("%s: peer closed with unread data: read %zd %s, then %zd\n", f.name, r1, r1 < 0 ? ename(e1) : "", r2);
	close(a);

	tcp_pair(f, &a, &b);
	close(b);
	sigpipes = 0;
	ssize_t w0 = send(a, "", 0, 0);
	int e0 = errno;
	ssize_t w1 = write(a, "x", 1);
	ssize_t w2 = write(a, "y", 1);
	int e2 = errno;
	ssize_t w3 = send(a, "z", 1, MSG_NOSIGNAL);
	int e3 = errno;
	ssize_t w4 = send(a, "", 0, MSG_NOSIGNAL);
	int e4 = errno;
	printf("%s: peer closed: empty send %zd %s, write %zd, then %zd %s, send MSG_NOSIGNAL %zd %s, empty %zd %s, SIGPIPEs %d, read %zd\n",
	       f.name, w0, w0 < 0 ? ename(e0) : "", w1, w2, ename(e2), w3, ename(e3), w4, w4 < 0 ? ename(e4) : "", sigpipes,
	       read(a, buf, sizeof buf));
	close(a);

	tcp_pair(f, &a, &b);
	struct linger lg = {1, 0};
	setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(b);
	r1 = read(a, buf, sizeof buf);
	printf("%s: SO_LINGER 0 close: peer reads %zd %s\n", f.name, r1, r1 < 0 ? ename(errno) : "");
	close(a);

	tcp_pair(f, &a, &b);
	r1 = recv(a, buf, sizeof buf, MSG_DONTWAIT);
	printf("%s: MSG_DONTWAIT on empty: %zd %s", f.name, r1, ename(errno));
	write(b, "abc", 3);
	write(b, "def", 3);
	r1 = recv(a, buf, 6, MSG_WAITALL);
	printf(", MSG_WAITALL joins: %zd '%.6s'\n", r1, buf);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP}, out;
	int ep = epoll_create1(0);
	epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev);
	int n = epoll_wait(ep, &out, 1, 0);
	printf("%s: epoll on an idle connection: %d events 0x%x", f.name, n, out.events);
	close(b);
	n = epoll_wait(ep, &out, 1, 0);
	printf(", after the peer closed: %d events 0x%x\n", n, out.events);
	close(ep);
	close(a);
}

static void tcp_errors(struct fam f)
{
	int port, l = listener(f, SOCK_STREAM, &port);
	struct sockaddr_storage sa;
	socklen_t sl = loopback(f, &sa, port);
	int s = socket(f.af, SOCK_STREAM, 0);
	printf("%s: bind to a listener's port: %s", f.name, res(bind(s, (struct sockaddr *)&sa, sl)));
	close(s);
	s = socket(f.af, SOCK_STREAM, 0);
	setint(s, SOL_SOCKET, SO_REUSEADDR, 1);
	setint(l, SOL_SOCKET, SO_REUSEADDR, 1);
	printf(", with SO_REUSEADDR on both: %s\n", res(bind(s, (struct sockaddr *)&sa, sl)));
	close(s);

	/* A port bound but not listening refuses connections. */
	int quiet, qp;
	quiet = socket(f.af, SOCK_STREAM, 0);
	loopback(f, &sa, 0);
	bind(quiet, (struct sockaddr *)&sa, sl);
	qp = port_of(quiet);
	printf("%s: connect to a port without listener: %s\n", f.name, res(connect_to(f, qp)));

	s = socket(f.af, SOCK_STREAM | SOCK_NONBLOCK, 0);
	loopback(f, &sa, port);
	int r = connect(s, (struct sockaddr *)&sa, sl);
	int e = errno;
	struct pollfd p = {s, POLLOUT, 0};
	poll(&p, 1, -1);
	printf("%s: non-blocking connect: %d %s, then POLLOUT %s, SO_ERROR %s, connect again %s\n", f.name, r, ename(e),
	       yesno(p.revents & POLLOUT), ename(getint(s, SOL_SOCKET, SO_ERROR)),
	       res(connect(s, (struct sockaddr *)&sa, sl)));
	close(s);
	s = socket(f.af, SOCK_STREAM | SOCK_NONBLOCK, 0);
	loopback(f, &sa, qp);
	r = connect(s, (struct sockaddr *)&sa, sl);
	e = errno;
	p.fd = s;
	poll(&p, 1, -1);
	printf("%s: non-blocking connect refused: %d %s, then POLLERR %s, SO_ERROR %s\n", f.name, r, ename(e),
	       yesno(p.revents & POLLERR), ename(getint(s, SOL_SOCKET, SO_ERROR)));
	close(s);
	close(quiet);

	s = socket(f.af, SOCK_STREAM, 0);
	char b[4];
	printf("%s: unconnected: send %s", f.name, res(send(s, "x", 1, MSG_NOSIGNAL)));
	printf(", recv %s", res(recv(s, b, 1, MSG_DONTWAIT)));
	socklen_t gl = sizeof sa;
	printf(", getpeername %s", res(getpeername(s, (struct sockaddr *)&sa, &gl)));
	printf(", shutdown %s", res(shutdown(s, SHUT_RDWR)));
	close(s);
	s = socket(f.af, SOCK_STREAM, 0);
	listen(s, 1);
	printf(", listen then connect %s", res(connect(s, (struct sockaddr *)&sa, sl)));
	printf(", then shutdown %s\n", res(shutdown(s, SHUT_RD)));
	close(s);
	int pa = socket(f.af, SOCK_STREAM, 0);
	struct sockaddr_in bad = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0xC0000201)}; /* 192.0.2.1 */
	struct sockaddr_in6 bad6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "2001:db8::1", &bad6.sin6_addr);
	if (f.af == AF_INET)
		r = bind(pa, (struct sockaddr *)&bad, sizeof bad);
	else
		r = bind(pa, (struct sockaddr *)&bad6, sizeof bad6);
	printf("%s: bind to an address not on the host: %s", f.name, res(r));
	int sp[2];
	printf(", socketpair %s", res(socketpair(f.af, SOCK_STREAM, 0, sp)));
	printf(", short address %s\n", res(bind(pa, (struct sockaddr *)&bad, 4)));
	close(pa);
	close(l);
}

static void options(struct fam f)
{
	int s = socket(f.af, SOCK_STREAM, 0);
	printf("%s: SO_TYPE %d SO_DOMAIN %s SO_PROTOCOL %d SO_ERROR %d, TCP_NODELAY %d, TCP_KEEPIDLE %d INTVL %d CNT %d\n",
	       f.name, getint(s, SOL_SOCKET, SO_TYPE), getint(s, SOL_SOCKET, SO_DOMAIN) == f.af ? "right" : "wrong",
	       getint(s, SOL_SOCKET, SO_PROTOCOL), getint(s, SOL_SOCKET, SO_ERROR), getint(s, IPPROTO_TCP, TCP_NODELAY),
	       getint(s, IPPROTO_TCP, TCP_KEEPIDLE), getint(s, IPPROTO_TCP, TCP_KEEPINTVL),
	       getint(s, IPPROTO_TCP, TCP_KEEPCNT));
	setint(s, SOL_SOCKET, SO_REUSEADDR, 5);
	setint(s, SOL_SOCKET, SO_REUSEPORT, 1);
	setint(s, SOL_SOCKET, SO_KEEPALIVE, 1);
	setint(s, IPPROTO_TCP, TCP_NODELAY, 1);
	setint(s, IPPROTO_TCP, TCP_CORK, 1);
	setint(s, IPPROTO_TCP, TCP_KEEPIDLE, 60);
	setint(s, SOL_SOCKET, SO_RCVBUF, 65536);
	setint(s, SOL_SOCKET, SO_SNDBUF, 32768);
	printf("%s: set: SO_REUSEADDR %d SO_REUSEPORT %d SO_KEEPALIVE %d TCP_NODELAY %d TCP_CORK %d TCP_KEEPIDLE %d "
	       "SO_RCVBUF %d SO_SNDBUF %d\n",
	       f.name, getint(s, SOL_SOCKET, SO_REUSEADDR), getint(s, SOL_SOCKET, SO_REUSEPORT),
	       getint(s, SOL_SOCKET, SO_KEEPALIVE), getint(s, IPPROTO_TCP, TCP_NODELAY), getint(s, IPPROTO_TCP, TCP_CORK),
	       getint(s, IPPROTO_TCP, TCP_KEEPIDLE), getint(s, SOL_SOCKET, SO_RCVBUF), getint(s, SOL_SOCKET, SO_SNDBUF));
	printf("%s: TCP_KEEPIDLE 0: %s", f.name, res(setint(s, IPPROTO_TCP, TCP_KEEPIDLE, 0)));
	printf(", TCP_KEEPCNT 200: %s", res(setint(s, IPPROTO_TCP, TCP_KEEPCNT, 200)));
	printf(", unknown TCP option: %s", res(setint(s, IPPROTO_TCP, 9999, 1)));
	printf(", unknown level: %s", res(setint(s, 9999, 1, 1)));
	char one = 1;
	printf(", short value: %s\n", res(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, 1)));
	struct linger lg = {1, 5}, lg2;
	socklen_t ll = sizeof lg2;
	setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	getsockopt(s, SOL_SOCKET, SO_LINGER, &lg2, &ll);
	printf("%s: SO_LINGER %d %d (length %u)", f.name, lg2.l_onoff, lg2.l_linger, ll);
	if (f.af == AF_INET) {
		setint(s, IPPROTO_IP, IP_TOS, 0x10);
		printf(", IP_TOS 0x%x, IP_TTL %d, IPV6_V6ONLY %s\n", getint(s, IPPROTO_IP, IP_TOS),
		       getint(s, IPPROTO_IP, IP_TTL), ename(-getint(s, IPPROTO_IPV6, IPV6_V6ONLY)));
	} else {
		int v0 = getint(s, IPPROTO_IPV6, IPV6_V6ONLY);
		setint(s, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		printf(", IPV6_V6ONLY %d then %d, IPV6_UNICAST_HOPS %d\n", v0, getint(s, IPPROTO_IPV6, IPV6_V6ONLY),
		       getint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS));
	}
	close(s);

	int a, b;
	tcp_pair(f, &a, &b);
	struct tcp_info ti;
	socklen_t tl = sizeof ti;
	getsockopt(a, IPPROTO_TCP, TCP_INFO, &ti, &tl);
	printf("%s: TCP_INFO of a connection: state %d (ESTABLISHED %s), length positive: %s", f.name, ti.tcpi_state,
	       yesno(ti.tcpi_state == TCP_ESTABLISHED), yesno(tl > 0));
	int outq = -1;
	ioctl(a, TIOCOUTQ, &outq);
	printf(", SIOCOUTQ %d\n", outq);
	close(a);
	close(b);
}

static void udp(struct fam f)
{
	int port, srv = listener(f, SOCK_DGRAM, &port);
	int c = socket(f.af, SOCK_DGRAM, 0);
	struct sockaddr_storage sa, from;
	socklen_t sl = loopback(f, &sa, port), fl = sizeof from;
	sendto(c, "one", 3, 0, (struct sockaddr *)&sa, sl);
	sendto(c, "two!", 4, 0, (struct sockaddr *)&sa, sl);
	sendto(c, "", 0, 0, (struct sockaddr *)&sa, sl);
	char b[16];
	int avail = -1;
	ioctl(srv, FIONREAD, &avail);
	ssize_t n1 = recvfrom(srv, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
	printf("%s: udp FIONREAD %d, got %zd from %s, sender port matches: %s", f.name, avail, n1, addr_str(&from),
	       yesno(port_of(c) == ntohs(((struct sockaddr_in *)&from)->sin_port)));
	ssize_t n2 = recv(srv, b, 2, MSG_TRUNC);
	ssize_t n3 = recv(srv, b, sizeof b, 0);
	printf(", MSG_TRUNC %zd, empty datagram %zd\n", n2, n3);
	struct msghdr m = {0};
	struct iovec iov = {b, 2};
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	sendto(c, "truncated", 9, 0, (struct sockaddr *)&sa, sl);
	ssize_t n4 = recvmsg(srv, &m, 0);
	printf("%s: recvmsg of 9 into 2: %zd, MSG_TRUNC flag %s", f.name, n4, yesno(m.msg_flags & MSG_TRUNC));
	printf(", send unconnected %s", res(send(c, "x", 1, 0)));
	printf(", recv on empty %s\n", res(recv(srv, b, 1, MSG_DONTWAIT)));

	/* A connected UDP socket learns that nobody listens. */
	connect(c, (struct sockaddr *)&sa, sl);
	struct sockaddr_storage pn;
	socklen_t pnl = sizeof pn;
	getpeername(c, (struct sockaddr *)&pn, &pnl);
	printf("%s: connected udp peer %s", f.name, addr_str(&pn));
	printf(", send %s", res(send(c, "hi", 2, 0)));
	n1 = recv(srv, b, sizeof b, 0);
	close(srv);
	ssize_t s1 = send(c, "lost", 4, 0);
	ssize_t r1 = recv(c, b, sizeof b, MSG_DONTWAIT);
	printf(", server got %zd; after the server closed: send %zd, recv %s\n", n1, s1, res(r1));
	close(c);
}

static void dualstack(void)
{
	int l = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
	bind(l, (struct sockaddr *)&any, sizeof any);
	listen(l, 4);
	int port = port_of(l);
	struct fam v4 = {"v4", AF_INET};
	int c = connect_to(v4, port);
	struct sockaddr_storage peer;
	socklen_t pl = sizeof peer;
	int a = accept(l, (struct sockaddr *)&peer, &pl);
	printf("dual: IPv4 client of [::]: %s, seen as %s (family AF_INET6 %s)\n", res(c), addr_str(&peer),
	       yesno(peer.ss_family == AF_INET6));
	close(a);
	close(c);
	close(l);
	l = socket(AF_INET6, SOCK_STREAM, 0);
	setint(l, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	bind(l, (struct sockaddr *)&any, sizeof any);
	listen(l, 4);
	port = port_of(l);
	printf("dual: with IPV6_V6ONLY an IPv4 client: %s", res(connect_to(v4, port)));
	printf("; IPV6_V6ONLY after bind: %s\n", res(setint(l, IPPROTO_IPV6, IPV6_V6ONLY, 0)));
	close(l);
}

static void resolve(void)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	int r = getaddrinfo("localhost", "80", &hints, &ai);
	int lo = r == 0 && ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
	printf("getaddrinfo localhost (AF_INET): %d, 127.0.0.1: %s\n", r, yesno(lo));
	if (r == 0)
		freeaddrinfo(ai);
	hints.ai_flags = AI_ADDRCONFIG;
	hints.ai_family = AF_UNSPEC;
	r = getaddrinfo("localhost", "80", &hints, &ai);
	int found = 0;
	for (struct addrinfo *p = r == 0 ? ai : NULL; p; p = p->ai_next)
		if (p->ai_family == AF_INET && ((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
			found = 1;
	printf("getaddrinfo localhost (AI_ADDRCONFIG): %d, 127.0.0.1 among them: %s\n", r, yesno(found));
	if (r == 0)
		freeaddrinfo(ai);
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char host[64];
	r = getnameinfo((struct sockaddr *)&in, sizeof in, host, sizeof host, NULL, 0, NI_NUMERICHOST);
	printf("getnameinfo 127.0.0.1 numeric: %d %s\n", r, host);
	char name[IF_NAMESIZE] = "";
	printf("if_nametoindex(lo) is 1: %s, if_indextoname(1): %s\n", yesno(if_nametoindex("lo") == 1),
	       if_indextoname(1, name) ? name : "none");
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	int fr = ioctl(s, SIOCGIFFLAGS, &ifr);
	printf("SIOCGIFFLAGS lo: %s, up and loopback: %s", res(fr),
	       yesno((ifr.ifr_flags & (IFF_UP | IFF_LOOPBACK)) == (IFF_UP | IFF_LOOPBACK)));
	strcpy(ifr.ifr_name, "nosuchif0");
	printf(", SIOCGIFINDEX of an unknown interface: %s\n", res(ioctl(s, SIOCGIFINDEX, &ifr)));
	close(s);
}

static void outside(void)
{
	struct sockaddr_in bad = {.sin_family = AF_INET, .sin_port = htons(80), .sin_addr.s_addr = htonl(0xC0000201)};
	int s = socket(AF_INET, SOCK_STREAM, 0);
	printf("connect 192.0.2.1: %s\n", res(connect(s, (struct sockaddr *)&bad, sizeof bad)));
	close(s);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	printf("udp sendto 192.0.2.1: %s\n", res(sendto(s, "x", 1, 0, (struct sockaddr *)&bad, sizeof bad)));
	close(s);
	struct sockaddr_in6 bad6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};
	inet_pton(AF_INET6, "2001:db8::1", &bad6.sin6_addr);
	s = socket(AF_INET6, SOCK_STREAM, 0);
	printf("connect [2001:db8::1]: %s\n", res(connect(s, (struct sockaddr *)&bad6, sizeof bad6)));
	close(s);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, on_sigpipe);
	if (argc > 1 && strcmp(argv[1], "outside") == 0) {
		outside();
		return 0;
	}
	struct fam fams[] = {{"v4", AF_INET}, {"v6", AF_INET6}};
	for (int i = 0; i < 2; i++) {
		tcp_server(fams[i]);
		tcp_close_cases(fams[i]);
		sendfile_case(fams[i], argv[0]);
		tcp_errors(fams[i]);
		options(fams[i]);
		udp(fams[i]);
	}
	dualstack();
	resolve();
	printf("done\n");
	return 0;
}
