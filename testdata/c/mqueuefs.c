/*
 * mqueuefs (as root): the mqueue filesystem. POSIX message queues seen as
 * files: mq_open's descriptor (fstat, /proc/self/fd, F_GETFL), the
 * listing, stat and statfs, open(2) of a queue's file giving the same
 * queue as mq_open (its read shows the status line, mq_receive
 * and mq_getattr work on it), creat making a queue, unlink removing one,
 * mkdir and symlink refused, and the mount in /proc/self/mounts and
 * mountinfo.
 *
 * Where it looks: $MQUEUEFS_DIR (a sandbox's /dev/mqueue); natively, with
 * it unset, a fresh mqueue filesystem it mounts on argv[1] in new mount
 * and IPC namespaces, so that the host's queues stay out of the listing.
 *
 * Where the zdtm mode saves it: after "queues made, waiting for stdin",
 * while a queue holds a message; the listing, the status line and the
 * message are checked after the line from stdin.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static char dir[4096];

static const char *err(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static const char *in(const char *name)
{
	static char p[8192];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static void listing(const char *when)
{
	DIR *d = opendir(dir);
	if (!d) {
		printf("%s: opendir: %s\n", when, strerror(errno));
		return;
	}
	char names[16][256];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 16) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(names[n], sizeof names[n], "%.200s%s", e->d_name, e->d_type == DT_REG ? "" : "(?)");
			n++;
		}
	}
	closedir(d);
	qsort(names, n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
	printf("%s:", when);
	for (int i = 0; i < n; i++)
		printf(" %s", names[i]);
	printf("\n");
}

/* status prints the status line a read of the queue's file gives. */
static void status(const char *when, const char *name)
{
	int fd = open(in(name), O_RDONLY);
	char b[256];
	ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b - 1);
	if (n < 0) {
		printf("%s: %s\n", when, strerror(errno));
	} else {
		b[n] = 0;
		b[strcspn(b, "\n")] = 0;
		printf("%s: [%s] (%zd bytes)\n", when, b, n);
	}
	if (fd >= 0)
		close(fd);
}

static void mounted(void)
{
	char line[4096], a[1024], point[1024], type[256];
	int mounts = 0, info = 0;
	FILE *f = fopen("/proc/self/mounts", "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%1023s %1023s %255s", a, point, type) == 3 && !strcmp(point, dir))
			mounts = !strcmp(type, "mqueue");
	if (f)
		fclose(f);
	f = fopen("/proc/self/mountinfo", "r");
	while (f && fgets(line, sizeof line, f)) {
		char needle[1100];
		snprintf(needle, sizeof needle, " %.1000s ", dir);
		if (strstr(line, needle) && strstr(line, " - mqueue "))
			info = 1;
	}
	if (f)
		fclose(f);
	printf("/proc/self/mounts: mqueue %s, mountinfo: mqueue %s\n", mounts ? "yes" : "no", info ? "yes" : "no");
}

int main(int argc, char **argv)
{
	const char *env = getenv("MQUEUEFS_DIR");
	if (env) {
		snprintf(dir, sizeof dir, "%s", env);
	} else {
		if (argc < 2 || unshare(CLONE_NEWIPC | CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("mqueue", argv[1], "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			perror("mqueue filesystem");
			return 1;
		}
		snprintf(dir, sizeof dir, "%s", argv[1]);
	}
	umask(022);

	struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 16};
	mqd_t q = mq_open("/q1", O_CREAT | O_RDWR, 0640, &a);
	printf("mq_open /q1: %s\n", err(q));
	struct stat st;
	char link[256], proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", (int)q);
	ssize_t ln = readlink(proc, link, sizeof link - 1);
	link[ln > 0 ? ln : 0] = 0;
	if (fstat((int)q, &st) == 0)
		printf("mq_open's descriptor: %s, mode %o size %lld, F_GETFL %#x\n", link, st.st_mode,
		       (long long)st.st_size, fcntl((int)q, F_GETFL));
	mq_send(q, "hello", 5, 1);
	mq_send(q, "world!", 6, 2);
	listing("listing");

	if (stat(dir, &st) == 0)
		printf("directory: mode %o nlink %lu uid %u\n", st.st_mode, (unsigned long)st.st_nlink, st.st_uid);
	if (stat(in("q1"), &st) == 0)
		printf("stat q1: mode %o size %lld nlink %lu uid %u gid %u\n", st.st_mode, (long long)st.st_size,
		       (unsigned long)st.st_nlink, st.st_uid, st.st_gid);
	struct statfs sf;
	long rc = statfs(in("q1"), &sf);
	printf("statfs: %s, magic %#lx\n", err(rc), rc == 0 ? (unsigned long)sf.f_type : 0UL);
	printf("stat missing: %s\n", err(stat(in("none"), &st)));
	printf("stat q1/x: %s\n", err(stat(in("q1/x"), &st)));

	status("status", "q1");
	int fd = open(in("q1"), O_RDWR);
	printf("open q1: %s\n", err(fd));
	if (fstat(fd, &st) == 0)
		printf("fstat: mode %o size %lld\n", st.st_mode, (long long)st.st_size);
	char msg[64];
	unsigned prio = 0;
	ssize_t n = mq_receive((mqd_t)fd, msg, sizeof msg, &prio);
	printf("mq_receive on the file: %s", err(n));
	if (n >= 0)
		printf(" %.*s prio %u", (int)n, msg, prio);
	printf("\n");
	struct mq_attr got;
	if (mq_getattr((mqd_t)fd, &got) == 0)
		printf("mq_getattr on the file: maxmsg %ld msgsize %ld curmsgs %ld\n", got.mq_maxmsg, got.mq_msgsize, got.mq_curmsgs);
	printf("mq_send on the file: %s\n", err(mq_send((mqd_t)fd, "again", 5, 0)));
	printf("write on the file: %s\n", err(write(fd, "x", 1)));
	close(fd);
	mq_receive(q, msg, sizeof msg, &prio);

	printf("O_EXCL q1: %s\n", err(open(in("q1"), O_CREAT | O_EXCL | O_RDWR, 0600)));
	printf("open missing: %s\n", err(open(in("none"), O_RDONLY)));
	fd = open(in("made"), O_CREAT | O_RDWR, 0606);
	printf("creat made: %s\n", err(fd));
	mqd_t m = mq_open("/made", O_RDONLY);
	printf("mq_open /made: %s\n", err(m));
	if (mq_getattr(m, &got) == 0)
		printf("made by creat: maxmsg %ld msgsize %ld\n", got.mq_maxmsg, got.mq_msgsize);
	if (stat(in("made"), &st) == 0)
		printf("stat made: mode %o\n", st.st_mode);
	mq_close(m);
	close(fd);
	printf("mkdir: %s\n", err(mkdir(in("d"), 0755)));
	printf("symlink: %s\n", err(symlink("q1", in("s"))));
	printf("rmdir q1: %s\n", err(rmdir(in("q1"))));
	listing("listing with made");
	printf("unlink made: %s\n", err(unlink(in("made"))));
	printf("mq_open /made after: %s\n", err(mq_open("/made", O_RDONLY)));
	printf("unlink again: %s\n", err(unlink(in("made"))));
	mounted();

	printf("queues made, waiting for stdin\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	listing("after the line");
	status("status after the line", "q1");
	n = mq_receive(q, msg, sizeof msg, &prio);
	printf("after the line: %s", err(n));
	if (n >= 0)
		printf(" %.*s prio %u", (int)n, msg, prio);
	printf("\n");
	printf("mq_unlink /q1: %s\n", err(mq_unlink("/q1")));
	listing("at the end");
	printf("done\n");
	return 0;
}
