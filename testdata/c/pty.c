/*
 * pty: pseudo-terminals. posix_openpt/grantpt/unlockpt/ptsname and the
 * ioctls behind them (TIOCGPTN, TIOCSPTLCK, TIOCGPTPEER); openpty; the
 * line discipline in canonical mode (VERASE, VKILL, VEOF, echo seen on the
 * master, ICRNL, ONLCR) and in non-canonical mode (VMIN/VTIME); FIONREAD
 * and poll on both sides; window size. Then a forked child becomes a
 * session leader with the slave as its controlling terminal (login_tty):
 * TIOCSWINSZ gives it SIGWINCH, ^C SIGINT, ^Z SIGTSTP, ^\ SIGQUIT; a
 * process of a background group that reads the terminal is stopped by
 * SIGTTIN and one that sets its attributes by SIGTTOU; setsid loses the
 * controlling terminal; closing the master hangs it up (SIGHUP to the
 * session leader, reads of the slave end).
 *
 * pty hold: the checkpoint workload. A pty pair holds a line queued each
 * way, changed termios, a window size and a foreground group of a child
 * whose controlling terminal it is; the program prints "queued", waits,
 * then checks that all of it is still there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <utmp.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EIO: return "EIO";
	case EAGAIN: return "EAGAIN";
	case ENXIO: return "ENXIO";
	case ENOTTY: return "ENOTTY";
	case EINVAL: return "EINVAL";
	case EPERM: return "EPERM";
	case EINTR: return "EINTR";
	default: return strerror(e);
	}
}

/* escaped returns buf[0:n] with control bytes as \r, \n, \b or \xNN. */
static const char *escaped(const char *buf, ssize_t n)
{
	static char out[1024];
	size_t o = 0;
	if (n < 0)
		return "(error)";
	for (ssize_t i = 0; i < n && o < sizeof out - 5; i++) {
		unsigned char c = buf[i];
		if (c == '\r')
			o += sprintf(out + o, "\\r");
		else if (c == '\n')
			o += sprintf(out + o, "\\n");
		else if (c == '\b')
			o += sprintf(out + o, "\\b");
		else if (c < 32 || c >= 127)
			o += sprintf(out + o, "\\x%02x", c);
		else
			out[o++] = c;
	}
	out[o] = 0;
	return out;
}

/* drain reads what fd holds now (non-blocking poll first). */
static ssize_t drain(int fd, char *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	while (got < len && poll(&p, 1, got ? 50 : 1000) == 1 && (p.revents & POLLIN)) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

static void put(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		printf("write %s failed: %s\n", escaped(s, strlen(s)), strerror(errno));
}

/* readable waits a little for input: Linux passes bytes between the two
 * sides of a pair asynchronously. */
static int readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 200) == 1 && (p.revents & POLLIN);
}

static void openpt(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	printf("posix_openpt: %s\n", yesno(m >= 0));
	char *name = ptsname(m);
	printf("ptsname under /dev/pts/: %s\n", yesno(name && strncmp(name, "/dev/pts/", 9) == 0));
	unsigned n = 12345;
	int r = ioctl(m, TIOCGPTN, &n);
	char want[64];
	snprintf(want, sizeof want, "/dev/pts/%u", n);
	printf("TIOCGPTN: %d, matches ptsname: %s\n", r, yesno(name && strcmp(name, want) == 0));
	errno = 0;
	int s = open(want, O_RDWR | O_NOCTTY);
	printf("open before unlockpt: %d %s\n", s < 0 ? -1 : 0, errname(errno));
	if (s >= 0)
		close(s);
	int lock = -1;
	ioctl(m, TIOCGPTLCK, &lock);
	printf("grantpt: %d, TIOCGPTLCK: %d\n", grantpt(m), lock);
	printf("unlockpt: %d\n", unlockpt(m));
	ioctl(m, TIOCGPTLCK, &lock);
	s = open(want, O_RDWR | O_NOCTTY);
	struct stat ss, ns, ps, ms;
	int p = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	fstat(s, &ss);
	stat(want, &ns);
	fstat(p, &ps);
	fstat(m, &ms);
	printf("after: TIOCGPTLCK %d, open %s, TIOCGPTPEER %s\n", lock, yesno(s >= 0), yesno(p >= 0));
	printf("slave: chr %s, same as the name %s, as the peer %s; master chr %s, major 5 %s\n",
	       yesno(S_ISCHR(ss.st_mode)),
	       yesno(ss.st_rdev == ns.st_rdev && ss.st_ino == ns.st_ino && ss.st_dev == ns.st_dev),
	       yesno(ps.st_rdev == ss.st_rdev), yesno(S_ISCHR(ms.st_mode)), yesno(major(ms.st_rdev) == 5));
	printf("isatty: master %d, slave %d; ttyname is ptsname: %s\n", isatty(m), isatty(s),
	       yesno(ttyname(s) && strcmp(ttyname(s), want) == 0));
	close(p);
	close(s);
	close(m);
}

static void canonical(int m, int s)
{
	char buf[512];
	struct termios t;
	tcgetattr(s, &t);
	printf("defaults: ICANON %s ECHO %s ECHOE %s ISIG %s ICRNL %s OPOST %s ONLCR %s VMIN %d VERASE %#x VKILL %#x VEOF %#x\n",
	       yesno(t.c_lflag & ICANON), yesno(t.c_lflag & ECHO), yesno(t.c_lflag & ECHOE),
	       yesno(t.c_lflag & ISIG), yesno(t.c_iflag & ICRNL), yesno(t.c_oflag & OPOST),
	       yesno(t.c_oflag & ONLCR), t.c_cc[VMIN], t.c_cc[VERASE], t.c_cc[VKILL], t.c_cc[VEOF]);

	put(m, "abc\x7f");
	printf("partial line: slave readable %s\n", yesno(readable(s)));
	put(m, "d\r");
	printf("after CR: slave readable %s\n", yesno(readable(s)));
	ssize_t r = read(s, buf, sizeof buf);
	printf("slave read: %s\n", escaped(buf, r));
	r = drain(m, buf, sizeof buf);
	printf("echo: %s\n", escaped(buf, r));

	put(m, "xyz\x15ok\n");
	r = read(s, buf, sizeof buf);
	printf("after VKILL slave read: %s\n", escaped(buf, r));
	r = drain(m, buf, sizeof buf);
	printf("echo: %s\n", escaped(buf, r));

	put(m, "one\ntwo\n");
	r = read(s, buf, 2);
	printf("read 2 of a line: %s", escaped(buf, r));
	r = read(s, buf, sizeof buf);
	printf(", then %s", escaped(buf, r));
	r = read(s, buf, sizeof buf);
	printf(", then %s\n", escaped(buf, r));
	drain(m, buf, sizeof buf);

	put(m, "ab\x04");
	r = read(s, buf, sizeof buf);
	printf("VEOF after ab: %s", escaped(buf, r));
	put(m, "\x04");
	r = read(s, buf, sizeof buf);
	printf(", VEOF alone: %zd\n", r);
	r = drain(m, buf, sizeof buf);
	printf("echo: %s\n", escaped(buf, r));

	put(s, "out\nput\n");
	int n = -1;
	readable(m);
	ioctl(m, FIONREAD, &n);
	r = drain(m, buf, sizeof buf);
	printf("slave wrote out\\nput\\n: master FIONREAD %d, reads %s\n", n, escaped(buf, r));

	t.c_lflag &= ~ECHO;
	tcsetattr(s, TCSANOW, &t);
	put(m, "quiet\n");
	r = read(s, buf, sizeof buf);
	printf("without ECHO: %s, master readable %s\n", escaped(buf, r), yesno(readable(m)));
	t.c_lflag |= ECHO;
	t.c_oflag &= ~OPOST;
	tcsetattr(s, TCSANOW, &t);
	put(s, "raw\n");
	r = drain(m, buf, sizeof buf);
	printf("without OPOST: %s\n", escaped(buf, r));
	t.c_oflag |= OPOST;
	tcsetattr(s, TCSANOW, &t);
}

static void noncanonical(int m, int s)
{
	char buf[64];
	struct termios t, saved;
	tcgetattr(s, &t);
	saved = t;
	t.c_lflag &= ~(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	tcsetattr(s, TCSANOW, &t);
	ssize_t r = read(s, buf, sizeof buf);
	printf("VMIN 0 VTIME 0 on empty: %zd\n", r);
	t.c_cc[VTIME] = 1;
	tcsetattr(s, TCSANOW, &t);
	r = read(s, buf, sizeof buf);
	printf("VMIN 0 VTIME 1 on empty: %zd\n", r);
	t.c_cc[VMIN] = 3;
	t.c_cc[VTIME] = 0;
	tcsetattr(s, TCSANOW, &t);
	put(m, "xy");
	printf("VMIN 3 with 2 queued: readable %s", yesno(readable(s)));
	put(m, "z\r");
	r = read(s, buf, sizeof buf);
	printf(", after 2 more: read %s\n", escaped(buf, r));
	tcsetattr(s, TCSAFLUSH, &saved);
	struct pollfd p[2] = {{.fd = m, .events = POLLIN | POLLOUT}, {.fd = s, .events = POLLIN | POLLOUT}};
	poll(p, 2, 0);
	printf("poll: master %#x, slave %#x\n", p[0].revents, p[1].revents);
}

static void packet(int m, int s)
{
	char buf[64];
	int on = 1, got = -1;
	printf("TIOCPKT: %d", ioctl(m, TIOCPKT, &on));
	ioctl(m, TIOCGPKT, &got);
	printf(", TIOCGPKT %d", got);
	put(s, "p");
	ssize_t r = drain(m, buf, sizeof buf);
	printf(", data %s", escaped(buf, r));
	tcflush(s, TCIFLUSH);
	struct pollfd p = {.fd = m, .events = POLLIN | POLLPRI};
	poll(&p, 1, 1000);
	r = read(m, buf, sizeof buf);
	printf(", after a flush: poll %#x, read %s\n", p.revents, escaped(buf, r));
	on = 0;
	ioctl(m, TIOCPKT, &on);
}

static void winsize(int m, int s)
{
	struct winsize w = {.ws_row = 24, .ws_col = 80}, g = {0};
	printf("TIOCSWINSZ on the master: %d", ioctl(m, TIOCSWINSZ, &w));
	ioctl(s, TIOCGWINSZ, &g);
	printf(", slave sees %dx%d\n", g.ws_row, g.ws_col);
}

static volatile sig_atomic_t got[65];
static void handler(int sig) { got[sig]++; }

/* report writes one line to the parent. */
static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (write(fd, line, n) != n)
		_exit(9);
}

static int waitfor(int sig)
{
	for (int i = 0; i < 200 && !got[sig]; i++)
		usleep(10000);
	return got[sig];
}

/* stopped forks a child of a new background group that runs op on the
 * terminal and tells how it ended: "stopped by SIG" or its result. */
static const char *stopped(int tty, int op, int ignore)
{
	static char out[64];
	pid_t c = fork();
	if (c == 0) {
		setpgid(0, 0);
		signal(SIGTTIN, SIG_DFL);
		signal(SIGTTOU, ignore ? SIG_IGN : SIG_DFL);
		char b[8];
		struct termios t;
		tcgetattr(tty, &t);
		int r = op == 0 ? read(tty, b, 1) : tcsetattr(tty, TCSANOW, &t);
		_exit(r < 0 ? 100 + errno : r);
	}
	int st;
	waitpid(c, &st, WUNTRACED);
	if (WIFSTOPPED(st)) {
		snprintf(out, sizeof out, "stopped by %s", strsignal(WSTOPSIG(st)));
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
	} else {
		snprintf(out, sizeof out, "exited %d", WEXITSTATUS(st));
	}
	return out;
}

/* orphan_read: a process whose group lost its last link to the session
 * (its parent, in another group of it, exited) reads the terminal: EIO,
 * not SIGTTIN, which nobody would follow with SIGCONT. */
static const char *orphan_read(int tty)
{
	static char out[64] = "no answer";
	int p[2], reaped[2];
	if (pipe(p) < 0 || pipe(reaped) < 0)
		return "pipe failed";
	pid_t b = fork();
	if (b == 0) {
		setpgid(0, 0);
		if (fork() == 0) {
			close(p[0]);
			close(reaped[1]);
			/* Until its parent is reaped, not only gone: an exiting
			 * parent still links the group to the session. */
			char x;
			if (read(reaped[0], &x, 1) != 1)
				_exit(1);
			errno = 0;
			ssize_t r = read(tty, &x, 1);
			dprintf(p[1], "read %zd %s", r, errname(errno));
			_exit(0);
		}
		_exit(0);
	}
	close(p[1]);
	close(reaped[0]);
	waitpid(b, NULL, 0);
	if (write(reaped[1], "r", 1) != 1)
		return "write failed";
	close(reaped[1]);
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	if (poll(&pf, 1, 3000) == 1) {
		ssize_t n = read(p[0], out, sizeof out - 1);
		out[n > 0 ? n : 0] = 0;
	}
	close(p[0]);
	return out;
}

static void session_child(int s, int rep)
{
	struct sigaction sa = {.sa_handler = handler};
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && sig != SIGCHLD)
			sigaction(sig, &sa, NULL);
	int before = open("/dev/tty", O_RDWR);
	int e = errno;
	if (login_tty(s) < 0)
		_exit(8);
	report(rep, "child: /dev/tty before login_tty: %d %s; after: sid is pid %s, tcgetpgrp is pgrp %s, tcgetsid %s",
	       before < 0 ? -1 : 0, errname(e), yesno(getsid(0) == getpid()),
	       yesno(tcgetpgrp(0) == getpgrp()), yesno(tcgetsid(0) == getpid()));
	int tty = open("/dev/tty", O_RDWR);
	struct stat a, b;
	fstat(tty, &a);
	fstat(0, &b);
	report(rep, "child: /dev/tty opens: %s, same terminal %s", yesno(tty >= 0), yesno(a.st_rdev == b.st_rdev));
	report(rep, "child: SIGWINCH %s", yesno(waitfor(SIGWINCH)));
	report(rep, "child: SIGINT %s", yesno(waitfor(SIGINT)));
	report(rep, "child: SIGTSTP %s", yesno(waitfor(SIGTSTP)));
	report(rep, "child: SIGQUIT %s", yesno(waitfor(SIGQUIT)));
	report(rep, "child: background read: %s", stopped(0, 0, 0));
	report(rep, "child: background tcsetattr: %s", stopped(0, 1, 0));
	report(rep, "child: background tcsetattr with SIGTTOU ignored: %s", stopped(0, 1, 1));
	report(rep, "child: background read in an orphaned group: %s", orphan_read(0));
	pid_t c = fork();
	if (c == 0) {
		setsid();
		errno = 0;
		int fd = open("/dev/tty", O_RDWR);
		int e = errno;
		pid_t pg = tcgetpgrp(0);
		_exit((fd < 0 && e == ENXIO ? 1 : 0) | (pg < 0 && errno == ENOTTY ? 2 : 0));
	}
	int st;
	waitpid(c, &st, 0);
	report(rep, "child: after setsid /dev/tty ENXIO %s, tcgetpgrp ENOTTY %s",
	       yesno(WEXITSTATUS(st) & 1), yesno(WEXITSTATUS(st) & 2));
	report(rep, "child: ready for hangup");
	int hup = waitfor(SIGHUP);
	char buf[8];
	errno = 0;
	ssize_t r = read(0, buf, sizeof buf);
	int re = errno;
	errno = 0;
	ssize_t w = write(1, "x", 1);
	report(rep, "child: SIGHUP %s, SIGCONT %s; read %zd %s, write %zd %s", yesno(hup), yesno(waitfor(SIGCONT)),
	       r, errname(re), w, errname(errno));
	_exit(0);
}

static void readline(FILE *f)
{
	char line[256];
	if (fgets(line, sizeof line, f))
		fputs(line, stdout);
	else
		printf("child report missing\n");
	fflush(stdout);
}

static void session(void)
{
	int m, s;
	if (openpty(&m, &s, NULL, NULL, NULL) < 0) {
		printf("openpty: %s\n", strerror(errno));
		return;
	}
	int rep[2];
	if (pipe(rep) < 0)
		return;
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		close(m);
		close(rep[0]);
		session_child(s, rep[1]);
	}
	close(s);
	close(rep[1]);
	FILE *f = fdopen(rep[0], "r");
	char buf[256];
	readline(f);
	readline(f);
	struct winsize w = {.ws_row = 50, .ws_col = 132};
	ioctl(m, TIOCSWINSZ, &w);
	readline(f);
	put(m, "\x03");
	readline(f);
	printf("echo of ^C: %s\n", escaped(buf, drain(m, buf, sizeof buf)));
	put(m, "\x1a");
	readline(f);
	put(m, "\x1c");
	readline(f);
	drain(m, buf, sizeof buf);
	readline(f);
	readline(f);
	readline(f);
	readline(f);
	readline(f);
	readline(f);
	close(m);
	readline(f);
	int st;
	waitpid(c, &st, 0);
	printf("session child exited %d\n", WEXITSTATUS(st));
}

static void hold(void)
{
	int m, s;
	struct winsize w = {.ws_row = 33, .ws_col = 99};
	if (openpty(&m, &s, NULL, NULL, &w) < 0) {
		printf("openpty: %s\n", strerror(errno));
		return;
	}
	int rep[2], ready[2];
	if (pipe(rep) < 0 || pipe(ready) < 0)
		return;
	pid_t c = fork();
	if (c == 0) {
		close(m);
		if (login_tty(s) < 0)
			_exit(8);
		/* The terminal is the child's now: tell the parent, which
		 * reports its foreground and session at the end. */
		if (write(ready[1], "r", 1) != 1)
			_exit(6);
		char b;
		if (read(rep[0], &b, 1) != 1)
			_exit(7);
		_exit(0);
	}
	close(rep[0]);
	close(ready[1]);
	char b;
	if (read(ready[0], &b, 1) != 1) {
		printf("child gone before login_tty\n");
		return;
	}
	close(ready[0]);
	struct termios t;
	tcgetattr(m, &t);
	t.c_cc[VERASE] = 'X';
	t.c_lflag &= ~ECHO;
	tcsetattr(m, TCSANOW, &t);
	put(m, "to the slaXve\nhalf");
	put(s, "to the master\n");
	usleep(100000);
	printf("queued\n");
	fflush(stdout);
	usleep(500000);
	char buf[128];
	ssize_t r = read(s, buf, sizeof buf);
	printf("slave reads: %s\n", escaped(buf, r));
	r = drain(m, buf, sizeof buf);
	printf("master reads: %s\n", escaped(buf, r));
	put(m, "Xf\n");
	r = read(s, buf, sizeof buf);
	printf("then: %s\n", escaped(buf, r));
	struct winsize g = {0};
	ioctl(s, TIOCGWINSZ, &g);
	tcgetattr(s, &t);
	printf("window %dx%d, VERASE X %s, ECHO %s, foreground is the child %s, its session %s\n", g.ws_row, g.ws_col,
	       yesno(t.c_cc[VERASE] == 'X'), yesno(t.c_lflag & ECHO), yesno(tcgetpgrp(m) == c),
	       yesno(tcgetsid(m) == c));
	if (write(rep[1], "x", 1) != 1)
		return;
	int st;
	waitpid(c, &st, 0);
	printf("child exited %d\n", WEXITSTATUS(st));
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "hold") == 0) {
		hold();
		return 0;
	}
	openpt();
	int m, s;
	if (openpty(&m, &s, NULL, NULL, NULL) < 0) {
		printf("openpty: %s\n", strerror(errno));
		return 1;
	}
	printf("openpty: ok\n");
	canonical(m, s);
	noncanonical(m, s);
	packet(m, s);
	winsize(m, s);
	close(s);
	char b;
	errno = 0;
	ssize_t r = read(m, &b, 1);
	struct pollfd p = {.fd = m, .events = POLLIN};
	poll(&p, 1, 0);
	printf("slave closed: master read %zd %s, poll %#x\n", r, errname(errno), p.revents);
	close(m);
	session();
	printf("done\n");
	return 0;
}
