/*
 * inotify: inotify_init1, inotify_add_watch and inotify_rm_watch on a
 * directory the program owns (argv[1]; a tmpfs under snap): the events of
 * creating, writing, reading, closing, changing attributes of, linking,
 * renaming (cookies) and removing files and directories, as a watch on the
 * directory and on a file see them; IN_DELETE_SELF and IN_MOVE_SELF with
 * IN_IGNORED, IN_ONESHOT, IN_ONLYDIR, IN_MASK_ADD, IN_MASK_CREATE,
 * IN_EXCL_UNLINK, rm_watch, identical events merged, IN_Q_OVERFLOW, read
 * with a small buffer, FIONREAD, poll and epoll readiness, a blocking read
 * woken by another process, and the errors.
 *
 * Its last part is where the zdtm mode saves it: "waiting for stdin with
 * queued events" is printed with events queued on two watches; after the
 * line from stdin the queued events are read, and the watches still see
 * new events.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef IN_MASK_CREATE
#define IN_MASK_CREATE 0x10000000
#endif

static const char *dir;
static char path_buf[4][512];

/* P returns dir/name in one of four rotating buffers. */
static const char *P(const char *name)
{
	static int i;
	char *b = path_buf[i++ % 4];
	snprintf(b, sizeof path_buf[0], "%s/%s", dir, name);
	return b;
}

static const char *err(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static void mask_str(uint32_t m, char *out, size_t n)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{IN_ACCESS, "ACCESS"}, {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"},
		{IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
		{IN_OPEN, "OPEN"}, {IN_MOVED_FROM, "MOVED_FROM"}, {IN_MOVED_TO, "MOVED_TO"},
		{IN_CREATE, "CREATE"}, {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"},
		{IN_MOVE_SELF, "MOVE_SELF"}, {IN_UNMOUNT, "UNMOUNT"}, {IN_Q_OVERFLOW, "Q_OVERFLOW"},
		{IN_IGNORED, "IGNORED"}, {IN_ISDIR, "ISDIR"},
	};
	out[0] = 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (m & names[i].bit) {
			if (out[0])
				strncat(out, "|", n - strlen(out) - 1);
			strncat(out, names[i].name, n - strlen(out) - 1);
			m &= ~names[i].bit;
		}
	}
	if (m) {
		char b[16];
		snprintf(b, sizeof b, "|0x%x", m);
		strncat(out, b, n - strlen(out) - 1);
	}
}

/*
 * drain reads every queued event without blocking and prints one line per
 * event; cookies print as "c1", "c2"... in order of first appearance.
 */
static int drain(int fd, const char *tag)
{
	char buf[4096] __attribute__((aligned(8)));
	uint32_t cookies[16];
	int ncookies = 0, count = 0;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			char m[256], c[16] = "";
			mask_str(ev->mask, m, sizeof m);
			if (ev->cookie) {
				int k;
				for (k = 0; k < ncookies && cookies[k] != ev->cookie; k++)
					;
				if (k == ncookies && ncookies < 16)
					cookies[ncookies++] = ev->cookie;
				snprintf(c, sizeof c, " c%d", k + 1);
			}
			printf("%s: wd %d %s%s%s%s\n", tag, ev->wd, m, c, ev->len ? " " : "", ev->len ? ev->name : "");
			p += sizeof *ev + ev->len;
			count++;
		}
	}
	fcntl(fd, F_SETFL, fl);
	return count;
}

static void touch(const char *p)
{
	int fd = open(p, O_CREAT | O_WRONLY, 0644);
	close(fd);
}

static void errors(void)
{
	int in = inotify_init1(0);
	printf("init1(bad flag): %s\n", err(inotify_init1(0x1)));
	printf("add_watch mask 0: %s\n", err(inotify_add_watch(in, dir, 0)));
	printf("add_watch bad fd: %s\n", err(inotify_add_watch(99, dir, IN_CREATE)));
	int pfd[2];
	pipe(pfd);
	printf("add_watch on a pipe: %s\n", err(inotify_add_watch(pfd[0], dir, IN_CREATE)));
	printf("add_watch missing path: %s\n", err(inotify_add_watch(in, P("missing"), IN_CREATE)));
	touch(P("plain"));
	printf("IN_ONLYDIR on a file: %s\n", err(inotify_add_watch(in, P("plain"), IN_CREATE | IN_ONLYDIR)));
	printf("IN_MASK_ADD|IN_MASK_CREATE: %s\n", err(inotify_add_watch(in, dir, IN_CREATE | IN_MASK_ADD | IN_MASK_CREATE)));
	int wd = inotify_add_watch(in, dir, IN_CREATE | IN_MASK_CREATE);
	printf("IN_MASK_CREATE new: wd %d\n", wd);
	printf("IN_MASK_CREATE again: %s\n", err(inotify_add_watch(in, dir, IN_DELETE | IN_MASK_CREATE)));
	printf("rm_watch bad wd: %s\n", err(inotify_rm_watch(in, 77)));
	printf("rm_watch on a pipe: %s\n", err(inotify_rm_watch(pfd[0], wd)));
	printf("write: %s\n", err(write(in, "x", 1)));
	printf("lseek: %s\n", err(lseek(in, 0, SEEK_SET)));
	char pb[64];
	printf("pread: %s\n", err(pread(in, pb, sizeof pb, 0)));
	const char *first = err(inotify_rm_watch(in, wd));
	printf("rm_watch: %s, again: %s\n", first, err(inotify_rm_watch(in, wd)));
	drain(in, "errors");
	unlink(P("plain"));
	close(pfd[0]);
	close(pfd[1]);
	close(in);
}

/* A directory watch sees what happens to its entries, with their names. */
static void dirwatch(void)
{
	int in = inotify_init1(IN_CLOEXEC);
	int wd = inotify_add_watch(in, dir, IN_ALL_EVENTS);
	printf("dir watch: wd %d\n", wd);
	int fd = open(P("f"), O_CREAT | O_WRONLY, 0600);
	write(fd, "a", 1);
	write(fd, "b", 1);
	close(fd);
	fd = open(P("f"), O_RDONLY);
	char b[8];
	read(fd, b, sizeof b);
	close(fd);
	fd = open(P("f"), O_WRONLY | O_TRUNC);
	close(fd);
	chmod(P("f"), 0644);
	truncate(P("f"), 10);
	link(P("f"), P("f2"));
	symlink("f", P("sym"));
	mkdir(P("sub"), 0755);
	printf("sub watch: wd %d\n", inotify_add_watch(in, P("sub"), IN_ALL_EVENTS));
	chmod(P("sub"), 0700);
	{
		int d = open(P("sub"), O_RDONLY | O_DIRECTORY);
		char db[512];
		syscall(SYS_getdents64, d, db, sizeof db);
		close(d);
	}
	rmdir(P("sub"));
	rename(P("f"), P("g"));
	unlink(P("g"));
	unlink(P("f2"));
	unlink(P("sym"));
	drain(in, "dir");
	close(in);
}

/* A watch on a file and one on its directory. */
static void filewatch(void)
{
	int in = inotify_init1(0);
	touch(P("w"));
	int dwd = inotify_add_watch(in, dir, IN_MODIFY | IN_ATTRIB | IN_DELETE | IN_DELETE_SELF);
	int fwd = inotify_add_watch(in, P("w"), IN_ALL_EVENTS);
	printf("file watch: dir wd %d, file wd %d\n", dwd, fwd);
	int fd = open(P("w"), O_WRONLY);
	write(fd, "x", 1);
	close(fd);
	chown(P("w"), getuid(), getgid());
	unlink(P("w"));
	drain(in, "file");
	/* An unlinked file that is still open goes at its last close. */
	touch(P("o"));
	fwd = inotify_add_watch(in, P("o"), IN_DELETE_SELF | IN_ATTRIB | IN_CLOSE);
	fd = open(P("o"), O_RDONLY);
	unlink(P("o"));
	printf("open unlinked file: %d events before close\n", drain(in, "open-unlinked"));
	close(fd);
	drain(in, "after close");
	close(in);
}

static void flags(void)
{
	int in = inotify_init1(IN_NONBLOCK);
	int wd = inotify_add_watch(in, dir, IN_CREATE | IN_ONESHOT);
	touch(P("one"));
	touch(P("two"));
	drain(in, "oneshot");
	wd = inotify_add_watch(in, dir, IN_CREATE);
	int wd2 = inotify_add_watch(in, dir, IN_DELETE | IN_MASK_ADD);
	printf("IN_MASK_ADD: same wd %s\n", wd == wd2 ? "yes" : "no");
	touch(P("three"));
	unlink(P("three"));
	wd2 = inotify_add_watch(in, dir, IN_DELETE);
	printf("replaced mask: same wd %s\n", wd == wd2 ? "yes" : "no");
	touch(P("four"));
	unlink(P("four"));
	drain(in, "mask");
	inotify_rm_watch(in, wd);
	drain(in, "rm");

	/* IN_EXCL_UNLINK: no events for an unlinked child. */
	int fd = open(P("x"), O_CREAT | O_RDWR, 0600);
	unlink(P("x"));
	wd = inotify_add_watch(in, dir, IN_MODIFY | IN_EXCL_UNLINK);
	write(fd, "1", 1);
	drain(in, "excl_unlink");
	inotify_add_watch(in, dir, IN_MODIFY);
	write(fd, "2", 1);
	drain(in, "no excl_unlink");
	close(fd);
	unlink(P("one"));
	unlink(P("two"));
	close(in);
}

/* Renames: cookies pair MOVED_FROM and MOVED_TO; a moved watched directory
 * gets MOVE_SELF. */
static void moves(void)
{
	int in = inotify_init1(0);
	mkdir(P("a"), 0755);
	mkdir(P("b"), 0755);
	int wa = inotify_add_watch(in, P("a"), IN_ALL_EVENTS);
	int wb = inotify_add_watch(in, P("b"), IN_ALL_EVENTS);
	printf("moves: wd a %d, b %d\n", wa, wb);
	touch(P("a/m"));
	rename(P("a/m"), P("b/m"));
	rename(P("b/m"), P("b/n"));
	touch(P("b/o"));
	rename(P("b/n"), P("b/o"));
	mkdir(P("a/d"), 0755);
	int wd = inotify_add_watch(in, P("a/d"), IN_MOVE_SELF | IN_DELETE_SELF);
	printf("moves: wd a/d %d\n", wd);
	rename(P("a/d"), P("b/d"));
	rmdir(P("b/d"));
	unlink(P("b/o"));
	rmdir(P("a"));
	rmdir(P("b"));
	drain(in, "moves");
	close(in);
}

static void reading(void)
{
	int in = inotify_init1(IN_NONBLOCK);
	int wd = inotify_add_watch(in, dir, IN_CREATE | IN_DELETE);
	int n = -1;
	ioctl(in, FIONREAD, &n);
	struct pollfd pf = {.fd = in, .events = POLLIN};
	printf("empty: FIONREAD %d, poll %d, read %s\n", n, poll(&pf, 1, 0), err(read(in, &n, sizeof n)));
	int ep = epoll_create1(0);
	struct epoll_event ee = {.events = EPOLLIN}, out;
	epoll_ctl(ep, EPOLL_CTL_ADD, in, &ee);
	printf("epoll empty: %d\n", epoll_wait(ep, &out, 1, 0));
	touch(P("r1"));
	touch(P("r2"));
	ioctl(in, FIONREAD, &n);
	int polled = poll(&pf, 1, 0);
	printf("two events: FIONREAD %d, poll %d revents 0x%x, epoll %d\n", n, polled, pf.revents, epoll_wait(ep, &out, 1, 0));
	char small[17];
	printf("read into 17 bytes: %s\n", err(read(in, small, sizeof small)));
	char one[sizeof(struct inotify_event) + 16];
	printf("read into one event's room: %ld\n", (long)read(in, one, sizeof one));
	drain(in, "rest");
	inotify_rm_watch(in, wd);
	drain(in, "reading");
	unlink(P("r1"));
	unlink(P("r2"));

	/* A blocking read that another process wakes. */
	int bl = inotify_init1(0);
	inotify_add_watch(bl, dir, IN_CREATE);
	pid_t pid = fork();
	if (pid == 0) {
		usleep(20000);
		touch(P("woke"));
		_exit(0);
	}
	char buf[256];
	ssize_t got = read(bl, buf, sizeof buf);
	struct inotify_event *ev = (struct inotify_event *)buf;
	printf("blocking read woken: %s %s\n", got > 0 ? "yes" : "no", got > 0 ? ev->name : "");
	waitpid(pid, NULL, 0);
	unlink(P("woke"));
	close(bl);
	close(ep);
	close(in);
}

/* More events than the queue holds: IN_Q_OVERFLOW (wd -1) ends it. */
static void overflow(void)
{
	int in = inotify_init1(IN_NONBLOCK);
	touch(P("q"));
	inotify_add_watch(in, P("q"), IN_OPEN | IN_CLOSE);
	for (int i = 0; i < 9000; i++)
		close(open(P("q"), O_RDONLY));
	char buf[4096] __attribute__((aligned(8)));
	int count = 0, overflows = 0, last_wd = 0;
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				overflows++;
			last_wd = ev->wd;
			count++;
			p += sizeof *ev + ev->len;
		}
	}
	printf("overflow: %d events, %d overflow, last wd %d\n", count, overflows, last_wd);
	unlink(P("q"));
	close(in);
}

static void saved(void)
{
	int in = inotify_init1(0);
	mkdir(P("s"), 0755);
	touch(P("s/kept"));
	int wd = inotify_add_watch(in, P("s"), IN_CREATE | IN_DELETE | IN_MODIFY);
	int fwd = inotify_add_watch(in, P("s/kept"), IN_ATTRIB | IN_DELETE_SELF);
	printf("saved: wds %d %d\n", wd, fwd);
	touch(P("s/before"));
	chmod(P("s/kept"), 0600);
	printf("waiting for stdin with queued events\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		return;
	drain(in, "queued");
	unlink(P("s/before"));
	unlink(P("s/kept"));
	touch(P("s/after"));
	unlink(P("s/after"));
	rmdir(P("s"));
	drain(in, "after");
	printf("next wd: %d\n", inotify_add_watch(in, dir, IN_CREATE));
	close(in);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: inotify DIR\n");
		return 2;
	}
	dir = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	errors();
	dirwatch();
	filewatch();
	flags();
	moves();
	reading();
	overflow();
	saved();
	printf("done\n");
	return 0;
}
