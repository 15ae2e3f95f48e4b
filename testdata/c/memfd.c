/*
 * memfd: memfd_create gives an anonymous read-write regular file: write,
 * read back, fstat, ftruncate (zero-filled), pread, readlink of its
 * /proc/self/fd link, a reopen through that link with its own offset, a
 * private mapping of its contents, a forked child reading it through the
 * inherited descriptor, and seals (F_SEAL_WRITE makes writes fail with
 * EPERM). A name longer than 249 bytes is EINVAL. (Shared mappings and
 * the checkpoint workload with memfds are shmfile's.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#define MFD_ALLOW_SEALING 2U
#endif

static const char *yesno(int b) { return b ? "yes" : "no"; }

static int mfd(const char *name, unsigned flags) { return syscall(SYS_memfd_create, name, flags); }

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int fd = mfd("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	printf("memfd_create: ok %s, cloexec %s\n", yesno(fd >= 0), yesno(fcntl(fd, F_GETFD) == FD_CLOEXEC));
	const char *msg = "hello memfd";
	ssize_t n = write(fd, msg, strlen(msg));
	char buf[64] = {0};
	lseek(fd, 0, SEEK_SET);
	ssize_t r = read(fd, buf, sizeof buf);
	printf("write %zd, read back %zd \"%s\"\n", n, r, buf);
	struct stat st;
	fstat(fd, &st);
	printf("fstat: regular %s, size %lld, mode %o, nlink %lu\n", yesno(S_ISREG(st.st_mode)), (long long)st.st_size,
	       st.st_mode & 07777, (unsigned long)st.st_nlink);
	printf("F_GETFL O_RDWR: %s\n", yesno((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR));

	int t = ftruncate(fd, 8192);
	fstat(fd, &st);
	char z[16];
	memset(z, 1, sizeof z);
	r = pread(fd, z, sizeof z, 5000);
	int zero = 1;
	for (size_t i = 0; i < sizeof z; i++)
		zero &= z[i] == 0;
	printf("ftruncate 8192: %d, size %lld, pread past old end zero %s (%zd)\n", t, (long long)st.st_size, yesno(zero), r);
	printf("lseek SEEK_END: %lld\n", (long long)lseek(fd, 0, SEEK_END));

	char path[64], link[128] = {0};
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	readlink(path, link, sizeof link - 1);
	printf("readlink: %s\n", link);
	int fd2 = open(path, O_RDWR);
	memset(buf, 0, sizeof buf);
	r = read(fd2, buf, 5);
	printf("reopened: ok %s, reads from offset 0: \"%s\", original offset still 8192: %s\n", yesno(fd2 >= 0), buf,
	       yesno(lseek(fd, 0, SEEK_CUR) == 8192));
	close(fd2);

	char *p = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
	printf("private mapping: %s, contents \"%.11s\"\n", yesno(p != MAP_FAILED), p != MAP_FAILED ? p : "");

	pid_t c = fork();
	if (c == 0) {
		char cb[16] = {0};
		pread(fd, cb, 11, 0);
		_exit(strcmp(cb, msg) == 0 ? 0 : 1);
	}
	int ws;
	waitpid(c, &ws, 0);
	printf("child reads it through the inherited fd: %s\n", yesno(WIFEXITED(ws) && WEXITSTATUS(ws) == 0));

	if (p != MAP_FAILED)
		munmap(p, 8192);
	int s = fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK);
	int seals = fcntl(fd, F_GET_SEALS);
	printf("F_ADD_SEALS: %d, F_GET_SEALS has WRITE and SHRINK: %s\n", s,
	       yesno(seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) == (F_SEAL_WRITE | F_SEAL_SHRINK)));
	errno = 0;
	n = pwrite(fd, "x", 1, 0);
	printf("write after F_SEAL_WRITE: %zd, EPERM %s\n", n, yesno(errno == EPERM));
	errno = 0;
	t = ftruncate(fd, 10);
	printf("shrink after F_SEAL_SHRINK: %d, EPERM %s\n", t, yesno(errno == EPERM));

	int plain = mfd("plain", 0);
	errno = 0;
	s = fcntl(plain, F_ADD_SEALS, F_SEAL_WRITE);
	printf("sealing without MFD_ALLOW_SEALING: %d, EPERM %s\n", s, yesno(errno == EPERM));

	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	errno = 0;
	int bad = mfd(longname, 0);
	printf("name of 299 bytes: %d, EINVAL %s\n", bad, yesno(errno == EINVAL));
	return 0;
}
