/*
 * tmpfsperm (as root): permission checks in a tmpfs (/dev/shm), or in the
 * directory $TMPFSPERM_DIR names (one of the overlay root), for a
 * caller that is not root, as Linux's generic_permission: files of root
 * and of the caller with owner, group (the primary group and a
 * supplementary one) and other bits; creating in a directory needs write
 * and search permission on it, looking a name up search permission on
 * every directory on the way, listing a directory read permission; the
 * owner's bits apply to the owner even where others' would allow more;
 * unlink and rename need write permission on the directory and, in a
 * sticky one, to own the file; chmod and explicit times need the owner,
 * chown CAP_CHOWN, chgrp the owner and one of its groups, touching the
 * times the owner or write permission, truncate write permission, and
 * chmod drops the set-group-ID bit of a file of another group; access(2)
 * answers as open would, stat, chdir, readlink and statfs need search
 * permission; link needs search permission on the way, write and search
 * permission on the new name's directory and, with protected_hardlinks
 * (on by default), the file's owner or a regular file the caller may read
 * and write; extended attributes: user.* need read (get) or write (set)
 * permission and, on a sticky directory, its owner to change them,
 * trusted.* CAP_SYS_ADMIN (ENODATA, EPERM, hidden from listxattr), and
 * the lookup search permission; an open through /proc/self/fd/N needs
 * the permission a fresh open would (an O_PATH or read-only descriptor
 * gives no more); a memfd belongs to its maker, who may
 * fchmod it; connect(2) to a Unix socket's path needs search permission
 * on the way and write permission on the socket file; linkat of an
 * O_TMPFILE file by descriptor (AT_EMPTY_PATH, or /proc/self/fd/N with
 * AT_SYMLINK_FOLLOW) search permission on the way and write and search
 * permission on the new name's directory, and one made with O_EXCL is
 * never linked (ENOENT);
 * root passes every check by CAP_DAC_OVERRIDE (reading and writing a file
 * of mode 0), a caller with only CAP_DAC_READ_SEARCH reads but does not
 * write.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef _LINUX_CAPABILITY_VERSION_3
#define _LINUX_CAPABILITY_VERSION_3 0x20080522
#endif

static char base[64];

static const char *res(int r)
{
	static char b[32];
	if (r >= 0)
		return "ok";
	snprintf(b, sizeof b, "%s", errno == EACCES ? "EACCES" : errno == EPERM ? "EPERM" : errno == ENOENT ? "ENOENT" : strerror(errno));
	return b;
}

static void mk(const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", base, name);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	write(fd, "data", 4);
	close(fd);
	chown(p, uid, gid);
	chmod(p, mode);
}

static void mkd(const char *name, mode_t mode, uid_t uid)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", base, name);
	mkdir(p, 0700);
	chown(p, uid, uid);
	chmod(p, mode);
}

static void try_open(const char *name, int flags, const char *what)
{
	char p[128];
	snprintf(p, sizeof p, "%s/%s", base, name);
	errno = 0;
	int fd = open(p, flags, 0600);
	printf("%s: %s\n", what, res(fd));
	if (fd >= 0)
		close(fd);
}

static const char *at(const char *name)
{
	static char p[128];
	snprintf(p, sizeof p, "%s/%s", base, name);
	return p;
}

static void memfd(void)
{
	int fd = syscall(SYS_memfd_create, "perm", 0);
	struct stat st;
	fstat(fd, &st);
	errno = 0;
	int r = fchmod(fd, 0600);
	printf("memfd owner %u:%u, fchmod: %s\n", (unsigned)st.st_uid, (unsigned)st.st_gid, res(r));
	close(fd);
}

static void accesses(void)
{
	errno = 0;
	printf("access R_OK root's 0600: %s\n", res(access(at("root600"), R_OK)));
	errno = 0;
	printf("access R_OK root's 0644: %s\n", res(access(at("root644"), R_OK)));
	errno = 0;
	printf("access W_OK root's 0644: %s\n", res(access(at("root644"), W_OK)));
	errno = 0;
	printf("access F_OK in root's 0700 directory: %s\n", res(access(at("closed/f"), F_OK)));
	struct stat st;
	errno = 0;
	printf("stat in root's 0700 directory: %s\n", res(stat(at("closed/f"), &st)));
	errno = 0;
	printf("stat in root's 0711 directory: %s\n", res(stat(at("xonly/f"), &st)));
	char cwd[256];
	getcwd(cwd, sizeof cwd);
	errno = 0;
	printf("chdir to root's 0700 directory: %s\n", res(chdir(at("closed"))));
	errno = 0;
	printf("chdir to root's 0711 directory: %s\n", res(chdir(at("xonly"))));
	chdir(cwd);
	errno = 0;
	printf("faccessat AT_EACCESS W_OK own 0406: %s\n", res(faccessat(AT_FDCWD, at("mine406"), W_OK, AT_EACCESS)));
	char buf[64];
	errno = 0;
	printf("readlink in root's 0700 directory: %s\n", res(readlink(at("closed/l"), buf, sizeof buf)));
	errno = 0;
	printf("readlink in root's 0711 directory: %s\n", res(readlink(at("xonly/l"), buf, sizeof buf)));
	struct statfs sfs;
	errno = 0;
	printf("statfs in root's 0700 directory: %s\n", res(statfs(at("closed/f"), &sfs)));
	errno = 0;
	printf("statfs in root's 0711 directory: %s\n", res(statfs(at("xonly/f"), &sfs)));
}

static void xattrs(void)
{
	char buf[256];
	errno = 0;
	printf("getxattr user.* of root's 0666: %s\n", res(getxattr(at("root666"), "user.u", buf, sizeof buf)));
	errno = 0;
	printf("getxattr user.* of root's 0600: %s\n", res(getxattr(at("root600"), "user.u", buf, sizeof buf)));
	errno = 0;
	printf("setxattr user.* of root's 0644: %s\n", res(setxattr(at("root644"), "user.n", "v", 1, 0)));
	errno = 0;
	printf("setxattr user.* of root's 0666: %s\n", res(setxattr(at("root666"), "user.n", "v", 1, 0)));
	errno = 0;
	printf("removexattr user.* of root's 0666: %s\n", res(removexattr(at("root666"), "user.n")));
	errno = 0;
	printf("setxattr user.* of root's 1777 directory: %s\n", res(setxattr(at("sticky"), "user.n", "v", 1, 0)));
	errno = 0;
	printf("getxattr trusted.* of root's 0666: %s\n", res(getxattr(at("root666"), "trusted.t", buf, sizeof buf)));
	errno = 0;
	printf("setxattr trusted.* of root's 0666: %s\n", res(setxattr(at("root666"), "trusted.n", "v", 1, 0)));
	errno = 0;
	ssize_t n = listxattr(at("root666"), buf, sizeof buf);
	int trusted = 0, user = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
		trusted += strncmp(buf + i, "trusted.", 8) == 0;
		user += strncmp(buf + i, "user.", 5) == 0;
	}
	printf("listxattr of root's 0666: user.* %d, trusted.* %d\n", user, trusted);
	errno = 0;
	printf("getxattr in root's 0700 directory: %s\n", res(getxattr(at("closed/f"), "user.u", buf, sizeof buf)));
}

static void reopen(const char *name, int flags, const char *what)
{
	int fd = open(at(name), O_PATH);
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	errno = 0;
	int r = open(p, flags);
	printf("%s: %s\n", what, res(r));
	if (r >= 0)
		close(r);
	close(fd);
}

static void reopens(void)
{
	reopen("root644", O_RDONLY, "reopen O_PATH root's 0644 read-only");
	reopen("root644", O_RDWR, "reopen O_PATH root's 0644 read-write");
	reopen("root600", O_RDONLY, "reopen O_PATH root's 0600 read-only");
	reopen("root666", O_RDWR, "reopen O_PATH root's 0666 read-write");
}

/* listen_at binds a listening stream socket at name with mode. */
static int listen_at(const char *name, mode_t mode)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%.100s", at(name));
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4) || chmod(a.sun_path, mode))
		printf("listen at %s: %s\n", name, strerror(errno));
	return s;
}

static void try_connect(const char *name, const char *what)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%.100s", at(name));
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	errno = 0;
	printf("%s: %s\n", what, res(connect(s, (struct sockaddr *)&a, sizeof a)));
	close(s);
}

static void connects(void)
{
	try_connect("sock777", "connect to root's 0777 socket");
	try_connect("sock755", "connect to root's 0755 socket");
	try_connect("closed/sock", "connect to a socket in root's 0700 directory");
	try_connect("root666", "connect to root's 0666 regular file");
	try_connect("root644", "connect to root's 0644 regular file");
}

static void link_tmpfile(int fd, const char *to, int by_proc, const char *what)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	errno = 0;
	int r = by_proc ? linkat(AT_FDCWD, p, AT_FDCWD, at(to), AT_SYMLINK_FOLLOW)
			: linkat(fd, "", AT_FDCWD, at(to), AT_EMPTY_PATH);
	printf("%s: %s\n", what, res(r));
}

static void tmpfile_links(void)
{
	int fd = open(at("sticky"), O_TMPFILE | O_RDWR, 0600);
	link_tmpfile(fd, "open/tl", 0, "linkat AT_EMPTY_PATH into root's 0755 directory");
	link_tmpfile(fd, "closed/tl", 0, "linkat AT_EMPTY_PATH into root's 0700 directory");
	link_tmpfile(fd, "open/tl", 1, "linkat /proc/self/fd into root's 0755 directory");
	link_tmpfile(fd, "sticky/tl", 0, "linkat AT_EMPTY_PATH into a 1777 directory");
	link_tmpfile(fd, "sticky/tl2", 1, "linkat /proc/self/fd into a 1777 directory");
	close(fd);
	fd = open(at("sticky"), O_TMPFILE | O_EXCL | O_RDWR, 0600);
	link_tmpfile(fd, "sticky/tl3", 0, "linkat AT_EMPTY_PATH of an O_EXCL O_TMPFILE");
	link_tmpfile(fd, "sticky/tl3", 1, "linkat /proc/self/fd of an O_EXCL O_TMPFILE");
	close(fd);
}

static void links(void)
{
	char to[128];
	snprintf(to, sizeof to, "%s/sticky/hl", base);
	errno = 0;
	printf("link root's 0600 into a 1777 directory: %s\n", res(link(at("root600"), to)));
	errno = 0;
	printf("link root's 0644 there: %s\n", res(link(at("root644"), to)));
	errno = 0;
	printf("link root's 0666 there: %s\n", res(link(at("root666"), to)));
	snprintf(to, sizeof to, "%s/sticky/hl2", base);
	errno = 0;
	printf("link own 0406 there: %s\n", res(link(at("mine406"), to)));
	unlink(to);
	errno = 0;
	printf("link from root's 0700 directory: %s\n", res(link(at("closed/f"), to)));
	snprintf(to, sizeof to, "%s/open/hl", base);
	errno = 0;
	printf("link own 0406 into root's 0755 directory: %s\n", res(link(at("mine406"), to)));
}

static void changes(void)
{
	char to[128];
	errno = 0;
	printf("unlink in root's 0755 directory: %s\n", res(unlink(at("open/rootfile"))));
	errno = 0;
	printf("unlink root's file in a 1777 directory: %s\n", res(unlink(at("sticky/rootfile"))));
	snprintf(to, sizeof to, "%s/sticky/mine", base);
	errno = 0;
	printf("rename own file in a 1777 directory: %s\n", res(rename(at("sticky/new"), to)));
	errno = 0;
	printf("rename root's file there: %s\n", res(rename(at("sticky/rootfile"), to)));
	errno = 0;
	printf("unlink own file there: %s\n", res(unlink(to)));
	errno = 0;
	printf("chmod root's 0644: %s\n", res(chmod(at("root644"), 0666)));
	errno = 0;
	printf("chmod own 0406: %s\n", res(chmod(at("mine406"), 0606)));
	errno = 0;
	printf("chown own file to root: %s\n", res(chown(at("mine406"), 0, -1)));
	errno = 0;
	printf("chgrp own file to a supplementary group: %s\n", res(chown(at("mine406"), -1, 2000)));
	errno = 0;
	printf("chgrp own file to another group: %s\n", res(chown(at("mine406"), -1, 3000)));
	errno = 0;
	printf("touch root's 0666: %s\n", res(utimes(at("root666"), NULL)));
	errno = 0;
	printf("touch root's 0644: %s\n", res(utimes(at("root644"), NULL)));
	struct timeval tv[2] = {{1, 0}, {2, 0}};
	errno = 0;
	printf("set times of root's 0666: %s\n", res(utimes(at("root666"), tv)));
	errno = 0;
	printf("truncate root's 0644: %s\n", res(truncate(at("root644"), 1)));
	errno = 0;
	printf("truncate root's 0666: %s\n", res(truncate(at("root666"), 1)));
	chmod(at("mine3000"), 02755);
	struct stat st;
	stat(at("mine3000"), &st);
	printf("chmod 02755 of own file of another group: mode %o\n", st.st_mode & 07777);
}

static void checks(void)
{
	try_open("root600", O_RDONLY, "read root's 0600");
	try_open("root644", O_RDONLY, "read root's 0644");
	try_open("root644", O_WRONLY, "write root's 0644");
	try_open("root666", O_RDWR, "read-write root's 0666");
	try_open("grp060", O_RDWR, "read-write 0060 of a supplementary group");
	try_open("pgrp040", O_RDONLY, "read 0040 of the primary group");
	try_open("pgrp040", O_WRONLY, "write 0040 of the primary group");
	try_open("mine406", O_RDONLY, "read own 0406");
	try_open("mine406", O_WRONLY, "write own 0406 (others may)");
	try_open("mine406", O_RDONLY | O_TRUNC, "O_TRUNC own 0406");
	try_open("root644", O_PATH, "O_PATH root's 0644");
	try_open("closed/f", O_RDONLY, "look up in root's 0700 directory");
	try_open("xonly/f", O_RDONLY, "look up in root's 0711 directory");
	try_open("xonly", O_RDONLY | O_DIRECTORY, "list root's 0711 directory");
	try_open("open/new", O_CREAT | O_WRONLY, "create in root's 0755 directory");
	try_open("sticky/new", O_CREAT | O_WRONLY, "create in a 1777 directory");
	try_open("sticky/new", O_CREAT | O_RDWR, "open it again");
	char p[128];
	snprintf(p, sizeof p, "%s/open/dir", base);
	errno = 0;
	printf("mkdir in root's 0755 directory: %s\n", res(mkdir(p, 0755)));
	snprintf(p, sizeof p, "%s/open/fifo", base);
	errno = 0;
	printf("mkfifo in root's 0755 directory: %s\n", res(mkfifo(p, 0644)));
	snprintf(p, sizeof p, "%s/open/link", base);
	errno = 0;
	printf("symlink in root's 0755 directory: %s\n", res(symlink("x", p)));
	snprintf(p, sizeof p, "%s/closed", base);
	int fd = open(p, O_TMPFILE | O_RDWR, 0600);
	printf("O_TMPFILE in root's 0700 directory: %s\n", res(fd));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getuid() != 0) {
		printf("needs root\n");
		return 1;
	}
	const char *dir = getenv("TMPFSPERM_DIR");

	snprintf(base, sizeof base, "%s/tmpfsperm-%d", dir && *dir ? dir : "/dev/shm", (int)getpid());
	mkdir(base, 0755);
	mk("root600", 0600, 0, 0);
	mk("root644", 0644, 0, 0);
	mk("root666", 0666, 0, 0);
	mk("grp060", 0060, 0, 2000);
	mk("pgrp040", 0040, 0, 1000);
	mk("mine406", 0406, 1000, 1000);
	mkd("closed", 0700, 0);
	mk("closed/f", 0644, 0, 0);
	symlink("f", at("closed/l"));
	mkd("xonly", 0711, 0);
	mk("xonly/f", 0644, 0, 0);
	symlink("f", at("xonly/l"));
	mkd("open", 0755, 0);
	mkd("sticky", 01777, 0);
	mk("zero", 0, 0, 0);
	mk("open/rootfile", 0666, 0, 0);
	mk("sticky/rootfile", 0666, 0, 0);
	mk("mine3000", 0644, 1000, 3000);
	setxattr(at("root666"), "user.u", "v", 1, 0);
	setxattr(at("root600"), "user.u", "v", 1, 0);
	setxattr(at("root666"), "trusted.t", "v", 1, 0);
	int socks[] = {listen_at("sock777", 0777), listen_at("sock755", 0755), listen_at("closed/sock", 0777)};

	printf("root:\n");
	try_open("zero", O_RDWR, "read-write a 0000 file");
	try_open("closed/f", O_RDONLY, "look up in its 0700 directory");
	errno = 0;
	printf("access R_OK|W_OK a 0000 file: %s\n", res(access(at("zero"), R_OK | W_OK)));
	errno = 0;
	printf("access X_OK a 0000 file: %s\n", res(access(at("zero"), X_OK)));

	pid_t c = fork();
	if (c == 0) {
		gid_t groups[] = {2000};
		if (setgroups(1, groups) || setgid(1000) || setuid(1000))
			_exit(2);
		printf("uid 1000:\n");
		checks();
		accesses();
		xattrs();
		reopens();
		connects();
		links();
		tmpfile_links();
		changes();
		memfd();
		_exit(0);
	}
	int ws;
	waitpid(c, &ws, 0);

	c = fork();
	if (c == 0) {
		/* Root keeping only CAP_DAC_READ_SEARCH. */
		struct {
			unsigned version;
			int pid;
		} h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct {
			unsigned eff, perm, inh;
		} d[2] = {{1u << 2, 1u << 2, 0}, {0, 0, 0}};
		if (syscall(SYS_capset, &h, d) != 0)
			_exit(2);
		printf("root with CAP_DAC_READ_SEARCH only:\n");
		try_open("zero", O_RDONLY, "read a 0000 file");
		try_open("zero", O_WRONLY, "write a 0000 file");
		try_open("closed/f", O_RDONLY, "look up in root's 0700 directory");
		_exit(0);
	}
	waitpid(c, &ws, 0);

	/* Clean up as root. */
	const char *files[] = {"root600", "root644", "root666", "grp060", "pgrp040", "mine406", "closed/f", "xonly/f",
			       "closed/l", "xonly/l", "sticky/hl", "sticky/hl2", "open/hl",
			       "sticky/new", "zero", "open/dir", "open/fifo", "open/link", "open/rootfile",
			       "sticky/rootfile", "sticky/mine", "mine3000", "sock777", "sock755", "closed/sock",
			       "sticky/tl", "sticky/tl2", "sticky/tl3"};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char p[128];
		snprintf(p, sizeof p, "%s/%s", base, files[i]);
		unlink(p);
		rmdir(p);
	}
	for (size_t i = 0; i < sizeof socks / sizeof *socks; i++)
		close(socks[i]);
	const char *dirs[] = {"closed", "xonly", "open", "sticky"};
	for (size_t i = 0; i < 4; i++) {
		char p[128];
		snprintf(p, sizeof p, "%s/%s", base, dirs[i]);
		rmdir(p);
	}
	rmdir(base);
	return 0;
}
