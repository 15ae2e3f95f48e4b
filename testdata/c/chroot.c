/*
 * chroot (as root): the root directory of a process changes with
 * CAP_SYS_CHROOT (EPERM without, after the lookup's errors): absolute
 * paths, "..", and absolute and relative symlinks stay inside it; the
 * working directory stays where it was ("(unreachable)" from getcwd when
 * outside); a thread sharing the filesystem context (CLONE_FS) and a
 * forked child see the new root; /proc/PID/root of the chrooted process,
 * read from outside, names the directory, and a path through it leads
 * into it (Linux's magic link); inside the root, which has no /proc
 * mounted, /proc is absent; "/proc/self/.." is /proc. argv[1] is a
 * directory the program owns (a tmpfs under snap).
 *
 * Where the zdtm mode saves it: "chrooted, waiting for stdin" is printed
 * by the chrooted child, which then reads stdin and checks its root and
 * working directory again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir, *base;

static const char *err(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

/* cwd prints the raw getcwd result with argv[1] replaced by BASE. */
static void cwd(const char *tag)
{
	char buf[1024];
	long n = syscall(SYS_getcwd, buf, sizeof buf);
	if (n < 0) {
		printf("%s: getcwd %s\n", tag, strerror(errno));
		return;
	}
	char *at = strstr(buf, base);
	if (at)
		printf("%s: getcwd %.*sBASE%s\n", tag, (int)(at - buf), buf, at + strlen(base));
	else
		printf("%s: getcwd %s\n", tag, buf);
}

static void cat(const char *tag, const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("%s: open %s: %s\n", tag, path, strerror(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	printf("%s: %s -> %s", tag, path, buf);
}

static void put(const char *name, const char *data)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	write(fd, data, strlen(data));
	close(fd);
}

static void *thread_chroot(void *arg)
{
	(void)arg;
	printf("thread chroot(\"t\"): %s\n", err(chroot("t")));
	return NULL;
}

static void errors(void)
{
	char p[512];
	snprintf(p, sizeof p, "%s/hello", dir);
	printf("chroot a file: %s\n", err(chroot(p)));
	printf("chroot missing: %s\n", err(chroot("/nonexistent-dir")));
	pid_t pid = fork();
	if (pid == 0) {
		if (setresuid(1000, 1000, 1000) != 0)
			_exit(1);
		printf("uid 1000: chroot missing: %s\n", err(chroot("/nonexistent-dir")));
		printf("uid 1000: chroot /: %s\n", err(chroot("/")));
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void jailed(int outside_fd, int ready, int go)
{
	printf("chroot(\".\"): %s\n", err(chroot(".")));
	char c = 0;
	write(ready, &c, 1);
	read(go, &c, 1);
	cwd("after chroot");
	cat("absolute", "/hello");
	cat("dot-dot", "/../../../hello");
	cat("sub/../..", "sub/../../hello");
	cat("absolute symlink", "/abs");
	cat("climbing symlink", "/sub/up");
	cat("outside", "/outside");
	cat("no proc in the root", "/proc/self/status");
	struct stat st;
	printf("stat /jail: %s\n", err(stat("/jail", &st)));
	pid_t pid = fork();
	if (pid == 0) {
		cat("forked child", "/hello");
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);

	printf("chrooted, waiting for stdin\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		printf("no line\n");
	cat("after the line", "/hello");
	cwd("after the line");

	/* A working directory outside the root. */
	printf("fchdir outside: %s\n", err(fchdir(outside_fd)));
	cwd("outside");
	cat("relative from outside", "outside");
	printf("chdir /: %s\n", err(chdir("/")));
	cwd("back");

	/* A thread shares the filesystem context. */
	pthread_t th;
	pthread_create(&th, NULL, thread_chroot, NULL);
	pthread_join(th, NULL);
	cat("after the thread's chroot", "/hello");
	cat("after the thread's chroot", "/inner");
	cwd("after the thread's chroot");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: chroot DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	static char jail[512];
	char p[600];
	snprintf(jail, sizeof jail, "%s/jail", argv[1]);
	mkdir(jail, 0755);
	dir = jail;
	base = argv[1];
	put("hello", "inside\n");
	snprintf(p, sizeof p, "%s/sub", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/abs", dir);
	symlink("/hello", p);
	snprintf(p, sizeof p, "%s/sub/up", dir);
	symlink("../../../../hello", p);
	snprintf(p, sizeof p, "%s/t", dir);
	mkdir(p, 0755);
	put("t/inner", "in t\n");
	char o[512];
	snprintf(o, sizeof o, "%s/outside", argv[1]);
	int fd = open(o, O_CREAT | O_WRONLY, 0644);
	write(fd, "outside\n", 8);
	close(fd);

	errors();
	int outside_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	int ready[2], go[2];
	pipe(ready);
	pipe(go);
	pid_t pid = fork();
	if (pid == 0) {
		if (chdir(dir) != 0)
			_exit(1);
		jailed(outside_fd, ready[1], go[0]);
		fflush(stdout);
		_exit(0);
	}
	/* The chrooted child's root, from outside. */
	char c, link[64], target[512] = "";
	read(ready[0], &c, 1);
	snprintf(link, sizeof link, "/proc/%d/root", pid);
	ssize_t n = readlink(link, target, sizeof target - 1);
	target[n > 0 ? n : 0] = 0;
	printf("/proc/PID/root of the chrooted child is DIR: %s\n", strcmp(target, dir) == 0 ? "yes" : target);
	snprintf(link, sizeof link, "/proc/%d/root", getpid());
	n = readlink(link, target, sizeof target - 1);
	target[n > 0 ? n : 0] = 0;
	printf("/proc/PID/root of the parent: %s\n", target);
	snprintf(p, sizeof p, "/proc/%d/root/hello", pid);
	fd = open(p, O_RDONLY);
	n = fd < 0 ? -1 : read(fd, target, sizeof target - 1);
	target[n > 0 ? n : 0] = 0;
	printf("/proc/PID/root/hello of the chrooted child: %s", fd < 0 ? strerror(errno) : target);
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof p, "/proc/%d/root/../outside", pid);
	printf("/proc/PID/root/.. of the chrooted child: %s\n", access(p, F_OK) == 0 ? "exists" : strerror(errno));
	write(go[1], &c, 1);
	int status;
	waitpid(pid, &status, 0);
	printf("child exit %d\n", WEXITSTATUS(status));
	printf("chdir /proc/self/..: %s\n", err(chdir("/proc/self/..")));
	cwd("in /proc/self/..");
	printf("done\n");
	return 0;
}
