/*
 * touchline MIB: fills MIB MiB of anonymous memory (every page holds its
 * own number), prints "ready", then for each line "K" read from stdin
 * checks every page of MiB K and prints "mib K ok" (or "mib K BAD"). It
 * touches no part of that memory unless told: a lazily restored copy loads
 * exactly the megabytes the test asks for, whatever the machine's speed.
 * At end of file it prints "eof" and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 8;
	size_t len = mib << 20;
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (size_t off = 0; off < len; off += 4096) {
		size_t page = off / 4096;
		memcpy(m + off, &page, sizeof page);
	}
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		size_t k = (size_t)atol(line);
		if (k >= mib) {
			printf("mib %zu out of range\n", k);
			fflush(stdout);
			continue;
		}
		int ok = 1;
		for (size_t off = k << 20; off < (k + 1) << 20; off += 4096) {
			size_t page;
			memcpy(&page, m + off, sizeof page);
			ok &= page == off / 4096;
		}
		printf("mib %zu %s\n", k, ok ? "ok" : "BAD");
		fflush(stdout);
	}
	printf("eof\n");
	return 0;
}
