/*
 * cowfork: after fork, parent and child write the same private pages and
 * neither sees the other's writes: an anonymous region, the heap, the
 * stack, initialized data (a private file mapping), a page written by the
 * kernel (read(2)), MADV_DONTNEED in one of them, and a grandchild; the
 * parent's memory is intact after the child exits, and stays writable; a
 * thread that keeps writing one page (no system call in between) while
 * another thread forks again and again is not killed.
 *
 * "cowfork loop" is a checkpoint workload: the parent and a child share
 * 4 MiB at the fork and, every 20 ms, each checks the pages it has not
 * written still hold the common bytes and those it wrote hold its own,
 * then writes its own tick number into another eighth of the pages; each
 * prints "parent|child tick N ok" (or "... CORRUPT page K"); the parent
 * prints "parent: child ended CORRUPT (status S)" if the child ends. A
 * checkpoint test saves it while most pages are still shared and checks
 * both go on without CORRUPT lines.
 *
 * "cowfork storm" is a checkpoint workload that is nearly always in a
 * copy-on-write fault: every round it forks a child that only waits
 * (sharing 16 MiB again), writes one page of each 64 KiB of them (a fault
 * that copies, but for what fork copied for the child at once), checks
 * every page it wrote in this round and the earlier ones, kills and reaps
 * the child and prints "storm N ok" (or "storm N CORRUPT window K"). A
 * save mostly stops it between a fault the kernel fixed and the faulting
 * instruction's next run.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static long pg;

/* Initialized data: the data segment, a private mapping of the program. */
static char gdata[3 * 4096] = "data";

static int all(const unsigned char *p, long n, unsigned char c)
{
	for (long i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

/* sync: each side of a pipe pair writes one byte and reads one, so both
 * have written their pages before either checks. */
static void meet(int wfd, int rfd)
{
	char c = 0;
	if (write(wfd, &c, 1) != 1 || read(rfd, &c, 1) != 1) {
		perror("meet");
		exit(1);
	}
}

static atomic_int spinning, stop;
static volatile unsigned long spun[512];

/* spin writes one page of the data segment until told to stop. */
static void *spin(void *arg)
{
	(void)arg;
	atomic_store(&spinning, 1);
	while (!atomic_load(&stop))
		spun[0]++;
	return NULL;
}

/* forkWhileWriting forks 20 times while a thread keeps writing a page that
 * each fork makes copy-on-write again. */
static int forkWhileWriting(void)
{
	pthread_t th;
	if (pthread_create(&th, NULL, spin, NULL))
		return 0;
	while (!atomic_load(&spinning))
		;
	int ok = 1;
	for (int i = 0; i < 20; i++) {
		unsigned long before = spun[0];
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		int st;
		waitpid(pid, &st, 0);
		ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
		while (spun[0] == before)
			; /* the thread wrote the page since the fork */
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	return ok;
}

static int checks(void)
{
	const long n = 256; /* pages: 1 MiB */
	unsigned char *m = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *heap = malloc(64 * pg);
	unsigned char stack[4 * 4096];
	if (m == MAP_FAILED || !heap) {
		perror("alloc");
		return 1;
	}
	memset(m, 'I', n * pg);
	memset(heap, 'H', 64 * pg);
	memset(stack, 'S', sizeof stack);
	int up[2], down[2], data[2];
	if (pipe(up) || pipe(down) || pipe(data)) {
		perror("pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	int child = pid == 0;
	unsigned char mine = child ? 'c' : 'p';
	/* Both write every other page of m, the same heap and stack bytes. */
	for (long i = 0; i < n; i += 2)
		m[i * pg + 5] = mine;
	memset(heap + 10 * pg, mine, pg);
	stack[4096 + 1] = mine;
	gdata[4096 + 3] = mine;
	if (child) {
		/* The kernel writes into a shared page of the child. */
		if (write(data[1], "kkkk", 4) != 4 || read(data[0], m + 3 * pg, 4) != 4)
			_exit(10);
		madvise(m + 7 * pg, pg, MADV_DONTNEED);
	}
	meet(child ? up[1] : down[1], child ? down[0] : up[0]);
	int ok = 1;
	for (long i = 0; i < n; i += 2)
		ok &= m[i * pg + 5] == mine && m[i * pg] == 'I';
	int untouched = all(m + pg, pg, 'I') && all(m + 5 * pg, pg, 'I');
	int heapok = all(heap + 10 * pg, pg, mine) && all(heap, 10 * pg, 'H');
	int stackok = stack[4096 + 1] == mine && stack[0] == 'S';
	int dataok = gdata[4096 + 3] == mine && !memcmp(gdata, "data", 4);
	if (child) {
		int kern = !memcmp(m + 3 * pg, "kkkk", 4) && all(m + 3 * pg + 4, pg - 4, 'I');
		int zero = all(m + 7 * pg, pg, 0);
		/* A grandchild shares the child's pages in turn. */
		pid_t g = fork();
		if (g == 0) {
			m[2 * pg] = 'g';
			_exit(m[2 * pg + 5] == 'c' ? 0 : 1);
		}
		int gs;
		waitpid(g, &gs, 0);
		int grand = WIFEXITED(gs) && WEXITSTATUS(gs) == 0 && m[2 * pg] == 'I';
		_exit(ok && untouched && heapok && stackok && dataok && kern && zero && grand ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("child saw only its own writes (pages, heap, stack, data, read(2), MADV_DONTNEED, grandchild): %s\n",
	       yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	printf("parent saw only its own writes: pages %s, untouched pages %s, heap %s, stack %s, data %s\n", yesno(ok),
	       yesno(untouched), yesno(heapok), yesno(stackok), yesno(dataok));
	printf("parent's pages where the child wrote: %s\n", yesno(all(m + 3 * pg, pg, 'I') && all(m + 7 * pg, pg, 'I')));
	for (long i = 0; i < n; i++)
		m[i * pg + 9] = 'w';
	int after = 1;
	for (long i = 0; i < n; i++)
		after &= m[i * pg + 9] == 'w' && m[i * pg] == 'I';
	printf("parent writes every page after the child exited: %s\n", yesno(after));
	printf("a thread writing a page while another forks 20 times: %s\n", yesno(forkWhileWriting()));
	return 0;
}

static void loop(void)
{
	const long n = 1024; /* pages: 4 MiB */
	unsigned char *m = mmap(NULL, n * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	for (long i = 0; i < n; i++)
		memset(m + i * pg, (int)(i & 0x7f), pg);
	fflush(stdout);
	pid_t pid = fork();
	const char *who = pid == 0 ? "child" : "parent";
	/* written[i]: the tick (1..) that last wrote page i here, 0 if none. */
	static int written[1024];
	struct timespec d = {0, 20 * 1000 * 1000};
	for (int tick = 1;; tick++) {
		long bad = -1;
		for (long i = 0; i < n && bad < 0; i++) {
			unsigned char want = written[i] ? (unsigned char)(0x80 | (written[i] & 0x3f) | (pid == 0 ? 0x40 : 0))
							: (unsigned char)(i & 0x7f);
			if (!all(m + i * pg, pg, want))
				bad = i;
		}
		if (bad >= 0)
			printf("%s tick %d CORRUPT page %ld\n", who, tick, bad);
		else
			printf("%s tick %d ok\n", who, tick);
		fflush(stdout);
		for (long i = tick % 8; i < n; i += 8) {
			written[i] = tick;
			memset(m + i * pg, 0x80 | (tick & 0x3f) | (pid == 0 ? 0x40 : 0), pg);
		}
		int st;
		if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid) {
			printf("parent: child ended CORRUPT (status %#x)\n", st);
			fflush(stdout);
			pid = -1;
		}
		nanosleep(&d, NULL);
	}
}

static void storm(void)
{
	enum { windows = 256, window = 64 << 10, slots = 16 };
	unsigned char *m = mmap(NULL, windows * window, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(m, 0, windows * window);
	/* last[k]: the round that last wrote page k of every window, 0 if none. */
	static int last[slots];
	for (int round = 1;; round++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			exit(1);
		}
		if (pid == 0)
			for (;;)
				pause();
		int k = round % slots;
		for (long i = 0; i < windows; i++)
			m[i * window + k * pg] = (unsigned char)round;
		last[k] = round;
		long bad = -1;
		for (long i = 0; i < windows && bad < 0; i++)
			for (int j = 0; j < slots; j++)
				if (m[i * window + j * pg] != (unsigned char)last[j])
					bad = i;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (bad >= 0)
			printf("storm %d CORRUPT window %ld\n", round, bad);
		else
			printf("storm %d ok\n", round);
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	pg = sysconf(_SC_PAGESIZE);
	if (argc > 1 && !strcmp(argv[1], "loop"))
		loop();
	if (argc > 1 && !strcmp(argv[1], "storm"))
		storm();
	return checks();
}
