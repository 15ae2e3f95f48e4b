/*
 * notty: TIOCNOTTY from a process that is not its session's leader. A
 * child makes a pty slave the controlling terminal of a new session and
 * forks a member of it, which gives the terminal up: only that member
 * loses it (/dev/tty ENXIO, a second TIOCNOTTY and TIOCGPGRP ENOTTY,
 * tty_nr 0 in /proc/self/stat, a child it forks has none either, its
 * session and group unchanged, no SIGTTOU for a background write), while
 * the leader keeps it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* res names the outcome: the libcs word errors differently. */
static const char *res(int rc)
{
	if (rc >= 0)
		return "ok";
	switch (errno) {
	case ENXIO:
		return "ENXIO";
	case ENOTTY:
		return "ENOTTY";
	case EPERM:
		return "EPERM";
	case EIO:
		return "EIO";
	}
	return strerror(errno);
}

/* ttynr returns field 7 (tty_nr) of /proc/self/stat. */
static long ttynr(void)
{
	char buf[512];
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	char state;
	int ppid, pgrp, sid;
	long nr;
	if (!p || sscanf(p + 2, "%c %d %d %d %ld", &state, &ppid, &pgrp, &sid, &nr) != 5)
		return -1;
	return nr;
}

static int opentty(void)
{
	int fd = open("/dev/tty", O_RDWR);
	if (fd >= 0)
		close(fd);
	return fd;
}

static void member(int slave, pid_t leader)
{
	printf("member: /dev/tty %s, tty_nr set %s\n", res(opentty()), ttynr() != 0 ? "yes" : "no");
	printf("member: TIOCNOTTY %s\n", res(ioctl(slave, TIOCNOTTY)));
	printf("member: /dev/tty %s, tty_nr %ld\n", res(opentty()), ttynr());
	printf("member: TIOCNOTTY again %s\n", res(ioctl(slave, TIOCNOTTY)));
	pid_t pg;
	printf("member: TIOCGPGRP %s\n", res(ioctl(slave, TIOCGPGRP, &pg)));
	printf("member: session is the leader's %s, group %s\n", getsid(0) == leader ? "yes" : "no", getpgrp() == leader ? "leader's" : "other");
	/* In a group of its own, it is in the background of the terminal it
	 * left: with TOSTOP a write would stop it, were it still its own. */
	setpgid(0, 0);
	printf("member: background write %s\n", res(write(slave, "w\n", 2)));
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		printf("member's child: /dev/tty %s, tty_nr %ld\n", res(opentty()), ttynr());
		fflush(stdout);
		_exit(0);
	}
	waitpid(c, NULL, 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int m, s;
	if (openpty(&m, &s, NULL, NULL, NULL) < 0) {
		printf("openpty: %s\n", strerror(errno));
		return 1;
	}
	struct termios tio;
	tcgetattr(s, &tio);
	tio.c_lflag |= TOSTOP;
	tio.c_lflag &= ~ECHO;
	tcsetattr(s, TCSANOW, &tio);
	pid_t leader = fork();
	if (leader == 0) {
		close(m);
		setsid();
		printf("leader: TIOCSCTTY %s\n", res(ioctl(s, TIOCSCTTY, 0)));
		fflush(stdout);
		pid_t me = getpid();
		pid_t c = fork();
		if (c == 0) {
			member(s, me);
			_exit(0);
		}
		int st;
		waitpid(c, &st, WUNTRACED);
		printf("member %s\n", WIFEXITED(st) ? "exited" : "stopped");
		printf("leader: /dev/tty %s, tty_nr set %s\n", res(opentty()), ttynr() != 0 ? "yes" : "no");
		pid_t pg;
		int rc = ioctl(s, TIOCGPGRP, &pg);
		printf("leader: TIOCGPGRP %s, foreground is the leader's %s\n", res(rc), pg == me ? "yes" : "no");
		_exit(0);
	}
	close(s);
	int st;
	waitpid(leader, &st, 0);
	char buf[64];
	fcntl(m, F_SETFL, O_NONBLOCK);
	ssize_t n = read(m, buf, sizeof buf);
	printf("master got %zd bytes\n", n);
	printf("done\n");
	return 0;
}
