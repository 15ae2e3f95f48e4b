/*
 * snap's ELF entry: `snap pool take` before the Go runtime starts.
 *
 * package fasttake's doc is the spec (what is taken, what is left to Go).
 * snap_fast_take runs on the process's initial stack, called by _rt0_snap
 * (entry_linux_amd64.s) with the stack pointer the kernel gave (argc,
 * argv, envp, auxv) and the address of fasttake's entryTaken buffer. It
 * either exits the process (a take served) or returns with nothing
 * changed that Go would see: no descriptor left open, the signal mask as
 * it was, and entryTaken written only for a member it hands over.
 *
 * Go links this file's object (take_linux_amd64.syso, made by gen.sh)
 * with its internal linker, which in a static build never applies a host
 * object's relocations. So the object must have none: one translation
 * unit, every function static but the entry, no data of any kind (no
 * string literals: names are built on the stack), no jump or switch
 * tables, no calls the compiler makes up (memcpy, memset), raw system
 * calls only. gen.sh refuses an object with a relocation or an undefined
 * symbol.
 */

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

enum {
	NR_read = 0, NR_write = 1, NR_close = 3, NR_poll = 7, NR_fcntl = 72,
	NR_rt_sigprocmask = 14, NR_socket = 41, NR_connect = 42,
	NR_sendmsg = 46, NR_getuid = 102, NR_getdents64 = 217,
	NR_exit_group = 231, NR_openat = 257, NR_unlinkat = 263,
	NR_readlinkat = 267, NR_signalfd4 = 289,
};

enum {
	AT_FDCWD = -100, O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0100,
	O_APPEND = 02000, O_DIRECTORY = 0200000, O_CLOEXEC = 02000000,
	EINTR = 4, AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 02000000,
	SOL_SOCKET = 1, SCM_RIGHTS = 1, SIG_BLOCK = 0, SIG_SETMASK = 2,
	SIGHUP = 1, SIGINT = 2, SIGTERM = 15, SFD_NONBLOCK = 04000,
	SFD_CLOEXEC = 02000000, POLLIN = 1, F_GETFD = 1,
};

/* Bounds: anything longer is left to Go. */
enum {
	MAX_PATH = 1024,	/* a state directory or stdio path */
	MAX_ID = 64,		/* runner.ValidateID */
	MAX_IDS = 64,		/* waiting members considered */
	MAX_SUN_PATH = 107,	/* sockaddr_un.sun_path less its NUL */
	MAX_FRAME = 16384,	/* an answer's body */
	TAKEN_SIZE = 72,	/* fasttake's entryTaken */
};

/*
 * Constant strings, in .text beside the code: a reference within one
 * section is resolved by the assembler, with no relocation. STR gives a
 * string's address.
 */
__asm__(".pushsection .text\n"
	    ".Ls_pool: .asciz \"pool\"\n"
	    ".Ls_take: .asciz \"take\"\n"
	    ".Ls_d: .asciz \"-d\"\n"
	    ".Ls_detach: .asciz \"--detach\"\n"
	    ".Ls_flag_wait: .asciz \"--wait\"\n"
	    ".Ls_state_dir: .asciz \"--state-dir\"\n"
	    ".Ls_store: .asciz \"--store\"\n"
	    ".Ls_stdin: .asciz \"--stdin\"\n"
	    ".Ls_stdout: .asciz \"--stdout\"\n"
	    ".Ls_stderr: .asciz \"--stderr\"\n"
	    ".Ls_SNAP_STATE_DIR: .asciz \"SNAP_STATE_DIR\"\n"
	    ".Ls_XDG_RUNTIME_DIR: .asciz \"XDG_RUNTIME_DIR\"\n"
	    ".Ls_TMPDIR: .asciz \"TMPDIR\"\n"
	    ".Ls_snap: .asciz \"/snap\"\n"
	    ".Ls_snap_dash: .asciz \"/snap-\"\n"
	    ".Ls_tmp: .asciz \"/tmp\"\n"
	    ".Ls_kind: .asciz \"kind\"\n"
	    ".Ls_exit: .asciz \"exit\"\n"
	    ".Ls_code: .asciz \"code\"\n"
	    ".Ls_signal: .asciz \"signal\"\n"
	    ".Ls_wait: .asciz \"wait\"\n"
	    ".Ls_kill: .asciz \"kill\"\n"
	    ".Ls_id: .asciz \"id\"\n"
	    ".Ls_dev_null: .asciz \"/dev/null\"\n"
	    ".Ls_pools: .asciz \"/.pools/\"\n"
	    ".Ls_waiting: .asciz \"/waiting\"\n"
	    ".Ls_primed: .asciz \"/primed\"\n"
	    ".Ls_control_sock: .asciz \"/control.sock\"\n"
	    ".Ls_slash: .asciz \"/\"\n"
	    ".Ls_nl: .asciz \"\\n\"\n"
	    ".Ls_SNAP_NO_FAST_TAKE: .asciz \"SNAP_NO_FAST_TAKE\"\n"
	".popsection");

#define STR(label) ({ const char *p_; __asm__("leaq " #label "(%%rip), %0" : "=r"(p_)); p_; })

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

static long sys3(long n, long a, long b, long c)
{
	return sys6(n, a, b, c, 0, 0, 0);
}

static void sys_close(int fd)
{
	sys3(NR_close, fd, 0, 0);
}

static __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys3(NR_exit_group, code, 0, 0);
}

/* Strings. */

static u64 slen(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

static int seq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* prefix returns what follows p in s, or 0. */
static const char *prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return s;
}

/* buf is a bounded string being built: len < cap always, NUL-terminated;
 * ok drops to 0 once something did not fit. */
struct buf {
	char *p;
	u64 len, cap;
	int ok;
};

static void bput(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (b->len + 1 >= b->cap) {
			b->ok = 0;
			break;
		}
		b->p[b->len++] = *s;
	}
	b->p[b->len] = 0;
}

static void bputu(struct buf *b, u64 v)
{
	char d[24];
	int i = 23;
	d[i] = 0;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	bput(b, d + i);
}

/* validName follows runner.ValidateID. */
static int valid_name(const char *s)
{
	u64 n = 0;
	if (!s[0] || s[0] == '.')
		return 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= MAX_ID)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

static const char *getenv_(char **envp, const char *key)
{
	for (; *envp; envp++) {
		const char *v = prefix(*envp, key);
		if (v && *v == '=')
			return v + 1;
	}
	return 0;
}

/* The command line. */

struct command {
	const char *state_dir;	/* --state-dir, or 0 */
	const char *name;
	const char *paths[3];	/* --stdin, --stdout, --stderr, or 0 */
	int detach;
};

/* parse reads `pool take NAME` with take's own flags and the global ones
 * snap's full path would accept for it; it returns 0 for anything else. */
static int parse(int argc, char **argv, struct command *c)
{
	const char *s_pool = STR(.Ls_pool);
	const char *s_take = STR(.Ls_take);
	const char *s_d = STR(.Ls_d);
	const char *s_detach = STR(.Ls_detach);
	const char *s_wait = STR(.Ls_flag_wait);
	const char *s_state = STR(.Ls_state_dir);
	const char *s_store = STR(.Ls_store);
	const char *s_stdin = STR(.Ls_stdin);
	const char *s_stdout = STR(.Ls_stdout);
	const char *s_stderr = STR(.Ls_stderr);
	char flag[16];
	int words = 0; /* "pool", "take", NAME seen */

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == 0) {
			if (words == 0 && seq(a, s_pool)) {
			} else if (words == 1 && seq(a, s_take)) {
			} else if (words == 2) {
				c->name = a;
			} else {
				return 0;
			}
			words++;
			continue;
		}
		/* The flag's name, up to '='. */
		u64 n = 0;
		while (a[n] && a[n] != '=') {
			if (n + 1 >= sizeof flag)
				return 0;
			flag[n] = a[n];
			n++;
		}
		flag[n] = 0;
		const char *value = a[n] == '=' ? a + n + 1 : 0;
		if (seq(flag, s_d) || seq(flag, s_detach)) {
			if (value || words < 2)
				return 0;
			c->detach = 1;
			continue;
		}
		if (seq(flag, s_wait)) {
			/* The C path never waits; Go's does, if it must. */
			if (value || words < 2)
				return 0;
			continue;
		}
		int which; /* 0-2 stdio, 3 state dir, 4 store */
		if (seq(flag, s_stdin))
			which = 0;
		else if (seq(flag, s_stdout))
			which = 1;
		else if (seq(flag, s_stderr))
			which = 2;
		else if (seq(flag, s_state))
			which = 3;
		else if (seq(flag, s_store))
			which = 4;
		else
			return 0;
		if (!value) {
			if (++i >= argc)
				return 0;
			value = argv[i];
		}
		if (which < 3) {
			if (words < 2)
				return 0;
			c->paths[which] = value;
		} else if (which == 3) {
			c->state_dir = value;
		}
	}
	return words == 3 && valid_name(c->name);
}

/* state_dir writes the state directory into b as snap's root command
 * defaults it. */
static void state_dir(struct buf *b, const struct command *c, char **envp)
{
	const char *k_state = STR(.Ls_SNAP_STATE_DIR);
	const char *k_xdg = STR(.Ls_XDG_RUNTIME_DIR);
	const char *k_tmp = STR(.Ls_TMPDIR);
	const char *s_snap = STR(.Ls_snap);
	const char *s_snapdash = STR(.Ls_snap_dash);
	const char *s_tmp = STR(.Ls_tmp);
	const char *v;

	if (c->state_dir) {
		bput(b, c->state_dir);
		return;
	}
	if ((v = getenv_(envp, k_state)) && *v) {
		bput(b, v);
		return;
	}
	if ((v = getenv_(envp, k_xdg)) && *v) {
		bput(b, v);
		bput(b, s_snap);
		return;
	}
	v = getenv_(envp, k_tmp);
	bput(b, v && *v ? v : s_tmp);
	bput(b, s_snapdash);
	bputu(b, (u64)sys3(NR_getuid, 0, 0, 0));
}

/* The pool's waiting members. */

struct ids {
	int n;
	char id[MAX_IDS][MAX_ID + 1];
};

struct dirent64 {
	u64 ino;
	long off;
	unsigned short reclen;
	u8 type;
	char name[];
};

/* list_waiting reads the names in dir (valid ones, up to MAX_IDS). */
static int list_waiting(const char *dir, struct ids *ids)
{
	char d[4096] __attribute__((aligned(8)));
	int fd = (int)sys6(NR_openat, AT_FDCWD, (long)dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0);
	if (fd < 0)
		return 0;
	ids->n = 0;
	for (;;) {
		long n = sys3(NR_getdents64, fd, (long)d, sizeof d);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			sys_close(fd);
			return 0;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(d + off);
			if (e->reclen == 0 || off + e->reclen > n)
				break;
			off += e->reclen;
			if (ids->n < MAX_IDS && valid_name(e->name)) {
				u64 k = 0;
				for (; e->name[k]; k++)
					ids->id[ids->n][k] = e->name[k];
				ids->id[ids->n][k] = 0;
				ids->n++;
			}
		}
	}
	sys_close(fd);
	return 1;
}

/* primed_first moves the pool's primed member (the target of its "primed"
 * link, runner's pool_prime.go), if waiting, first: its take copies
 * nothing before the program runs. */
static void primed_first(const char *link, struct ids *ids)
{
	char t[MAX_ID + 1];
	long n = sys6(NR_readlinkat, AT_FDCWD, (long)link, (long)t, sizeof t, 0, 0);
	if (n <= 0 || n >= (long)sizeof t)
		return;
	t[n] = 0;
	if (!valid_name(t))
		return;
	for (int k = 0; k < ids->n; k++) {
		if (!seq(ids->id[k], t))
			continue;
		for (; k > 0; k--)
			for (int j = 0; j <= MAX_ID; j++)
				ids->id[k][j] = ids->id[k - 1][j];
		for (int j = 0; j <= n; j++)
			ids->id[0][j] = t[j];
		return;
	}
}

/* I/O. */

/* rw_all reads (NR_read) or writes (NR_write) all n bytes at p, retrying
 * after EINTR; 0 at an error or end of file. */
static int rw_all(long nr, int fd, u8 *p, u64 n)
{
	while (n > 0) {
		long r = sys3(nr, fd, (long)p, (long)n);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			return 0;
		p += r;
		n -= (u64)r;
	}
	return 1;
}

static int write_all(int fd, const u8 *p, u64 n)
{
	return rw_all(NR_write, fd, (u8 *)p, n);
}

static int read_full(int fd, u8 *p, u64 n)
{
	return rw_all(NR_read, fd, p, n);
}

/* The control protocol (docs/CONTROL_PROTOCOL.md): frames of a 4-byte
 * big-endian length and a msgpack body. */

/* request builds the frame of {"v": 1, "id": id, "type": typ} with
 * "signal": sig if not 0 (id and sig below 128, typ 4 bytes) into f and
 * returns its length. */
static u64 request(u8 *f, int id, const char *typ, int sig)
{
	u64 n = 4;
	f[n++] = (u8)(0x80 | (sig ? 4 : 3));
	f[n++] = 0xa1, f[n++] = 'v', f[n++] = 1;
	f[n++] = 0xa2, f[n++] = 'i', f[n++] = 'd', f[n++] = (u8)(id & 0x7f);
	f[n++] = 0xa4, f[n++] = 't', f[n++] = 'y', f[n++] = 'p', f[n++] = 'e';
	f[n++] = 0xa4;
	for (int i = 0; i < 4; i++)
		f[n++] = (u8)typ[i];
	if (sig) {
		f[n++] = 0xa6, f[n++] = 's', f[n++] = 'i', f[n++] = 'g';
		f[n++] = 'n', f[n++] = 'a', f[n++] = 'l', f[n++] = (u8)(sig & 0x7f);
	}
	f[0] = f[1] = f[2] = 0;
	f[3] = (u8)(n - 4);
	return n;
}

/* read_frame reads one frame's body into body (MAX_FRAME bytes) and
 * returns its length, or -1. */
static long read_frame(int s, u8 *body)
{
	u8 h[4];
	if (!read_full(s, h, 4))
		return -1;
	u64 n = (u64)h[0] << 24 | (u64)h[1] << 16 | (u64)h[2] << 8 | h[3];
	if (n > MAX_FRAME || !read_full(s, body, n))
		return -1;
	return (long)n;
}

/* A msgpack reader: the value of one key of a top-level map, whatever
 * the other values are. Any malformed or truncated input reads as
 * absent. */

struct dec {
	const u8 *p, *end;
};

static int d_uint(struct dec *d, int n, u64 *v)
{
	if (d->end - d->p < n)
		return 0;
	*v = 0;
	for (int i = 0; i < n; i++)
		*v = *v << 8 | *d->p++;
	return 1;
}

static int d_skipn(struct dec *d, u64 n)
{
	if ((u64)(d->end - d->p) < n)
		return 0;
	d->p += n;
	return 1;
}

/* d_int reads an integer of at most 31 bits and sign. */
static int d_int(struct dec *d, long *v)
{
	u64 u;
	if (d->p >= d->end)
		return 0;
	u8 c = *d->p++;
	if (c <= 0x7f) {
		*v = c;
		return 1;
	}
	if (c >= 0xe0) {
		*v = (long)(signed char)c;
		return 1;
	}
	int n = c == 0xcc || c == 0xd0 ? 1 : c == 0xcd || c == 0xd1 ? 2 :
		c == 0xce || c == 0xd2 ? 4 : c == 0xcf || c == 0xd3 ? 8 : 0;
	if (n == 0 || !d_uint(d, n, &u))
		return 0;
	if (c >= 0xd0) { /* signed: extend */
		int shift = 64 - 8 * n;
		*v = (long)(u << shift) >> shift;
	} else {
		if (u > 0x7fffffff)
			return 0;
		*v = (long)u;
	}
	return *v >= -0x80000000L && *v <= 0x7fffffff;
}

static int d_str(struct dec *d, const u8 **s, u64 *n)
{
	if (d->p >= d->end)
		return 0;
	u8 c = *d->p++;
	if ((c & 0xe0) == 0xa0)
		*n = c & 0x1f;
	else if (c < 0xd9 || c > 0xdb || !d_uint(d, 1 << (c - 0xd9), n))
		return 0;
	*s = d->p;
	return d_skipn(d, *n);
}

static int d_map(struct dec *d, u64 *n)
{
	if (d->p >= d->end)
		return 0;
	u8 c = *d->p++;
	if ((c & 0xf0) == 0x80) {
		*n = c & 0x0f;
		return 1;
	}
	if (c == 0xde)
		return d_uint(d, 2, n);
	if (c == 0xdf)
		return d_uint(d, 4, n);
	return 0;
}

/* d_skip passes over one value; depth bounds nesting. */
static int d_skip(struct dec *d, int depth)
{
	u64 n;
	const u8 *s;
	if (depth > 32 || d->p >= d->end)
		return 0;
	u8 c = *d->p;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
		d->p++;
		return 1;
	}
	if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb))
		return d_str(d, &s, &n);
	if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf) {
		if (!d_map(d, &n))
			return 0;
		for (u64 i = 0; i < 2 * n; i++)
			if (!d_skip(d, depth + 1))
				return 0;
		return 1;
	}
	d->p++;
	if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd) {
		n = c & 0x0f;
		if (c == 0xdc && !d_uint(d, 2, &n))
			return 0;
		if (c == 0xdd && !d_uint(d, 4, &n))
			return 0;
		for (u64 i = 0; i < n; i++)
			if (!d_skip(d, depth + 1))
				return 0;
		return 1;
	}
	/* Fixed-size scalars: ints, floats, fixext. */
	if (c >= 0xcc && c <= 0xcf)
		return d_skipn(d, 1u << (c - 0xcc));
	if (c >= 0xd0 && c <= 0xd3)
		return d_skipn(d, 1u << (c - 0xd0));
	if (c == 0xca || c == 0xcb)
		return d_skipn(d, c == 0xca ? 4 : 8);
	if (c >= 0xd4 && c <= 0xd8)
		return d_skipn(d, 1 + (1u << (c - 0xd4)));
	/* bin and ext, with their lengths. */
	if (c >= 0xc4 && c <= 0xc6)
		return d_uint(d, 1 << (c - 0xc4), &n) && d_skipn(d, n);
	if (c >= 0xc7 && c <= 0xc9)
		return d_uint(d, 1 << (c - 0xc7), &n) && d_skipn(d, n + 1);
	return 0;
}

/* map_value finds key in the msgpack map b and sets v to its encoded
 * value. */
static int map_value(const u8 *b, u64 len, const char *key, struct dec *v)
{
	struct dec d = {b, b + len};
	u64 n, kn;
	const u8 *k;
	if (!d_map(&d, &n))
		return 0;
	for (u64 i = 0; i < n; i++) {
		if (!d_str(&d, &k, &kn))
			return 0;
		const u8 *start = d.p;
		if (!d_skip(&d, 0))
			return 0;
		u64 j = 0;
		while (j < kn && key[j] && key[j] == (char)k[j])
			j++;
		if (j == kn && !key[j]) {
			v->p = start;
			v->end = d.p;
			return 1;
		}
	}
	return 0;
}

static int map_int(const u8 *b, u64 len, const char *key, long *out)
{
	struct dec v;
	return map_value(b, len, key, &v) && d_int(&v, out);
}

/* is_result reports whether an answer's "kind" is "result". */
static int is_result(const u8 *b, u64 len)
{
	const char *k_kind = STR(.Ls_kind);
	struct dec v;
	const u8 *s;
	u64 n;
	if (!map_value(b, len, k_kind, &v) || !d_str(&v, &s, &n))
		return 0;
	return n == 6 && s[0] == 'r' && s[1] == 'e' && s[2] == 's' &&
	       s[3] == 'u' && s[4] == 'l' && s[5] == 't';
}

/* exit_status reads the wait answer's exit status as the status snap
 * exits with (128+N for a death by signal N). */
static int exit_status(const u8 *b, u64 len, long *code)
{
	const char *k_exit = STR(.Ls_exit);
	const char *k_code = STR(.Ls_code);
	const char *k_signal = STR(.Ls_signal);
	struct dec e;
	long sig;
	if (!map_value(b, len, k_exit, &e))
		return 0;
	if (map_int(e.p, (u64)(e.end - e.p), k_signal, &sig) && sig != 0) {
		*code = 128 + sig;
		return 1;
	}
	return map_int(e.p, (u64)(e.end - e.p), k_code, code);
}

/* The take. */

struct sockaddr_un {
	unsigned short family;
	char path[108];
};

struct pollfd {
	int fd;
	short events, revents;
};

struct iovec {
	void *base;
	u64 len;
};

struct msghdr {
	void *name;
	u32 namelen;
	struct iovec *iov;
	u64 iovlen;
	void *control;
	u64 controllen;
	int flags;
};

/* take connects to a member's control socket and sends it a take request
 * with fds; it returns the connection once the member answered with
 * success, else -1. */
static int take(const char *sock, const int fds[3])
{
	const char *s_take = STR(.Ls_take);
	struct sockaddr_un sa;
	u64 n = slen(sock);
	if (n > MAX_SUN_PATH)
		return -1;
	sa.family = AF_UNIX;
	for (u64 i = 0; i <= n; i++)
		sa.path[i] = sock[i];
	int s = (int)sys3(NR_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	long r;
	do
		r = sys3(NR_connect, s, (long)&sa, (long)(2 + n + 1));
	while (r == -EINTR);
	if (r < 0)
		goto fail;

	u8 frame[64];
	struct iovec iov = {frame, request(frame, 1, s_take, 0)};
	/* struct cmsghdr {u64 len; int level, type;} and three ints. */
	u64 control[4];
	control[0] = 16 + 3 * 4;
	control[1] = (u64)SOL_SOCKET | (u64)SCM_RIGHTS << 32;
	control[2] = (u64)(u32)fds[0] | (u64)(u32)fds[1] << 32;
	control[3] = (u64)(u32)fds[2];
	struct msghdr m = {0, 0, &iov, 1, control, sizeof control, 0};
	do
		r = sys3(NR_sendmsg, s, (long)&m, 0);
	while (r == -EINTR);
	if (r != (long)iov.len)
		goto fail;

	u8 body[MAX_FRAME];
	long bn = read_frame(s, body);
	if (bn < 0 || !is_result(body, (u64)bn))
		goto fail;
	return s;
fail:
	sys_close(s);
	return -1;
}

/* wait_exit waits on conn, the member's control connection, for its
 * program to end, passing the signals that come on sfd on as kill
 * requests, and exits with the program's status. It returns for anything
 * but an exit status (the connection broke, the sandbox was saved and
 * stopped), left to Go. */
static void wait_exit(int conn, int sfd)
{
	const char *s_wait = STR(.Ls_wait);
	const char *s_kill = STR(.Ls_kill);
	const char *k_id = STR(.Ls_id);
	u8 frame[64];
	u8 body[MAX_FRAME];
	int next = 3;

	if (!write_all(conn, frame, request(frame, 2, s_wait, 0)))
		return;
	for (;;) {
		struct pollfd pfd[2] = {{conn, POLLIN, 0}, {sfd, POLLIN, 0}};
		long r = sys3(NR_poll, (long)pfd, 2, -1);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return;
		if (pfd[1].revents) {
			/* struct signalfd_siginfo: 128 bytes, ssi_signo first. */
			u32 si[32 * 4];
			long n = sys3(NR_read, sfd, (long)si, sizeof si);
			for (long k = 0; k + 128 <= n; k += 128) {
				u32 sig = si[k / 4];
				write_all(conn, frame, request(frame, next, s_kill, (int)sig));
				next = next == 127 ? 3 : next + 1;
			}
		}
		if (!pfd[0].revents)
			continue;
		long bn = read_frame(conn, body);
		long id, code;
		if (bn < 0)
			return;
		if (!map_int(body, (u64)bn, k_id, &id) || id != 2)
			continue; /* a kill's answer */
		if (!is_result(body, (u64)bn) || !exit_status(body, (u64)bn, &code))
			return;
		sys_exit((int)code);
	}
}

/* open_stdio opens the given stdio files (flags as runner's), or uses
 * snap's own (foreground) or /dev/null (detached). */
static int open_stdio(const struct command *c, int fds[3])
{
	const char *s_null = STR(.Ls_dev_null);
	for (int i = 0; i < 3; i++)
		fds[i] = i;
	for (int i = 0; i < 3; i++) {
		const char *p = c->paths[i];
		if ((!p || !*p) && !c->detach)
			continue;
		if (!p || !*p)
			p = s_null;
		long flags = i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND;
		long fd = sys6(NR_openat, AT_FDCWD, (long)p, flags | O_CLOEXEC, 0644, 0, 0);
		if (fd < 0) {
			for (int j = 0; j < i; j++)
				if (fds[j] != j)
					sys_close(fds[j]);
			return 0;
		}
		fds[i] = (int)fd;
	}
	return 1;
}

static void close_owned(const int fds[3])
{
	for (int i = 0; i < 3; i++)
		if (fds[i] != i)
			sys_close(fds[i]);
}

/* sock_fits reports whether member id's control socket in state
 * directory sd fits sockaddr_un. */
static int sock_fits(const char *sd, const char *id)
{
	return slen(sd) + 1 + slen(id) + slen(STR(.Ls_control_sock)) <= MAX_SUN_PATH;
}

/* serve takes a member for c if it can: it exits the process once a take
 * is served, and returns to leave the command to Go. */
static void serve(const struct command *c, char **envp, char *taken)
{
	const char *s_pools = STR(.Ls_pools);
	const char *s_waiting = STR(.Ls_waiting);
	const char *s_primed = STR(.Ls_primed);
	const char *s_sock = STR(.Ls_control_sock);
	const char *s_slash = STR(.Ls_slash);
	const char *s_nl = STR(.Ls_nl);
	char sd[MAX_PATH], pool[MAX_PATH], path[MAX_PATH];
	struct buf b_sd = {sd, 0, sizeof sd, 1};
	struct ids ids;

	/* Go's runtime opens /dev/null for a closed 0, 1 or 2 before
	 * anything else; here a descriptor opened below would take its place
	 * and be passed on. */
	for (int i = 0; i < 3; i++)
		if (sys3(NR_fcntl, i, F_GETFD, 0) < 0)
			return;
	state_dir(&b_sd, c, envp);
	struct buf b_pool = {pool, 0, sizeof pool, 1};
	bput(&b_pool, sd);
	bput(&b_pool, s_pools);
	bput(&b_pool, c->name);
	struct buf b_w = {path, 0, sizeof path, 1};
	bput(&b_w, pool);
	bput(&b_w, s_waiting);
	if (!b_sd.ok || !b_pool.ok || !b_w.ok || !list_waiting(path, &ids) || ids.n == 0)
		return;
	/* Every member's socket path must fit sockaddr_un (Go's path goes
	 * through /proc/self/fd for a longer one). */
	for (int k = 0; k < ids.n; k++)
		if (!sock_fits(sd, ids.id[k]))
			return;
	struct buf b_p = {path, 0, sizeof path, 1};
	bput(&b_p, pool);
	bput(&b_p, s_primed);
	if (!b_p.ok)
		return;
	primed_first(path, &ids);

	int fds[3];
	if (!open_stdio(c, fds))
		return;
	/* Blocked from before the claim: a signal that comes while the
	 * program starts is passed on to it too. */
	u64 set = 1ul << (SIGINT - 1) | 1ul << (SIGTERM - 1) | 1ul << (SIGHUP - 1);
	u64 old = 0;
	int sfd = -1;
	if (!c->detach) {
		sys6(NR_rt_sigprocmask, SIG_BLOCK, (long)&set, (long)&old, 8, 0, 0);
		sfd = (int)sys6(NR_signalfd4, -1, (long)&set, 8, SFD_NONBLOCK | SFD_CLOEXEC, 0, 0);
		if (sfd < 0)
			goto out;
	}
	for (int k = 0; k < ids.n; k++) {
		struct buf b = {path, 0, sizeof path, 1};
		bput(&b, pool);
		bput(&b, s_waiting);
		bput(&b, s_slash);
		bput(&b, ids.id[k]);
		if (!b.ok || sys3(NR_unlinkat, AT_FDCWD, (long)path, 0) != 0)
			continue; /* taken by another */
		/* Claimed: from here on this member is ours or unusable (a
		 * dead one is dropped by the replenisher). */
		struct buf bs = {path, 0, sizeof path, 1};
		bput(&bs, sd);
		bput(&bs, s_slash);
		bput(&bs, ids.id[k]);
		bput(&bs, s_sock);
		int conn = bs.ok ? take(path, fds) : -1;
		if (conn < 0)
			continue;
		/* The member starts the replenisher itself. */
		if (c->detach) {
			struct buf out = {path, 0, sizeof path, 1};
			bput(&out, ids.id[k]);
			bput(&out, s_nl);
			write_all(1, (const u8 *)path, out.len);
			sys_exit(0);
		}
		close_owned(fds);
		fds[0] = 0, fds[1] = 1, fds[2] = 2;
		wait_exit(conn, sfd);
		/* Not an exit status: Go's path waits for member k. */
		sys_close(conn);
		u64 j = 0;
		for (; ids.id[k][j] && j < TAKEN_SIZE - 1; j++)
			taken[j] = ids.id[k][j];
		taken[j] = 0;
		break;
	}
out:
	close_owned(fds);
	if (sfd >= 0)
		sys_close(sfd);
	if (!c->detach)
		sys6(NR_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, 8, 0, 0);
}

/* snap_fast_take is called by _rt0_snap with the initial stack pointer
 * and fasttake's entryTaken. */
void snap_fast_take(u64 *sp, char *taken)
{
	const char *k_off = STR(.Ls_SNAP_NO_FAST_TAKE);
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	struct command c = {0, 0, {0, 0, 0}, 0};
	const char *off;

	if (argc < 4 || !parse(argc, argv, &c))
		return;
	if ((off = getenv_(envp, k_off)) && *off)
		return;
	serve(&c, envp, taken);
}
