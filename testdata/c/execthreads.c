/*
 * execthreads main|thread: starts three threads (one spinning in user
 * mode, one in nanosleep, one blocked reading a pipe), then calls execve on
 * itself from the main thread or from a fourth thread while the main
 * thread waits in pthread_join. As in Linux, the other threads end, the
 * process keeps its PID, the exec'ing thread's TID becomes the PID, and
 * the new image runs single-threaded: it prints what it sees and exits 3.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static char *self;
static char pidstr[32];
static int pipefd[2];
static volatile int spinning;

static void *spin(void *arg)
{
	(void)arg;
	for (;;)
		spinning++;
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	struct timespec ts = {100, 0};
	nanosleep(&ts, NULL);
	printf("sleeper woke up: must not happen\n");
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	char c;
	ssize_t n = read(pipefd[0], &c, 1);
	printf("reader returned %zd: must not happen\n", n);
	return NULL;
}

static void do_exec(void)
{
	char *args[] = {self, "after", pidstr, NULL};
	execv(self, args);
	perror("execv");
	exit(1);
}

static void *execer(void *arg)
{
	(void)arg;
	do_exec();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "after") == 0) {
		long tid = syscall(SYS_gettid);
		printf("after exec: pid unchanged %s, tid==pid %s\n", yesno(getpid() == atoi(argv[2])),
		       yesno(tid == getpid()));
		/* A new thread in the new image works too. */
		pthread_t th;
		int r = pthread_create(&th, NULL, sleeper, NULL);
		printf("new thread after exec: created %s\n", yesno(r == 0));
		return 3;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: execthreads main|thread\n");
		return 2;
	}
	self = argv[0];
	snprintf(pidstr, sizeof pidstr, "%d", (int)getpid());
	if (pipe(pipefd) != 0) {
		perror("pipe");
		return 1;
	}
	pthread_t th[4];
	pthread_create(&th[0], NULL, spin, NULL);
	pthread_create(&th[1], NULL, sleeper, NULL);
	pthread_create(&th[2], NULL, reader, NULL);
	while (spinning == 0)
		usleep(1000);
	usleep(20000);
	printf("three threads running, exec from the %s thread\n", argv[1]);
	fflush(stdout);
	if (strcmp(argv[1], "main") == 0)
		do_exec();
	pthread_create(&th[3], NULL, execer, NULL);
	pthread_join(th[3], NULL);
	printf("join returned: must not happen\n");
	return 1;
}
