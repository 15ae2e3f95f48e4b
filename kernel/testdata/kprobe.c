/*
 * kprobe: exercises the kernel's syscalls from a static program and prints
 * facts that must be the same on every run, for kernel/run_test.go.
 * Usage: kprobe MODE [ARGS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <spawn.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long counter;
static pthread_mutex_t counter_mu = PTHREAD_MUTEX_INITIALIZER;

static void *count(void *arg)
{
	for (int i = 0; i < 20000; i++) {
		pthread_mutex_lock(&counter_mu);
		counter++;
		pthread_mutex_unlock(&counter_mu);
	}
	return (void *)syscall(SYS_gettid);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "args")) {
		for (int i = 0; i < argc; i++)
			printf("argv[%d]=%s\n", i, argv[i]);
		printf("env=%s\n", getenv("KPROBE") ? getenv("KPROBE") : "(unset)");
		printf("pid=%d ppid=%d tid=%ld\n", getpid(), getppid(), syscall(SYS_gettid));
		printf("pagesz=%lu random=%d execfn=%s\n", getauxval(AT_PAGESZ), getauxval(AT_RANDOM) != 0, (char *)getauxval(AT_EXECFN));
		char exe[4096];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		exe[n < 0 ? 0 : n] = 0;
		struct stat a, b;
		int same = stat("/dev/stdout", &a) == 0 && fstat(1, &b) == 0 && a.st_ino == b.st_ino;
		printf("exe-ok=%d stdout-alias=%d\n", !strcmp(exe, argv[0]), same);
		return 0;
	}
	if (!strcmp(mode, "file")) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0) {
			printf("open: %s\n", strerror(errno));
			return 1;
		}
		char buf[256];
		ssize_t n = read(fd, buf, sizeof buf - 1);
		buf[n < 0 ? 0 : n] = 0;
		struct stat st;
		fstat(fd, &st);
		printf("read %zd bytes, size %lld: %s", n, (long long)st.st_size, buf);
		int wfd = open(argv[2], O_WRONLY);
		printf("open for writing: %s\n", wfd < 0 ? strerror(errno) : "ok");
		void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
		printf("mmap: %.5s\n", p == MAP_FAILED ? "FAILED" : (char *)p);
		return 0;
	}
	if (!strcmp(mode, "mem")) {
		size_t len = 64 << 20;
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned long sum = 0;
		for (size_t i = 0; i < len; i += 4096)
			p[i] = (unsigned char)(i >> 12);
		p = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
		for (size_t i = 0; i < len; i += 4096)
			sum += p[i];
		mprotect(p, len, PROT_READ);
		munmap(p, 2 * len);
		/* Raw brk: musl's brk() wrapper always fails by design. */
		char *b = (char *)syscall(SYS_brk, 0);
		if ((char *)syscall(SYS_brk, b + (1 << 20)) != b + (1 << 20))
			return 1;
		memset(b, 7, 1 << 20);
		printf("sum=%lu brk-ok=%d\n", sum, b[(1 << 20) - 1] == 7);
		return 0;
	}
	if (!strcmp(mode, "sleep")) {
		long want = argc > 2 ? atol(argv[2]) : 50; /* milliseconds, < 1000 */
		struct timespec a, b, d = {0, want * 1000 * 1000};
		clock_gettime(CLOCK_MONOTONIC, &a);
		nanosleep(&d, NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
		printf("slept>=%ldms=%d\n", want, ms >= want);
		return 0;
	}
	if (!strcmp(mode, "pollsleep")) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		int n = poll(NULL, 0, 80);
		clock_gettime(CLOCK_MONOTONIC, &b);
		long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
		printf("poll=%d waited>=80ms=%d\n", n, ms >= 80);
		return 0;
	}
	if (!strcmp(mode, "uname")) {
		struct utsname u;
		uname(&u);
		printf("%s %s\n", u.sysname, u.machine);
		return 0;
	}
	if (!strcmp(mode, "threads")) {
		pthread_t th[4];
		for (int i = 0; i < 4; i++)
			pthread_create(&th[i], NULL, count, NULL);
		int distinct = 1;
		for (int i = 0; i < 4; i++) {
			void *tid;
			pthread_join(th[i], &tid);
			distinct &= (long)tid != getpid();
		}
		printf("counter=%ld distinct-tids=%d\n", counter, distinct);
		return 0;
	}
	if (!strcmp(mode, "thread-exit")) {
		/* The main thread leaves with exit(2) while another runs; the
		 * process ends with the last thread's code. */
		pthread_t th;
		pthread_create(&th, NULL, count, NULL);
		syscall(SYS_exit, 0);
	}
	if (!strcmp(mode, "fork")) {
		int st;
		pid_t p = fork();
		if (p == 0) {
			execl(argv[0], argv[0], "exit", "5", (char *)NULL);
			_exit(99);
		}
		waitpid(p, &st, 0);
		printf("fork child pid>1=%d exit=%d\n", p > 1, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		pid_t q;
		char *args[] = {argv[0], "segv", NULL};
		if (posix_spawn(&q, argv[0], NULL, NULL, args, environ) != 0)
			return 1;
		waitpid(q, &st, 0);
		printf("spawn child signal=%d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
		printf("echild=%d\n", waitpid(-1, &st, 0) == -1 && errno == ECHILD);
		return 0;
	}
	if (!strcmp(mode, "select")) {
		int p[2];
		if (pipe(p) != 0)
			return 1;
		fd_set r, w;
		FD_ZERO(&r);
		FD_SET(p[0], &r);
		struct timeval tv = {0, 10000};
		int n = select(p[0] + 1, &r, NULL, NULL, &tv);
		printf("select empty: n=%d set=%d\n", n, FD_ISSET(p[0], &r));
		struct pollfd pf = {p[0], POLLIN, 0};
		printf("poll empty: n=%d\n", poll(&pf, 1, 10));
		if (write(p[1], "x", 1) != 1)
			return 1;
		FD_ZERO(&r);
		FD_SET(p[0], &r);
		FD_ZERO(&w);
		FD_SET(p[1], &w);
		n = select(p[1] + 1, &r, &w, NULL, NULL);
		printf("select ready: n=%d r=%d w=%d\n", n, FD_ISSET(p[0], &r), FD_ISSET(p[1], &w));
		n = poll(&pf, 1, -1);
		printf("poll ready: n=%d in=%d\n", n, (pf.revents & POLLIN) != 0);
		close(p[1]);
		char c;
		ssize_t r1 = read(p[0], &c, 1);
		ssize_t r2 = read(p[0], &c, 1);
		printf("read=%zd eof-read=%zd\n", r1, r2);
		return 0;
	}
	if (!strcmp(mode, "epoll")) {
		int ep = epoll_create1(EPOLL_CLOEXEC);
		int efd = eventfd(0, EFD_NONBLOCK);
		int p[2];
		if (ep < 0 || efd < 0 || pipe(p) != 0)
			return 1;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
		epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
		ev.data.u64 = 9;
		epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
		struct epoll_event out[4];
		int n = epoll_wait(ep, out, 4, 10);
		printf("epoll idle: n=%d\n", n);
		uint64_t one = 3, got = 0;
		ssize_t w = write(efd, &one, 8);
		n = epoll_wait(ep, out, 4, -1);
		printf("eventfd: write=%zd n=%d data=%llu\n", w, n, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
		ssize_t r = read(efd, &got, 8);
		ssize_t again = read(efd, &got, 8);
		printf("eventfd read=%zd value=%llu again=%zd eagain=%d\n", r, (unsigned long long)got, again, errno == EAGAIN);
		if (write(p[1], "x", 1) != 1)
			return 1;
		n = epoll_wait(ep, out, 4, -1);
		printf("pipe: n=%d data=%llu\n", n, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
		printf("ctl errors: exist=%d noent=%d\n", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == -1 && errno == EEXIST,
		       epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL) == -1 && errno == ENOENT);
		return 0;
	}
	if (!strcmp(mode, "getpid")) {
		long n = atol(argv[2]);
		for (long i = 0; i < n; i++)
			syscall(SYS_getpid);
		if (argc > 3) { /* then sleep argv[3] ms (< 1000) */
			struct timespec d = {0, atol(argv[3]) * 1000 * 1000};
			nanosleep(&d, NULL);
			printf("getpid %ld done\n", n);
		}
		return 0;
	}
	if (!strcmp(mode, "exit"))
		exit(atoi(argv[2]));
	if (!strcmp(mode, "segv"))
		return *(volatile int *)8;
	if (!strcmp(mode, "privileged")) {
		/* Calls the sandbox refuses whatever the user: "name=-errno". */
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		struct sched_param sp = {1};
		int p[2];
		if (pipe(p) != 0)
			return 1;
		struct {
			const char *name;
			long r;
			int e;
		} calls[4 + 4];
		int n = 0;
#define CALL(label, ...) (calls[n].name = label, calls[n].r = syscall(__VA_ARGS__), calls[n].e = errno, n++)
		CALL("clock_settime", SYS_clock_settime, CLOCK_REALTIME, &now);
		CALL("clock_settime_cputime", SYS_clock_settime, CLOCK_PROCESS_CPUTIME_ID, &now);
		CALL("settimeofday", SYS_settimeofday, NULL, NULL);
		CALL("sched_setscheduler_fifo", SYS_sched_setscheduler, 0, SCHED_FIFO, &sp);
		CALL("unshare_newuts", SYS_unshare, CLONE_NEWUTS);
		CALL("unshare_newuser", SYS_unshare, CLONE_NEWUSER);
		CALL("setpipe_2mib", SYS_fcntl, p[0], F_SETPIPE_SZ, 2 << 20);
		CALL("setns", SYS_setns, p[0], 0);
#undef CALL
		for (int i = 0; i < n; i++)
			printf("%s=%ld\n", calls[i].name, calls[i].r < 0 ? -calls[i].e : calls[i].r);
		return 0;
	}
	if (!strcmp(mode, "rawsyscalls")) {
		/* Each argument is a syscall number, made with six zero arguments. */
		for (int i = 2; i < argc; i++) {
			long r = syscall(atol(argv[i]), 0, 0, 0, 0, 0, 0);
			printf("%s=%ld\n", argv[i], r < 0 ? -errno : r);
		}
		return 0;
	}
	if (!strcmp(mode, "enosys"))
		return syscall(400) == -1 && errno == ENOSYS ? 0 : 1;
	return 2;
}
