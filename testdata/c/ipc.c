/*
 * ipc: System V semaphores (semget with keys and IPC_PRIVATE, semop
 * including several operations at once, a blocked wait and its counts,
 * SEM_UNDO applied at exit, semtimedop's timeout, a wait ended by a
 * signal, semctl's commands), System V message queues (types, MSG_EXCEPT,
 * MSG_NOERROR, a full queue, msgctl) and POSIX message queues (attributes,
 * priorities, timeouts, non-blocking mode, poll, mq_notify with a signal,
 * the status line a read of a queue descriptor gives, a registration
 * dropped by the close of any descriptor of the queue,
 * mq_unlink) and System V shared memory (attachments shared with a child
 * and between two addresses, counts, SHM_RND, removal while attached),
 * each with Linux's errors. As root, also the permission
 * checks against a process with other IDs.
 *
 * Keys and names include the process ID so that runs on one host never
 * meet. Its last part is where the zdtm mode saves it: with a semaphore
 * at 5, two messages in a System V queue and two in a POSIX queue, the
 * parent waits in msgrcv for a message a child sends once it has read a
 * line from stdin; after that the values and messages are checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }
static const char *res(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct msg {
	long type;
	char text[64];
};

static key_t key_base;
static key_t key(int n) { return key_base | n; }

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int semop1(int id, int num, int op, int flg)
{
	struct sembuf b = {(unsigned short)num, (short)op, (short)flg};
	return semop(id, &b, 1);
}

static volatile sig_atomic_t got_sig, sig_code, sig_value;
static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_sig = sig;
	sig_code = si->si_code;
	sig_value = si->si_value.sival_int;
}

static void sems(void)
{
	int id = semget(key(1), 3, IPC_CREAT | IPC_EXCL | 0600);
	printf("semget with a key: %s\n", res(id));
	printf("again, IPC_CREAT|IPC_EXCL: %s\n", res(semget(key(1), 3, IPC_CREAT | IPC_EXCL | 0600)));
	printf("again, plain: same id %s\n", yesno(semget(key(1), 0, 0) == id));
	printf("again, more semaphores: %s\n", res(semget(key(1), 4, 0)));
	printf("missing key: %s\n", res(semget(key(2), 1, 0)));
	printf("IPC_PRIVATE with 0 semaphores: %s\n", res(semget(IPC_PRIVATE, 0, 0600)));
	printf("too many semaphores: %s\n", res(semget(IPC_PRIVATE, 40000, 0600)));
	struct semid_ds ds;
	semctl(id, 0, IPC_STAT, (union semun){.buf = &ds});
	printf("IPC_STAT: nsems %lu, mode %o, owner is me %s, otime 0 %s\n", (unsigned long)ds.sem_nsems,
	       ds.sem_perm.mode & 0777, yesno(ds.sem_perm.uid == geteuid()), yesno(ds.sem_otime == 0));
	unsigned short all[3] = {1, 2, 3};
	semctl(id, 0, SETALL, (union semun){.array = all});
	struct sembuf two[2] = {{0, -1, 0}, {2, 4, 0}};
	printf("semop of two at once: %s", res(semop(id, two, 2)));
	semctl(id, 0, GETALL, (union semun){.array = all});
	printf(", values %u %u %u, GETPID is me %s\n", all[0], all[1], all[2], yesno(semctl(id, 2, GETPID) == getpid()));
	struct sembuf wouldblock[2] = {{1, 1, 0}, {0, -1, IPC_NOWAIT}};
	printf("all or nothing, IPC_NOWAIT: %s, sem 1 still %d\n", res(semop(id, wouldblock, 2)), semctl(id, 1, GETVAL));
	printf("wait-for-zero, IPC_NOWAIT: %s\n", res(semop1(id, 1, 0, IPC_NOWAIT)));
	printf("sem_num out of range: %s\n", res(semop1(id, 3, 1, 0)));
	printf("no operations: %s\n", res(semop(id, two, 0)));
	printf("beyond SEMVMX: %s\n", res(semop1(id, 2, 32767, 0)));
	printf("SETVAL 40000: %s\n", res(semctl(id, 0, SETVAL, (union semun){.val = 40000})));
	semctl(id, 0, IPC_STAT, (union semun){.buf = &ds});
	printf("otime set: %s\n", yesno(ds.sem_otime != 0));

	/* A blocked decrement, counted by GETNCNT, granted by an increment. */
	semctl(id, 0, SETVAL, (union semun){.val = 0});
	pid_t pid = fork();
	if (pid == 0)
		_exit(semop1(id, 0, -2, 0) == 0 ? 0 : 1);
	while (semctl(id, 0, GETNCNT) != 1)
		nap_ms(5);
	printf("a child waits: GETNCNT 1, GETZCNT %d\n", semctl(id, 0, GETZCNT));
	semop1(id, 0, 3, 0);
	int st;
	waitpid(pid, &st, 0);
	printf("granted after +3: %s, value now %d\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0), semctl(id, 0, GETVAL));

	/* SEM_UNDO: a child takes 1 and adds 5 to another, then exits. */
	pid = fork();
	if (pid == 0) {
		semop1(id, 0, -1, SEM_UNDO);
		semop1(id, 1, 5, SEM_UNDO);
		_exit(semctl(id, 0, GETVAL) == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	printf("SEM_UNDO at exit: child saw 0 %s, values back to %d and %d\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0),
	       semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));

	struct timespec ts = {0, 20000000};
	struct sembuf dec = {0, -5, 0};
	printf("semtimedop, 20 ms: %s\n", res(semtimedop(id, &dec, 1, &ts)));
	ts.tv_nsec = -1;
	printf("semtimedop, bad timespec: %s\n", res(semtimedop(id, &dec, 1, &ts)));

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 0}, {0, 30000}};
	setitimer(ITIMER_REAL, &it, NULL);
	printf("semop ended by a handled signal (SA_RESTART): %s\n", res(semop1(id, 0, -5, 0)));

	printf("IPC_RMID: %s\n", res(semctl(id, 0, IPC_RMID)));
	printf("semop on the removed set: %s\n", res(semop1(id, 0, 1, 0)));
	int priv = semget(IPC_PRIVATE, 1, 0600);
	printf("IPC_PRIVATE: %s, a new set each time %s\n", res(priv), yesno(semget(IPC_PRIVATE, 1, 0600) != priv));
}

static void msgs(void)
{
	int id = msgget(key(3), IPC_CREAT | 0600);
	printf("msgget: %s\n", res(id));
	struct msg m;
	const char *texts[] = {"one", "two", "three", "four"};
	long types[] = {3, 1, 2, 1};
	for (int i = 0; i < 4; i++) {
		m.type = types[i];
		strcpy(m.text, texts[i]);
		msgsnd(id, &m, strlen(texts[i]) + 1, 0);
	}
	struct msqid_ds ds;
	msgctl(id, IPC_STAT, &ds);
	printf("IPC_STAT: %lu messages, %lu bytes, qbytes %lu, lspid is me %s\n", (unsigned long)ds.msg_qnum,
	       (unsigned long)ds.__msg_cbytes, (unsigned long)ds.msg_qbytes, yesno(ds.msg_lspid == getpid()));
	long n = msgrcv(id, &m, sizeof m.text, 2, 0);
	printf("type 2: %ld \"%s\"\n", n, m.text);
	n = msgrcv(id, &m, sizeof m.text, -2, 0);
	printf("lowest type <= 2: %ld \"%s\" type %ld\n", n, m.text, m.type);
	n = msgrcv(id, &m, sizeof m.text, 1, MSG_EXCEPT);
	printf("not type 1: %ld \"%s\" type %ld\n", n, m.text, m.type);
	printf("too small a buffer: %s\n", res(msgrcv(id, &m, 2, 0, 0)));
	n = msgrcv(id, &m, 2, 0, MSG_NOERROR);
	printf("MSG_NOERROR: %ld \"%.2s\"\n", n, m.text);
	printf("empty, IPC_NOWAIT: %s\n", res(msgrcv(id, &m, sizeof m.text, 0, IPC_NOWAIT)));
	m.type = 0;
	printf("type 0: %s\n", res(msgsnd(id, &m, 4, 0)));
	m.type = 1;
	printf("8193 bytes: %s\n", res(msgsnd(id, &m, 8193, 0)));
	msgctl(id, IPC_STAT, &ds);
	ds.msg_qbytes = 10;
	printf("IPC_SET qbytes 10: %s\n", res(msgctl(id, IPC_SET, &ds)));
	msgsnd(id, &m, 8, 0);
	printf("a full queue, IPC_NOWAIT: %s\n", res(msgsnd(id, &m, 8, IPC_NOWAIT)));
	printf("IPC_RMID: %s\n", res(msgctl(id, IPC_RMID, NULL)));
	printf("msgsnd to the removed queue: %s\n", res(msgsnd(id, &m, 1, 0)));
}

/* status_line reads a queue's status line through a new descriptor, in
 * two reads (the file position moves), and then end of file. */
static void status_line(const char *name, const char *when)
{
	mqd_t r = mq_open(name, O_RDONLY);
	char line[128];
	long a = read(r, line, 10);
	long b = read(r, line + (a > 0 ? a : 0), sizeof line - 11);
	long c = read(r, line, sizeof line);
	if (a >= 0 && b >= 0)
		line[a + b] = 0;
	else
		strcpy(line, strerror(errno));
	char *pid = strstr(line, "NOTIFY_PID:");
	if (pid && atoi(pid + 11) == getpid())
		memcpy(pid + 11, "self  ", 6);
	printf("status %s: %ld+%ld bytes then %ld: %s", when, a, b, c, line);
	mq_close(r);
}

static void mqs(void)
{
	char name[64];
	snprintf(name, sizeof name, "/snaptest-%d", (int)getpid());
	struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 32};
	mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
	printf("mq_open: %s\n", res(q));
	printf("again with O_EXCL: %s\n", res(mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr)));
	printf("a missing queue: %s\n", res(mq_open("/snaptest-none", O_RDONLY)));
	printf("a name with a slash: %s\n", res(syscall(SYS_mq_open, "a/b", O_RDONLY, 0, NULL)));
	attr.mq_maxmsg = 0;
	printf("maxmsg 0: %s\n", res(mq_open("/snaptest-bad", O_CREAT | O_RDWR, 0600, &attr)));
	struct mq_attr got;
	mq_getattr(q, &got);
	printf("attributes: maxmsg %ld, msgsize %ld, curmsgs %ld, flags %ld\n", got.mq_maxmsg, got.mq_msgsize, got.mq_curmsgs,
	       got.mq_flags);
	mq_send(q, "low", 4, 1);
	mq_send(q, "high", 5, 5);
	mq_send(q, "mid", 4, 3);
	mq_send(q, "mid2", 5, 3);
	struct pollfd p = {q, POLLIN | POLLOUT, 0};
	poll(&p, 1, 0);
	printf("four queued: POLLIN %s, POLLOUT %s\n", yesno(p.revents & POLLIN), yesno(p.revents & POLLOUT));
	struct timespec past = {1, 0};
	printf("full, a timeout in the past: %s\n", res(mq_timedsend(q, "x", 1, 0, &past)));
	char buf[64];
	unsigned prio;
	printf("receive order:");
	for (int i = 0; i < 4; i++) {
		long n = mq_receive(q, buf, sizeof buf, &prio);
		printf(" %s/%u/%ld", buf, prio, n);
	}
	printf("\n");
	printf("a small buffer: %s\n", res(mq_receive(q, buf, 8, NULL)));
	printf("empty, a timeout in the past: %s\n", res(mq_timedreceive(q, buf, sizeof buf, NULL, &past)));
	printf("priority 40000: %s\n", res(mq_send(q, "x", 1, 40000)));
	printf("too long: %s\n", res(mq_send(q, buf, 33, 0)));
	struct mq_attr nb = {.mq_flags = O_NONBLOCK}, old;
	mq_setattr(q, &nb, &old);
	mq_getattr(q, &got);
	printf("O_NONBLOCK set: old flags %ld, now %s, receive %s\n", old.mq_flags, yesno(got.mq_flags & O_NONBLOCK),
	       res(mq_receive(q, buf, sizeof buf, NULL)));
	mqd_t wo = mq_open(name, O_WRONLY);
	printf("receive on a write-only descriptor: %s\n", res(mq_receive(wo, buf, sizeof buf, NULL)));

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sig;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	sev.sigev_value.sival_int = 77;
	printf("mq_notify: %s\n", res(mq_notify(q, &sev)));
	status_line(name, "registered");
	/* Closing any descriptor of the queue dropped the registration. */
	printf("registering again after a close: %s\n", res(mq_notify(q, &sev)));
	pid_t pid = fork();
	if (pid == 0)
		_exit(mq_notify(q, &sev) < 0 && errno == EBUSY ? 0 : 1);
	int st;
	waitpid(pid, &st, 0);
	printf("another process registering: EBUSY %s\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	got_sig = 0;
	mq_send(wo, "ping", 5, 0);
	printf("notified: %s, SI_MESGQ %s, value %d\n", yesno(got_sig == SIGUSR1), yesno(sig_code == SI_MESGQ), (int)sig_value);
	mq_receive(q, buf, sizeof buf, NULL);
	got_sig = 0;
	mq_send(wo, "pong", 5, 0);
	printf("only once: %s\n", yesno(got_sig == 0));
	status_line(name, "after the notification");
	printf("read on a write-only descriptor: %s\n", res(read(wo, buf, sizeof buf)));
	mq_close(wo);
	mq_close(q);
	printf("mq_unlink: %s\n", res(mq_unlink(name)));
	printf("mq_open after it: %s\n", res(mq_open(name, O_RDONLY)));
	printf("mq_unlink again: %s\n", res(mq_unlink(name)));
}

static unsigned long nattch(int id)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return 999;
	return (unsigned long)ds.shm_nattch;
}

static void shms(void)
{
	printf("shmget of 0 bytes: %s\n", res(shmget(IPC_PRIVATE, 0, 0600)));
	int id = shmget(key(7), 10000, IPC_CREAT | 0600);
	printf("shmget of 10000 bytes: %s\n", res(id));
	printf("again, bigger: %s\n", res(shmget(key(7), 20000, 0600)));
	struct shmid_ds ds;
	shmctl(id, IPC_STAT, &ds);
	printf("IPC_STAT: size %lu, nattch %lu, cpid is me %s, mode %o\n", (unsigned long)ds.shm_segsz,
	       (unsigned long)ds.shm_nattch, yesno(ds.shm_cpid == getpid()), ds.shm_perm.mode & 0777);
	char *a = shmat(id, NULL, 0);
	printf("shmat: %s, zero-filled %s, nattch %lu\n", res(a == (void *)-1 ? -1 : 0), yesno(a[0] == 0 && a[9999] == 0),
	       nattch(id));
	strcpy(a, "shared text");
	pid_t pid = fork();
	if (pid == 0) {
		int ok = nattch(id) == 2 && strcmp(a, "shared text") == 0;
		strcpy(a + 5000, "child was here");
		_exit(ok ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("a child saw it attached twice: %s, and wrote \"%s\"; nattch back to %lu\n",
	       yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0), a + 5000, nattch(id));
	char *b = shmat(id, NULL, SHM_RDONLY);
	printf("a second, read-only attachment: same text %s, nattch %lu\n", yesno(strcmp(b, "shared text") == 0), nattch(id));
	printf("shmat onto it without SHM_REMAP: %s\n", res(shmat(id, b, 0) == (void *)-1 ? -1 : 0));
	printf("shmat at an unaligned address: %s\n", res(shmat(id, b + 1, 0) == (void *)-1 ? -1 : 0));
	long rc = shmdt(b);
	printf("shmdt of the second: %s, nattch %lu\n", res(rc), nattch(id));
	printf("shmdt of an address with nothing attached: %s\n", res(shmdt(b)));
	char *c = shmat(id, b + 100, SHM_RND);
	printf("SHM_RND: rounded down %s\n", yesno(c == b));
	shmdt(c);
	rc = shmctl(id, IPC_RMID, NULL);
	printf("IPC_RMID while attached: %s, IPC_STAT after %s\n", res(rc), nattch(id) == 999 ? "fails" : "works");
	int readable = strcmp(a, "shared text") == 0;
	printf("still readable: %s, shmdt %s\n", yesno(readable), res(shmdt(a)));
}

static void perms(void)
{
	if (geteuid() != 0) {
		printf("permissions: not root, skipped\n");
		return;
	}
	int sem = semget(key(5), 1, IPC_CREAT | 0600), msg = msgget(key(6), IPC_CREAT | 0644);
	pid_t pid = fork();
	if (pid == 0) {
		setresgid(1234, 1234, 1234);
		setresuid(1234, 1234, 1234);
		int ok = semget(key(5), 1, 0600) < 0 && errno == EACCES;
		ok = ok && semop1(sem, 0, 1, 0) < 0 && errno == EACCES;
		ok = ok && semctl(sem, 0, IPC_RMID) < 0 && errno == EPERM;
		struct msg m = {1, "x"};
		ok = ok && msgsnd(msg, &m, 1, 0) < 0 && errno == EACCES;
		ok = ok && msgrcv(msg, &m, 8, 0, IPC_NOWAIT) < 0 && errno == ENOMSG;
		_exit(ok ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("another user: EACCES and EPERM as Linux %s\n", yesno(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	semctl(sem, 0, IPC_RMID);
	msgctl(msg, IPC_RMID, NULL);
}

static void across_save(void)
{
	char name[64];
	snprintf(name, sizeof name, "/snaptest-%d-save", (int)getpid());
	int sem = semget(IPC_PRIVATE, 1, 0600), msg = msgget(IPC_PRIVATE, 0600);
	semctl(sem, 0, SETVAL, (union semun){.val = 5});
	struct msg m = {1, "kept 1"};
	msgsnd(msg, &m, 7, 0);
	strcpy(m.text, "kept 2");
	msgsnd(msg, &m, 7, 0);
	mqd_t q = mq_open(name, O_CREAT | O_RDWR, 0600, NULL);
	mq_send(q, "posix 1", 8, 1);
	mq_send(q, "posix 2", 8, 2);
	int shm = shmget(IPC_PRIVATE, 4096, 0600);
	char *mem = shmat(shm, NULL, 0);
	strcpy(mem, "written before");
	pid_t pid = fork();
	if (pid == 0) {
		char line[64];
		if (fgets(line, sizeof line, stdin) == NULL)
			_exit(1);
		strcpy(mem + 100, "written by the child");
		struct msg r = {3, ""};
		snprintf(r.text, sizeof r.text, "%.*s", (int)strcspn(line, "\n"), line);
		msgsnd(msg, &r, strlen(r.text) + 1, 0);
		_exit(0);
	}
	printf("waiting in msgrcv for a child that reads stdin\n");
	fflush(stdout);
	long n;
	while ((n = msgrcv(msg, &m, sizeof m.text, 3, 0)) < 0 && errno == EINTR)
		;
	printf("msgrcv: %ld \"%s\"\n", n, m.text);
	waitpid(pid, NULL, 0);
	printf("semaphore still %d\n", semctl(sem, 0, GETVAL));
	msgrcv(msg, &m, sizeof m.text, 0, IPC_NOWAIT);
	printf("System V queue still holds \"%s\"", m.text);
	msgrcv(msg, &m, sizeof m.text, 0, IPC_NOWAIT);
	printf(" and \"%s\"\n", m.text);
	char buf[8192];
	mq_receive(q, buf, sizeof buf, NULL);
	printf("POSIX queue still holds \"%s\"", buf);
	mq_receive(q, buf, sizeof buf, NULL);
	printf(" and \"%s\"\n", buf);
	printf("shared memory holds \"%s\" and \"%s\"\n", mem, mem + 100);
	shmdt(mem);
	shmctl(shm, IPC_RMID, NULL);
	semctl(sem, 0, IPC_RMID);
	msgctl(msg, IPC_RMID, NULL);
	mq_close(q);
	mq_unlink(name);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	key_base = (key_t)(0x5a000000 | (getpid() & 0xfffff) << 4);
	sems();
	msgs();
	mqs();
	shms();
	perms();
	across_save();
	return 0;
}
