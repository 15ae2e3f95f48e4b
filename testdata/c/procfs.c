/*
 * procfs: checks the per-process files under /proc that programs read
 * about themselves, printing only what is the same on every Linux run.
 *   comm:   prctl(PR_SET_NAME/PR_GET_NAME) (15 bytes kept), /proc/self/comm,
 *           /proc/thread-self/comm and /proc/self/task/TID/comm per thread.
 *   status: /proc/self/status Name, State, Tgid, Pid, PPid, Uid, Gid,
 *           Threads, VmSize, VmRSS, SigBlk, SigIgn, SigCgt.
 *   stat:   /proc/self/stat pid, comm (with ") " in it), state, ppid, pgrp,
 *           session, num_threads, vsize, exit_signal, arg_start, arg_end,
 *           env_start, env_end and the field count.
 *   cmdline ARGS...: /proc/self/cmdline is argv NUL-separated; after argv[0]
 *           is shortened in place, the area as it now is; after the final NUL
 *           is overwritten (setproctitle), up to environ[0]'s NUL;
 *           /proc/<child>/cmdline of a forked child that changed its copy.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static char *slurp(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(buf, sizeof buf, "<open %s failed>", path);
		return buf;
	}
	size_t len = 0;
	ssize_t n;
	while ((n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	return buf;
}

/* field returns the value after "key:\t" in a status text, or "". */
static const char *field(const char *text, const char *key)
{
	static char val[256];
	size_t kl = strlen(key);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, key, kl) && l[kl] == ':' && l[kl + 1] == '\t') {
			const char *v = l + kl + 2, *e = strchr(v, '\n');
			size_t n = e ? (size_t)(e - v) : strlen(v);
			if (n >= sizeof val)
				n = sizeof val - 1;
			memcpy(val, v, n);
			val[n] = 0;
			return val;
		}
	}
	return "";
}

static pthread_barrier_t ready, done;
static pid_t thread_tid;

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = syscall(SYS_gettid);
	prctl(PR_SET_NAME, "worker", 0, 0, 0);
	char *c = slurp("/proc/thread-self/comm");
	printf("thread: /proc/thread-self/comm = %s", c);
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&done);
	return NULL;
}

static void do_comm(void)
{
	char name[32];
	memset(name, 'x', sizeof name);
	prctl(PR_GET_NAME, name, 0, 0, 0);
	printf("initial comm is the program name: %s\n", yesno(!strcmp(name, "procfs")));
	printf("/proc/self/comm = %s", slurp("/proc/self/comm"));
	prctl(PR_SET_NAME, "a-name-longer-than-fifteen", 0, 0, 0);
	memset(name, 'x', sizeof name);
	prctl(PR_GET_NAME, name, 0, 0, 0);
	printf("PR_GET_NAME after a long name: %s, NUL at 15: %s, byte 16 untouched: %s\n", name,
	       yesno(name[15] == 0), yesno(name[16] == 'x'));
	printf("/proc/self/comm = %s", slurp("/proc/self/comm"));
	prctl(PR_SET_NAME, "main", 0, 0, 0);
	printf("/proc/thread-self/comm = %s", slurp("/proc/thread-self/comm"));

	pthread_t th;
	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&done, NULL, 2);
	pthread_create(&th, NULL, thread_main, NULL);
	pthread_barrier_wait(&ready);
	char p[64];
	snprintf(p, sizeof p, "/proc/self/task/%d/comm", (int)thread_tid);
	printf("main: /proc/self/task/<thread>/comm = %s", slurp(p));
	snprintf(p, sizeof p, "/proc/self/task/%d/comm", (int)getpid());
	printf("main: /proc/self/task/<main>/comm = %s", slurp(p));
	printf("main: /proc/self/comm = %s", slurp("/proc/self/comm"));
	snprintf(p, sizeof p, "/proc/%d/comm", (int)thread_tid);
	printf("main: /proc/<thread>/comm = %s", slurp(p));
	pthread_barrier_wait(&done);
	pthread_join(th, NULL);
}

static void on_hup(int s) { (void)s; }

static void do_status(void)
{
	prctl(PR_SET_NAME, "status-test", 0, 0, 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGHUP, on_hup);
	char *s = slurp("/proc/self/status");
	static const char *order[] = {"\nName:", "\nUmask:", "\nState:", "\nTgid:", "\nPid:", "\nPPid:", "\nUid:",
				       "\nGid:", "\nNStgid:", "\nNSpid:", "\nVmSize:", "\nVmRSS:", "\nThreads:", "\nSigPnd:",
				       "\nShdPnd:", "\nSigBlk:", "\nSigIgn:", "\nSigCgt:"};
	char *nl = malloc(strlen(s) + 2), *prev = nl;
	nl[0] = '\n';
	strcpy(nl + 1, s);
	int inorder = 1;
	for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
		char *at = strstr(nl, order[i]);
		inorder = inorder && at && at >= prev;
		prev = at ? at : prev;
	}
	free(nl);
	printf("lines present in Linux's order: %s\n", yesno(inorder));
	printf("Name: %s\n", field(s, "Name"));
	printf("State: %s\n", field(s, "State"));
	printf("Tgid==getpid: %s\n", yesno(atoi(field(s, "Tgid")) == getpid()));
	printf("Pid==getpid: %s\n", yesno(atoi(field(s, "Pid")) == getpid()));
	printf("PPid==getppid: %s\n", yesno(atoi(field(s, "PPid")) == getppid()));
	char want[128];
	snprintf(want, sizeof want, "%d\t%d\t", getuid(), geteuid());
	printf("Uid starts with uid, euid: %s\n", yesno(!strncmp(field(s, "Uid"), want, strlen(want))));
	snprintf(want, sizeof want, "%d\t%d\t", getgid(), getegid());
	printf("Gid starts with gid, egid: %s\n", yesno(!strncmp(field(s, "Gid"), want, strlen(want))));
	printf("Threads: %s\n", field(s, "Threads"));
	unsigned long long blk = strtoull(field(s, "SigBlk"), NULL, 16);
	unsigned long long ign = strtoull(field(s, "SigIgn"), NULL, 16);
	unsigned long long cgt = strtoull(field(s, "SigCgt"), NULL, 16);
	printf("SigBlk has SIGUSR1: %s, 16 hex digits: %s\n", yesno(blk >> (SIGUSR1 - 1) & 1),
	       yesno(strlen(field(s, "SigBlk")) == 16));
	printf("SigIgn has SIGUSR2: %s, SIGHUP: %s\n", yesno(ign >> (SIGUSR2 - 1) & 1), yesno(ign >> (SIGHUP - 1) & 1));
	printf("SigCgt has SIGHUP: %s, SIGUSR2: %s\n", yesno(cgt >> (SIGHUP - 1) & 1), yesno(cgt >> (SIGUSR2 - 1) & 1));
	const char *vs = field(s, "VmSize");
	long size = atol(vs), rss = atol(field(s, "VmRSS"));
	printf("VmSize format \"%%8lu kB\": %s\n", yesno(strlen(vs) == 11 && !strcmp(vs + 8, " kB")));
	printf("0 < VmRSS <= VmSize: %s\n", yesno(rss > 0 && rss <= size));
	void *m = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s = slurp("/proc/self/status");
	printf("VmSize grows by 64 MiB after mmap: %s\n", yesno(atol(field(s, "VmSize")) - size >= 65536));
	munmap(m, 64 << 20);

	pthread_t th;
	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&done, NULL, 2);
	pthread_create(&th, NULL, thread_main, NULL);
	pthread_barrier_wait(&ready);
	s = slurp("/proc/self/status");
	printf("with a thread: Threads: %s\n", field(s, "Threads"));
	printf("with a thread: Name: %s\n", field(s, "Name"));
	s = slurp("/proc/thread-self/status");
	printf("/proc/thread-self/status Pid==gettid: %s\n", yesno(atoi(field(s, "Pid")) == syscall(SYS_gettid)));
	char p[64];
	snprintf(p, sizeof p, "/proc/self/task/%d/status", (int)thread_tid);
	s = slurp(p);
	printf("thread's status: Name: %s\n", field(s, "Name"));
	printf("thread's status: Pid==its tid: %s, Tgid==getpid: %s\n", yesno(atoi(field(s, "Pid")) == thread_tid),
	       yesno(atoi(field(s, "Tgid")) == getpid()));
	pthread_barrier_wait(&done);
	pthread_join(th, NULL);
	s = slurp("/proc/self/status");
	printf("after join: Threads: %s\n", field(s, "Threads"));
}

static void do_stat(int argc, char **argv)
{
	prctl(PR_SET_NAME, "a) b (c", 0, 0, 0);
	char *s = slurp("/proc/self/stat");
	char *open = strchr(s, '('), *close = strrchr(s, ')');
	if (!open || !close) {
		printf("no comm in parentheses\n");
		return;
	}
	*close = 0;
	printf("pid==getpid: %s\n", yesno(atoi(s) == getpid()));
	printf("comm: %s\n", open + 1);
	char state;
	int ppid, pgrp, session;
	sscanf(close + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session);
	printf("state: %c\n", state);
	printf("ppid==getppid: %s, pgrp==getpgrp: %s, session==getsid: %s\n", yesno(ppid == getppid()),
	       yesno(pgrp == getpgrp()), yesno(session == getsid(0)));
	/* Fields from 3 (state) on. */
	char *f[64];
	int n = 0;
	for (char *tok = strtok(close + 2, " \n"); tok && n < 64; tok = strtok(NULL, " \n"))
		f[n++] = tok;
	printf("fields: %d\n", n + 2);
	if (n + 2 >= 52) {
		printf("num_threads: %s\n", f[20 - 3]);
		printf("priority: %s, nice: %s\n", f[18 - 3], f[19 - 3]);
		printf("exit_signal: %s\n", f[38 - 3]);
		extern char **environ;
		char **e = environ;
		while (*e)
			e++;
		printf("arg_start==argv[0]: %s, arg_end==end of argv[argc-1]: %s\n",
		       yesno(strtoul(f[48 - 3], NULL, 10) == (unsigned long)argv[0]),
		       yesno(strtoul(f[49 - 3], NULL, 10) == (unsigned long)argv[argc - 1] + strlen(argv[argc - 1]) + 1));
		printf("env_start==environ[0]: %s, env_end==end of the last: %s\n",
		       yesno(strtoul(f[50 - 3], NULL, 10) == (unsigned long)environ[0]),
		       yesno(e > environ && strtoul(f[51 - 3], NULL, 10) == (unsigned long)e[-1] + strlen(e[-1]) + 1));
		unsigned long vsize = strtoul(f[23 - 3], NULL, 10);
		char *st = slurp("/proc/self/status");
		printf("vsize==VmSize: %s\n", yesno(vsize / 1024 == strtoul(field(st, "VmSize"), NULL, 10)));
	}
}

/* slurpn reads path into buf and returns its length, or -1. */
static ssize_t slurpn(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while ((n = read(fd, buf + len, size - len)) > 0)
		len += n;
	close(fd);
	return len;
}

/* show prints buf[0:n], NULs as "\\0", argv[0] (the program's path,
 * different per build) as <argv0>. */
static void show(const char *what, const char *buf, ssize_t n, const char *argv0)
{
	printf("%s: %zd bytes: ", what, n);
	size_t l0 = strlen(argv0);
	ssize_t i = 0;
	if (n >= (ssize_t)l0 && !memcmp(buf, argv0, l0)) {
		printf("<argv0>");
		i = l0;
	}
	for (; i < n; i++) {
		if (buf[i])
			putchar(buf[i]);
		else
			printf("\\0");
	}
	putchar('\n');
}

static void do_cmdline(int argc, char **argv)
{
	static char got[1 << 16], want[1 << 16];
	char *argv0 = strdup(argv[0]);
	size_t wl = 0;
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]) + 1;
		memcpy(want + wl, argv[i], l);
		wl += l;
	}
	ssize_t n = slurpn("/proc/self/cmdline", got, sizeof got);
	printf("/proc/self/cmdline == argv joined with NULs: %s\n", yesno(n == (ssize_t)wl && !memcmp(got, want, wl)));
	show("/proc/self/cmdline", got, n, argv0);
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/cmdline", (int)getpid());
	n = slurpn(p, got, sizeof got);
	printf("/proc/<pid>/cmdline same: %s\n", yesno(n == (ssize_t)wl && !memcmp(got, want, wl)));
	printf("argv strings contiguous: %s\n", yesno(argv[argc - 1] + strlen(argv[argc - 1]) + 1 == argv[0] + wl));

	int up[2], down[2];
	if (pipe(up) || pipe(down))
		return;
	pid_t child = fork();
	if (child == 0) {
		argv[1][0] = 'Z';
		write(up[1], "r", 1);
		char c;
		read(down[0], &c, 1);
		_exit(0);
	}
	char c;
	read(up[0], &c, 1);
	snprintf(p, sizeof p, "/proc/%d/cmdline", (int)child);
	n = slurpn(p, got, sizeof got);
	show("child's cmdline", got, n, argv0);
	write(down[1], "d", 1);
	waitpid(child, NULL, 0);

	/* Shorten argv[0] in place: the area keeps its other bytes. */
	size_t l0 = strlen(argv[0]);
	memcpy(want, "x", 2);
	strcpy(argv[0], "x");
	n = slurpn("/proc/self/cmdline", got, sizeof got);
	printf("argv[0] shortened: same length: %s, bytes as in memory: %s\n", yesno(n == (ssize_t)wl),
	       yesno(n == (ssize_t)wl && !memcmp(got, want, wl)));
	(void)l0;

	/* setproctitle: overwrite the whole area, final NUL included. */
	memset(argv[0], 'A', wl);
	n = slurpn("/proc/self/cmdline", got, sizeof got);
	extern char **environ;
	int runs_on = environ[0] == argv[0] + wl && n == (ssize_t)(wl + strlen(environ[0]) + 1) &&
		      !memcmp(got + wl, environ[0], strlen(environ[0]) + 1) && got[0] == 'A' && got[wl - 1] == 'A';
	printf("setproctitle: runs on to environ[0]'s NUL: %s\n", yesno(runs_on));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: procfs comm|status|stat\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(argv[1], "comm"))
		do_comm();
	else if (!strcmp(argv[1], "status"))
		do_status();
	else if (!strcmp(argv[1], "stat"))
		do_stat(argc, argv);
	else if (!strcmp(argv[1], "cmdline"))
		do_cmdline(argc, argv);
	else
		return 2;
	return 0;
}
