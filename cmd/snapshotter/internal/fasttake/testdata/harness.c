/*
 * harness: the entry code's functions (csrc/take.c, included whole) called
 * one at a time, for entry_test.go. Built with the host's gcc and libc.
 *
 *   harness parse ARG...       prints the parsed command, or "no"
 *   harness statedir ARG...    prints the state directory it would use
 *   harness request ID TYPE SIG  writes a request frame to stdout
 *   harness answer             reads a msgpack body on stdin and prints
 *                              "result R id I exit E code C" (-1 if absent)
 *   harness truncated          reads a body and reads every prefix of it
 *   harness sockfits DIR ID    prints 1 if ID's socket in DIR fits, else 0
 */
#include "../csrc/take.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static const char *or_dash(const char *s)
{
	return s ? s : "-";
}

static long read_body(u8 *b, long cap)
{
	long n = 0, r;
	while (n < cap && (r = read(0, b + n, (size_t)(cap - n))) > 0)
		n += r;
	return n;
}

static void answer(const u8 *b, long n)
{
	long id = -1, code = -1;
	if (!map_int(b, (u64)n, "id", &id))
		id = -1;
	int ok = exit_status(b, (u64)n, &code);
	printf("result %d id %ld exit %d code %ld\n", is_result(b, (u64)n), id, ok, ok ? code : -1);
}

int main(int argc, char **argv)
{
	static u8 body[1 << 20];
	if (argc < 2)
		return 2;
	/* The commands see argv[1..] as snap's arguments. */
	if (strcmp(argv[1], "parse") == 0 || strcmp(argv[1], "statedir") == 0) {
		struct command c = {0, 0, {0, 0, 0}, 0};
		if (!parse(argc - 1, argv + 1, &c)) {
			printf("no\n");
			return 0;
		}
		if (strcmp(argv[1], "statedir") == 0) {
			char sd[MAX_PATH];
			struct buf b = {sd, 0, sizeof sd, 1};
			state_dir(&b, &c, environ);
			printf("%s %d\n", sd, b.ok);
			return 0;
		}
		printf("%s %s %d %s %s %s\n", or_dash(c.state_dir), c.name, c.detach,
		       or_dash(c.paths[0]), or_dash(c.paths[1]), or_dash(c.paths[2]));
		return 0;
	}
	if (strcmp(argv[1], "request") == 0 && argc == 5) {
		u8 f[64];
		u64 n = request(f, atoi(argv[2]), argv[3], atoi(argv[4]));
		fwrite(f, 1, n, stdout);
		return 0;
	}
	if (strcmp(argv[1], "answer") == 0) {
		answer(body, read_body(body, sizeof body));
		return 0;
	}
	if (strcmp(argv[1], "sockfits") == 0 && argc == 4) {
		printf("%d\n", sock_fits(argv[2], argv[3]));
		return 0;
	}
	if (strcmp(argv[1], "truncated") == 0) {
		long n = read_body(body, sizeof body);
		for (long i = 0; i <= n; i++) {
			/* A copy of exactly i bytes, so that a read past it faults
			 * under the tests' sanitizer. */
			u8 *p = malloc((size_t)i + 1);
			memcpy(p, body, (size_t)i);
			long v;
			is_result(p, (u64)i);
			exit_status(p, (u64)i, &v);
			map_int(p, (u64)i, "id", &v);
			free(p);
		}
		printf("ok\n");
		return 0;
	}
	return 2;
}
