/*
 * killzombie: kill(pid, 0) and kill(pid, SIGTERM) on a child that has
 * exited but is not reaped yet succeed (its pid is taken until the wait),
 * and fail with ESRCH once it is reaped, as on Linux. So do the other
 * lookups of a process by pid: getpgid, getsid and prlimit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *res(int r)
{
	return r == 0 ? "0" : strerror(errno);
}

int main(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	/* Wait until the child is a zombie: waitid with WNOWAIT leaves it. */
	siginfo_t si;
	if (waitid(P_PID, p, &si, WEXITED | WNOWAIT) != 0) {
		perror("waitid");
		return 1;
	}
	printf("kill(zombie, 0): %s\n", res(kill(p, 0)));
	printf("kill(zombie, SIGTERM): %s\n", res(kill(p, SIGTERM)));
	printf("getpgid(zombie) is ours: %d\n", getpgid(p) == getpgrp());
	printf("getsid(zombie) is ours: %d\n", getsid(p) == getsid(0));
	struct rlimit rl;
	printf("prlimit(zombie): %s\n", res(prlimit(p, RLIMIT_NOFILE, NULL, &rl)));
	int st;
	waitpid(p, &st, 0);
	printf("reaped: exited %d, status %d\n", WIFEXITED(st), WEXITSTATUS(st));
	printf("kill(reaped, 0): %s\n", res(kill(p, 0)));
	printf("getpgid(reaped): %s\n", getpgid(p) < 0 ? strerror(errno) : "found");
	return 0;
}
