/*
 * surfacehold DIR [N]: holds inotify and chroot state and checks it every
 * 100 ms. As root it first chroots into DIR (then "/" is DIR); it watches
 * the directory w there for IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE and
 * IN_DELETE. At tick K it reads the queued events, which must be exactly
 * those of tick K-1's file (CREATE, MODIFY, CLOSE_WRITE, DELETE of f<K-1>,
 * so that a save between two ticks holds queued events), and the signals
 * queued by an F_NOTIFY request on w (DN_CREATE, DN_DELETE, multishot, a
 * blocked real-time signal): two naming its descriptor; checks that the
 * working directory is still "/" of its root (as root), then makes the
 * events of f<K>. It prints "tick K surface OK", or "tick K CORRUPT ..."
 * with what differs; after N ticks (forever when N is 0 or absent),
 * "done".
 *
 * A checkpoint test should check: saved and restored (twice), the ticks
 * continue from K+1 with "surface OK" (the watch, the queued events, the
 * dnotify request, its queued signals and the root survived), and the run
 * ends with "done".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* check reads the queued events and compares them with tick k-1's. */
static int check(int in, long k, char *what, size_t n)
{
	char buf[4096] __attribute__((aligned(8)));
	char got[512] = "", want[512] = "";
	if (k > 1)
		snprintf(want, sizeof want, "CREATE f%ld,MODIFY f%ld,CLOSE_WRITE f%ld,DELETE f%ld,", k - 1, k - 1, k - 1, k - 1);
	ssize_t len;
	while ((len = read(in, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			const char *m = ev->mask & IN_CREATE ? "CREATE" : ev->mask & IN_MODIFY ? "MODIFY" : ev->mask & IN_CLOSE_WRITE ? "CLOSE_WRITE" : ev->mask & IN_DELETE ? "DELETE" : "OTHER";
			size_t l = strlen(got);
			snprintf(got + l, sizeof got - l, "%s %s,", m, ev->len ? ev->name : "");
			p += sizeof *ev + ev->len;
		}
	}
	if (strcmp(got, want) != 0) {
		snprintf(what, n, " events [%s] want [%s]", got, want);
		return 1;
	}
	return 0;
}

/* dnotified takes the pending dnotify signals: tick k-1's create and
 * delete, each naming descriptor dfd. */
static int dnotified(int dfd, long k, char *what, size_t n)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 2);
	struct timespec zero = {0, 0};
	siginfo_t si;
	int got = 0, fds = 0;
	while (sigtimedwait(&set, &si, &zero) > 0) {
		got++;
		fds += si.si_fd == dfd;
	}
	int want = k > 1 ? 2 : 0;
	if (got != want || fds != got) {
		size_t l = strlen(what);
		snprintf(what + l, n - l, " dnotify signals %d (%d naming it) want %d", got, fds, want);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: surfacehold DIR [N]\n");
		return 2;
	}
	long limit = argc > 2 ? atol(argv[2]) : 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	mkdir(argv[1], 0755);
	const char *w = "w";
	int rooted = geteuid() == 0;
	if (rooted) {
		if (chdir(argv[1]) != 0 || chroot(".") != 0) {
			printf("chroot failed: %s\n", strerror(errno));
			return 1;
		}
	} else if (chdir(argv[1]) != 0) {
		printf("chdir failed: %s\n", strerror(errno));
		return 1;
	}
	mkdir(w, 0755);
	int in = inotify_init1(IN_NONBLOCK);
	if (in < 0 || inotify_add_watch(in, w, IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE) < 0) {
		printf("inotify failed: %s\n", strerror(errno));
		return 1;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int dfd = open(w, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fcntl(dfd, F_SETSIG, SIGRTMIN + 2) < 0 ||
	    fcntl(dfd, F_NOTIFY, DN_CREATE | DN_DELETE | DN_MULTISHOT) < 0) {
		printf("dnotify failed: %s\n", strerror(errno));
		return 1;
	}
	for (long k = 1; limit == 0 || k <= limit; k++) {
		char what[1200] = "";
		int bad = check(in, k, what, sizeof what);
		bad |= dnotified(dfd, k, what, sizeof what);
		if (rooted) {
			char cwd[256];
			if (syscall(SYS_getcwd, cwd, sizeof cwd) < 0 || strcmp(cwd, "/") != 0) {
				size_t l = strlen(what);
				snprintf(what + l, sizeof what - l, " cwd %s", cwd);
				bad = 1;
			}
			if (access("/w", F_OK) != 0) {
				size_t l = strlen(what);
				snprintf(what + l, sizeof what - l, " /w: %s", strerror(errno));
				bad = 1;
			}
		}
		if (bad)
			printf("tick %ld CORRUPT%s\n", k, what);
		else
			printf("tick %ld surface OK\n", k);
		char name[64];
		snprintf(name, sizeof name, "w/f%ld", k);
		int fd = open(name, O_CREAT | O_WRONLY, 0644);
		write(fd, "x", 1);
		close(fd);
		unlink(name);
		nap_ms(100);
	}
	printf("done\n");
	return 0;
}
