/*
 * mremapfile FILE: growing a private mapping of a host file (FILE: 3
 * pages, page i filled with 'A'+i) maps the file's next pages, before and
 * after a save: the first page's mapping grows to two pages, a second
 * mapping maps the whole file, the program waits for a byte on stdin (the
 * zdtm save point), checks that both survived, and grows the first to
 * three pages.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

/* all reports whether n bytes at p all equal c. */
static int all(const char *p, long n, char c)
{
	for (long i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mremapfile FILE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	long pg = sysconf(_SC_PAGESIZE);
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	char *p = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	close(fd);
	char *g = mremap(p, pg, 2 * pg, MREMAP_MAYMOVE);
	if (g == MAP_FAILED) {
		perror("mremap");
		return 1;
	}
	printf("grown to 2 pages: file's next page: %s\n", yesno(all(g, pg, 'A') && all(g + pg, pg, 'B')));
	fd = open(argv[1], O_RDONLY);
	char *w = mmap(NULL, 3 * pg, PROT_READ, MAP_PRIVATE, fd, 0);
	if (w == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	close(fd);
	printf("whole file mapped: %s\n", yesno(all(w + 2 * pg, pg, 'C')));
	char c;
	if (read(0, &c, 1) != 1) {
		fprintf(stderr, "mremapfile: no byte on stdin\n");
		return 1;
	}
	printf("after the wait: 2 pages kept: %s, whole file kept: %s\n", yesno(all(g, pg, 'A') && all(g + pg, pg, 'B')),
	       yesno(all(w, pg, 'A') && all(w + pg, pg, 'B') && all(w + 2 * pg, pg, 'C')));
	char *h = mremap(g, 2 * pg, 3 * pg, MREMAP_MAYMOVE);
	if (h == MAP_FAILED) {
		perror("mremap");
		return 1;
	}
	printf("grown to 3 pages: file's third page: %s\n", yesno(all(h, pg, 'A') && all(h + pg, pg, 'B') && all(h + 2 * pg, pg, 'C')));
	return 0;
}
