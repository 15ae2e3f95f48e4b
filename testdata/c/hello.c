/*
 * hello: the smallest static program. The e2e suite compares its output and
 * exit status with a native run; the benchmarks time a whole `snap run` of it.
 */
#include <stdio.h>

int main(void)
{
	puts("hello, world");
	return 0;
}
