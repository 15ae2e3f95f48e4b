/*
 * stdinreader: prints "ready", then blocks in read(2) on stdin and echoes
 * every line as "got: LINE" (stdout flushed each line). At end of file it
 * prints "eof after N lines" and exits 0.
 *
 * A checkpoint test should check: saved while blocked in read on a pipe or
 * terminal and restored with a new stdin, the read restarts (no error, no
 * lost or duplicated line), lines written to the restored sandbox's stdin
 * are echoed, and the line count continues from before the save.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	printf("ready\n");
	fflush(stdout);
	char line[4096];
	size_t len = 0;
	long lines = 0;
	for (;;) {
		char c;
		ssize_t n = read(0, &c, 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			printf("read error: %s\n", strerror(errno));
			return 2;
		}
		if (n == 0)
			break;
		if (c != '\n' && len < sizeof line - 1) {
			line[len++] = c;
			continue;
		}
		if (c != '\n')
			continue; /* an overlong line is truncated */
		line[len] = 0;
		printf("got: %s\n", line);
		fflush(stdout);
		len = 0;
		lines++;
	}
	if (len > 0) {
		line[len] = 0;
		printf("got: %s\n", line);
		lines++;
	}
	printf("eof after %ld lines\n", lines);
	return 0;
}
