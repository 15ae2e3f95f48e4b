/*
 * exit HOW: ends the process in the way named by HOW after printing one line
 * (flushed, so it is not lost by a death):
 *   a number N:  exit(N) with a second, unflushed line that exit must flush;
 *   _exit N:     _exit(N) straight away;
 *   abort:       abort() (SIGABRT, status 134);
 *   term:        kill(getpid(), SIGTERM) (status 143);
 *   segv:        a NULL pointer write with no handler (SIGSEGV, status 139).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int *volatile nullp;

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: exit N|_exit N|abort|term|segv\n");
		return 2;
	}
	printf("exit: %s\n", argv[1]);
	fflush(stdout);
	if (strcmp(argv[1], "abort") == 0) {
		abort();
	} else if (strcmp(argv[1], "term") == 0) {
		kill(getpid(), SIGTERM);
		pause();
	} else if (strcmp(argv[1], "segv") == 0) {
		*nullp = 1;
	} else if (strcmp(argv[1], "_exit") == 0 && argc == 3) {
		_exit(atoi(argv[2]));
	} else {
		printf("buffered line flushed by exit\n");
		exit(atoi(argv[1]));
	}
	printf("still alive?\n");
	return 1;
}
