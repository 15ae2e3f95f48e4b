/*
 * getpid N: N raw getpid system calls (syscall(SYS_getpid), so no libc cache
 * can answer). The benchmark runs it with N and with 0 and divides the
 * difference by N: the cost of one system call round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0;
	long pid = syscall(SYS_getpid), same = 0;
	for (long i = 0; i < n; i++)
		same += syscall(SYS_getpid) == pid;
	printf("%ld of %ld getpid calls agreed\n", same, n);
	return same == n ? 0 : 1;
}
