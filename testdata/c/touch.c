/*
 * touch MIB: maps MIB MiB of anonymous memory and writes one byte in every
 * 4 KiB page, so each page is faulted in once. The benchmark runs it with
 * 256 and with 0 and reports the difference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 0;
	size_t len = mib << 20, pages = 0;
	if (len > 0) {
		volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		for (size_t off = 0; off < len; off += 4096, pages++)
			p[off] = 1;
	}
	printf("touched %zu pages\n", pages);
	return 0;
}
