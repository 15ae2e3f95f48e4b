/*
 * dnotify: fcntl F_NOTIFY on a directory the program owns (argv[1]; a
 * tmpfs under snap). Which operations signal each of DN_ACCESS, DN_MODIFY,
 * DN_CREATE, DN_DELETE, DN_RENAME and DN_ATTRIB (one signal per event,
 * counted with a real-time signal chosen by F_SETSIG, whose siginfo
 * carries si_fd, POLL_MSG and si_band); plain SIGIO (SI_KERNEL) when no
 * signal was set; one-shot requests without DN_MULTISHOT; requests that
 * add events; removal by F_NOTIFY 0 and by closing any descriptor of the
 * description in the same process, but not in a forked child; si_fd
 * following the last F_NOTIFY's descriptor; F_NOTIFY making the caller
 * the owner; F_SETOWN sending the signal to another process;
 * F_GETOWN/F_SETOWN_EX/F_GETSIG/F_SETSIG and the errors.
 *
 * Its last part is where the zdtm mode saves it: "waiting for stdin with
 * a watch set" is printed with a multishot watch and a one-shot SIGIO
 * watch set; after the line from stdin, changes must still signal.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef DN_ACCESS
#define DN_ACCESS 0x00000001
#define DN_MODIFY 0x00000002
#define DN_CREATE 0x00000004
#define DN_DELETE 0x00000008
#define DN_RENAME 0x00000010
#define DN_ATTRIB 0x00000020
#define DN_MULTISHOT 0x80000000
#endif

static const char *dir;
static char path_buf[4][512];
static int rtsig;

/* P returns dir/name in one of four rotating buffers. */
static const char *P(const char *name)
{
	static int i;
	char *b = path_buf[i++ % 4];
	snprintf(b, sizeof path_buf[0], "%s/%s", dir, name);
	return b;
}

static const char *err(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static void touch(const char *p)
{
	int fd = open(p, O_CREAT | O_WRONLY, 0644);
	if (fd >= 0)
		close(fd);
}

static int bad_fields;

/* drain takes every pending rtsig without waiting and returns how many
 * there were; each must name fd with POLL_MSG and Linux's si_band. */
static int drain(int fd)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, rtsig);
	struct timespec zero = {0, 0};
	siginfo_t si;
	int n = 0;
	while (sigtimedwait(&set, &si, &zero) == rtsig) {
		if (si.si_fd != fd || si.si_code != POLL_MSG || si.si_band != (POLLIN | POLLRDNORM | POLLMSG))
			bad_fields++;
		n++;
	}
	return n;
}

/* watch opens the directory and asks for mask with rtsig. */
static int watch(unsigned long mask)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	fcntl(fd, F_SETSIG, rtsig);
	if (fcntl(fd, F_NOTIFY, mask) < 0)
		printf("F_NOTIFY: %s\n", strerror(errno));
	return fd;
}

static void op_create(void) { touch(P("m")); }
static void op_write(void)
{
	int fd = open(P("m"), O_WRONLY);
	write(fd, "abc", 3);
	close(fd);
}
static void op_trunc(void) { truncate(P("m"), 1); }
static void op_read(void)
{
	char b[8];
	int fd = open(P("m"), O_RDONLY);
	read(fd, b, sizeof b);
	close(fd);
}
static void op_chmod(void) { chmod(P("m"), 0600); }
static void op_utimes(void) { utimes(P("m"), NULL); }
static void op_link(void) { link(P("m"), P("l")); }
static void op_symlink(void) { symlink("m", P("s")); }
static void op_rename(void) { rename(P("m"), P("n")); }
static void op_mkdir(void) { mkdir(P("d"), 0755); }
static void op_out(void) { rename(P("n"), P("d/n")); }
static void op_in(void) { rename(P("d/n"), P("n")); }
static void op_inner(void) { touch(P("d/inner")); unlink(P("d/inner")); }
static void op_unlink(void) { unlink(P("n")); unlink(P("l")); unlink(P("s")); }
static void op_list(void)
{
	DIR *d = opendir(dir);
	while (readdir(d))
		;
	closedir(d);
}
static void op_chmoddir(void) { chmod(dir, 0755); }
static void op_rmdir(void) { rmdir(P("d")); }

static const struct {
	const char *name;
	void (*fn)(void);
} ops[] = {
	{"create", op_create}, {"write", op_write}, {"trunc", op_trunc}, {"read", op_read},
	{"chmod", op_chmod}, {"utimes", op_utimes}, {"link", op_link}, {"symlink", op_symlink},
	{"rename", op_rename}, {"mkdir", op_mkdir}, {"out", op_out}, {"in", op_in},
	{"inner", op_inner}, {"unlink", op_unlink}, {"list", op_list}, {"chmoddir", op_chmoddir},
	{"rmdir", op_rmdir},
};

/* matrix prints, for each event bit, how many signals each operation
 * sends. */
static void matrix(void)
{
	static const struct {
		unsigned long bit;
		const char *name;
	} bits[] = {
		{DN_ACCESS, "DN_ACCESS"}, {DN_MODIFY, "DN_MODIFY"}, {DN_CREATE, "DN_CREATE"},
		{DN_DELETE, "DN_DELETE"}, {DN_RENAME, "DN_RENAME"}, {DN_ATTRIB, "DN_ATTRIB"},
	};
	for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++) {
		int fd = watch(bits[b].bit | DN_MULTISHOT);
		char line[512];
		int off = snprintf(line, sizeof line, "%s:", bits[b].name);
		for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
			ops[i].fn();
			off += snprintf(line + off, sizeof line - off, " %s=%d", ops[i].name, drain(fd));
		}
		printf("%s\n", line);
		close(fd);
	}
	printf("siginfo fields right: %s\n", bad_fields ? "no" : "yes");
}

static volatile sig_atomic_t sigio_count, sigio_code;

static void on_sigio(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sigio_count++;
	sigio_code = si->si_code;
}

static void plain_sigio(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = on_sigio;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGIO, &sa, NULL);
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	printf("F_GETSIG at first: %d\n", fcntl(fd, F_GETSIG));
	printf("F_GETOWN at first: %d\n", fcntl(fd, F_GETOWN));
	printf("F_NOTIFY DN_CREATE: %s\n", err(fcntl(fd, F_NOTIFY, DN_CREATE)));
	printf("owner is the caller: %s\n", fcntl(fd, F_GETOWN) == getpid() ? "yes" : "no");
	touch(P("p1"));
	printf("SIGIO after a create: %d, si_code %s\n", (int)sigio_count,
	       sigio_code == SI_KERNEL ? "SI_KERNEL" : "other");
	touch(P("p2"));
	printf("one-shot: SIGIO after a second create: %d\n", (int)sigio_count);
	unlink(P("p1"));
	unlink(P("p2"));
	close(fd);
}

static void requests(void)
{
	int fd = watch(DN_CREATE);
	touch(P("r1"));
	touch(P("r2"));
	printf("one-shot rt: %d\n", drain(fd));
	fcntl(fd, F_NOTIFY, DN_CREATE | DN_MULTISHOT);
	fcntl(fd, F_NOTIFY, DN_DELETE | DN_MULTISHOT);
	unlink(P("r1"));
	touch(P("r3"));
	printf("added events: delete and create %d\n", drain(fd));
	printf("F_NOTIFY 0: %s\n", err(fcntl(fd, F_NOTIFY, 0)));
	touch(P("r4"));
	printf("after F_NOTIFY 0: %d\n", drain(fd));

	fcntl(fd, F_NOTIFY, DN_CREATE | DN_MULTISHOT);
	int fd2 = dup(fd);
	close(fd2);
	touch(P("r5"));
	printf("after closing a dup: %d\n", drain(fd));

	fcntl(fd, F_NOTIFY, DN_CREATE | DN_MULTISHOT);
	fd2 = dup(fd);
	fcntl(fd2, F_NOTIFY, DN_CREATE | DN_MULTISHOT);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, rtsig);
	struct timespec zero = {0, 0};
	siginfo_t si;
	touch(P("r6"));
	int got = sigtimedwait(&set, &si, &zero);
	printf("si_fd follows the last F_NOTIFY: %s\n", got == rtsig && si.si_fd == fd2 ? "yes" : "no");
	close(fd2);

	fcntl(fd, F_NOTIFY, DN_CREATE | DN_MULTISHOT);
	pid_t pid = fork();
	if (pid == 0) {
		close(fd);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	touch(P("r7"));
	printf("after a child closed its copy: %d\n", drain(fd));
	close(fd);
	for (const char *n = "r2\0r3\0r4\0r5\0r6\0r7\0"; *n; n += 3)
		unlink(P(n));
}

static void owners(void)
{
	int fd = watch(DN_CREATE | DN_MULTISHOT);
	int pfd[2];
	pipe(pfd);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, rtsig);
		siginfo_t si;
		write(pfd[1], "r", 1);
		int got = sigwaitinfo(&set, &si);
		printf("child got the signal: %s, si_fd matches: %s\n", got == rtsig ? "yes" : "no",
		       si.si_fd == fd ? "yes" : "no");
		fflush(stdout);
		_exit(0);
	}
	char c;
	read(pfd[0], &c, 1);
	printf("F_SETOWN child: %s\n", err(fcntl(fd, F_SETOWN, pid)));
	printf("F_GETOWN is the child: %s\n", fcntl(fd, F_GETOWN) == pid ? "yes" : "no");
	touch(P("o1"));
	waitpid(pid, NULL, 0);
	printf("parent got: %d\n", drain(fd));
	printf("F_SETOWN 0: %s\n", err(fcntl(fd, F_SETOWN, 0)));
	touch(P("o2"));
	printf("no owner, signals: %d\n", drain(fd));

	setpgid(0, 0); /* the group signalled is this process alone */
	struct f_owner_ex ex = {F_OWNER_PGRP, getpgrp()};
	printf("F_SETOWN_EX pgrp: %s\n", err(fcntl(fd, F_SETOWN_EX, &ex)));
	printf("F_GETOWN is minus the group: %s\n", fcntl(fd, F_GETOWN) == -getpgrp() ? "yes" : "no");
	touch(P("o3"));
	printf("group owner, signals: %d\n", drain(fd));
	fcntl(fd, F_SETOWN, getpid());
	struct f_owner_ex got = {0, 0};
	fcntl(fd, F_GETOWN_EX, &got);
	printf("F_GETOWN_EX: type %d, pid is mine: %s\n", got.type, got.pid == getpid() ? "yes" : "no");
	ex.type = 3;
	printf("F_SETOWN_EX bad type: %s\n", err(fcntl(fd, F_SETOWN_EX, &ex)));
	printf("F_SETOWN unused pid: %s\n", err(fcntl(fd, F_SETOWN, 0x3ffffff0)));
	printf("F_SETSIG 65: %s\n", err(fcntl(fd, F_SETSIG, 65)));
	printf("F_SETSIG -1: %s\n", err(fcntl(fd, F_SETSIG, -1)));
	printf("F_SETSIG SIGUSR1: %s\n", err(fcntl(fd, F_SETSIG, SIGUSR1)));
	printf("F_GETSIG: %d\n", fcntl(fd, F_GETSIG));
	close(fd);
	close(pfd[0]);
	close(pfd[1]);
	unlink(P("o1"));
	unlink(P("o2"));
	unlink(P("o3"));
}

static void errors(void)
{
	touch(P("file"));
	int fd = open(P("file"), O_RDONLY);
	printf("F_NOTIFY on a file: %s\n", err(fcntl(fd, F_NOTIFY, DN_CREATE)));
	printf("F_NOTIFY 0 on a file: %s\n", err(fcntl(fd, F_NOTIFY, 0)));
	printf("F_NOTIFY DN_MULTISHOT alone on a file: %s\n", err(fcntl(fd, F_NOTIFY, DN_MULTISHOT)));
	close(fd);
	unlink(P("file"));
	printf("F_NOTIFY on a closed descriptor: %s\n", err(fcntl(fd, F_NOTIFY, DN_CREATE)));
}

static void saved(void)
{
	int fd = watch(DN_CREATE | DN_DELETE | DN_MULTISHOT);
	sigio_count = 0;
	int fd2 = open(dir, O_RDONLY | O_DIRECTORY);
	fcntl(fd2, F_NOTIFY, DN_ATTRIB);
	printf("waiting for stdin with a watch set\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		return;
	touch(P("after"));
	unlink(P("after"));
	printf("after the line: %d signals\n", drain(fd));
	chmod(dir, 0755);
	printf("SIGIO after the line: %d\n", (int)sigio_count);
	close(fd);
	close(fd2);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: dnotify DIR\n");
		return 2;
	}
	dir = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	rtsig = SIGRTMIN + 1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, rtsig);
	sigprocmask(SIG_BLOCK, &set, NULL);
	errors();
	plain_sigio();
	matrix();
	requests();
	owners();
	saved();
	printf("done\n");
	return 0;
}
