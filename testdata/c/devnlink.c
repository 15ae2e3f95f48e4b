/*
 * devnlink: the link count of /dev and /dev/pts is 2 plus the number of
 * subdirectories they list, as for every directory of Linux's tmpfs and
 * devtmpfs (which directories /dev holds differs between a host and the
 * sandbox; the rule does not).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void check(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		printf("%s: stat failed\n", path);
		return;
	}
	DIR *d = opendir(path);
	if (!d) {
		printf("%s: opendir failed\n", path);
		return;
	}
	unsigned long subdirs = 0;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat es;
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		if (lstat(p, &es) == 0 && S_ISDIR(es.st_mode))
			subdirs++;
	}
	closedir(d);
	printf("%s: st_nlink is 2 + subdirectories: %s\n", path,
	       (unsigned long)st.st_nlink == 2 + subdirs ? "yes" : "no");
	printf("%s: has subdirectories: %s\n", path, subdirs > 0 ? "yes" : "no");
}

int main(void)
{
	check("/dev");
	check("/dev/pts");
	printf("done\n");
	return 0;
}
