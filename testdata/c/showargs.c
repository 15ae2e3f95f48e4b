/*
 * showargs: prints its argument vector, AT_EXECFN and /proc/self/exe, one
 * per line. As the interpreter of a "#!" script it shows what the kernel
 * spliced in: on Linux argv is interpreter, optional argument, script path,
 * the caller's argv[1:]; AT_EXECFN is the script's path and /proc/self/exe
 * the interpreter.
 */
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		printf("argv[%d] = [%s]\n", i, argv[i]);
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	printf("AT_EXECFN = [%s]\n", execfn ? execfn : "(none)");
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n < 0)
		printf("/proc/self/exe: error\n");
	else
		printf("/proc/self/exe = [%.*s]\n", (int)n, exe);
	return 0;
}
