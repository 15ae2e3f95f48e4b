/*
 * procmaps: reads /proc/self/maps and checks what a program relies on: every
 * line parses as "start-end perms offset dev inode [name]" with names in
 * column 74; a fresh 3-page PROT_READ mapping is one r--p line, split into
 * three by mprotect of its middle page; a shared anonymous mapping is
 * rw-s; the stack line holds a local variable; the code of main lies in an
 * r-xp line named by the program's path; an unmapped hole disappears.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

struct line {
	unsigned long start, end;
	char perms[5];
	char name[256];
};

static struct line lines[1024];
static int nlines, wellformed;

static void load(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY);
	if (fd < 0) {
		perror("open /proc/self/maps");
		exit(1);
	}
	size_t len = 0;
	ssize_t n;
	while ((n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = 0;
	nlines = 0;
	wellformed = len > 0 && buf[len - 1] == '\n';
	for (char *l = buf, *next; *l; l = next) {
		char *nl = strchr(l, '\n');
		if (!nl)
			break;
		*nl = 0;
		next = nl + 1;
		struct line *x = &lines[nlines++];
		unsigned long off, ino;
		unsigned maj, min;
		int pos = 0;
		if (sscanf(l, "%lx-%lx %4s %lx %x:%x %lu %n", &x->start, &x->end, x->perms, &off, &maj, &min, &ino,
			   &pos) < 7)
			wellformed = 0;
		x->name[0] = 0;
		if ((size_t)pos < strlen(l)) {
			if (pos != 73)
				wellformed = 0;
			snprintf(x->name, sizeof x->name, "%s", l + pos);
		}
	}
}

static struct line *find(unsigned long addr)
{
	for (int i = 0; i < nlines; i++)
		if (lines[i].start <= addr && addr < lines[i].end)
			return &lines[i];
	return NULL;
}

int main(int argc, char **argv)
{
	(void)argc;
	long pg = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 3 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *s = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	load();
	printf("lines parse, names in column 74: %s\n", yesno(wellformed && nlines > 3));
	struct line *l = find((unsigned long)p);
	printf("3-page mapping: one r--p line of 3 pages %s\n",
	       yesno(l && l->start == (unsigned long)p && l->end == (unsigned long)p + 3 * pg && !strcmp(l->perms, "r--p")));
	l = find((unsigned long)s);
	printf("shared anonymous: rw-s %s\n", yesno(l && !strcmp(l->perms, "rw-s")));
	int local;
	l = find((unsigned long)&local);
	printf("stack: [stack] %s, rw-p %s\n", yesno(l && !strcmp(l->name, "[stack]")), yesno(l && !strcmp(l->perms, "rw-p")));
	l = find((unsigned long)main);
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *lbase = l ? (strrchr(l->name, '/') ? strrchr(l->name, '/') + 1 : l->name) : "";
	printf("main: r-xp %s, named by the program %s\n", yesno(l && !strcmp(l->perms, "r-xp")), yesno(!strcmp(lbase, base)));

	mprotect(p + pg, pg, PROT_READ | PROT_WRITE);
	load();
	struct line *a = find((unsigned long)p), *b = find((unsigned long)p + pg), *c = find((unsigned long)p + 2 * pg);
	printf("after mprotect of the middle page: %s %s %s\n", a ? a->perms : "?", b ? b->perms : "?", c ? c->perms : "?");
	munmap(p + pg, pg);
	load();
	printf("after munmap of the middle page: hole %s, neighbours %s\n", yesno(find((unsigned long)p + pg) == NULL),
	       yesno(find((unsigned long)p) && find((unsigned long)p + 2 * pg)));
	struct stat st;
	int sr = stat("/proc/self/maps", &st);
	printf("stat: %d, regular %s, mode %o, size %lld\n", sr, yesno(S_ISREG(st.st_mode)), st.st_mode & 07777,
	       (long long)st.st_size);
	int w = open("/proc/self/maps", O_WRONLY);
	printf("writing fails: %s\n", yesno(w >= 0 && write(w, "x", 1) < 0));
	return 0;
}
