/*
 * boundary: what the sandbox may see of the host.
 *
 *   boundary sentry
 *       The sentry's own /dev, /proc and /sys behave as Linux's do for what
 *       programs use: /dev/null and /dev/zero; /sys/devices/system/cpu/online
 *       names as many CPUs as sched_getaffinity; statfs reports procfs and
 *       sysfs there; /proc lists the process,
 *       /proc/self links to it, /proc/self and /proc/self/fd list their
 *       entries, /proc/<pid>/fd/<fd> is a link to the open file, chdir
 *       into /proc/self works. Same output natively.
 *
 *   boundary host [--wait] LABEL=PATH...   (a LABEL starting with "socket"
 *   also connects a Unix socket to PATH and binds one there)
 *       For each path: "LABEL: open ERR, stat ERR" (ok or the errno name),
 *       opening with O_RDONLY (a FIFO's open would block natively: run this
 *       mode only in a sandbox). With --wait it then prints "waiting" and
 *       sleeps until killed, so a test can check that kill reaches it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

/* From linux/magic.h, which musl-gcc does not see. */
#define PROC_SUPER_MAGIC 0x9fa0
#define SYSFS_MAGIC 0x62656572

static const char *yesno(int b) { return b ? "yes" : "no"; }

static const char *errname(int e) {
	switch (e) {
	case 0: return "ok";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENXIO: return "ENXIO";
	case ELOOP: return "ELOOP";
	case ENOTDIR: return "ENOTDIR";
	case EROFS: return "EROFS";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EADDRINUSE: return "EADDRINUSE";
	default: return strerror(e);
	}
}

/* lists reports whether directory path has an entry called name. */
static int lists(const char *path, const char *name) {
	DIR *d = opendir(path);
	if (!d) return 0;
	struct dirent *e;
	int found = 0;
	while ((e = readdir(d)))
		if (!strcmp(e->d_name, name)) found = 1;
	closedir(d);
	return found;
}

/* cpulist counts the CPUs of a list such as "0-3,5\n". */
static int cpulist(const char *s) {
	int n = 0;
	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b = a;
		if (*end == '-') b = strtol(end + 1, &end, 10);
		n += (int)(b - a + 1);
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

static int sentry(void) {
	char buf[256];
	int fd = open("/dev/null", O_RDWR);
	printf("/dev/null: write all %s, read EOF %s\n", yesno(write(fd, "x", 1) == 1), yesno(read(fd, buf, 1) == 0));
	close(fd);
	fd = open("/dev/zero", O_RDONLY);
	memset(buf, 1, 8);
	printf("/dev/zero: zeros %s\n", yesno(read(fd, buf, 8) == 8 && !memcmp(buf, "\0\0\0\0\0\0\0\0", 8)));
	close(fd);

	fd = open("/sys/devices/system/cpu/online", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	cpu_set_t set;
	sched_getaffinity(0, sizeof set, &set);
	printf("cpu/online readable %s, count == affinity count %s\n", yesno(n > 0), yesno(cpulist(buf) == CPU_COUNT(&set)));
	close(fd);

	char pid[16];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	printf("/proc lists the process: %s, self: %s\n", yesno(lists("/proc", pid)), yesno(lists("/proc", "self")));
	n = readlink("/proc/self", buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("/proc/self -> pid: %s\n", yesno(!strcmp(buf, pid)));
	struct stat st;
	printf("/proc/self is a directory: %s\n", yesno(stat("/proc/self", &st) == 0 && S_ISDIR(st.st_mode)));
	printf("/proc/self lists status: %s, fd: %s\n", yesno(lists("/proc/self", "status")), yesno(lists("/proc/self", "fd")));
	fd = open("/dev/null", O_RDONLY);
	char fdname[16];
	snprintf(fdname, sizeof fdname, "%d", fd);
	printf("/proc/self/fd lists a new descriptor: %s\n", yesno(lists("/proc/self/fd", fdname)));
	char link[64];
	snprintf(link, sizeof link, "/proc/%s/fd/%d", pid, fd);
	n = readlink(link, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("/proc/<pid>/fd/<fd> is a link to /dev/null: %s, %s\n",
	       yesno(lstat(link, &st) == 0 && S_ISLNK(st.st_mode)), yesno(!strcmp(buf, "/dev/null")));
	close(fd);
	struct statfs sfs, sfs2;
	int procfs = statfs("/proc/self/status", &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC;
	int sysfs = statfs("/sys/devices/system/cpu/online", &sfs2) == 0 && sfs2.f_type == SYSFS_MAGIC;
	printf("statfs: /proc/self/status on procfs: %s, cpu/online on sysfs: %s\n", yesno(procfs), yesno(sysfs));
	int ok = chdir("/proc/self") == 0;
	fd = open("comm", O_RDONLY);
	n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	printf("chdir /proc/self: %s, comm there: %s", yesno(ok), n > 0 ? buf : "(none)\n");
	return 0;
}

/* unix_socket connects a Unix socket to path and binds one there. */
static void unix_socket(const char *label, const char *path) {
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	strcpy(a.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	int ce = connect(s, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
	int be = bind(s, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
	close(s);
	printf("%s: connect %s, bind %s\n", label, errname(ce), errname(be));
}

static int host(int argc, char **argv) {
	int wait = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--wait")) {
			wait = 1;
			continue;
		}
		char *path = strchr(argv[i], '=');
		if (!path) return 2;
		*path++ = 0;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		int oe = fd < 0 ? errno : 0;
		if (fd >= 0) close(fd);
		struct stat st;
		int se = lstat(path, &st) < 0 ? errno : 0;
		printf("%s: open %s, stat %s\n", argv[i], errname(oe), errname(se));
		if (!strncmp(argv[i], "socket", 6) && strlen(path) < sizeof(((struct sockaddr_un *)0)->sun_path))
			unix_socket(argv[i], path);
	}
	if (wait) {
		printf("waiting\n");
		fflush(stdout);
		for (;;) pause();
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc >= 2 && !strcmp(argv[1], "sentry")) return sentry();
	if (argc >= 2 && !strcmp(argv[1], "host")) return host(argc - 2, argv + 2);
	fprintf(stderr, "usage: boundary sentry | host [--wait] LABEL=PATH...\n");
	return 2;
}
