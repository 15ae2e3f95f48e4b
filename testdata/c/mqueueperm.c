/*
 * mqueueperm (as root): attributes and permissions in the mqueue
 * filesystem. chmod, chown, chgrp and utimes of a queue's file, by path
 * and by descriptor (mq_open's), as root and as uid 1000 (the owner, or
 * CAP_FOWNER, for chmod and explicit times; CAP_CHOWN to give a file
 * away; write permission to set both times to now); the directory's
 * times moving at a create and at an unlink; unlink and mq_unlink of
 * another user's queue refused by the sticky directory; stat and
 * `ls -l` of the directory, with every time set first so that the
 * listing is the same in every run.
 *
 * Where it looks: $MQUEUEFS_DIR (a sandbox's /dev/mqueue); natively, with
 * it unset, a fresh mqueue filesystem it mounts on argv[1] in new mount
 * and IPC namespaces, as mqueuefs does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[4096];

static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static const char *in(const char *name)
{
	static char p[2][8192];
	static int i;
	i ^= 1;
	snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
	return p[i];
}

static void show(const char *when, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		printf("%s: %s\n", when, strerror(errno));
		return;
	}
	printf("%s: mode %o uid %u gid %u size %lld nlink %lu\n", when, st.st_mode, st.st_uid, st.st_gid,
	       (long long)st.st_size, (unsigned long)st.st_nlink);
}

/* settimes sets path's atime and mtime to t. */
static int settimes(const char *path, long t)
{
	struct timespec ts[2] = {{t, 0}, {t, 0}};
	return utimensat(AT_FDCWD, path, ts, 0);
}

static struct stat st_of(const char *path)
{
	struct stat st;
	memset(&st, 0, sizeof st);
	stat(path, &st);
	return st;
}

static void ls(const char *when)
{
	printf("%s:\n", when);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/ls", "ls", "-l", "--time-style=+%s", dir, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
}

static mqd_t create(const char *name, mode_t mode)
{
	char n[300];
	snprintf(n, sizeof n, "/%s", name);
	mqd_t q = mq_open(n, O_CREAT | O_EXCL | O_RDWR, mode, NULL);
	if (q == (mqd_t)-1)
		printf("mq_open %s: %s\n", name, strerror(errno));
	return q;
}

/* as1000 runs the checks of a process with uid and gid 1000. */
static void as1000(void)
{
	gid_t none[1] = {1000};
	/* The directories above dir may be closed to uid 1000. */
	if (chdir(dir) != 0) {
		printf("chdir: %s\n", strerror(errno));
		return;
	}
	snprintf(dir, sizeof dir, ".");
	if (setgroups(1, none) != 0 || setresgid(1000, 1000, 1000) != 0 || setresuid(1000, 1000, 1000) != 0) {
		printf("setresuid: %s\n", strerror(errno));
		return;
	}
	printf("uid 1000: chmod root's queue: %s\n", res(chmod(in("root644"), 0666)));
	printf("uid 1000: chown root's queue to me: %s\n", res(chown(in("root644"), 1000, 1000)));
	printf("uid 1000: utimes now, no write permission: %s\n", res(utimensat(AT_FDCWD, in("root644"), NULL, 0)));
	printf("uid 1000: utimes now, write permission: %s\n", res(utimensat(AT_FDCWD, in("root666"), NULL, 0)));
	printf("uid 1000: explicit utimes of root's queue: %s\n", res(settimes(in("root666"), 5)));
	printf("uid 1000: chmod the directory: %s\n", res(chmod(dir, 0777)));
	mqd_t q = create("mine", 0600);
	show("uid 1000: made mine", in("mine"));
	printf("uid 1000: chmod mine 0640: %s\n", res(chmod(in("mine"), 0640)));
	printf("uid 1000: fchmod mine 0604: %s\n", res(fchmod(q, 0604)));
	printf("uid 1000: chown mine to root: %s\n", res(chown(in("mine"), 0, -1)));
	printf("uid 1000: chgrp mine to 0: %s\n", res(chown(in("mine"), -1, 0)));
	printf("uid 1000: chgrp mine to 1000: %s\n", res(chown(in("mine"), -1, 1000)));
	printf("uid 1000: explicit utimes of mine: %s\n", res(settimes(in("mine"), 100)));
	show("uid 1000: mine after", in("mine"));
	printf("uid 1000: unlink root's queue: %s\n", res(unlink(in("root666"))));
	printf("uid 1000: mq_unlink root's queue: %s\n", res(mq_unlink("/root666")));
	printf("uid 1000: unlink given queue: %s\n", res(unlink(in("given"))));
	printf("uid 1000: unlink a missing queue: %s\n", res(unlink(in("missing"))));
	mq_close(q);
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
	setvbuf(stdout, NULL, _IOLBF, 0);
	umask(0);

	show("directory", dir);
	printf("utimes of the directory: %s\n", res(settimes(dir, 1000)));
	struct stat d0 = st_of(dir);
	mqd_t q = create("root644", 0644);
	struct stat d1 = st_of(dir);
	printf("a create moves the directory's mtime: %s, ctime: %s\n", d1.st_mtime > d0.st_mtime ? "yes" : "no",
	       d1.st_ctim.tv_sec > d0.st_ctim.tv_sec || (d1.st_ctim.tv_sec == d0.st_ctim.tv_sec && d1.st_ctim.tv_nsec >= d0.st_ctim.tv_nsec) ? "yes" : "no");
	create("root666", 0666);
	create("given", 0644);
	create("gone", 0644);

	struct stat q0 = st_of(in("root644"));
	printf("chmod 0640: %s\n", res(chmod(in("root644"), 0640)));
	show("after chmod", in("root644"));
	printf("fchmod 0644: %s\n", res(fchmod(q, 0644)));
	show("after fchmod", in("root644"));
	struct stat q1 = st_of(in("root644"));
	printf("ctime kept or moved forward: %s\n",
	       q1.st_ctim.tv_sec > q0.st_ctim.tv_sec || (q1.st_ctim.tv_sec == q0.st_ctim.tv_sec && q1.st_ctim.tv_nsec >= q0.st_ctim.tv_nsec) ? "yes" : "no");
	printf("chown given to 1000:1000: %s\n", res(chown(in("given"), 1000, 1000)));
	show("after chown", in("given"));
	printf("fchown to 0:1000: %s\n", res(fchown(q, 0, 1000)));
	printf("fchown back to 0:0: %s\n", res(fchown(q, 0, 0)));
	printf("utimes 1234567890: %s\n", res(settimes(in("root644"), 1234567890)));
	struct stat t = st_of(in("root644"));
	printf("times: atime %ld.%ld mtime %ld.%ld\n", (long)t.st_atim.tv_sec, t.st_atim.tv_nsec, (long)t.st_mtim.tv_sec,
	       t.st_mtim.tv_nsec);

	printf("utimes of the directory: %s\n", res(settimes(dir, 1000)));
	printf("unlink gone: %s\n", res(unlink(in("gone"))));
	struct stat d2 = st_of(dir);
	printf("an unlink moves the directory's mtime: %s\n", d2.st_mtime > 1000 ? "yes" : "no");
	printf("utimes of the directory: %s\n", res(settimes(dir, 1000)));
	printf("mq_unlink of nothing: %s\n", res(mq_unlink("/gone")));
	printf("a failed unlink leaves it: %s\n", st_of(dir).st_mtime == 1000 ? "yes" : "no");

	pid_t pid = fork();
	if (pid == 0) {
		as1000();
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	show("mine, seen by root", in("mine"));

	const char *names[] = {"root644", "root666", "given", "mine"};
	for (int i = 0; i < 4; i++)
		settimes(in(names[i]), 1500000000 + i);
	settimes(dir, 1600000000);
	show("directory before ls", dir);
	ls("ls -l");
	mq_close(q);
	printf("done\n");
	return 0;
}
