/*
 * zdtmstart PROG [ARG...]: the start point of the e2e zdtm mode. Prints
 * "zdtm: start" on stdout, waits for one byte on stdin, then executes
 * PROG with its arguments and the same environment. The harness saves the
 * sandbox once the line is out (the wrapper is blocked in read or about
 * to be), restores it with a stdin that begins with that byte, and strips
 * the line from the output: what remains must equal a native run of PROG.
 * Exits 127 if PROG cannot be executed, 126 without one byte on stdin.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static const char marker[] = "zdtm: start\n";
	if (argc < 2) {
		fprintf(stderr, "usage: zdtmstart PROG [ARG...]\n");
		return 2;
	}
	if (write(1, marker, strlen(marker)) != (ssize_t)strlen(marker))
		return 1;
	char c;
	ssize_t n;
	while ((n = read(0, &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		return 126;
	execv(argv[1], argv + 1);
	perror("zdtmstart: execv");
	return 127;
}
