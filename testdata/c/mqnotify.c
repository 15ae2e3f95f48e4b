/*
 * mqnotify: mq_notify with SIGEV_THREAD, which glibc and musl build on a
 * netlink socket: the libc passes the socket in sigev_signo and a 32-byte
 * cookie in sigev_value, the kernel sends the cookie on the socket when a
 * message arrives in the empty queue (last byte 1, NOTIFY_WOKENUP) or when
 * the registration is removed (last byte 2, NOTIFY_REMOVED), and a libc
 * thread that reads the socket runs the function.
 *
 * Through the libc: the function runs once per registration with its
 * sigval, for a message a child sends and for one the process sends
 * itself; a registration is consumed by its notification and can be made
 * again; a second one is EBUSY; mq_notify(NULL) removes it (its function
 * never runs); a message into a queue that is not empty notifies nobody;
 * the status line a read of the queue gives.
 * Raw, on a netlink socket of its own: the cookie as the kernel sends it
 * (the sender's address, the last byte), NOTIFY_REMOVED for mq_notify(NULL)
 * and for the close of a descriptor of the queue by the process that
 * registered, and the errors (a descriptor that is not a socket, not a
 * netlink socket, closed; a bad cookie address; a bad queue descriptor).
 *
 * With the argument "hold" it registers both ways on two queues, prints
 * "registered, waiting for stdin" and reads a line (where the zdtm mode
 * saves it), then a child sends to both queues: the function must run and
 * the cookie arrive after the restore.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define COOKIE_LEN 32
#define NETLINK_ROUTE 0

/* linux/netlink.h's address (musl-gcc has no kernel headers). */
struct sockaddr_nl {
	unsigned short nl_family, nl_pad;
	unsigned int nl_pid, nl_groups;
};

static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

static sem_t ran;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int values[64], nvalues;

/* notified is the SIGEV_THREAD function: it records its sigval. */
static void notified(union sigval v)
{
	pthread_mutex_lock(&mu);
	if (nvalues < 64)
		values[nvalues++] = v.sival_int;
	pthread_mutex_unlock(&mu);
	sem_post(&ran);
}

static int reg(mqd_t q, int value)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = notified;
	sev.sigev_value.sival_int = value;
	return mq_notify(q, &sev);
}

static void send_from_child(mqd_t q, const char *msg)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(mq_send(q, msg, strlen(msg), 0) == 0 ? 0 : 1);
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		printf("child's mq_send failed\n");
}

static void drain(mqd_t q)
{
	char b[64];
	struct mq_attr a;
	mq_getattr(q, &a);
	for (long i = 0; i < a.mq_curmsgs; i++)
		mq_receive(q, b, sizeof b, NULL);
}

static void wait_ran(void)
{
	while (sem_wait(&ran) != 0 && errno == EINTR)
		;
}

static void print_values(const char *when)
{
	pthread_mutex_lock(&mu);
	printf("%s: %d run(s):", when, nvalues);
	for (int i = 0; i < nvalues; i++)
		printf(" %d", values[i]);
	printf("\n");
	pthread_mutex_unlock(&mu);
}

/* status prints the NOTIFY and SIGNO fields of the queue's status line
 * (NOTIFY_PID is the process's, which differs between runs). */
static void status(const char *when, mqd_t q)
{
	char b[128];
	lseek(q, 0, SEEK_SET);
	ssize_t n = pread(q, b, sizeof b - 1, 0);
	if (n < 0)
		n = read(q, b, sizeof b - 1);
	if (n < 0) {
		printf("%s: %s\n", when, strerror(errno));
		return;
	}
	b[n] = 0;
	char *pid = strstr(b, " NOTIFY_PID:");
	int mine = pid && atoi(pid + 12) == getpid();
	if (pid)
		*pid = 0;
	printf("%s: [%s] pid mine: %s\n", when, b, mine ? "yes" : "no");
}

static mqd_t open_queue(const char *tag)
{
	char name[64];
	snprintf(name, sizeof name, "/mqnotify-%d-%s", (int)getpid(), tag);
	struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 32};
	mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
	if (q == (mqd_t)-1) {
		printf("mq_open %s: %s\n", tag, strerror(errno));
		exit(1);
	}
	mq_unlink(name);
	return q;
}

/* raw_reg registers netlink socket s with a cookie of byte c and returns
 * the raw syscall's result. */
static long raw_reg(mqd_t q, int s, unsigned char *cookie)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_signo = s;
	sev.sigev_value.sival_ptr = cookie;
	return syscall(SYS_mq_notify, q, &sev);
}

/* raw_recv reads one cookie from s and prints what it holds. */
static void raw_recv(const char *when, int s, unsigned char c)
{
	unsigned char b[64];
	struct sockaddr_nl from;
	socklen_t fl = sizeof from;
	memset(&from, 0xff, sizeof from);
	ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
	if (n < 0) {
		printf("%s: recvfrom: %s\n", when, strerror(errno));
		return;
	}
	int same = 1;
	for (int i = 0; i < COOKIE_LEN - 1 && i < n; i++)
		same &= b[i] == (unsigned char)(c + i);
	printf("%s: %zd bytes, cookie kept: %s, last byte %d, from family %d pid %u\n", when, n,
	       same ? "yes" : "no", n >= COOKIE_LEN ? b[COOKIE_LEN - 1] : -1, from.nl_family, from.nl_pid);
}

static int nl_socket(void)
{
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0) {
		printf("netlink socket: %s\n", strerror(errno));
		exit(1);
	}
	return s;
}

static void fill(unsigned char *cookie, unsigned char c)
{
	for (int i = 0; i < COOKIE_LEN; i++)
		cookie[i] = c + i;
}

/* pending reports whether s has a datagram queued, without waiting. */
static const char *pending(int s)
{
	char b[64];
	ssize_t n = recv(s, b, sizeof b, MSG_DONTWAIT | MSG_PEEK);
	return n >= 0 ? "yes" : errno == EAGAIN ? "no" : strerror(errno);
}

static void through_libc(void)
{
	mqd_t q = open_queue("libc");
	printf("register 42: %s\n", res(reg(q, 42)));
	status("status registered", q);
	/* The second registration is made without SIGEV_THREAD: musl before
	 * 1.2.4 answers its failure by cancelling the detached thread it
	 * started for it, which may have ended by then (a use-after-free in
	 * the libc that crashed or hung this program in about 1 run in 150
	 * under snap at load). The kernel's EBUSY is the same either way. */
	struct sigevent none;
	memset(&none, 0, sizeof none);
	none.sigev_notify = SIGEV_NONE;
	printf("register again: %s\n", res(mq_notify(q, &none)));
	send_from_child(q, "one");
	wait_ran();
	print_values("after a child's message");
	status("status after", q);
	drain(q);

	printf("register 43: %s\n", res(reg(q, 43)));
	mq_send(q, "two", 3, 0);
	wait_ran();
	print_values("after its own message");
	drain(q);

	printf("register 44: %s\n", res(reg(q, 44)));
	printf("mq_notify(NULL): %s\n", res(mq_notify(q, NULL)));
	status("status removed", q);
	send_from_child(q, "three");
	drain(q);

	mq_send(q, "four", 4, 0);
	printf("register 45 with a message queued: %s\n", res(reg(q, 45)));
	send_from_child(q, "five");
	drain(q);
	send_from_child(q, "six");
	wait_ran();
	print_values("after removal and a non-empty queue");
	drain(q);

	/* Rounds, so that a save at a random point finds a registration. */
	int rounds = 0;
	for (int i = 0; i < 40; i++) {
		if (reg(q, 1000 + i) != 0)
			break;
		mq_send(q, "r", 1, 0);
		wait_ran();
		drain(q);
		rounds++;
	}
	pthread_mutex_lock(&mu);
	int inorder = nvalues == 43;
	for (int i = 3; i < nvalues; i++)
		inorder &= values[i] == 1000 + i - 3;
	pthread_mutex_unlock(&mu);
	printf("rounds: %d, each value once in order: %s\n", rounds, inorder ? "yes" : "no");
	mq_close(q);
}

static void raw(void)
{
	mqd_t q = open_queue("raw");
	int s = nl_socket();
	unsigned char cookie[COOKIE_LEN];

	fill(cookie, 'a');
	printf("raw register: %s\n", res(raw_reg(q, s, cookie)));
	fill(cookie, 'z'); /* the kernel copied it at the call */
	status("raw status", q);
	printf("pending before a message: %s\n", pending(s));
	send_from_child(q, "x");
	raw_recv("raw woken", s, 'a');
	drain(q);

	fill(cookie, 'b');
	printf("raw register: %s\n", res(raw_reg(q, s, cookie)));
	printf("raw mq_notify(NULL): %s\n", res(syscall(SYS_mq_notify, q, NULL)));
	raw_recv("raw removed", s, 'b');
	printf("raw mq_notify(NULL) again: %s, pending: %s\n", res(syscall(SYS_mq_notify, q, NULL)), pending(s));

	fill(cookie, 'c');
	printf("raw register: %s\n", res(raw_reg(q, s, cookie)));
	int d = dup(q);
	close(d);
	raw_recv("raw removed by a close", s, 'c');

	/* A child's registration is its own: the parent's close leaves it. */
	fill(cookie, 'd');
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	pid_t pid = fork();
	if (pid == 0) {
		long rc = raw_reg(q, s, cookie);
		if (write(p[1], &rc, sizeof rc) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	long rc;
	if (read(p[0], &rc, sizeof rc) != sizeof rc)
		exit(1);
	printf("child's raw register: %s\n", rc == 0 ? "ok" : "failed");
	printf("parent's register while the child's holds: %s\n", res(raw_reg(q, s, cookie)));
	d = dup(q);
	close(d);
	printf("pending after the parent's close: %s\n", pending(s));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	raw_recv("raw removed by the child's exit", s, 'd');
	printf("register after the child's exit: %s\n", res(raw_reg(q, s, cookie)));
	printf("mq_notify(NULL): %s\n", res(syscall(SYS_mq_notify, q, NULL)));
	raw_recv("raw removed", s, 'd');
	close(p[0]);
	close(p[1]);

	int fds[2];
	if (pipe(fds) != 0)
		exit(1);
	printf("pipe as socket: %s\n", res(raw_reg(q, fds[0], cookie)));
	int u = socket(AF_UNIX, SOCK_DGRAM, 0);
	printf("unix socket: %s\n", res(raw_reg(q, u, cookie)));
	printf("closed descriptor: %s\n", res(raw_reg(q, 999, cookie)));
	printf("bad cookie: %s\n", res(raw_reg(q, s, (unsigned char *)8)));
	printf("bad queue: %s\n", res(raw_reg(fds[0], s, cookie)));
	printf("bad queue and bad cookie: %s\n", res(raw_reg(fds[0], s, (unsigned char *)8)));
	printf("bad queue, pipe as socket: %s\n", res(raw_reg(fds[0], fds[1], cookie)));
	printf("pending after the errors: %s\n", pending(s));
	close(u);
	close(fds[0]);
	close(fds[1]);
	close(s);
	mq_close(q);
}

static void hold(void)
{
	mqd_t q1 = open_queue("hold1"), q2 = open_queue("hold2");
	int s = nl_socket();
	unsigned char cookie[COOKIE_LEN];
	fill(cookie, 'h');
	printf("register 7: %s\n", res(reg(q1, 7)));
	printf("raw register: %s\n", res(raw_reg(q2, s, cookie)));
	printf("registered, waiting for stdin\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		printf("no line\n");
	status("status after the line", q1);
	send_from_child(q1, "after");
	send_from_child(q2, "after");
	wait_ran();
	print_values("after the line");
	raw_recv("raw after the line", s, 'h');
	drain(q1);
	printf("register 8: %s\n", res(reg(q1, 8)));
	mq_send(q1, "again", 5, 0);
	drain(q1);
	wait_ran();
	print_values("registered again");
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	sem_init(&ran, 0, 0);
	if (argc > 1 && strcmp(argv[1], "hold") == 0) {
		hold();
	} else {
		through_libc();
		raw();
	}
	printf("done\n");
	return 0;
}
