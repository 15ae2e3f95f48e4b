/*
 * scriptexec PATH...: for each PATH, forks a child that execve()s it with
 * argv {PATH, "one", "two words"} and the current environment, and prints
 * how the child ended. A failed execve prints the errno's name (ENOEXEC,
 * EACCES, ELOOP, ENOENT, ...) in the child, which exits 127. Used to check
 * that "#!" scripts are run as on Linux (binfmt_script).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *errname(int e)
{
	switch (e) {
	case ENOEXEC: return "ENOEXEC";
	case EACCES: return "EACCES";
	case ELOOP: return "ELOOP";
	case ENOENT: return "ENOENT";
	case ENOTDIR: return "ENOTDIR";
	case E2BIG: return "E2BIG";
	case EISDIR: return "EISDIR";
	default: return "other";
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *base = strrchr(argv[i], '/');
		base = base ? base + 1 : argv[i];
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			char *args[] = {argv[i], "one", "two words", NULL};
			execve(argv[i], args, environ);
			printf("%s: execve: %s\n", base, errname(errno));
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		if (WIFEXITED(status))
			printf("%s: exit %d\n", base, WEXITSTATUS(status));
		else
			printf("%s: signal %d\n", base, WTERMSIG(status));
	}
	return 0;
}
