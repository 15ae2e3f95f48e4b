/*
 * vforkshare: a vfork child (vfork(2), clone(CLONE_VM|CLONE_VFORK),
 * posix_spawn) runs in its parent's memory, and the parent waits until the
 * child execs or exits, as in Linux:
 *   - the child's write to a global is seen by the parent after _exit;
 *   - the parent runs only after the child's _exit (the child sleeps
 *     100 ms first and sets a flag just before _exit);
 *   - a signal the child sends to the parent is handled only after the
 *     child's _exit, but a fatal one (SIGTERM by default) ends the parent
 *     at once;
 *   - a write made before execve is seen by the parent;
 *   - execve in another thread of the parent does not wait for the child;
 *   - posix_spawn of a missing program returns ENOENT, and of this
 *     program (with "exit0") works and exits 0.
 * Run with "exit0" it just exits 0; with "execcheck FD" it reports whether
 * the pipe FD is still empty.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static volatile int shared_word;
static volatile int child_exiting;
static volatile int handler_saw_exit = -1;

static const char *yes(int b) { return b ? "yes" : "no"; }

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* reap waits for pid and returns its exit code, or -1. */
static int reap(pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void on_usr1(int sig)
{
	(void)sig;
	handler_saw_exit = child_exiting;
}

/* vforker is a thread that vforks a child that says "r" on the pipe
 * ready[1], sleeps, says "late" on the pipe late[1] and exits. */
static int ready[2], late[2];
static void *vforker(void *arg)
{
	(void)arg;
	if (vfork() == 0) {
		write(ready[1], "r", 1);
		sleep_ms(500);
		write(late[1], "late", 4);
		_exit(0);
	}
	return NULL;
}

static int clone_child(void *arg)
{
	(void)arg;
	shared_word = 77;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "exit0") == 0)
		return 0;
	if (argc > 2 && strcmp(argv[1], "execcheck") == 0) {
		int fd = atoi(argv[2]);
		char c;
		fcntl(fd, F_SETFL, O_NONBLOCK);
		ssize_t n = read(fd, &c, 1);
		printf("execve in another thread did not wait for the vfork child: %s\n", yes(n < 0 && errno == EAGAIN));
		return 0;
	}

	/* 1. The child's write is the parent's. */
	shared_word = 1;
	pid_t pid = vfork();
	if (pid == 0) {
		shared_word = 42;
		_exit(3);
	}
	int code = reap(pid);
	printf("vfork: parent saw the child's write: %s, exit 3: %s\n", yes(shared_word == 42), yes(code == 3));

	/* 2. The parent waits for the child's _exit. */
	child_exiting = 0;
	pid = vfork();
	if (pid == 0) {
		sleep_ms(100);
		child_exiting = 1;
		_exit(0);
	}
	int waited = child_exiting;
	code = reap(pid);
	printf("vfork: parent ran only after the child's _exit: %s, exit 0: %s\n", yes(waited == 1), yes(code == 0));

	/* 3. A signal sent to the waiting parent is handled after. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	child_exiting = 0;
	pid = vfork();
	if (pid == 0) {
		kill(getppid(), SIGUSR1);
		sleep_ms(50);
		child_exiting = 1;
		_exit(0);
	}
	code = reap(pid);
	printf("vfork: SIGUSR1 from the child handled after its _exit: %s\n", yes(handler_saw_exit == 1));

	/* 3b. A fatal signal ends the waiting parent at once. */
	volatile int *done = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (done == MAP_FAILED)
		return 2;
	pid_t mid = fork();
	if (mid == 0) {
		signal(SIGTERM, SIG_DFL);
		if (vfork() == 0) {
			kill(getppid(), SIGTERM);
			sleep_ms(500);
			*done = 1;
			_exit(0);
		}
		_exit(9);
	}
	int status = 0;
	waitpid(mid, &status, 0);
	int early = *done == 0;
	printf("vfork: SIGTERM ends the waiting parent: %s, before the child's _exit: %s\n",
	       yes(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM), yes(early));

	/* 4. clone(CLONE_VM|CLONE_VFORK) shares memory too. */
	static char stack[64 * 1024] __attribute__((aligned(16)));
	shared_word = 0;
	pid = clone(clone_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	code = reap(pid);
	printf("clone(CLONE_VM|CLONE_VFORK): parent saw the child's write: %s, exit 0: %s\n", yes(shared_word == 77), yes(code == 0));

	/* 5. A write before execve is seen; the exec'd program runs. */
	shared_word = 0;
	pid = vfork();
	if (pid == 0) {
		shared_word = 5;
		char *args[] = {argv[0], "exit0", NULL};
		execve(argv[0], args, environ);
		_exit(127);
	}
	code = reap(pid);
	printf("vfork+execve: parent saw the pre-exec write: %s, exit 0: %s\n", yes(shared_word == 5), yes(code == 0));

	/* 5b. execve in another thread ends the vfork wait of this one. */
	fflush(stdout);
	if (pipe(ready) != 0 || pipe(late) != 0)
		return 2;
	mid = fork();
	if (mid == 0) {
		pthread_t th;
		pthread_create(&th, NULL, vforker, NULL);
		char c;
		read(ready[0], &c, 1);
		char fd[16];
		snprintf(fd, sizeof fd, "%d", late[0]);
		char *args[] = {argv[0], "execcheck", fd, NULL};
		execve(argv[0], args, environ);
		_exit(127);
	}
	code = reap(mid);
	close(ready[0]);
	close(ready[1]);
	close(late[0]);
	close(late[1]);
	printf("execve in another thread: exit 0: %s\n", yes(code == 0));

	/* 6. posix_spawn reports an exec failure, and runs a program. */
	char *missing[] = {"/nonexistent/vforkshare", NULL};
	int err = posix_spawn(&pid, missing[0], NULL, NULL, missing, environ);
	printf("posix_spawn of a missing program: ENOENT: %s\n", yes(err == ENOENT));
	char *self[] = {argv[0], "exit0", NULL};
	err = posix_spawn(&pid, argv[0], NULL, NULL, self, environ);
	code = err == 0 ? reap(pid) : -1;
	printf("posix_spawn of this program: ok: %s, exit 0: %s\n", yes(err == 0), yes(code == 0));
	return 0;
}
