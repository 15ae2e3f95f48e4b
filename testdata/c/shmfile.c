/*
 * shmfile: shared mappings of memfds and tmpfs files (/dev/shm) map the
 * file's own pages: writes through a mapping are seen by read(2), by a
 * second mapping and by a forked process, and writes by pwrite(2) are seen
 * through the mappings; a read-only shared mapping of a file opened
 * read-only cannot become writable; msync, mremap (shrink, then grow
 * over the file's next pages) and munmap of part of it; /proc/self/maps
 * shows the offset and inode; the mapping outlives its descriptor. A
 * touch past the end of the file raises SIGBUS (BUS_ADRERR), also after a
 * truncate cut the mapped file short, and a
 * syscall given such memory fails with EFAULT; a file grown again maps zero
 * pages there, shared again. Process-shared semaphores and mutexes (futexes
 * without FUTEX_PRIVATE_FLAG) in MAP_SHARED|MAP_ANONYMOUS memory and in a
 * memfd wake waiters of another process. memfd seals: F_SEAL_WRITE is
 * EBUSY while a writable shared mapping exists, then refuses writable
 * mappings; F_SEAL_FUTURE_WRITE keeps existing mappings writable;
 * F_SEAL_GROW and F_SEAL_SHRINK; MFD_NOEXEC_SEAL; a tmpfs file has
 * F_SEAL_SEAL.
 *
 * shmfile hold N: the checkpoint workload. A parent and a forked child
 * share a memfd mapping (the memfd's descriptor closed: only the mappings
 * hold it), a /dev/shm file mapping and two process-shared semaphores in
 * anonymous shared memory. Every 100 ms the parent writes a new value
 * through its memfd mapping and posts; the child checks the value through
 * its own mapping, answers through the /dev/shm mapping and posts back;
 * the parent checks the answer with pread(2) and the contents of a second
 * memfd it keeps open. It prints "tick K ok" (or "tick K CORRUPT what") N
 * times, then "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 2U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 8U
#endif

#define PG 4096

static const char *yesno(int b) { return b ? "yes" : "no"; }

static int mfd(const char *name, unsigned flags) { return syscall(SYS_memfd_create, name, flags); }

/* shmpath names a /dev/shm file unique to this process. */
static void shmpath(char *p, size_t n, const char *what)
{
	snprintf(p, n, "/dev/shm/shmfile-%s-%d", what, (int)getpid());
}

static void *shared_anon(size_t n)
{
	return mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
}

static void coherence(void)
{
	int fd = mfd("coh", 0);
	int t = ftruncate(fd, 4 * PG);
	char *a = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *b = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("memfd shared mappings: %s %s (ftruncate %d)\n", yesno(a != MAP_FAILED), yesno(b != MAP_FAILED), t);
	if (a == MAP_FAILED || b == MAP_FAILED)
		return;
	strcpy(a + PG + 10, "through a");
	char buf[32] = {0};
	pread(fd, buf, 9, PG + 10);
	printf("mapping a -> read(2): \"%s\"; mapping b sees it: %s\n", buf, yesno(strcmp(b + PG + 10, "through a") == 0));
	pwrite(fd, "by pwrite", 9, 3 * PG + 100);
	printf("pwrite -> mappings: %s %s\n", yesno(memcmp(a + 3 * PG + 100, "by pwrite", 9) == 0),
	       yesno(memcmp(b + 3 * PG + 100, "by pwrite", 9) == 0));
	struct stat st;
	fstat(fd, &st);
	printf("size after writes through the mapping: %lld\n", (long long)st.st_size);

	pid_t c = fork();
	if (c == 0) {
		int ok = strcmp(a + PG + 10, "through a") == 0;
		strcpy(b + 2 * PG, "from the child");
		_exit(ok ? 0 : 1);
	}
	int ws;
	waitpid(c, &ws, 0);
	memset(buf, 0, sizeof buf);
	pread(fd, buf, 14, 2 * PG);
	printf("child sees the parent's write: %s; parent reads the child's: \"%s\" and in a: %s\n",
	       yesno(WIFEXITED(ws) && WEXITSTATUS(ws) == 0), buf, yesno(strcmp(a + 2 * PG, "from the child") == 0));

	printf("msync: %d\n", msync(a, 4 * PG, MS_SYNC));
	char *r = mremap(a, 4 * PG, 2 * PG, 0);
	printf("mremap shrink: %s, still shared: %s\n", yesno(r == a), yesno(strcmp(a + PG + 10, "through a") == 0));
	/* Grown again (moving if it must), it maps the file's next pages:
	 * SQLite's memory-mapped I/O grows its mapping of a database so. */
	char *g = mremap(a, 2 * PG, 4 * PG, MREMAP_MAYMOVE);
	if (g != MAP_FAILED) {
		strcpy(g + 3 * PG + 200, "grown");
		memset(buf, 0, sizeof buf);
		pread(fd, buf, 5, 3 * PG + 200);
	}
	printf("mremap grow: %s, the file's pages: %s %s, a write through it read(2): \"%s\"\n", yesno(g != MAP_FAILED),
	       yesno(g != MAP_FAILED && strcmp(g + 2 * PG, "from the child") == 0),
	       yesno(g != MAP_FAILED && memcmp(g + 3 * PG + 100, "by pwrite", 9) == 0), buf);
	printf("munmap part: %d\n", munmap(b, PG));

	/* /proc/self/maps: offset and inode of a mapping at offset 2 pages. */
	char *m = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 2 * PG);
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, off, ino;
		char perms[8], dev[16], path[256] = {0};
		if (sscanf(line, "%lx-%*x %7s %lx %15s %lu %255[^\n]", &lo, perms, &off, dev, &ino, path) < 5)
			continue;
		if (lo == (unsigned long)m) {
			found = 1;
			char *p = path;
			while (*p == ' ')
				p++;
			printf("maps: %s offset %#lx inode matches %s, %s\n", perms, off, yesno(ino == st.st_ino), p);
		}
	}
	if (f)
		fclose(f);
	printf("maps has the mapping: %s\n", yesno(found));
	close(fd);
	printf("mapping outlives the descriptor: %s\n", yesno(strcmp(m, "from the child") == 0));
}

static sigjmp_buf busjmp;
static volatile int buscode;

static void onbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	buscode = si->si_code;
	siglongjmp(busjmp, 1);
}

/* touch reads (or writes) p and returns "ok" or the signal it raised. */
static const char *touch(volatile char *p, int write)
{
	buscode = 0;
	if (sigsetjmp(busjmp, 1))
		return buscode == BUS_ADRERR ? "SIGBUS BUS_ADRERR" : "SIGBUS other";
	if (write)
		*p = 'w';
	else
		(void)*p;
	return "ok";
}

static void pasteof(void)
{
	struct sigaction sa = {0};
	sa.sa_sigaction = onbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	int fd = mfd("eof", 0);
	ftruncate(fd, 3 * PG - 100);
	char *m = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("past EOF in the last page: %s; the page after: %s\n", touch(m + 3 * PG - 50, 0), touch(m + 3 * PG + 10, 0));
	errno = 0;
	ssize_t n = write(fd, m + 3 * PG, 10);
	printf("write(2) from past EOF: %zd EFAULT %s\n", n, yesno(errno == EFAULT));
	m[PG] = 'a';
	ftruncate(fd, PG);
	printf("after a truncate to one page: page 0 %s, page 1 read %s, write %s\n", touch(m, 0), touch(m + PG, 0),
	       touch(m + PG, 1));
	pid_t c = fork();
	if (c == 0)
		_exit(strcmp(touch(m + 2 * PG, 0), "SIGBUS BUS_ADRERR") == 0 ? 0 : 1);
	int ws;
	waitpid(c, &ws, 0);
	printf("a forked child gets SIGBUS too: %s\n", yesno(WIFEXITED(ws) && WEXITSTATUS(ws) == 0));
	ftruncate(fd, 3 * PG);
	printf("grown again: page 1 %s and reads %d\n", touch(m + PG, 0), m[PG]);
	m[2 * PG + 1] = 'z';
	char b = 0;
	pread(fd, &b, 1, 2 * PG + 1);
	printf("write through the regrown mapping seen by read(2): %c\n", b);
	munmap(m, 4 * PG);
	close(fd);
	signal(SIGBUS, SIG_DFL);
}

static void tmpfsfile(void)
{
	char p[64];
	shmpath(p, sizeof p, "file");
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
	int t = ftruncate(fd, 2 * PG);
	char *a = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("/dev/shm file mapped shared: %s (ftruncate %d)\n", yesno(a != MAP_FAILED), t);
	if (a == MAP_FAILED)
		return;
	strcpy(a + 5, "tmpfs data");
	munmap(a, 2 * PG);
	close(fd);
	int ro = open(p, O_RDONLY);
	char buf[16] = {0};
	pread(ro, buf, 10, 5);
	printf("reopened file reads what the mapping wrote: \"%s\"\n", buf);
	char *r = mmap(NULL, PG, PROT_READ, MAP_SHARED, ro, 0);
	errno = 0;
	int mp = mprotect(r, PG, PROT_READ | PROT_WRITE);
	printf("read-only shared mapping: %s, mprotect write %d EACCES %s\n", yesno(r != MAP_FAILED), mp, yesno(errno == EACCES));
	errno = 0;
	void *w = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
	printf("writable shared mapping of a read-only descriptor: EACCES %s\n", yesno(w == MAP_FAILED && errno == EACCES));
	int rw = open(p, O_RDWR);
	pwrite(rw, "X", 1, 5);
	printf("pwrite seen in the read-only mapping: %s\n", yesno(r[5] == 'X'));
	printf("F_GET_SEALS of a tmpfs file: %d\n", fcntl(rw, F_GET_SEALS));
	errno = 0;
	int s = fcntl(rw, F_ADD_SEALS, F_SEAL_WRITE);
	printf("F_ADD_SEALS on a tmpfs file: %d EPERM %s\n", s, yesno(errno == EPERM));
	close(rw);
	close(ro);
	unlink(p);
	printf("unlinked file still mapped: %s\n", yesno(memcmp(r + 5, "Xmpfs data", 10) == 0));
}

static void pshared(void)
{
	sem_t *sem = shared_anon(PG);
	sem_init(&sem[0], 1, 0);
	sem_init(&sem[1], 1, 0);
	int fd = mfd("mutex", 0);
	ftruncate(fd, PG);
	struct shm {
		pthread_mutex_t mu;
		long count;
	} *s = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&s->mu, &ma);
	enum { ROUNDS = 300, ADDS = 20000 };
	pid_t c = fork();
	if (c == 0) {
		for (int i = 0; i < ROUNDS; i++) {
			sem_wait(&sem[0]);
			sem_post(&sem[1]);
		}
		for (int i = 0; i < ADDS; i++) {
			pthread_mutex_lock(&s->mu);
			s->count++;
			pthread_mutex_unlock(&s->mu);
		}
		_exit(0);
	}
	int rounds = 0;
	for (int i = 0; i < ROUNDS; i++) {
		sem_post(&sem[0]);
		if (sem_wait(&sem[1]) == 0)
			rounds++;
	}
	for (int i = 0; i < ADDS; i++) {
		pthread_mutex_lock(&s->mu);
		s->count++;
		pthread_mutex_unlock(&s->mu);
	}
	int ws;
	waitpid(c, &ws, 0);
	printf("pshared semaphores across fork: %d rounds; pshared mutex in a memfd: count %ld\n", rounds, s->count);
}

static void seals(void)
{
	int fd = mfd("sealed", MFD_ALLOW_SEALING);
	ftruncate(fd, 2 * PG);
	char *w = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	errno = 0;
	int s = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE);
	printf("F_SEAL_WRITE with a writable shared mapping: %d EBUSY %s\n", s, yesno(errno == EBUSY));
	munmap(w, PG);
	char *priv = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	s = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW);
	printf("after munmap (a private mapping left): %d, seals %#x\n", s, fcntl(fd, F_GET_SEALS));
	errno = 0;
	w = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	printf("writable shared mapping when sealed: EPERM %s\n", yesno(w == MAP_FAILED && errno == EPERM));
	char *r = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	errno = 0;
	int mp = mprotect(r, PG, PROT_READ | PROT_WRITE);
	printf("read-only one: %s, mprotect write %d EACCES %s\n", yesno(r != MAP_FAILED), mp, yesno(errno == EACCES));
	errno = 0;
	int t = ftruncate(fd, 3 * PG);
	printf("grow after F_SEAL_GROW: %d EPERM %s\n", t, yesno(errno == EPERM));
	printf("private mapping stays writable: %s\n", yesno(priv != MAP_FAILED && (priv[0] = 1) == 1));

	int fw = mfd("future", MFD_ALLOW_SEALING);
	ftruncate(fw, PG);
	w = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fw, 0);
	s = fcntl(fw, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SHRINK);
	w[0] = 'k';
	char c = 0;
	pread(fw, &c, 1, 0);
	errno = 0;
	ssize_t n = pwrite(fw, "x", 1, 0);
	int werr = errno;
	errno = 0;
	void *w2 = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fw, 0);
	int merr = errno;
	errno = 0;
	t = ftruncate(fw, 10);
	printf("F_SEAL_FUTURE_WRITE: %d; old mapping still writes: %s; pwrite %zd EPERM %s; new writable mapping EPERM %s; "
	       "shrink EPERM %s\n",
	       s, yesno(c == 'k'), n, yesno(werr == EPERM), yesno(w2 == MAP_FAILED && merr == EPERM),
	       yesno(t < 0 && errno == EPERM));

	int nx = mfd("noexec", MFD_NOEXEC_SEAL);
	struct stat st;
	fstat(nx, &st);
	errno = 0;
	int ch = fchmod(nx, 0755);
	printf("MFD_NOEXEC_SEAL: mode %o, seals %#x, chmod +x %d EPERM %s\n", st.st_mode & 07777, fcntl(nx, F_GET_SEALS), ch,
	       yesno(errno == EPERM));
	errno = 0;
	s = fcntl(nx, F_ADD_SEALS, 0x40);
	printf("unknown seal: %d EINVAL %s\n", s, yesno(errno == EINVAL));
}

static int hold(int n)
{
	int fd = mfd("held", 0);
	if (fd < 0 || ftruncate(fd, 3 * PG) != 0)
		return 1;
	volatile uint64_t *val = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd); /* only the mappings hold the memfd now */
	int kept = mfd("kept", 0);
	static char kbuf[3 * PG + 1];
	for (int i = 0; i < 3 * PG; i++)
		kbuf[i] = (char)('a' + i % 23);
	if (kept < 0 || write(kept, kbuf, 3 * PG) != 3 * PG)
		return 1;
	char p[64];
	shmpath(p, sizeof p, "hold");
	int sfd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (sfd < 0 || ftruncate(sfd, PG) != 0)
		return 1;
	volatile uint64_t *ack = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	sem_t *sem = shared_anon(PG);
	if (val == MAP_FAILED || ack == MAP_FAILED || sem == MAP_FAILED)
		return 1;
	sem_init(&sem[0], 1, 0);
	sem_init(&sem[1], 1, 0);
	pid_t c = fork();
	if (c == 0) {
		for (;;) {
			while (sem_wait(&sem[0]) != 0)
				;
			uint64_t v = val[PG / 8 * 2];
			ack[1] = v * 3;
			sem_post(&sem[1]);
			if (v == 0)
				_exit(0);
		}
	}
	for (int i = 1; i <= n; i++) {
		val[PG / 8 * 2] = 1000 + i;
		sem_post(&sem[0]);
		while (sem_wait(&sem[1]) != 0)
			;
		uint64_t got = 0;
		pread(sfd, &got, 8, 8);
		static char back[3 * PG];
		int keptok = pread(kept, back, sizeof back, 0) == (ssize_t)sizeof back && memcmp(back, kbuf, sizeof back) == 0;
		if (got != (uint64_t)(1000 + i) * 3)
			printf("tick %d CORRUPT ack %llu\n", i, (unsigned long long)got);
		else if (!keptok)
			printf("tick %d CORRUPT kept memfd\n", i);
		else
			printf("tick %d ok\n", i);
		usleep(100000);
	}
	val[PG / 8 * 2] = 0;
	sem_post(&sem[0]);
	int ws;
	waitpid(c, &ws, 0);
	unlink(p);
	printf("done\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && strcmp(argv[1], "hold") == 0)
		return hold(atoi(argv[2]));
	coherence();
	pasteof();
	tmpfsfile();
	pshared();
	seals();
	return 0;
}
