/*
 * unixsock: Unix domain sockets as Linux serves them. socketpair stream,
 * datagram and seqpacket semantics (boundaries, MSG_PEEK, MSG_TRUNC,
 * MSG_WAITALL, MSG_DONTWAIT, shutdown, EPIPE with and without SIGPIPE,
 * ECONNRESET); an abstract-name stream server and its forked client
 * (getsockname, getpeername, SO_PEERCRED, the accept queue); an abstract
 * datagram server with sender addresses and autobind; SCM_RIGHTS passing a
 * pipe's end and a file to another process, MSG_CTRUNC, and files closed
 * when a queue holding them is dropped; SO_PASSCRED and SCM_CREDENTIALS;
 * getsockopt and setsockopt; sendmmsg and recvmmsg; poll and epoll
 * readiness; non-blocking EAGAIN; a blocking recv ended by a signal;
 * errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static const char *ename(int e)
{
	switch (e) {
	case EAGAIN: return "EAGAIN";
	case EPIPE: return "EPIPE";
	case EINVAL: return "EINVAL";
	case ENOTCONN: return "ENOTCONN";
	case EISCONN: return "EISCONN";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNRESET: return "ECONNRESET";
	case EADDRINUSE: return "EADDRINUSE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
	case EPROTOTYPE: return "EPROTOTYPE";
	case EMSGSIZE: return "EMSGSIZE";
	case ENOTSOCK: return "ENOTSOCK";
	case EBADF: return "EBADF";
	case ENOENT: return "ENOENT";
	case EPERM: return "EPERM";
	case EINTR: return "EINTR";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case ESRCH: return "ESRCH";
	case EDOM: return "EDOM";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	}
	static char buf[32];
	snprintf(buf, sizeof buf, "errno %d", e);
	return buf;
}

static char rbuf[64];
static const char *res(long rc)
{
	if (rc < 0)
		return ename(errno);
	snprintf(rbuf, sizeof rbuf, "%ld", rc);
	return rbuf;
}

static volatile sig_atomic_t sigpipes, alarms;
static void on_sigpipe(int sig) { (void)sig; sigpipes++; }
static void on_alarm(int sig) { (void)sig; alarms++; }

static socklen_t abstract_addr(struct sockaddr_un *a, const char *what)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "snap-unixsock-%d-%s", (int)getpid(), what);
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

static void stream_pair(void)
{
	int sv[2];
	printf("socketpair stream: %s\n", res(socketpair(AF_UNIX, SOCK_STREAM, 0, sv)));
	struct stat st;
	fstat(sv[0], &st);
	printf("S_ISSOCK: %s, F_GETFL O_RDWR: %s\n", yesno(S_ISSOCK(st.st_mode)), yesno((fcntl(sv[0], F_GETFL) & O_ACCMODE) == O_RDWR));
	char link[64], path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", sv[0]);
	ssize_t ln = readlink(path, link, sizeof link - 1);
	link[ln > 0 ? ln : 0] = 0;
	printf("fd link is socket:[...]: %s\n", yesno(strncmp(link, "socket:[", 8) == 0));
	send(sv[0], "abc", 3, 0);
	send(sv[0], "defg", 4, 0);
	int avail = 0;
	ioctl(sv[1], FIONREAD, &avail);
	printf("FIONREAD: %d\n", avail);
	char buf[64] = {0};
	printf("MSG_PEEK: %s", res(recv(sv[1], buf, 5, MSG_PEEK)));
	printf(" '%.5s'\n", buf);
	memset(buf, 0, sizeof buf);
	printf("recv joins the sends: %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(" '%s'\n", buf);
	printf("MSG_DONTWAIT on empty: %s\n", res(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT)));
	printf("read/write: %s", res(write(sv[1], "xy", 2)));
	printf(" %s\n", res(read(sv[0], buf, sizeof buf)));
	pid_t c = fork();
	if (c == 0) {
		for (int i = 0; i < 4; i++) {
			usleep(10000);
			send(sv[1], "12345", 5, 0);
		}
		_exit(0);
	}
	printf("MSG_WAITALL of 20 from 4 sends: %s\n", res(recv(sv[0], buf, 20, MSG_WAITALL)));
	waitpid(c, NULL, 0);
	printf("shutdown(SHUT_WR): %s\n", res(shutdown(sv[1], SHUT_WR)));
	printf("peer reads EOF: %s\n", res(recv(sv[0], buf, sizeof buf, 0)));
	printf("send after SHUT_WR with MSG_NOSIGNAL: %s", res(send(sv[1], "z", 1, MSG_NOSIGNAL)));
	printf(", SIGPIPEs %d\n", (int)sigpipes);
	printf("send after SHUT_WR: %s", res(send(sv[1], "z", 1, 0)));
	printf(", SIGPIPEs %d\n", (int)sigpipes);
	printf("the other way still works: %s\n", res(send(sv[0], "back", 4, 0)));
	printf("recv it: %s\n", res(recv(sv[1], buf, sizeof buf, 0)));
	printf("shutdown(7): %s\n", res(shutdown(sv[0], 7)));
	close(sv[0]);
	close(sv[1]);

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	send(sv[1], "unread", 6, 0);
	close(sv[0]);
	printf("after the peer closed with unread data: %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(", then %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(", write %s", res(write(sv[1], "q", 1)));
	printf(", SIGPIPEs %d\n", (int)sigpipes);
	close(sv[1]);
}

/* mmsg_set points each of the n messages at its own buffer: words[i] to send,
 * or bufs[i] to receive into. */
static void mmsg_set(struct mmsghdr *mm, struct iovec *iov, int n, const char **words, char (*bufs)[16])
{
	memset(mm, 0, n * sizeof *mm);
	for (int i = 0; i < n; i++) {
		iov[i] = words ? (struct iovec){(void *)words[i], strlen(words[i])} : (struct iovec){bufs[i], sizeof bufs[i]};
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
}

/* mmsg: sendmmsg and recvmmsg on a datagram pair: each msg_len,
 * MSG_WAITFORONE, a zero timeout, an empty queue. */
static void mmsg(int sv[2])
{
	struct mmsghdr mm[5];
	struct iovec iov[5];
	char bufs[5][16];
	const char *words[] = {"one", "three", "fifteen"};
	mmsg_set(mm, iov, 3, words, NULL);
	printf("sendmmsg of 3: %s", res(sendmmsg(sv[0], mm, 3, 0)));
	printf(", msg_len %u %u %u\n", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
	mmsg_set(mm, iov, 5, NULL, bufs);
	printf("recvmmsg of 5 with MSG_WAITFORONE: %s", res(recvmmsg(sv[1], mm, 5, MSG_WAITFORONE, NULL)));
	printf(", msg_len %u %u %u, '%.7s'\n", mm[0].msg_len, mm[1].msg_len, mm[2].msg_len, bufs[2]);
	mmsg_set(mm, iov, 3, words, NULL);
	sendmmsg(sv[0], mm, 3, 0);
	mmsg_set(mm, iov, 5, NULL, bufs);
	struct timespec zero = {0, 0};
	printf("recvmmsg with a zero timeout: %s", res(recvmmsg(sv[1], mm, 5, 0, &zero)));
	printf(", then with MSG_DONTWAIT: %s", res(recvmmsg(sv[1], mm, 5, MSG_DONTWAIT, NULL)));
	printf(", on empty: %s\n", res(recvmmsg(sv[1], mm, 5, MSG_DONTWAIT, NULL)));
}

static void dgram_pairs(void)
{
	int sv[2];
	printf("socketpair dgram: %s\n", res(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)));
	send(sv[0], "first", 5, 0);
	send(sv[0], "second!", 7, 0);
	send(sv[0], "", 0, 0);
	int avail = 0;
	ioctl(sv[1], FIONREAD, &avail);
	printf("FIONREAD is the first datagram: %d\n", avail);
	char buf[64] = {0};
	printf("boundaries: %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(" %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(" %s\n", res(recv(sv[1], buf, sizeof buf, 0)));
	send(sv[0], "0123456789", 10, 0);
	printf("MSG_TRUNC returns the full length: %s\n", res(recv(sv[1], buf, 4, MSG_TRUNC)));
	send(sv[0], "0123456789", 10, 0);
	struct iovec iov = {buf, 4};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	mh.msg_namelen = 77;
	printf("recvmsg of 4: %s", res(recvmsg(sv[1], &mh, 0)));
	printf(", msg_namelen without msg_name kept: %s", yesno(mh.msg_namelen == 77));
	printf(", MSG_TRUNC in msg_flags: %s\n", yesno(mh.msg_flags & MSG_TRUNC));
	mmsg(sv);
	static char big[300000];
	printf("a datagram larger than SO_SNDBUF: %s\n", res(send(sv[0], big, sizeof big, 0)));
	int n = 0;
	while (send(sv[0], "x", 1, MSG_DONTWAIT) == 1)
		n++;
	printf("dgram fills up: EAGAIN %s, more than 10 queued: %s\n", yesno(errno == EAGAIN), yesno(n > 10));
	close(sv[0]);
	close(sv[1]);

	printf("socketpair seqpacket: %s\n", res(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)));
	printf("FD_CLOEXEC: %s\n", yesno(fcntl(sv[0], F_GETFD) & FD_CLOEXEC));
	send(sv[0], "rec1", 4, 0);
	send(sv[0], "record2", 7, 0);
	printf("records: %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(" %s\n", res(recv(sv[1], buf, 3, 0)));
	printf("the rest of a cut record is gone: %s\n", res(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT)));
	close(sv[0]);
	printf("after the peer closed: recv %s", res(recv(sv[1], buf, sizeof buf, 0)));
	printf(", send %s", res(send(sv[1], "x", 1, 0)));
	printf(", SIGPIPEs %d\n", (int)sigpipes);
	close(sv[1]);
}

static void stream_server(void)
{
	struct sockaddr_un a, got;
	socklen_t alen = abstract_addr(&a, "stream"), glen;
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	int c0 = socket(AF_UNIX, SOCK_STREAM, 0);
	printf("connect before bind: %s\n", res(connect(c0, (struct sockaddr *)&a, alen)));
	printf("listen unbound: %s\n", res(listen(l, 5)));
	printf("bind: %s\n", res(bind(l, (struct sockaddr *)&a, alen)));
	printf("bind again: %s\n", res(bind(l, (struct sockaddr *)&a, alen)));
	int other = socket(AF_UNIX, SOCK_STREAM, 0);
	printf("bind a name in use: %s\n", res(bind(other, (struct sockaddr *)&a, alen)));
	close(other);
	printf("connect before listen: %s\n", res(connect(c0, (struct sockaddr *)&a, alen)));
	printf("listen: %s\n", res(listen(l, 1)));
	glen = sizeof got;
	getsockname(l, (struct sockaddr *)&got, &glen);
	printf("getsockname: length matches: %s, name matches: %s\n", yesno(glen == alen), yesno(memcmp(&got, &a, alen) == 0));
	int v = 0;
	socklen_t vl = sizeof v;
	getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);
	printf("SO_ACCEPTCONN: %d\n", v);
	printf("accept4 bad flags: %s\n", res(syscall(SYS_accept4, l, NULL, NULL, 0x1000)));
	int nb = fcntl(l, F_GETFL);
	fcntl(l, F_SETFL, nb | O_NONBLOCK);
	printf("accept with none pending: %s\n", res(accept(l, NULL, NULL)));
	fcntl(l, F_SETFL, nb);
	struct pollfd pfd = {l, POLLIN | POLLOUT, 0};
	int pn = poll(&pfd, 1, 0);
	printf("listener poll before a connection: %d revents %#x\n", pn, pfd.revents);

	/* Two connections queue (backlog 1 allows 2); the third waits. */
	int q1 = socket(AF_UNIX, SOCK_STREAM, 0), q2 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int q3 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	printf("queued connects: %s", res(connect(q1, (struct sockaddr *)&a, alen)));
	printf(" %s", res(connect(q2, (struct sockaddr *)&a, alen)));
	printf(", a third non-blocking: %s\n", res(connect(q3, (struct sockaddr *)&a, alen)));
	printf("send before accept: %s\n", res(send(q1, "early", 5, 0)));
	pfd.revents = 0;
	pn = poll(&pfd, 1, 0);
	printf("listener poll with pending: %d revents %#x\n", pn, pfd.revents);
	int s1 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	printf("connect again: %s\n", res(connect(q1, (struct sockaddr *)&a, alen)));
	char buf[64] = {0};
	printf("accepted, data sent before accept: %s\n", res(recv(s1, buf, sizeof buf, 0)));
	glen = sizeof got;
	printf("getpeername of an unbound client: %s", res(getpeername(s1, (struct sockaddr *)&got, &glen)));
	printf(" length %d\n", (int)glen);
	glen = sizeof got;
	getsockname(s1, (struct sockaddr *)&got, &glen);
	printf("accepted socket's name is the listener's: %s\n", yesno(glen == alen && memcmp(&got, &a, alen) == 0));
	glen = sizeof got;
	getpeername(q1, (struct sockaddr *)&got, &glen);
	printf("client's peer name is the listener's: %s\n", yesno(glen == alen && memcmp(&got, &a, alen) == 0));
	int s2 = accept(l, NULL, NULL);
	close(s1);
	close(s2);
	close(q1);
	close(q2);
	close(q3);

	/* A client in another process; SO_PEERCRED both ways. */
	int ready[2];
	pipe(ready);
	pid_t child = fork();
	if (child == 0) {
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un me;
		socklen_t mlen = abstract_addr(&me, "client");
		(void)mlen;
		snprintf(me.sun_path + 1, sizeof me.sun_path - 1, "snap-unixsock-%d-client", (int)getppid());
		bind(c, (struct sockaddr *)&me, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(me.sun_path + 1));
		if (connect(c, (struct sockaddr *)&a, alen) != 0)
			_exit(1);
		struct ucred uc;
		socklen_t ul = sizeof uc;
		getsockopt(c, SOL_SOCKET, SO_PEERCRED, &uc, &ul);
		char m[64];
		int k = snprintf(m, sizeof m, "peer is my parent: %s", yesno(uc.pid == getppid()));
		send(c, m, k, 0);
		char r[64] = {0};
		recv(c, r, sizeof r, 0);
		_exit(strcmp(r, "bye") == 0 ? 0 : 2);
	}
	int s = accept(l, (struct sockaddr *)&got, (glen = sizeof got, &glen));
	printf("accept gives the client's bound name: %s\n", yesno(glen > 3 && strstr(got.sun_path + 1, "-client") != NULL));
	struct ucred uc;
	socklen_t ul = sizeof uc;
	getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &ul);
	printf("SO_PEERCRED of the accepted socket: pid is the child: %s, uid: %s, gid: %s\n", yesno(uc.pid == child),
	       yesno(uc.uid == geteuid()), yesno(uc.gid == getegid()));
	memset(buf, 0, sizeof buf);
	recv(s, buf, sizeof buf, 0);
	printf("child says: %s\n", buf);
	send(s, "bye", 3, 0);
	int st;
	waitpid(child, &st, 0);
	printf("child exit: %d\n", WEXITSTATUS(st));
	close(s);
	close(l);
	printf("connect after the listener closed: %s\n", res(connect(c0, (struct sockaddr *)&a, alen)));
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(l, (struct sockaddr *)&a, alen);
	listen(l, 1);
	printf("rebind after close: ok; connect a dgram socket to it: %s\n", res(connect(d, (struct sockaddr *)&a, alen)));
	close(d);
	close(l);
	close(c0);
}

static void dgram_server(void)
{
	struct sockaddr_un a, from;
	socklen_t alen = abstract_addr(&a, "dgram"), flen;
	int srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	bind(srv, (struct sockaddr *)&a, alen);
	int c = socket(AF_UNIX, SOCK_DGRAM, 0);
	printf("send unconnected without address: %s\n", res(send(c, "x", 1, 0)));
	printf("sendto: %s\n", res(sendto(c, "anon", 4, 0, (struct sockaddr *)&a, alen)));
	char buf[64];
	flen = sizeof from;
	printf("recvfrom an unbound sender: %s", res(recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen)));
	printf(", address length %d\n", (int)flen);
	struct sockaddr_un autob = {.sun_family = AF_UNIX};
	printf("autobind: %s", res(bind(c, (struct sockaddr *)&autob, sizeof(sa_family_t))));
	flen = sizeof from;
	getsockname(c, (struct sockaddr *)&from, &flen);
	printf(", name length %d, abstract: %s\n", (int)flen, yesno(from.sun_path[0] == 0));
	struct sockaddr_un cname = from;
	socklen_t clen = flen;
	sendto(c, "named", 5, 0, (struct sockaddr *)&a, alen);
	flen = sizeof from;
	recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
	printf("recvfrom gives the sender's name: %s\n", yesno(flen == clen && memcmp(&from, &cname, clen) == 0));
	printf("reply to it: %s\n", res(sendto(srv, "reply", 5, 0, (struct sockaddr *)&from, flen)));
	printf("recv reply: %s\n", res(recv(c, buf, sizeof buf, 0)));
	printf("connect dgram: %s\n", res(connect(c, (struct sockaddr *)&a, alen)));
	printf("send connected: %s\n", res(send(c, "conn", 4, 0)));
	int third = socket(AF_UNIX, SOCK_DGRAM, 0);
	connect(srv, (struct sockaddr *)&cname, clen);
	printf("a third socket sending to a socket connected elsewhere: %s\n", res(sendto(third, "x", 1, 0, (struct sockaddr *)&a, alen)));
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	printf("disconnect with AF_UNSPEC: %s\n", res(connect(srv, &unspec, sizeof unspec)));
	printf("then it may: %s\n", res(sendto(third, "x", 1, 0, (struct sockaddr *)&a, alen)));
	struct sockaddr_un nobody;
	socklen_t nlen = abstract_addr(&nobody, "nobody");
	printf("sendto an unbound name: %s\n", res(sendto(third, "x", 1, 0, (struct sockaddr *)&nobody, nlen)));
	struct sockaddr_un p = {.sun_family = AF_UNIX};
	strcpy(p.sun_path, "/nonexistent-dir/sock");
	printf("connect to a missing path: %s\n", res(connect(third, (struct sockaddr *)&p, sizeof p)));
	printf("bind under a missing directory: %s\n", res(bind(third, (struct sockaddr *)&p, sizeof p)));
	strcpy(p.sun_path, "/tmp");
	printf("bind to an existing path: %s\n", res(bind(third, (struct sockaddr *)&p, sizeof p)));
	printf("connect to a path that is no socket: %s\n", res(connect(third, (struct sockaddr *)&p, sizeof p)));
	int st = socket(AF_UNIX, SOCK_STREAM, 0);
	printf("stream connect to a dgram name: %s\n", res(connect(st, (struct sockaddr *)&a, alen)));
	printf("stream send unconnected: %s, recv: %s\n", res(send(st, "x", 1, MSG_NOSIGNAL)), res(recv(st, buf, 1, MSG_DONTWAIT)));
	printf("listen on dgram: %s, accept on dgram: %s\n", res(listen(srv, 1)), res(accept(srv, NULL, NULL)));
	printf("getpeername unconnected: %s\n", res(getpeername(third, (struct sockaddr *)&from, (flen = sizeof from, &flen))));
	close(st);
	close(third);
	close(c);
	close(srv);
}

static int send_fds(int s, const int *fds, int n, const char *data)
{
	char ctl[CMSG_SPACE(sizeof(int) * 4)];
	memset(ctl, 0, sizeof ctl);
	struct iovec iov = {(void *)data, strlen(data)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	return sendmsg(s, &mh, 0);
}

static int recv_fds(int s, int *fds, int max, char *data, size_t dlen, int *flags, size_t ctlroom)
{
	char ctl[CMSG_SPACE(sizeof(int) * 8)];
	struct iovec iov = {data, dlen};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = ctlroom};
	int r = recvmsg(s, &mh, 0);
	if (r < 0)
		return -1;
	*flags = mh.msg_flags;
	int n = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n < max; i++)
				memcpy(&fds[n++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	return n;
}

static void rights(const char *self)
{
	int sv[2], p[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pipe(p);
	int file = open(self, O_RDONLY);
	pid_t c = fork();
	if (c == 0) {
		close(sv[0]);
		close(p[0]);
		close(p[1]);
		close(file);
		int fds[4], flags;
		char d[16] = {0};
		int n = recv_fds(sv[1], fds, 4, d, sizeof d, &flags, CMSG_SPACE(sizeof(int) * 8));
		char magic[4] = {0};
		pread(fds[1], magic, 4, 0);
		char m[64];
		int k = snprintf(m, sizeof m, "child got %d fds with '%s', file is ELF: %s\n", n, d, yesno(memcmp(magic, "\177ELF", 4) == 0));
		write(fds[0], m, k);
		_exit(0);
	}
	close(sv[1]);
	int fds[2] = {p[1], file};
	printf("sendmsg SCM_RIGHTS (pipe end, file): %s\n", res(send_fds(sv[0], fds, 2, "hi")));
	close(p[1]);
	close(file);
	char buf[128] = {0};
	int r = read(p[0], buf, sizeof buf - 1);
	printf("%s", r > 0 ? buf : "nothing from the child\n");
	printf("pipe EOF once the child's copy is gone: %s\n", res(read(p[0], buf, sizeof buf)));
	waitpid(c, NULL, 0);
	close(p[0]);
	close(sv[0]);

	/* Files in flight are closed when the queue holding them goes. */
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	pipe(p);
	send_fds(sv[0], &p[1], 1, "inflight");
	close(p[1]);
	struct pollfd pfd = {p[0], POLLIN, 0};
	printf("pipe writer in flight: reader sees no hangup: %s\n", yesno(poll(&pfd, 1, 0) == 0));
	close(sv[1]);
	pfd.revents = 0;
	poll(&pfd, 1, 0);
	printf("queue dropped: POLLHUP: %s\n", yesno(pfd.revents & POLLHUP));
	close(sv[0]);
	close(p[0]);

	/* Too small a control buffer: MSG_CTRUNC, and the extra files closed. */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pipe(p);
	int three[3] = {p[1], p[1], p[1]};
	send_fds(sv[0], three, 3, "x");
	close(p[1]);
	int got[4], flags = 0;
	char d[8];
	int n = recv_fds(sv[1], got, 4, d, sizeof d, &flags, CMSG_LEN(sizeof(int)));
	printf("control room for one fd: got %d, MSG_CTRUNC: %s\n", n, yesno(flags & MSG_CTRUNC));
	for (int i = 0; i < n; i++)
		close(got[i]);
	pfd.fd = p[0];
	pfd.revents = 0;
	poll(&pfd, 1, 0);
	printf("the others were closed: POLLHUP: %s\n", yesno(pfd.revents & POLLHUP));
	close(p[0]);
	int bad = 999;
	printf("SCM_RIGHTS with a bad fd: %s\n", res(send_fds(sv[0], &bad, 1, "x")));

	/* A stream read stops after the data that carried files. */
	pipe(p);
	send(sv[0], "ab", 2, 0);
	send_fds(sv[0], &p[0], 1, "cd");
	send(sv[0], "ef", 2, 0);
	char s6[8] = {0};
	n = recv_fds(sv[1], got, 4, s6, sizeof s6, &flags, CMSG_SPACE(sizeof(int) * 8));
	printf("stream read with files: '%s', %d fd\n", s6, n);
	for (int i = 0; i < n; i++)
		close(got[i]);
	memset(s6, 0, sizeof s6);
	recv(sv[1], s6, sizeof s6, 0);
	printf("then: '%s'\n", s6);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void creds(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	struct ucred uc;
	socklen_t ul = sizeof uc;
	getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &uc, &ul);
	printf("socketpair SO_PEERCRED: pid self: %s, uid: %s, len %d\n", yesno(uc.pid == getpid()), yesno(uc.uid == geteuid()), (int)ul);
	int one = 1;
	printf("SO_PASSCRED: %s\n", res(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one)));
	send(sv[0], "c", 1, 0);
	char ctl[CMSG_SPACE(sizeof(struct ucred))], d[8];
	struct iovec iov = {d, sizeof d};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	recvmsg(sv[1], &mh, 0);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_type == SCM_CREDENTIALS) {
		memcpy(&uc, CMSG_DATA(cm), sizeof uc);
		printf("SCM_CREDENTIALS attached: pid self: %s, uid: %s, gid: %s\n", yesno(uc.pid == getpid()), yesno(uc.uid == getuid()), yesno(uc.gid == getgid()));
	} else {
		printf("no SCM_CREDENTIALS\n");
	}
	/* Explicit credentials: our own, then a pid that is not ours. */
	for (int k = 0; k < 2; k++) {
		char sctl[CMSG_SPACE(sizeof(struct ucred))];
		memset(sctl, 0, sizeof sctl);
		struct ucred mine = {getpid() + k * 100000, getuid(), getgid()};
		struct iovec siov = {"e", 1};
		struct msghdr sm = {.msg_iov = &siov, .msg_iovlen = 1, .msg_control = sctl, .msg_controllen = sizeof sctl};
		struct cmsghdr *c = CMSG_FIRSTHDR(&sm);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof mine);
		memcpy(CMSG_DATA(c), &mine, sizeof mine);
		printf("sendmsg with %s pid: %s\n", k ? "another" : "our", res(sendmsg(sv[0], &sm, 0)));
	}
	mh.msg_controllen = sizeof ctl;
	recvmsg(sv[1], &mh, 0);
	cm = CMSG_FIRSTHDR(&mh);
	printf("explicit credentials received: %s\n", yesno(cm && cm->cmsg_type == SCM_CREDENTIALS));
	close(sv[0]);
	close(sv[1]);
}

static void options(void)
{
	int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	int v;
	socklen_t l;
	static const struct { int opt; const char *name; } opts[] = {
		{SO_TYPE, "SO_TYPE"}, {SO_DOMAIN, "SO_DOMAIN"}, {SO_PROTOCOL, "SO_PROTOCOL"}, {SO_ERROR, "SO_ERROR"},
		{SO_PASSCRED, "SO_PASSCRED"}, {SO_ACCEPTCONN, "SO_ACCEPTCONN"}, {SO_REUSEADDR, "SO_REUSEADDR"},
	};
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		v = -1;
		l = sizeof v;
		int r = getsockopt(s, SOL_SOCKET, opts[i].opt, &v, &l);
		printf("%s: %s value %d len %d\n", opts[i].name, res(r), v, (int)l);
	}
	l = sizeof v;
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &l);
	int def = v;
	v = 65536;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &l);
	printf("SO_SNDBUF default is wmem_default: %s; set 65536 gives %d\n", yesno(def == 212992), v);
	v = 1;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &l);
	printf("SO_RCVBUF set 1 gives %d\n", v);
	printf("setsockopt short value: %s\n", res(setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, 2)));
	char small[2];
	l = sizeof small;
	printf("getsockopt short buffer: %s", res(getsockopt(s, SOL_SOCKET, SO_TYPE, small, &l)));
	printf(", len %d\n", (int)l);
	printf("unknown option: %s\n", res(getsockopt(s, SOL_SOCKET, 9999, &v, (l = sizeof v, &l))));
	close(s);
	int tp[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, tp);
	struct timeval tv = {0, 50000}, back = {9, 9};
	printf("SO_RCVTIMEO 50 ms: %s", res(setsockopt(tp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)));
	char tb[1];
	printf(", recv on empty: %s", res(recv(tp[0], tb, 1, 0)));
	l = sizeof back;
	getsockopt(tp[0], SOL_SOCKET, SO_RCVTIMEO, &back, &l);
	printf(", read back about 50 ms: %s\n", yesno(l == sizeof back && back.tv_sec == 0 && back.tv_usec >= 50000 && back.tv_usec < 60000));
	tv.tv_usec = 30000;
	setsockopt(tp[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	static char fill[65536];
	ssize_t w;
	while ((w = send(tp[0], fill, sizeof fill, 0)) > 0)
		;
	printf("SO_SNDTIMEO 30 ms on a full socket: %s\n", res(w));
	tv.tv_usec = 2000000;
	printf("SO_RCVTIMEO with 2000000 us: %s", res(setsockopt(tp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)));
	printf(", short: %s\n", res(setsockopt(tp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, 8)));
	struct timeval zero = {0, 0};
	setsockopt(tp[0], SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof zero);
	l = sizeof back;
	getsockopt(tp[0], SOL_SOCKET, SO_RCVTIMEO, &back, &l);
	printf("SO_RCVTIMEO cleared: %s\n", yesno(back.tv_sec == 0 && back.tv_usec == 0));
	close(tp[0]);
	close(tp[1]);
	printf("family 123: %s\n", res(socket(123, SOCK_STREAM, 0)));
	printf("socketpair family 123: %s\n", res(socketpair(123, SOCK_STREAM, 0, (int[2]){0, 0})));
	printf("bad type flag: %s\n", res(socket(AF_UNIX, SOCK_STREAM | 0x100, 0)));
	printf("unknown type: %s\n", res(socket(AF_UNIX, 4, 0)));
	printf("type 0: %s, type 11: %s\n", res(socket(AF_UNIX, 0, 0)), res(socket(AF_UNIX, 11, 0)));
	printf("protocol 7: %s\n", res(socket(AF_UNIX, SOCK_STREAM, 7)));
	int raw = socket(AF_UNIX, SOCK_RAW, 0);
	l = sizeof v;
	getsockopt(raw, SOL_SOCKET, SO_TYPE, &v, &l);
	printf("SOCK_RAW is a datagram socket: %s\n", yesno(v == SOCK_DGRAM));
	close(raw);
	printf("a pipe is no socket: %s\n", res(getsockopt(0, SOL_SOCKET, SO_TYPE, &v, &l)));
}

static void readiness(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
	struct pollfd p[2] = {{sv[0], POLLIN | POLLOUT | POLLRDHUP, 0}, {sv[1], POLLIN | POLLOUT | POLLRDHUP, 0}};
	int pn = poll(p, 2, 0);
	printf("poll idle pair: %d, revents %#x %#x\n", pn, p[0].revents, p[1].revents);
	send(sv[0], "r", 1, 0);
	pn = poll(p, 2, 0);
	printf("poll after a send: %d, revents %#x %#x\n", pn, p[0].revents, p[1].revents);
	shutdown(sv[0], SHUT_WR);
	pn = poll(p, 2, 0);
	printf("poll after SHUT_WR: %d, revents %#x %#x\n", pn, p[0].revents, p[1].revents);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = 5};
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
	struct epoll_event out[2];
	int n = epoll_wait(ep, out, 2, 0);
	printf("epoll: %d, data %u, events %#x\n", n, out[0].data.u32, out[0].events);
	close(sv[0]);
	n = epoll_wait(ep, out, 2, 0);
	printf("epoll after the peer closed: %d, events %#x\n", n, out[0].events);
	close(ep);
	close(sv[1]);

	int u = socket(AF_UNIX, SOCK_STREAM, 0);
	struct pollfd up = {u, POLLIN | POLLOUT, 0};
	printf("unconnected stream poll: revents %#x\n", poll(&up, 1, 0) >= 0 ? up.revents : -1);
	close(u);
	u = socket(AF_UNIX, SOCK_DGRAM, 0);
	up.fd = u;
	printf("unconnected dgram poll: revents %#x\n", poll(&up, 1, 0) >= 0 ? up.revents : -1);
	close(u);

	/* Non-blocking fill: EAGAIN, not writable; drained: writable again. */
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	static char chunk[4096];
	long total = 0;
	ssize_t r;
	while ((r = write(sv[0], chunk, sizeof chunk)) > 0)
		total += r;
	printf("filled: EAGAIN: %s, more than 64 KiB: %s\n", yesno(r < 0 && errno == EAGAIN), yesno(total > 65536));
	struct pollfd wp = {sv[0], POLLOUT, 0};
	printf("full: poll POLLOUT: %d\n", poll(&wp, 1, 0));
	/* A blocked reader elsewhere, woken by the writer: a forked child drains. */
	pid_t c = fork();
	if (c == 0) {
		static char sink[1 << 16];
		long got = 0;
		while (got < total) {
			ssize_t k = read(sv[1], sink, sizeof sink);
			if (k <= 0)
				_exit(1);
			got += k;
		}
		_exit(0);
	}
	wp.revents = 0;
	int wn = poll(&wp, 1, -1);
	printf("poll waits until the child drains: %d, POLLOUT: %s\n", wn, yesno(wp.revents & POLLOUT));
	int st;
	waitpid(c, &st, 0);
	printf("child drained everything: %s\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	close(sv[0]);
	close(sv[1]);
}

static void interrupted(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	struct sigaction sa = {.sa_handler = on_alarm};
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 0}, {0, 50000}};
	setitimer(ITIMER_REAL, &it, NULL);
	char b;
	printf("recv interrupted by a signal without SA_RESTART: %s", res(recv(sv[0], &b, 1, 0)));
	printf(", alarms %d\n", (int)alarms);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	pid_t c = fork();
	if (c == 0) {
		usleep(150000);
		write(sv[1], "k", 1);
		_exit(0);
	}
	setitimer(ITIMER_REAL, &it, NULL);
	printf("with SA_RESTART the recv goes on: %s", res(recv(sv[0], &b, 1, 0)));
	printf(", alarms %d\n", (int)alarms);
	waitpid(c, NULL, 0);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a;
	socklen_t alen = abstract_addr(&a, "intr");
	bind(l, (struct sockaddr *)&a, alen);
	listen(l, 1);
	sa.sa_flags = 0;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	printf("accept interrupted: %s\n", res(accept(l, NULL, NULL)));
	close(l);
	close(sv[0]);
	close(sv[1]);
}

int main(int argc, char **argv)
{
	(void)argc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa = {.sa_handler = on_sigpipe};
	sigaction(SIGPIPE, &sa, NULL);
	stream_pair();
	dgram_pairs();
	stream_server();
	dgram_server();
	rights(argv[0]);
	creds();
	options();
	readiness();
	interrupted();
	printf("done\n");
	return 0;
}
