/*
 * procsys: the shape of the /proc files that describe the system and the
 * newer per-process ones, checked the same way natively and under snap
 * (numbers differ between the two, so only their form and their agreement
 * with system calls are printed): meminfo, cpuinfo, stat, uptime, loadavg,
 * filesystems, sys/kernel/{hostname,osrelease,pid_max},
 * sys/vm/overcommit_memory; /proc/self/environ, limits, statm, root, cwd,
 * fdinfo/ and a write to comm; the /proc listing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static char buf[1 << 20];

/* slurp reads a whole file into buf and returns its length, or -1. */
static long slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	long n = 0, r;
	while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	return n;
}

/* field returns the number after "name:" in buf, or -1. */
static long long field(const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "\n%s:", name);
	char *p = strstr(buf, key);
	if (!p && strncmp(buf, key + 1, strlen(key + 1)) == 0)
		p = buf - 1;
	if (!p)
		return -1;
	return strtoll(p + strlen(key), NULL, 10);
}

static void meminfo(void)
{
	slurp("/proc/meminfo");
	long long total = field("MemTotal"), fr = field("MemFree"), av = field("MemAvailable");
	printf("meminfo: MemTotal > 0 %s, MemFree <= MemTotal %s, MemAvailable %s, SwapTotal %s\n", yesno(total > 0),
	       yesno(fr >= 0 && fr <= total), yesno(av >= 0), yesno(field("SwapTotal") >= 0));
}

static void cpuinfo(void)
{
	slurp("/proc/cpuinfo");
	int procs = 0;
	for (char *p = buf; (p = strstr(p, "processor\t: ")) != NULL; p++)
		procs++;
	printf("cpuinfo: processors %s, model name %s, flags %s, vendor_id %s\n", yesno(procs >= 1),
	       yesno(strstr(buf, "\nmodel name\t: ") != NULL), yesno(strstr(buf, "\nflags\t\t: ") != NULL),
	       yesno(strstr(buf, "\nvendor_id\t: ") != NULL));
}

static void stat(void)
{
	slurp("/proc/stat");
	unsigned long long v[10];
	int n = sscanf(buf, "cpu  %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
		       &v[5], &v[6], &v[7], &v[8], &v[9]);
	printf("stat: cpu line has %d numbers, cpu0 %s, btime %s, processes %s, procs_running %s\n", n,
	       yesno(strstr(buf, "\ncpu0 ") != NULL), yesno(strstr(buf, "\nbtime ") != NULL),
	       yesno(strstr(buf, "\nprocesses ") != NULL), yesno(strstr(buf, "\nprocs_running ") != NULL));
}

static void uptime(void)
{
	slurp("/proc/uptime");
	double up = -1, idle = -1;
	int n = sscanf(buf, "%lf %lf", &up, &idle);
	printf("uptime: %d numbers, positive %s\n", n, yesno(up > 0 && idle >= 0));
	slurp("/proc/loadavg");
	double l1, l5, l15;
	int run, tot, last;
	n = sscanf(buf, "%lf %lf %lf %d/%d %d", &l1, &l5, &l15, &run, &tot, &last);
	printf("loadavg: %d fields, running <= total %s\n", n, yesno(n == 6 && run <= tot && last > 0));
}

static void sys(void)
{
	struct utsname u;
	uname(&u);
	slurp("/proc/filesystems");
	printf("filesystems: tmpfs %s, proc %s\n", yesno(strstr(buf, "nodev\ttmpfs\n") != NULL),
	       yesno(strstr(buf, "nodev\tproc\n") != NULL));
	slurp("/proc/sys/kernel/hostname");
	printf("hostname is uname's: %s\n", yesno(strncmp(buf, u.nodename, strlen(u.nodename)) == 0 &&
						   buf[strlen(u.nodename)] == '\n'));
	slurp("/proc/sys/kernel/osrelease");
	printf("osrelease is uname's: %s\n", yesno(strncmp(buf, u.release, strlen(u.release)) == 0));
	slurp("/proc/sys/kernel/pid_max");
	printf("pid_max > getpid: %s\n", yesno(atol(buf) > getpid()));
	slurp("/proc/sys/vm/overcommit_memory");
	printf("overcommit_memory 0, 1 or 2: %s\n", yesno(buf[0] >= '0' && buf[0] <= '2' && buf[1] == '\n'));
}

static void self(void)
{
	long n = slurp("/proc/self/environ");
	int path = 0;
	for (long i = 0; i < n; i += strlen(buf + i) + 1)
		if (strncmp(buf + i, "PATH=", 5) == 0)
			path = strcmp(buf + i + 5, getenv("PATH")) == 0;
	printf("environ has PATH: %s\n", yesno(path));

	slurp("/proc/self/limits");
	struct rlimit r;
	getrlimit(RLIMIT_NOFILE, &r);
	char want[128];
	snprintf(want, sizeof want, "\nMax open files            %-20llu %-20llu files     \n", (unsigned long long)r.rlim_cur,
		 (unsigned long long)r.rlim_max);
	int lines = 0;
	for (char *q = buf; *q; q++)
		lines += *q == '\n';
	printf("limits: header %s, open files as getrlimit %s, lines %d\n", yesno(strncmp(buf, "Limit  ", 7) == 0),
	       yesno(strstr(buf, want) != NULL), lines);

	slurp("/proc/self/statm");
	long v[7];
	printf("statm: %d numbers\n",
	       sscanf(buf, "%ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]));

	char link[256] = {0};
	readlink("/proc/self/root", link, sizeof link - 1);
	char cwd[256], cl[256] = {0};
	getcwd(cwd, sizeof cwd);
	readlink("/proc/self/cwd", cl, sizeof cl - 1);
	printf("root -> %s, cwd is getcwd %s\n", link, yesno(strcmp(cwd, cl) == 0));

	int fd = open("/proc/self/limits", O_RDONLY | O_CLOEXEC);
	lseek(fd, 5, SEEK_SET);
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
	slurp(p);
	long long flags = 0;
	char *f = strstr(buf, "flags:\t");
	if (f)
		flags = strtoll(f + 7, NULL, 8);
	printf("fdinfo: pos %lld, O_CLOEXEC %s, mnt_id %s, ino %s\n", field("pos"), yesno(flags & O_CLOEXEC),
	       yesno(strstr(buf, "\nmnt_id:\t") != NULL), yesno(strstr(buf, "\nino:\t") != NULL));
	DIR *d = opendir("/proc/self/fdinfo");
	int found = 0;
	struct dirent *e;
	char name[16];
	snprintf(name, sizeof name, "%d", fd);
	while (d && (e = readdir(d)) != NULL)
		found |= strcmp(e->d_name, name) == 0;
	if (d)
		closedir(d);
	printf("fdinfo lists it: %s\n", yesno(found));
	close(fd);

	fd = open("/proc/self/comm", O_WRONLY);
	errno = 0;
	n = write(fd, "renamed-to-a-long-name\n", 23);
	close(fd);
	char cn[17] = {0};
	prctl(PR_GET_NAME, cn);
	printf("comm write: %ld, name now \"%s\"\n", n, cn);
	prctl(PR_SET_NAME, "procsys");
}

static void listing(void)
{
	const char *want[] = {"cpuinfo", "meminfo", "stat", "uptime", "loadavg", "filesystems", "sys", "self"};
	DIR *d = opendir("/proc");
	int seen[8] = {0};
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		for (int i = 0; i < 8; i++)
			seen[i] |= strcmp(e->d_name, want[i]) == 0;
	if (d)
		closedir(d);
	printf("/proc lists:");
	for (int i = 0; i < 8; i++)
		printf(" %s %s", want[i], yesno(seen[i]));
	printf("\n");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	meminfo();
	cpuinfo();
	stat();
	uptime();
	sys();
	self();
	listing();
	return 0;
}
