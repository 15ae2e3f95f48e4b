/*
 * startenv: prints what a program finds at its start: its working
 * directory and its whole environment in order, one entry a line. snap run
 * must start a program, foreground or detached, in the same directory and
 * with the same environment as the shell would (or as --cwd, --env and
 * --clear-env say).
 */
#include <stdio.h>
#include <unistd.h>

extern char **environ;

int main(void)
{
	char cwd[4096];
	if (getcwd(cwd, sizeof cwd) == NULL)
		printf("cwd: error\n");
	else
		printf("cwd: %s\n", cwd);
	int n = 0;
	for (char **e = environ; *e != NULL; e++, n++)
		printf("env: %s\n", *e);
	printf("%d variables\n", n);
	return 0;
}
