/*
 * fexecscript SCRIPT DIR NAME ELF: execveat(2) by descriptor, each in a
 * forked child, with the descriptor moved to 10 so that the names Linux
 * makes are fixed: fexecve (AT_EMPTY_PATH) of SCRIPT, of SCRIPT on a
 * close-on-exec descriptor (ENOENT: its interpreter could not open
 * /dev/fd/10), of ELF, of ELF opened O_PATH; execveat(DIR, NAME). The
 * programs run are expected to print their AT_EXECFN (showargs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void run(const char *what, const char *file, int oflags, int cloexec, const char *name, int atflags)
{
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		_exit(1);
	}
	if (pid == 0) {
		int fd = open(file, oflags);
		if (fd < 0 || dup3(fd, 10, cloexec ? O_CLOEXEC : 0) != 10) {
			printf("%s: open: %s\n", what, strerror(errno));
			_exit(126);
		}
		close(fd);
		char *args[] = {"zero", "one", NULL};
		syscall(SYS_execveat, 10, name, args, environ, atflags);
		printf("%s: execveat: %s\n", what, errno == ENOENT ? "ENOENT" : strerror(errno));
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("%s: exit %d\n", what, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: fexecscript SCRIPT DIR NAME ELF\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	run("fexecve script", argv[1], O_RDONLY, 0, "", AT_EMPTY_PATH);
	run("fexecve cloexec script", argv[1], O_RDONLY, 1, "", AT_EMPTY_PATH);
	run("execveat dir script", argv[2], O_RDONLY | O_DIRECTORY, 0, argv[3], 0);
	run("fexecve elf", argv[4], O_RDONLY, 1, "", AT_EMPTY_PATH);
	run("fexecve O_PATH elf", argv[4], O_PATH, 1, "", AT_EMPTY_PATH);
	return 0;
}
