/*
 * fsops BASE: creates and changes files in a fresh directory under BASE
 * (the host's /tmp natively, a tmpfs under snap run --tmpfs /tmp) and
 * prints what each step returned: mkdir, create with O_EXCL, write, pread
 * of a hole, O_APPEND, O_TRUNC, symlinks (readlink, lstat, O_NOFOLLOW, a
 * dangling one with O_CREAT|O_EXCL), hard links, rename (over a file,
 * NOREPLACE, EXCHANGE, a directory into itself, onto a non-empty
 * directory, file onto directory and back), unlink of an open file, rmdir,
 * chmod/fchmod, chown/fchown/lchown, utimensat/futimens/utimes, truncate,
 * ftruncate, fallocate (KEEP_SIZE, PUNCH_HOLE), O_TMPFILE given a name by
 * linkat, a sorted directory listing, relative paths and "..", a private
 * mapping of a file. Nothing printed depends on the directory's name or
 * on the filesystem's type. It removes its directory at the end.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 1
#define FALLOC_FL_PUNCH_HOLE 2
#endif

static const char *err(int r) { return r < 0 ? strerror(errno) : "ok"; }

static int rename2(const char *a, const char *b, unsigned flags) {
	return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static void put(const char *path, const char *s) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		printf("put %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
}

static const char *get(const char *path) {
	static char buf[256];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return strerror(errno);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static void listing(const char *dir) {
	DIR *d = opendir(dir);
	char *names[64];
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) && n < 64)
		names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof names[0], cmpstr);
	printf("listing:");
	for (int i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
}

static void basics(void) {
	struct stat st;
	printf("mkdir d: %s\n", err(mkdir("d", 0750)));
	stat("d", &st);
	printf("d: mode %o nlink %lu\n", st.st_mode, (unsigned long)st.st_nlink);
	printf("mkdir d again: %s\n", err(mkdir("d", 0755)));
	printf("mkdir x/y: %s\n", err(mkdir("x/y", 0755)));
	int fd = open("f", O_WRONLY | O_CREAT | O_EXCL, 0644);
	printf("create f: %s\n", err(fd));
	printf("write: %zd\n", write(fd, "hello world\n", 12));
	fstat(fd, &st);
	printf("f: mode %o size %lld nlink %lu\n", st.st_mode, (long long)st.st_size, (unsigned long)st.st_nlink);
	close(fd);
	printf("create f again (O_EXCL): %s\n", err(open("f", O_WRONLY | O_CREAT | O_EXCL, 0644)));
	printf("create f/ (trailing slash): %s\n", err(open("new/", O_WRONLY | O_CREAT, 0644)));
	printf("open d for writing: %s\n", err(open("d", O_WRONLY)));
	printf("open f O_DIRECTORY: %s\n", err(open("f", O_RDONLY | O_DIRECTORY)));
	fd = open("f", O_RDWR);
	char buf[128];
	printf("pwrite at 100: %zd\n", pwrite(fd, "tail", 4, 100));
	fstat(fd, &st);
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	int zeros = 0;
	for (int i = 12; i < 100 && i < n; i++)
		zeros += buf[i] == 0;
	printf("size %lld, read %zd, zeros in the hole %d, tail %.4s\n", (long long)st.st_size, n, zeros, buf + 100);
	printf("lseek end: %lld\n", (long long)lseek(fd, 0, SEEK_END));
	close(fd);
	fd = open("f", O_WRONLY | O_APPEND);
	write(fd, "!", 1);
	close(fd);
	stat("f", &st);
	printf("after O_APPEND: size %lld\n", (long long)st.st_size);
	fd = open("f", O_WRONLY | O_TRUNC);
	fstat(fd, &st);
	printf("after O_TRUNC: size %lld\n", (long long)st.st_size);
	write(fd, "data", 4);
	close(fd);
	printf("access W_OK: %s, X_OK: %s\n", err(access("f", W_OK)), err(access("f", X_OK)));
}

static void links(void) {
	struct stat st, st2;
	char buf[64];
	printf("symlink l -> f: %s\n", err(symlink("f", "l")));
	ssize_t n = readlink("l", buf, sizeof buf);
	printf("readlink l: %.*s\n", (int)(n < 0 ? 0 : n), buf);
	lstat("l", &st);
	printf("lstat l: link %d size %lld\n", S_ISLNK(st.st_mode), (long long)st.st_size);
	printf("read through l: %s\n", get("l"));
	printf("open l O_NOFOLLOW: %s\n", err(open("l", O_RDONLY | O_NOFOLLOW)));
	printf("symlink dangling -> nowhere: %s\n", err(symlink("nowhere", "dangling")));
	printf("O_CREAT|O_EXCL on dangling: %s\n", err(open("dangling", O_WRONLY | O_CREAT | O_EXCL, 0644)));
	printf("symlink onto f: %s\n", err(symlink("x", "f")));
	printf("link f h: %s\n", err(link("f", "h")));
	stat("f", &st);
	stat("h", &st2);
	printf("f nlink %lu, same inode %d\n", (unsigned long)st.st_nlink, st.st_ino == st2.st_ino);
	printf("link d d2 (directory): %s\n", err(link("d", "d2")));
	printf("link onto existing: %s\n", err(link("f", "l")));
	printf("symlink to dir, walk through it: %s\n", err(symlink("d", "dl")));
	put("dl/inside", "via link");
	printf("d/inside: %s\n", get("d/inside"));
	printf("relative .. walk: %s\n", get("d/../d/./inside"));
	printf("unlink d/inside: %s\n", err(unlink("d/inside")));
}

static void renames(void) {
	put("a", "A");
	put("b", "B");
	printf("rename a c: %s\n", err(rename("a", "c")));
	printf("a: %s, c: %s\n", get("a"), get("c"));
	printf("rename c b (over b): %s, b: %s\n", err(rename("c", "b")), get("b"));
	put("a", "A");
	printf("renameat2 NOREPLACE a b: %s\n", err(rename2("a", "b", RENAME_NOREPLACE)));
	printf("renameat2 EXCHANGE a b: %s\n", err(rename2("a", "b", RENAME_EXCHANGE)));
	printf("a: %s, b: %s\n", get("a"), get("b"));
	printf("renameat2 EXCHANGE a missing: %s\n", err(rename2("a", "missing", RENAME_EXCHANGE)));
	printf("renameat2 both flags: %s\n", err(rename2("a", "b", RENAME_EXCHANGE | RENAME_NOREPLACE)));
	mkdir("p", 0755);
	mkdir("p/q", 0755);
	printf("rename p into p/q/r: %s\n", err(rename("p", "p/q/r")));
	mkdir("full", 0755);
	put("full/x", "x");
	printf("rename p onto non-empty dir: %s\n", err(rename("p", "full")));
	printf("rename file onto dir: %s\n", err(rename("a", "p")));
	printf("rename dir onto file: %s\n", err(rename("p", "a")));
	mkdir("empty", 0755);
	printf("rename p onto empty dir: %s\n", err(rename("p", "empty")));
	printf("empty/q exists: %s\n", err(access("empty/q", F_OK)));
	printf("rename missing: %s\n", err(rename("nope", "x")));
	printf("rename . x: %s\n", err(rename(".", "x")));
	printf("renameat2 EXCHANGE dir and file: %s\n", err(rename2("empty", "a", RENAME_EXCHANGE)));
	struct stat st;
	stat("a", &st);
	printf("a is a directory now: %d, empty is a file: %s\n", S_ISDIR(st.st_mode), get("empty"));
}

static void removals(void) {
	put("open", "still here");
	int fd = open("open", O_RDWR);
	printf("unlink open file: %s\n", err(unlink("open")));
	struct stat st;
	fstat(fd, &st);
	char buf[32] = {0};
	pread(fd, buf, sizeof buf - 1, 0);
	printf("after unlink: nlink %lu, read %s, write %zd\n", (unsigned long)st.st_nlink, buf, pwrite(fd, "!", 1, 10));
	close(fd);
	printf("open unlinked by name: %s\n", err(open("open", O_RDONLY)));
	printf("rmdir non-empty: %s\n", err(rmdir("full")));
	printf("rmdir file: %s\n", err(rmdir("b")));
	printf("unlink dir: %s\n", err(unlink("full")));
	printf("rmdir .: %s\n", err(rmdir(".")));
	printf("unlink full/x: %s\n", err(unlink("full/x")));
	printf("rmdir full: %s\n", err(rmdir("full")));
	printf("rmdir missing: %s\n", err(rmdir("full")));
	printf("unlink missing: %s\n", err(unlink("full")));
	mkdir("gone", 0755);
	int dfd = open("gone", O_RDONLY | O_DIRECTORY);
	printf("rmdir open dir: %s\n", err(rmdir("gone")));
	printf("create in removed dir: %s\n", err(openat(dfd, "x", O_WRONLY | O_CREAT, 0644)));
	close(dfd);
}

static void attrs(void) {
	struct stat st;
	printf("chmod 600: %s", err(chmod("f", 0600)));
	stat("f", &st);
	printf(", mode %o\n", st.st_mode);
	int fd = open("f", O_RDWR);
	printf("fchmod 4750: %s", err(fchmod(fd, 04750)));
	fstat(fd, &st);
	printf(", mode %o\n", st.st_mode);
	printf("chown 1234:5678: %s", err(chown("f", 1234, 5678)));
	stat("f", &st);
	printf(", uid %u gid %u mode %o\n", st.st_uid, st.st_gid, st.st_mode);
	printf("fchown -1:42: %s", err(fchown(fd, -1, 42)));
	fstat(fd, &st);
	printf(", uid %u gid %u\n", st.st_uid, st.st_gid);
	printf("lchown l 7:8: %s", err(lchown("l", 7, 8)));
	lstat("l", &st);
	printf(", link uid %u gid %u", st.st_uid, st.st_gid);
	stat("l", &st);
	printf(", target uid %u\n", st.st_uid);
	struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
	printf("utimensat: %s", err(utimensat(AT_FDCWD, "f", ts, 0)));
	stat("f", &st);
	printf(", atime %lld.%09ld mtime %lld.%09ld\n", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	       (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	struct timespec omit[2] = {{0, UTIME_OMIT}, {1200000000, 0}};
	printf("futimens omit atime: %s", err(futimens(fd, omit)));
	fstat(fd, &st);
	printf(", atime %lld mtime %lld\n", (long long)st.st_atim.tv_sec, (long long)st.st_mtim.tv_sec);
	struct timeval tv[2] = {{900000000, 5}, {950000000, 6}};
	printf("utimes: %s", err(utimes("f", tv)));
	stat("f", &st);
	printf(", atime %lld.%09ld mtime %lld.%09ld\n", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	       (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
	printf("utimensat bad nsec: %s\n", err(utimensat(AT_FDCWD, "f", bad, 0)));
	printf("truncate 5000: %s", err(truncate("f", 5000)));
	stat("f", &st);
	printf(", size %lld\n", (long long)st.st_size);
	printf("ftruncate 2: %s", err(ftruncate(fd, 2)));
	fstat(fd, &st);
	printf(", size %lld, contents %s\n", (long long)st.st_size, get("f"));
	printf("truncate dir: %s\n", err(truncate("d", 0)));
	printf("fallocate 8192: %s", err(fallocate(fd, 0, 0, 8192)));
	fstat(fd, &st);
	printf(", size %lld\n", (long long)st.st_size);
	printf("fallocate KEEP_SIZE to 16384: %s", err(fallocate(fd, FALLOC_FL_KEEP_SIZE, 8192, 8192)));
	fstat(fd, &st);
	printf(", size %lld\n", (long long)st.st_size);
	pwrite(fd, "abcdefgh", 8, 4000);
	printf("punch hole: %s", err(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4002, 4)));
	char buf[8];
	pread(fd, buf, 8, 4000);
	printf(", bytes %c%c%d%d%d%d%c%c\n", buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7]);
	char *m = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
	printf("private mapping: %s, bytes at 4000: %.2s\n", m == MAP_FAILED ? strerror(errno) : "ok",
	       m == MAP_FAILED ? "" : m + 4000);
	close(fd);
}

static void tmpfiles(void) {
	int fd = open(".", O_TMPFILE | O_RDWR, 0600);
	printf("O_TMPFILE: %s\n", err(fd));
	if (fd < 0)
		return;
	write(fd, "anonymous", 9);
	struct stat st;
	fstat(fd, &st);
	printf("tmpfile: nlink %lu size %lld\n", (unsigned long)st.st_nlink, (long long)st.st_size);
	printf("linkat AT_EMPTY_PATH: %s\n", err(linkat(fd, "", AT_FDCWD, "named", AT_EMPTY_PATH)));
	fstat(fd, &st);
	printf("named: %s, nlink %lu\n", get("named"), (unsigned long)st.st_nlink);
	close(fd);
	fd = open(".", O_TMPFILE | O_RDWR, 0600);
	write(fd, "via proc", 8);
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	printf("linkat /proc/self/fd/N AT_SYMLINK_FOLLOW: %s", err(linkat(AT_FDCWD, proc, AT_FDCWD, "named3", AT_SYMLINK_FOLLOW)));
	printf(", named3: %s\n", get("named3"));
	close(fd);
	fd = open(".", O_TMPFILE | O_RDWR | O_EXCL, 0600);
	printf("O_TMPFILE|O_EXCL linkat: %s\n", err(linkat(fd, "", AT_FDCWD, "named2", AT_EMPTY_PATH)));
	close(fd);
	printf("O_TMPFILE read-only: %s\n", err(open(".", O_TMPFILE | O_RDONLY, 0600)));
	printf("linkat bad flags: %s\n", err(linkat(AT_FDCWD, "named", AT_FDCWD, "named4", 0x8000)));
}

static void dirs(void) {
	listing(".");
	char cwd[4096];
	printf("chdir d: %s\n", err(chdir("d")));
	getcwd(cwd, sizeof cwd);
	printf("cwd ends in /d: %d\n", strlen(cwd) > 2 && strcmp(cwd + strlen(cwd) - 2, "/d") == 0);
	put("../fromd", "up");
	printf("../fromd: %s\n", get("../fromd"));
	chdir("..");
	int dfd = open("d", O_RDONLY | O_DIRECTORY);
	printf("openat(d, rel): %s\n", err(openat(dfd, "rel", O_WRONLY | O_CREAT, 0600)));
	printf("mkdirat(d, sub): %s\n", err(mkdirat(dfd, "sub", 0700)));
	printf("renameat(d/rel -> d/sub/rel): %s\n", err(renameat(dfd, "rel", dfd, "sub/rel")));
	printf("unlinkat(d, sub, AT_REMOVEDIR): %s\n", err(unlinkat(dfd, "sub", AT_REMOVEDIR)));
	printf("fchdir(d): %s\n", err(fchdir(dfd)));
	listing(".");
	listing("sub");
	chdir("..");
	close(dfd);
	struct stat st;
	stat("d", &st);
	printf("d nlink with one subdirectory: %lu\n", (unsigned long)st.st_nlink);
	struct statfs sfs;
	printf("statfs: %s, blocks of %s size\n", err(statfs(".", &sfs)), sfs.f_bsize > 0 ? "positive" : "zero");
}

/* owners: new files belong to the caller's filesystem IDs, or to a
 * set-group-ID directory's group (a new directory inherits the bit). */
static void owners(void) {
	struct stat st;
	mkdir("sg", 0777);
	chmod("sg", 02777);
	chown("sg", 0, 4242);
	put("sg/f", "x");
	mkdir("sg/d", 0755);
	stat("sg/f", &st);
	printf("in a setgid dir: file gid %u", st.st_gid);
	stat("sg/d", &st);
	printf(", dir gid %u setgid %d\n", st.st_gid, (st.st_mode & S_ISGID) != 0);
	mkdir("open", 0777);
	chmod("open", 0777);
	setfsuid(1000);
	setfsgid(1001);
	int fd = open("open/mine", O_WRONLY | O_CREAT, 0644);
	printf("as fsuid 1000: create %s, mkdir %s, symlink %s\n", err(fd), err(mkdir("open/mydir", 0755)),
	       err(symlink("mine", "open/mylink")));
	close(fd);
	setfsuid(0);
	setfsgid(0);
	const char *names[] = {"open/mine", "open/mydir", "open/mylink"};
	for (int i = 0; i < 3; i++) {
		lstat(names[i], &st);
		printf("%s: uid %u gid %u\n", names[i], st.st_uid, st.st_gid);
	}
}

static void rmtree(const char *dir) {
	DIR *d = opendir(dir);
	struct dirent *e;
	char *names[256];
	int n = 0;
	while (d && (e = readdir(d)) && n < 256)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof names[0], cmpstr);
	for (int i = 0; i < n; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			rmtree(p);
			rmdir(p);
		} else {
			unlink(p);
		}
	}
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: fsops BASE\n");
		return 2;
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/fsops.XXXXXX", argv[1]);
	if (!mkdtemp(dir) || chdir(dir) < 0) {
		printf("mkdtemp in %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	umask(022);
	chmod(dir, 0755); /* searchable by the IDs owners() takes */
	basics();
	links();
	renames();
	removals();
	attrs();
	tmpfiles();
	dirs();
	owners();
	chdir("/");
	rmtree(dir);
	printf("cleanup: %s\n", err(rmdir(dir)));
	return 0;
}
