/*
 * limits: what a sandbox's limits do to a program (snap run --pids N,
 * --memory SIZE). Checks run in the order given:
 *
 *   wait       print "ready", then wait for a line on stdin (a checkpoint
 *              test saves and restores the sandbox there)
 *   forks MAX  fork children that wait on a pipe until fork fails or MAX
 *              are running: "forks: K, then EAGAIN" (or "then the cap");
 *              then let them exit and reap them: "reaped: K"
 *   threads MAX  the same with pthread_create: "threads: K, then EAGAIN"
 *   memory     with --memory 64M: a 16 MiB mapping works and can be
 *              touched, a 128 MiB mmap, a growth to 128 MiB by mremap and
 *              by brk, and a 128 MiB malloc fail with ENOMEM
 *   cow        40 MiB written, then a forked child writes it all again:
 *              "cow: child exit 0", or with --memory 64M (the child's
 *              copies pass it) "cow: child killed by signal 9"
 *   file       a 128 MiB file written in /tmp, 1 MiB at a time: "ok", or
 *              with --memory 64M (file data is the sandbox's memory)
 *              ENOSPC; after its removal a 1 MiB file fits again
 *
 * Natively (no limit) forks and threads stop at MAX and memory succeeds
 * everywhere; a test runs it under snap with limits and checks the lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1024UL * 1024)

static const char *errname(int e) {
	switch (e) {
	case 0: return "ok";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case ENOSPC: return "ENOSPC";
	default: return strerror(e);
	}
}

static int gate[2];

static void waitgate(void) {
	char c;
	while (read(gate[0], &c, 1) < 0 && errno == EINTR)
		;
}

static void forks(long max) {
	if (pipe(gate)) exit(3);
	long k = 0;
	int err = 0;
	for (; k < max; k++) {
		pid_t p = fork();
		if (p < 0) {
			err = errno;
			break;
		}
		if (p == 0) {
			close(gate[1]);
			waitgate();
			_exit(0);
		}
	}
	printf("forks: %ld, then %s\n", k, err ? errname(err) : "the cap");
	close(gate[1]);
	long reaped = 0;
	while (wait(NULL) > 0) reaped++;
	printf("reaped: %ld\n", reaped);
	close(gate[0]);
}

static void *thread(void *arg) {
	(void)arg;
	waitgate();
	return NULL;
}

static void threads(long max) {
	if (pipe(gate)) exit(3);
	pthread_t *ts = calloc(max, sizeof *ts);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	long k = 0;
	int err = 0;
	for (; k < max; k++) {
		err = pthread_create(&ts[k], &attr, thread, NULL);
		if (err) break;
	}
	printf("threads: %ld, then %s\n", k, err ? errname(err) : "the cap");
	close(gate[1]);
	for (long i = 0; i < k; i++) pthread_join(ts[i], NULL);
	close(gate[0]);
	free(ts);
}

static int mmap_err(size_t len) {
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return errno;
	munmap(p, len);
	return 0;
}

static void memory(void) {
	char *p = mmap(NULL, 16 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ok = p != MAP_FAILED;
	if (ok) memset(p, 1, 16 * MiB);
	printf("mmap 16 MiB and touch it: %s\n", ok ? "ok" : errname(errno));
	printf("mmap 128 MiB: %s\n", errname(mmap_err(128 * MiB)));
	void *q = ok ? mremap(p, 16 * MiB, 128 * MiB, MREMAP_MAYMOVE) : MAP_FAILED;
	printf("mremap 16 to 128 MiB: %s\n", q != MAP_FAILED ? "ok" : errname(errno));
	if (q != MAP_FAILED) p = q;
	uintptr_t cur = syscall(SYS_brk, 0);
	uintptr_t got = syscall(SYS_brk, cur + 128 * MiB);
	printf("brk +128 MiB: %s\n", got == cur + 128 * MiB ? "ok" : "ENOMEM");
	syscall(SYS_brk, cur);
	got = syscall(SYS_brk, cur + 1 * MiB);
	printf("brk +1 MiB: %s\n", got == cur + 1 * MiB ? "ok" : "ENOMEM");
	syscall(SYS_brk, cur);
	void *m = malloc(128 * MiB);
	printf("malloc 128 MiB: %s\n", m ? "ok" : "NULL");
	free(m);
}

static void cow(void) {
	char *p = mmap(NULL, 40 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("cow: mmap: %s\n", errname(errno));
		return;
	}
	memset(p, 1, 40 * MiB);
	fflush(stdout);
	pid_t c = fork();
	if (c < 0) {
		printf("cow: fork: %s\n", errname(errno));
		return;
	}
	if (c == 0) {
		memset(p, 2, 40 * MiB);
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	if (WIFSIGNALED(st))
		printf("cow: child killed by signal %d\n", WTERMSIG(st));
	else
		printf("cow: child exit %d\n", WEXITSTATUS(st));
	munmap(p, 40 * MiB);
}

/* fill writes up to mib MiB to a new file in /tmp, removed after. */
static const char *fill(long mib) {
	char name[] = "/tmp/limits-XXXXXX";
	int fd = mkstemp(name);
	if (fd < 0)
		return errname(errno);
	unlink(name);
	static char buf[MiB];
	memset(buf, 7, sizeof buf);
	int err = 0;
	for (long i = 0; i < mib && !err; i++) {
		ssize_t n = write(fd, buf, sizeof buf);
		if (n < 0)
			err = errno;
		else if (n < (ssize_t)sizeof buf)
			err = ENOSPC; /* short: the next write fails */
	}
	close(fd);
	return errname(err);
}

static void file(void) {
	printf("file of 128 MiB in /tmp: %s\n", fill(128));
	printf("then a file of 1 MiB: %s\n", fill(1));
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "wait")) {
			printf("ready\n");
			fflush(stdout);
			char c;
			while (read(0, &c, 1) == 1 && c != '\n')
				;
		} else if (!strcmp(argv[i], "forks") && i + 1 < argc) {
			forks(atol(argv[++i]));
		} else if (!strcmp(argv[i], "threads") && i + 1 < argc) {
			threads(atol(argv[++i]));
		} else if (!strcmp(argv[i], "memory")) {
			memory();
		} else if (!strcmp(argv[i], "cow")) {
			cow();
		} else if (!strcmp(argv[i], "file")) {
			file();
		} else {
			fprintf(stderr, "usage: limits [wait] [forks MAX] [threads MAX] [memory] [cow] [file]\n");
			return 2;
		}
		fflush(stdout);
	}
	return 0;
}
