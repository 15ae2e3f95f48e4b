/*
 * filemap: private and shared mappings of a host file (argv[1]: 5 pages,
 * page i filled with 'A'+i, then 123 bytes of 'F'). Two private mappings of
 * the same pages see the file; a write to one (after mprotect, or by a
 * read(2) into it) is seen by neither the other nor the file; MADV_DONTNEED
 * brings the file's page back; a forked child's writes stay in the child;
 * mremap moves the contents, and growing a mapping of the first page maps
 * the file's next pages (read-only or copied when writable); munmap of a middle page keeps the rest; the
 * last partial page reads as zero after the end of the file; a shared
 * read-only mapping cannot be made writable; /proc/self/maps shows the file
 * offset, device and inode of a file mapping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static long pg;

/* all reports whether n bytes at p all equal c. */
static int all(const char *p, long n, char c)
{
	for (long i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static void *map(int prot, int flags, int fd, long off, long pages)
{
	void *p = mmap(NULL, pages * pg, prot, flags, fd, off);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* mapsLine reports whether /proc/self/maps has a line for [start, end)
 * with perms, offset off and the device and inode of st. */
static int mapsLine(void *start, void *end, const char *perms, long off, const struct stat *st)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) {
		perror("fopen /proc/self/maps");
		exit(1);
	}
	char line[512];
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e, o, ino;
		unsigned maj, min;
		char p[5];
		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &s, &e, p, &o, &maj, &min, &ino) != 7)
			continue;
		if (s == (unsigned long)start) {
			found = e == (unsigned long)end && !strcmp(p, perms) && o == (unsigned long)off &&
				maj == major(st->st_dev) && min == minor(st->st_dev) && ino == st->st_ino;
			if (!found)
				fprintf(stderr, "maps line: %s", line);
		}
	}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: filemap FILE\n");
		return 2;
	}
	pg = sysconf(_SC_PAGESIZE);
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	struct stat st;
	fstat(fd, &st);

	char *p = map(PROT_READ, MAP_PRIVATE, fd, pg, 3);
	char *q = map(PROT_READ, MAP_PRIVATE, fd, pg, 3);
	printf("two private mappings read the file: %s\n",
	       yesno(all(p, pg, 'B') && all(p + 2 * pg, pg, 'D') && all(q + pg, pg, 'C')));
	printf("maps: r--p, offset, device and inode: %s\n", yesno(mapsLine(p, p + 3 * pg, "r--p", pg, &st)));

	if (mprotect(p, 3 * pg, PROT_READ | PROT_WRITE)) {
		perror("mprotect");
		return 1;
	}
	p[pg + 7] = 'x';
	char c;
	pread(fd, &c, 1, 2 * pg + 7);
	printf("write after mprotect: seen: %s, other mapping unchanged: %s, file unchanged: %s, neighbours kept: %s\n",
	       yesno(p[pg + 7] == 'x'), yesno(all(q + pg, pg, 'C')), yesno(c == 'C'),
	       yesno(all(p, pg, 'B') && all(p + 2 * pg, pg, 'D') && all(p + pg, 7, 'C')));
	printf("maps after the write: one rw-p line: %s\n", yesno(mapsLine(p, p + 3 * pg, "rw-p", pg, &st)));

	if (madvise(p + pg, pg, MADV_DONTNEED)) {
		perror("madvise");
		return 1;
	}
	printf("MADV_DONTNEED: file page back: %s\n", yesno(all(p + pg, pg, 'C')));

	/* The kernel writes into the mapping: read(2) into a page never
	 * written by the program. */
	if (pread(fd, p + 2 * pg, 10, 0) != 10) {
		perror("pread");
		return 1;
	}
	printf("read(2) into the mapping: seen: %s, other mapping unchanged: %s\n",
	       yesno(all(p + 2 * pg, 10, 'A') && all(p + 2 * pg + 10, pg - 10, 'D')), yesno(all(q + 2 * pg, pg, 'D')));

	pid_t pid = fork();
	if (pid == 0) {
		p[0] = 'c';
		_exit(p[0] == 'c' && all(q, pg, 'B') ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("fork: child's write stayed in the child: %s, parent's page kept: %s\n",
	       yesno(WIFEXITED(status) && WEXITSTATUS(status) == 0), yesno(all(p, pg, 'B')));

	char *dst = map(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, 3);
	char *r = mremap(q, 3 * pg, 3 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	printf("mremap: moved: %s, contents kept: %s\n", yesno(r == dst),
	       yesno(r == dst && all(r, pg, 'B') && all(r + 2 * pg, pg, 'D')));
	for (int w = 0; w < 2; w++) {
		char *g = map(w ? PROT_READ | PROT_WRITE : PROT_READ, MAP_PRIVATE, fd, 0, 1);
		char *h = mremap(g, pg, 3 * pg, MREMAP_MAYMOVE);
		printf("mremap grows a %s private mapping: file's next pages: %s\n", w ? "writable" : "read-only",
		       yesno(h != MAP_FAILED && all(h, pg, 'A') && all(h + pg, pg, 'B') && all(h + 2 * pg, pg, 'C')));
		if (h != MAP_FAILED)
			munmap(h, 3 * pg);
	}
	munmap(r + pg, pg);
	printf("munmap of the middle page: ends kept: %s\n", yesno(all(r, pg, 'B') && all(r + 2 * pg, pg, 'D')));

	char *t = map(PROT_READ, MAP_PRIVATE, fd, 5 * pg, 1);
	printf("last page: file bytes: %s, zero after the end: %s\n", yesno(all(t, 123, 'F')),
	       yesno(all(t + 123, pg - 123, 0)));

	char *s = map(PROT_READ, MAP_SHARED, fd, 0, 2);
	errno = 0;
	int rc = mprotect(s, 2 * pg, PROT_READ | PROT_WRITE);
	printf("shared read-only mapping: reads the file: %s, mprotect(PROT_WRITE) EACCES: %s\n",
	       yesno(all(s, pg, 'A') && all(s + pg, pg, 'B')), yesno(rc == -1 && errno == EACCES));
	printf("maps: r--s at offset 0: %s\n", yesno(mapsLine(s, s + 2 * pg, "r--s", 0, &st)));
	return 0;
}
