/*
 * auxv: echoes argv and envp and prints deterministic facts about the
 * auxiliary vector (values that would differ between two runs, such as the
 * AT_RANDOM bytes, are reduced to facts that do not).
 */
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;
/* Provided by the linker: the ELF header at the start of the loaded image. */
extern const ElfW(Ehdr) __ehdr_start;
/* The entry point of the C runtime's start files. */
extern char _start[];

static const char *yes(int b)
{
	return b ? "yes" : "no";
}

int main(int argc, char **argv, char **envp)
{
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=%s\n", i, argv[i]);
	printf("argv[argc]==NULL: %s\n", yes(argv[argc] == NULL));
	int n = 0;
	for (char **e = envp; *e; e++)
		printf("env[%d]=%s\n", n++, *e);
	printf("envp==argv+argc+1: %s\n", yes(envp == argv + argc + 1));
	printf("environ==envp: %s\n", yes(environ == envp));

	printf("AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
	printf("sysconf(_SC_PAGESIZE)=%ld\n", sysconf(_SC_PAGESIZE));

	const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
	int nonzero = 0;
	if (r != NULL)
		for (int i = 0; i < 16; i++)
			nonzero |= r[i];
	printf("AT_RANDOM present: %s, 16 bytes not all zero: %s\n", yes(r != NULL), yes(nonzero));

	unsigned long phdr = (unsigned long)&__ehdr_start + __ehdr_start.e_phoff;
	printf("AT_PHDR==ehdr+e_phoff: %s\n", yes(getauxval(AT_PHDR) == phdr));
	printf("AT_PHNUM=%lu e_phnum=%u\n", getauxval(AT_PHNUM), (unsigned)__ehdr_start.e_phnum);
	printf("AT_PHENT=%lu\n", getauxval(AT_PHENT));
	printf("AT_ENTRY==_start: %s\n", yes(getauxval(AT_ENTRY) == (unsigned long)_start));
	printf("AT_BASE=%#lx\n", getauxval(AT_BASE));
	printf("AT_UID==getuid: %s\n", yes(getauxval(AT_UID) == (unsigned long)getuid()));
	printf("AT_EUID==geteuid: %s\n", yes(getauxval(AT_EUID) == (unsigned long)geteuid()));
	printf("AT_GID==getgid: %s\n", yes(getauxval(AT_GID) == (unsigned long)getgid()));
	printf("AT_EGID==getegid: %s\n", yes(getauxval(AT_EGID) == (unsigned long)getegid()));
	printf("uid=%d gid=%d\n", (int)getuid(), (int)getgid());
	printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
	printf("AT_CLKTCK=%lu\n", getauxval(AT_CLKTCK));
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	printf("AT_EXECFN=%s\n", execfn ? execfn : "(absent)");
	const char *platform = (const char *)getauxval(AT_PLATFORM);
	printf("AT_PLATFORM=%s\n", platform ? platform : "(absent)");
	return 0;
}
