/*
 * poolmember: the program of a pool's members in the tests. It fills 4 MiB
 * of private memory with the byte 'a', prints "ready", then reads commands
 * from stdin, one per line:
 *   "set C"  writes the byte C over every page,
 *   "check"  prints "pages hold C" if every byte of every page is C, else
 *            "pages differ at page N",
 *   "exit N" exits with status N at once,
 * and at "bye" or end of file prints "bye after N commands" on stdout and
 * "stderr: N commands" on stderr, and exits 0.
 *
 * A pool test should check: members restored from one image and taken with
 * their own stdin and stdout each see their own writes only, and both
 * output streams reach the files given at the take.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE (4 << 20)
#define PAGE 4096

static char *mem;

static void check(void)
{
	char c = mem[0];
	for (long i = 0; i < SIZE; i++) {
		if (mem[i] != c) {
			printf("pages differ at page %ld\n", i / PAGE);
			return;
		}
	}
	printf("pages hold %c\n", c);
}

int main(void)
{
	mem = malloc(SIZE);
	if (mem == NULL)
		return 2;
	memset(mem, 'a', SIZE);
	printf("ready\n");
	fflush(stdout);
	char line[256];
	long n = 0;
	while (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\n")] = 0;
		if (strcmp(line, "bye") == 0)
			break;
		n++;
		if (strncmp(line, "set ", 4) == 0 && line[4] != 0) {
			for (long i = 0; i < SIZE; i += PAGE)
				memset(mem + i, line[4], PAGE);
		} else if (strcmp(line, "check") == 0) {
			check();
		} else if (strncmp(line, "exit ", 5) == 0) {
			return atoi(line + 5);
		} else {
			printf("unknown command %s\n", line);
		}
		fflush(stdout);
	}
	printf("bye after %ld commands\n", n);
	fprintf(stderr, "stderr: %ld commands\n", n);
	return 0;
}
