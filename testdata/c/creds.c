/*
 * creds: the process's credentials, run as root (as CI is). Prints the
 * starting IDs, groups and capabilities; setgroups; then in forked
 * children: setreuid, setfsuid with its capability rule, PR_SET_KEEPCAPS
 * and capset to regain root, PR_CAPBSET_DROP, execve keeping the IDs; then
 * in the main process, with a second thread waiting: setresgid and
 * setresuid to 1000 (the libc makes every thread change), capget after the
 * drop, setuid(0) and setgroups failing, /proc/self/status, a fork that
 * inherits the IDs. kill: a process of uid 1000 may not signal root's
 * (except SIGCONT in its session) but may signal its own. "creds exec" is the execve'd image.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct cap_header {
	unsigned version;
	int pid;
};
struct cap_data {
	unsigned effective, permitted, inheritable;
};
#define CAP_V3 0x20080522
#define CAP_SETUID 7
#define CAP_NET_RAW 13
#define CAP_CHOWN 0

static void show_ids(const char *what)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	printf("%s: uid %u %u %u fsuid %d gid %u %u %u\n", what, r, e, s, setfsuid(-1), gr, ge, gs);
}

static void show_caps(const char *what)
{
	struct cap_header h = {CAP_V3, 0};
	struct cap_data d[2];
	long rc = syscall(SYS_capget, &h, d);
	printf("%s: capget %ld eff %08x%08x prm %08x%08x inh %08x%08x\n", what, rc, d[1].effective, d[0].effective,
	       d[1].permitted, d[0].permitted, d[1].inheritable, d[0].inheritable);
}

static void show_groups(const char *what)
{
	gid_t g[64];
	int n = getgroups(64, g);
	printf("%s: getgroups %d:", what, n);
	for (int i = 0; i < n; i++)
		printf(" %u", g[i]);
	printf("\n");
}

static void show_status(const char *what)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f) {
		printf("%s: open /proc/self/status: %s\n", what, strerror(errno));
		return;
	}
	char line[512];
	while (fgets(line, sizeof line, f)) {
		static const char *keys[] = {"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:",
					     "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:"};
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			if (strncmp(line, keys[i], strlen(keys[i])) == 0)
				printf("%s: %s", what, line);
	}
	fclose(f);
}

static const char *res(long rc) { return rc == 0 ? "ok" : strerror(errno); }

static void child_done(void)
{
	fflush(stdout);
	_exit(0);
}

static void in_child(void (*f)(void))
{
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		f();
		child_done();
	}
	int st;
	waitpid(p, &st, 0);
}

static void setreuid_case(void)
{
	printf("setreuid(1000, 2000): %s\n", res(setreuid(1000, 2000)));
	show_ids("after setreuid");
	printf("setreuid(-1, 1000): %s\n", res(setreuid(-1, 1000)));
	show_ids("after setreuid(-1, 1000)");
	printf("setuid(0) after setreuid: %s\n", res(setuid(0)));
}

static void setfsuid_case(void)
{
	printf("setfsuid(1000) returned %d\n", setfsuid(1000));
	show_ids("after setfsuid");
	show_caps("after setfsuid");
	printf("setfsuid(0) returned %d\n", setfsuid(0));
	show_caps("after setfsuid(0)");
	printf("setfsgid(50) returned %d\n", setfsgid(50));
	printf("setfsgid(-1) returned %d\n", setfsgid(-1));
}

static void keepcaps_case(void)
{
	printf("PR_SET_KEEPCAPS: %s\n", res(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)));
	printf("PR_GET_KEEPCAPS %d\n", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0));
	printf("setresuid(1000, 1000, 1000) with keepcaps: %s\n", res(setresuid(1000, 1000, 1000)));
	show_caps("keepcaps after drop");
	struct cap_header h = {CAP_V3, 0};
	struct cap_data d[2] = {{1u << CAP_SETUID, 1u << CAP_SETUID, 0}, {0, 0, 0}};
	printf("capset(eff=prm=CAP_SETUID): %s\n", res(syscall(SYS_capset, &h, d)));
	show_caps("after capset");
	d[0].permitted = d[0].effective = 1u << CAP_SETUID | 1u << CAP_CHOWN;
	printf("capset(adding CAP_CHOWN): %s\n", res(syscall(SYS_capset, &h, d)));
	printf("setuid(0) with CAP_SETUID: %s\n", res(setuid(0)));
	show_ids("regained");
	show_caps("regained");
	printf("PR_GET_SECUREBITS %d\n", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
}

static void bounding_case(void)
{
	printf("PR_CAPBSET_READ(CAP_NET_RAW) %d\n", prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0));
	printf("PR_CAPBSET_DROP(CAP_NET_RAW): %s\n", res(prctl(PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0)));
	printf("PR_CAPBSET_READ(CAP_NET_RAW) %d\n", prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0));
	printf("PR_CAPBSET_READ(64): %s\n", res(prctl(PR_CAPBSET_READ, 64, 0, 0, 0)));
	struct cap_header h = {0x12345678, 0};
	errno = 0;
	long rc = syscall(SYS_capget, &h, NULL);
	printf("capget(bad version, NULL) %ld, version now %08x\n", rc, h.version);
}

static void kill_case(void)
{
	pid_t victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		setresuid(1000, 1000, 1000);
		printf("uid 1000 kill(root's process, SIGTERM): %s\n", res(kill(victim, SIGTERM)));
		printf("uid 1000 kill(root's process, 0): %s\n", res(kill(victim, 0)));
		printf("uid 1000 kill(root's process, SIGCONT), same session: %s\n", res(kill(victim, SIGCONT)));
		union sigval v = {.sival_int = 1};
		printf("uid 1000 sigqueue(root's process): %s\n", res(sigqueue(victim, SIGUSR1, v)));
		fflush(stdout);
		pid_t own = fork();
		if (own == 0) {
			pause();
			_exit(0);
		}
		printf("uid 1000 kill(its own child, SIGTERM): %s\n", res(kill(own, SIGTERM)));
		int st;
		waitpid(own, &st, 0);
		printf("its own child killed by SIGTERM: %s\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM ? "yes" : "no");
		child_done();
	}
	waitpid(p, NULL, 0);
	printf("root kill(the process, SIGKILL): %s\n", res(kill(victim, SIGKILL)));
	int st;
	waitpid(victim, &st, 0);
	printf("killed by SIGKILL: %s\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "yes" : "no");
}

static char *self;

static void exec_case(void)
{
	setresgid(7, 8, 9);
	setresuid(1000, 0, 2000);
	execl(self, self, "exec", (char *)NULL);
	printf("execl: %s\n", strerror(errno));
}

static void exec_image(void)
{
	show_ids("exec'd");
	printf("exec'd: AT_UID %lu AT_EUID %lu AT_GID %lu AT_EGID %lu AT_SECURE %lu\n", getauxval(AT_UID),
	       getauxval(AT_EUID), getauxval(AT_GID), getauxval(AT_EGID), getauxval(AT_SECURE));
	show_caps("exec'd");
	printf("exec'd: setresuid(1000, 1000, 1000): %s\n", res(setresuid(1000, 1000, 1000)));
	show_caps("exec'd after drop");
	fflush(stdout);
}

static pthread_barrier_t barrier;

static void *thread_main(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&barrier); /* main drops */
	pthread_barrier_wait(&barrier);
	unsigned r, e, s;
	syscall(SYS_getresuid, &r, &e, &s);
	unsigned gr, ge, gs;
	syscall(SYS_getresgid, &gr, &ge, &gs);
	printf("second thread: uid %u %u %u gid %u %u %u\n", r, e, s, gr, ge, gs);
	show_caps("second thread");
	return NULL;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	self = argv[0];
	if (argc > 1 && strcmp(argv[1], "exec") == 0) {
		exec_image();
		return 0;
	}
	show_ids("start");
	show_caps("start");
	show_status("start");
	gid_t gs[] = {50, 3, 27};
	printf("setgroups(50 3 27): %s\n", res(setgroups(3, gs)));
	show_groups("after setgroups");
	printf("getgroups(0) %d, getgroups(1): %s\n", getgroups(0, NULL), res(getgroups(1, gs) < 0 ? -1 : 0));

	in_child(setreuid_case);
	in_child(setfsuid_case);
	in_child(keepcaps_case);
	in_child(bounding_case);
	kill_case();
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		exec_case();
		child_done();
	}
	waitpid(p, NULL, 0);

	pthread_t th;
	pthread_barrier_init(&barrier, NULL, 2);
	pthread_create(&th, NULL, thread_main, NULL);
	pthread_barrier_wait(&barrier);
	printf("setresgid(100, 100, 100): %s\n", res(setresgid(100, 100, 100)));
	printf("setresuid(1000, 1000, 1000): %s\n", res(setresuid(1000, 1000, 1000)));
	pthread_barrier_wait(&barrier);
	pthread_join(th, NULL);
	show_ids("dropped");
	show_caps("dropped");
	printf("setuid(0) after the drop: %s\n", res(setuid(0)));
	printf("setresuid(-1, 0, -1) after the drop: %s\n", res(setresuid(-1, 0, -1)));
	printf("setgroups after the drop: %s\n", res(setgroups(0, NULL)));
	printf("setuid(1000) after the drop: %s\n", res(setuid(1000)));
	show_status("dropped");
	fflush(stdout);
	p = fork();
	if (p == 0) {
		show_ids("forked child");
		show_caps("forked child");
		child_done();
	}
	waitpid(p, NULL, 0);
	return 0;
}
