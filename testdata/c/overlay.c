/*
 * overlay DIR: changes the files of DIR, which lies on an overlay whose
 * lower layer holds what e2e/overlay_test.go put there (natively a real
 * overlayfs mounted over that tree, under snap the sandbox's overlay root
 * over the host's), and prints what each step returned: writes that copy
 * a lower file up (the inode number kept; a description opened before
 * reads the copy), truncate, chmod, chown, utimensat,
 * unlink and rmdir of lower entries (whiteouts), a directory made again
 * over a removed one (opaque), rename with NOREPLACE and EXCHANGE, a
 * directory with lower content that cannot move (EXDEV) and one that can,
 * hard links and symlinks to copied-up files, O_TMPFILE given a name,
 * fallocate, "." in paths through lower directories, and sorted
 * listings. Nothing printed depends on DIR's name, on inode numbers or on
 * the time.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

static const char *err(int r) {
	if (r >= 0)
		return "ok";
	switch (errno) {
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EROFS: return "EROFS";
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case ENODATA: return "ENODATA";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return strerror(errno);
	}
}

static int rename2(const char *a, const char *b, unsigned flags) {
	return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static const char *get(const char *path) {
	static char buf[256];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return err(-1);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = '|';
	return buf;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static void list(const char *path) {
	DIR *d = opendir(path);
	if (!d) {
		printf("list %s: %s\n", path, err(-1));
		return;
	}
	char *names[64];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 64)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof *names, cmp);
	printf("list %s:", path);
	for (int i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
}

static void append(const char *path, const char *s, int flags) {
	int fd = open(path, O_WRONLY | flags, 0644);
	int r = fd < 0 ? -1 : (int)write(fd, s, strlen(s));
	printf("write %s: %s\n", path, err(r));
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv) {
	if (argc != 2 || chdir(argv[1]) < 0) {
		fprintf(stderr, "usage: overlay DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct stat a, b;

	/* Copy-up by a write: the inode number stays, and a read-only
	 * description opened before follows the copy (Linux 4.19 and
	 * later): read, pread, lseek and fstat see the new data. */
	stat("file.txt", &a);
	int ro = open("file.txt", O_RDONLY);
	char early[4];
	ssize_t got = read(ro, early, sizeof early);
	append("file.txt", "more\n", O_APPEND);
	stat("file.txt", &b);
	printf("copy-up: %s, inode kept %s, size %lld\n", get("file.txt"), a.st_ino == b.st_ino ? "yes" : "no",
	       (long long)b.st_size);
	char rbuf[64] = "";
	ssize_t pn = pread(ro, rbuf, sizeof rbuf - 1, 0);
	rbuf[pn > 0 ? pn : 0] = 0;
	struct stat rs;
	fstat(ro, &rs);
	char rest[64] = "";
	ssize_t rn = read(ro, rest, sizeof rest - 1);
	rest[rn > 0 ? rn : 0] = 0;
	for (char *p = rest; *p; p++)
		if (*p == '\n')
			*p = '|';
	off_t end = lseek(ro, 0, SEEK_END);
	printf("description opened before the copy-up: read %zd before, then pread %zd (same as the file: %s), "
	       "read on: %s, fstat size %lld, inode kept %s, SEEK_END %lld\n",
	       got, pn, strncmp(rbuf, "lower data\nmore\n", sizeof rbuf) == 0 ? "yes" : "no", rest,
	       (long long)rs.st_size, rs.st_ino == a.st_ino ? "yes" : "no", (long long)end);
	close(ro);

	/* truncate, chmod, chown, utimensat copy up too. */
	int r;
	printf("truncate big.bin: %s", err(truncate("big.bin", 5000)));
	stat("big.bin", &b);
	printf(", size %lld, blocks>0 %s\n", (long long)b.st_size, b.st_blocks > 0 ? "yes" : "no");
	printf("chmod keep.txt: %s", err(chmod("keep.txt", 0600)));
	printf(", chown: %s", err(chown("keep.txt", 123, 456)));
	struct timespec ts[2] = {{1000000000, 5}, {1200000000, 7}};
	printf(", utimensat: %s", err(utimensat(AT_FDCWD, "keep.txt", ts, 0)));
	stat("keep.txt", &b);
	printf(", now mode %o uid %d gid %d mtime %lld.%ld, %s\n", b.st_mode & 07777, (int)b.st_uid, (int)b.st_gid,
	       (long long)b.st_mtim.tv_sec, b.st_mtim.tv_nsec, get("keep.txt"));
	printf("chmod dir: %s", err(chmod("dir", 0700)));
	stat("dir", &b);
	printf(", mode %o, nlink %d\n", b.st_mode & 07777, (int)b.st_nlink);

	/* Whiteouts. */
	r = unlink("rm.txt");
	printf("unlink rm.txt: %s", err(r));
	printf(", stat: %s\n", err(stat("rm.txt", &b)));
	printf("unlink again: %s\n", err(unlink("rm.txt")));
	printf("rmdir dir: %s\n", err(rmdir("dir")));
	r = rmdir("empty");
	printf("rmdir empty: %s", err(r));
	printf(", stat: %s\n", err(stat("empty", &b)));
	printf("mkdir empty: %s\n", err(mkdir("empty", 0755)));
	list("empty");
	r = unlink("dir/sub/b.txt");
	printf("unlink dir/sub/b.txt: %s", err(r));
	printf(", rmdir dir/sub: %s\n", err(rmdir("dir/sub")));
	printf("mkdir dir/sub: %s\n", err(mkdir("dir/sub", 0755)));
	list("dir/sub");
	list("dir");

	/* New files and directories; rename. */
	r = mkdir("new", 0755);
	printf("mkdir new: %s", err(r));
	printf(", mkdir dir/a.txt: %s\n", err(mkdir("dir/a.txt", 0755)));
	append("new/f", "fresh\n", O_CREAT | O_EXCL);
	r = rename("new/f", "dir/f2");
	printf("rename new/f dir/f2: %s", err(r));
	printf(", %s\n", get("dir/f2"));
	printf("rename NOREPLACE x.txt y.txt: %s\n", err(rename2("x.txt", "y.txt", RENAME_NOREPLACE)));
	printf("rename EXCHANGE x.txt y.txt: %s", err(rename2("x.txt", "y.txt", RENAME_EXCHANGE)));
	printf(", x %s", get("x.txt"));
	printf(", y %s\n", get("y.txt"));
	printf("rename x.txt z.txt: %s", err(rename("x.txt", "z.txt")));
	printf(", x %s", get("x.txt"));
	printf(", z %s\n", get("z.txt"));
	r = rename("y.txt", "file.txt");
	printf("rename y.txt over file.txt: %s", err(r));
	printf(", %s\n", get("file.txt"));
	printf("rename dir dir3: %s\n", err(rename("dir", "dir3")));
	printf("rename new new2: %s\n", err(rename("new", "new2")));
	printf("rename new2 over empty: %s\n", err(rename("new2", "empty")));
	printf("EXCHANGE empty and dir: %s\n", err(rename2("empty", "dir", RENAME_EXCHANGE)));

	/* Links and symlinks. */
	printf("link keep.txt keep2: %s", err(link("keep.txt", "keep2")));
	stat("keep2", &b);
	printf(", nlink %d\n", (int)b.st_nlink);
	append("keep2", "via keep2\n", O_APPEND);
	printf("keep.txt now: %s\n", get("keep.txt"));
	printf("link lower hard.txt hard2: %s\n", err(link("hard.txt", "hard2")));
	append("hard2", "both\n", O_APPEND);
	printf("hard.txt: %s\n", get("hard.txt"));
	r = symlink("keep.txt", "sym");
	printf("symlink sym -> keep.txt: %s", err(r));
	printf(", reads %s\n", get("sym"));
	append("link", "through the lower link\n", O_TRUNC);
	printf("file.txt after a write through link: %s\n", get("file.txt"));
	char target[64] = {0};
	printf("readlink link: %zd %s\n", readlink("link", target, sizeof target - 1), target);

	/* O_TMPFILE and fallocate. */
	int fd = open(".", O_TMPFILE | O_RDWR, 0600);
	printf("O_TMPFILE: %s", err(fd));
	if (fd >= 0) {
		write(fd, "anon\n", 5);
		r = linkat(fd, "", AT_FDCWD, "named", AT_EMPTY_PATH);
		printf(", linkat: %s", err(r));
		printf(", %s", get("named"));
		close(fd);
	}
	printf("\n");
	fd = open("small.txt", O_RDWR);
	printf("fallocate small.txt: %s", err(fallocate(fd, 0, 0, 10000)));
	fstat(fd, &b);
	printf(", size %lld", (long long)b.st_size);
	printf(", data %s\n", get("small.txt"));
	close(fd);

	/* "." in paths through a directory only the lower layer has: the
	 * new names land in the directory "." names (dots/d1, not a
	 * directory named "." made by a copy-up). */
	printf("mkdir ./dots/./d1: %s", err(mkdir("./dots/./d1", 0755)));
	printf(", stat dots/d1: %s\n", err(stat("dots/d1", &b)));
	append("./dots/./d1/./f", "dotted\n", O_CREAT | O_EXCL);
	printf("dots/d1/f: %s", get("dots/d1/f"));
	printf(", mkdir dots/.: %s", err(mkdir("dots/.", 0755)));
	printf(", rmdir dots/d1/.: %s\n", err(rmdir("dots/d1/.")));
	list("dots");
	list("dots/d1");

	/* user.* extended attributes on a lower file (copied up), a new
	 * file and a directory; a descriptor's view. */
	printf("setxattr lower: %s", err(setxattr("hard.txt", "user.k", "v1", 2, 0)));
	char v[32] = {0};
	ssize_t n = getxattr("hard.txt", "user.k", v, sizeof v);
	printf(", get %zd %.*s", n, n > 0 ? (int)n : 0, v);
	printf(", create again: %s", err(setxattr("hard.txt", "user.k", "v2", 2, XATTR_CREATE)));
	printf(", replace missing: %s\n", err(setxattr("hard.txt", "user.none", "x", 1, XATTR_REPLACE)));
	printf("setxattr dir: %s", err(setxattr("dir", "user.d", "dd", 2, 0)));
	char names[256];
	n = listxattr("dir", names, sizeof names);
	printf(", list %zd", n);
	printf(", size query %zd", getxattr("dir", "user.d", NULL, 0));
	printf(", small buffer: %s\n", err(getxattr("dir", "user.d", v, 1)));
	fd = open("sym", O_RDONLY);
	printf("fsetxattr: %s", err(fsetxattr(fd, "user.f", "f", 1, 0)));
	printf(", fremove: %s", err(fremovexattr(fd, "user.f")));
	printf(", again: %s", err(fremovexattr(fd, "user.f")));
	printf(", get missing: %s\n", err(getxattr("keep.txt", "user.none", v, sizeof v)));
	close(fd);
	list(".");
	return 0;
}
