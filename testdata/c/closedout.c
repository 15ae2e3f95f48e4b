/*
 * closedout [ignore]: writes lines to its standard output until a write
 * fails, then reports the error on stderr and exits 3 (or exits 0 after
 * 100000 lines, "wrote them all" on stderr). Run with stdout closed
 * (">&-": EBADF at the first write) or on a pipe whose reader is gone
 * (SIGPIPE kills it, status 141; with "ignore", SIGPIPE is ignored and the
 * write fails with EPIPE). e2e.TestClosedStdout runs it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "ignore") == 0)
		signal(SIGPIPE, SIG_IGN);
	static const char line[] = "a line of output\n";
	for (int i = 0; i < 100000; i++) {
		if (write(1, line, sizeof line - 1) < 0) {
			int e = errno;
			fprintf(stderr, "write: %s\n", e == EBADF ? "EBADF" : e == EPIPE ? "EPIPE" : strerror(e));
			return 3;
		}
	}
	fprintf(stderr, "wrote them all\n");
	return 0;
}
