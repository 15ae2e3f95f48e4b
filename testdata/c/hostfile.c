/*
 * hostfile PATH: reads a host file through PATH (a symlink to a regular file
 * in the same directory) and prints facts about both, the file's SHA-256 and
 * FNV-1a 64 hashes, and bytes read with pread at an offset. The test computes
 * the same SHA-256 in Go and requires it in the output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A small SHA-256 (FIPS 180-4). */
struct sha256 {
	uint32_t h[8];
	uint8_t buf[64];
	size_t nbuf;
	uint64_t len;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(s->h, iv, sizeof iv);
	s->nbuf = 0;
	s->len = 0;
}

static void sha256_write(struct sha256 *s, const uint8_t *p, size_t n)
{
	s->len += n;
	while (n > 0) {
		size_t k = 64 - s->nbuf;
		if (k > n)
			k = n;
		memcpy(s->buf + s->nbuf, p, k);
		s->nbuf += k;
		p += k;
		n -= k;
		if (s->nbuf == 64) {
			sha256_block(s, s->buf);
			s->nbuf = 0;
		}
	}
}

static void sha256_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->len * 8;
	uint8_t pad = 0x80;
	sha256_write(s, &pad, 1);
	pad = 0;
	while (s->nbuf != 56)
		sha256_write(s, &pad, 1);
	uint8_t l[8];
	for (int i = 0; i < 8; i++)
		l[i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_write(s, l, 8);
	for (int i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", s->h[i]);
}

/* hash_fd reads fd to its end in odd-sized pieces and hashes what it read. */
static long long hash_fd(int fd, char sha[65], uint64_t *fnv)
{
	static uint8_t buf[12289]; /* not a multiple of the page size on purpose */
	struct sha256 s;
	sha256_init(&s);
	uint64_t h = 14695981039346656037ULL;
	long long total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("read");
			exit(2);
		}
		if (n == 0)
			break;
		sha256_write(&s, buf, (size_t)n);
		for (ssize_t i = 0; i < n; i++) {
			h ^= buf[i];
			h *= 1099511628211ULL;
		}
		total += n;
	}
	sha256_hex(&s, sha);
	*fnv = h;
	return total;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: hostfile PATH\n");
		return 2;
	}
	const char *path = argv[1];

	struct stat lst, st;
	if (lstat(path, &lst) != 0 || stat(path, &st) != 0) {
		perror("stat");
		return 2;
	}
	printf("lstat: symlink: %s\n", S_ISLNK(lst.st_mode) ? "yes" : "no");
	printf("stat: regular: %s size=%lld\n", S_ISREG(st.st_mode) ? "yes" : "no", (long long)st.st_size);
	char target[256];
	ssize_t tn = readlink(path, target, sizeof target - 1);
	if (tn < 0) {
		perror("readlink");
		return 2;
	}
	target[tn] = 0;
	printf("readlink=%s\n", target);

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("open");
		return 2;
	}
	char sha[65];
	uint64_t fnv;
	long long n = hash_fd(fd, sha, &fnv);
	printf("read %lld bytes\n", n);
	printf("sha256=%s\n", sha);
	printf("fnv1a64=%016llx\n", (unsigned long long)fnv);

	off_t end = lseek(fd, 0, SEEK_END);
	printf("lseek(SEEK_END)==size: %s\n", end == st.st_size ? "yes" : "no");
	uint8_t mid[16];
	ssize_t pn = pread(fd, mid, sizeof mid, st.st_size / 2);
	printf("pread at size/2: %zd bytes:", pn);
	for (ssize_t i = 0; i < pn; i++)
		printf(" %02x", mid[i]);
	printf("\n");
	off_t cur = lseek(fd, 0, SEEK_CUR);
	printf("offset unchanged by pread: %s\n", cur == end ? "yes" : "no");
	close(fd);

	/* The same file through a directory descriptor and a relative name. */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	const char *base = path;
	if (slash != NULL) {
		*slash = 0;
		base = path + (slash - dir) + 1;
	} else {
		strcpy(dir, ".");
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		perror("open dir");
		return 2;
	}
	int fd2 = openat(dfd, base, O_RDONLY | O_CLOEXEC);
	if (fd2 < 0) {
		perror("openat");
		return 2;
	}
	char sha2[65];
	uint64_t fnv2;
	hash_fd(fd2, sha2, &fnv2);
	printf("openat(dirfd, name): same sha256: %s\n", strcmp(sha, sha2) == 0 ? "yes" : "no");
	close(fd2);

	errno = 0;
	int fd3 = openat(dfd, base, O_RDONLY | O_NOFOLLOW);
	printf("O_NOFOLLOW on symlink: fd<0 %s, ELOOP %s\n", fd3 < 0 ? "yes" : "no", errno == ELOOP ? "yes" : "no");
	errno = 0;
	int fd4 = openat(dfd, "does-not-exist", O_RDONLY);
	printf("missing file: fd<0 %s, ENOENT %s\n", fd4 < 0 ? "yes" : "no", errno == ENOENT ? "yes" : "no");
	close(dfd);
	return 0;
}
