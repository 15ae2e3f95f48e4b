/*
 * lockhold N FILE DEVFILE: holds locks while two children wait for them.
 * The parent takes flock LOCK_EX on FILE, a POSIX write lock on bytes
 * 0..99 of DEVFILE (opened read-write) and an OFD write lock on bytes
 * 200..299 of another description of it. One child blocks in flock
 * LOCK_SH on FILE, another in F_SETLKW for a read lock on bytes 50..59.
 * Every 100 ms a forked prober checks that every lock is still held and
 * the parent prints "tick K locks held OK" (or "tick K CORRUPT ..."); after
 * N ticks it prints "releasing", closes FILE (which drops the flock) and a
 * duplicate of DEVFILE (which drops the POSIX lock), and each waiter prints
 * that it got its lock; then "done".
 *
 * A checkpoint test should check: saved with the locks held and the
 * waiters blocked, and restored, the ticks continue with "locks held OK",
 * and after "releasing" both waiters are granted their locks. DEVFILE is a
 * device (the sandbox's /dev/null) rather than a writable file, which the
 * read-only host root cannot give; natively it would be the host's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif

static const char *path, *dev;
static pid_t parent;
static int ready[2];
static int held_fd; /* FILE, holding the flock */

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000 * 1000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return fcntl(fd, cmd, &fl);
}

/* probe exits 0 if every lock is seen held, or N for the failed check. */
static int probe(void)
{
	int fd = open(path, O_RDONLY);
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 1;
	int d = open(dev, O_RDWR);
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 1};
	if (fcntl(d, F_GETLK, &fl) != 0 || fl.l_type != F_WRLCK || fl.l_start != 0 || fl.l_len != 100 || fl.l_pid != parent)
		return 2;
	struct flock ofl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 250, .l_len = 1};
	if (fcntl(d, F_OFD_GETLK, &ofl) != 0 || ofl.l_type != F_WRLCK || ofl.l_start != 200 || ofl.l_pid != -1)
		return 3;
	return 0;
}

static pid_t waiter(int posix)
{
	fflush(stdout);
	pid_t p = fork();
	if (p != 0)
		return p;
	close(held_fd); /* so that the parent's close is the description's last */
	int rc;
	if (posix) {
		int d = open(dev, O_RDWR);
		write(ready[1], "r", 1);
		rc = setlk(d, F_SETLKW, F_RDLCK, 50, 10);
	} else {
		int fd = open(path, O_RDONLY);
		write(ready[1], "r", 1);
		rc = flock(fd, LOCK_SH);
	}
	printf("waiter %s: %s\n", posix ? "F_SETLKW" : "flock", rc == 0 ? "granted" : strerror(errno));
	fflush(stdout);
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: lockhold N FILE DEVFILE\n");
		return 2;
	}
	long n = atol(argv[1]);
	path = argv[2];
	dev = argv[3];
	parent = getpid();
	pipe(ready);
	int fd = held_fd = open(path, O_RDONLY);
	int d = open(dev, O_RDWR), d2 = open(dev, O_RDWR);
	if (flock(fd, LOCK_EX) != 0 || setlk(d, F_SETLK, F_WRLCK, 0, 100) != 0 || setlk(d2, F_OFD_SETLK, F_WRLCK, 200, 100) != 0) {
		printf("cannot take the locks: %s\n", strerror(errno));
		return 2;
	}
	pid_t w1 = waiter(0), w2 = waiter(1);
	char c;
	read(ready[0], &c, 1);
	read(ready[0], &c, 1);
	nap_ms(100);
	printf("waiters ready\n");
	fflush(stdout);
	for (long k = 1; k <= n; k++) {
		nap_ms(100);
		pid_t p = fork();
		if (p == 0)
			_exit(probe());
		int st;
		waitpid(p, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			printf("tick %ld locks held OK\n", k);
		else
			printf("tick %ld CORRUPT lock check %d failed\n", k, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		fflush(stdout);
	}
	printf("releasing\n");
	fflush(stdout);
	close(fd); /* the flock goes with the description's last close */
	waitpid(w1, NULL, 0);
	close(dup(d)); /* the POSIX locks go with any close of the file */
	waitpid(w2, NULL, 0);
	printf("done\n");
	return 0;
}
