/*
 * ipcinfo (as root): the System V IPC listing commands and limits, in a
 * fresh IPC namespace (natively unshare(CLONE_NEWIPC); a sandbox has its
 * own). IDs as Linux allocates them; semctl IPC_INFO, SEM_INFO, SEM_STAT
 * and SEM_STAT_ANY, msgctl IPC_INFO, MSG_INFO, MSG_STAT and MSG_STAT_ANY,
 * shmctl IPC_INFO, SHM_INFO, SHM_STAT and SHM_STAT_ANY, with the
 * permission checks of the STAT forms for another user; SHMMNI reached
 * (ENOSPC); POSIX message queues: queues_max for a user without
 * CAP_SYS_RESOURCE and RLIMIT_MSGQUEUE; then /proc/sysvipc/{shm,sem,msg}
 * (times and pids masked) and util-linux's ipcs, ipcs -l and ipcs -u on
 * the objects made.
 *
 * Where the zdtm mode saves it: after "objects made, waiting for stdin",
 * the listing is made again after the line from stdin.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY 20
#endif
#ifndef MSG_STAT_ANY
#define MSG_STAT_ANY 13
#endif
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif

static const char *err(long rc) { return rc >= 0 ? "ok" : strerror(errno); }

/* The raw calls: the libcs differ in the commands they accept. */
static long semctl_(int id, int num, int cmd, void *arg) { return syscall(SYS_semctl, id, num, cmd, arg); }
static long msgctl_(int id, int cmd, void *arg) { return syscall(SYS_msgctl, id, cmd, arg); }
static long shmctl_(int id, int cmd, void *arg) { return syscall(SYS_shmctl, id, cmd, arg); }

static int sem1, sem2, msq, shm1;

static void make_objects(void)
{
	sem1 = semget(0x1234, 3, IPC_CREAT | 0640);
	sem2 = semget(IPC_PRIVATE, 1, 0600);
	msq = msgget(0x2234, IPC_CREAT | 0644);
	struct {
		long type;
		char text[8];
	} m = {1, "hello"};
	msgsnd(msq, &m, 5, 0);
	m.type = 2;
	msgsnd(msq, &m, 7, 0);
	shm1 = shmget(0x3234, 10000, IPC_CREAT | 0600);
	char *p = shmat(shm1, NULL, 0);
	p[0] = 1;
	printf("IDs: sems %d %d, queue %d, segment %d\n", sem1, sem2, msq, shm1);
	int tmp = semget(IPC_PRIVATE, 1, 0600);
	semctl_(tmp, 0, IPC_RMID, NULL);
	int again = semget(IPC_PRIVATE, 1, 0600);
	printf("after a removal the next set is %d, then %d\n", tmp, again);
	semctl_(again, 0, IPC_RMID, NULL);
}

static void sems(void)
{
	struct seminfo si;
	long r = semctl_(0, 0, IPC_INFO, &si);
	printf("sem IPC_INFO: %ld, semmap %d semmni %d semmns %d semmnu %d semmsl %d semopm %d semume %d semusz %d semvmx %d semaem %d\n",
	       r, si.semmap, si.semmni, si.semmns, si.semmnu, si.semmsl, si.semopm, si.semume, si.semusz, si.semvmx, si.semaem);
	r = semctl_(0, 0, SEM_INFO, &si);
	printf("SEM_INFO: %ld, sets %d, semaphores %d\n", r, si.semusz, si.semaem);
	struct semid_ds ds;
	for (int idx = 0; idx < 5; idx++) {
		r = semctl_(idx, 0, SEM_STAT, &ds);
		if (r < 0)
			printf("SEM_STAT %d: %s\n", idx, strerror(errno));
		else
			printf("SEM_STAT %d: id %s, key 0x%x, nsems %lu, mode %o\n", idx,
			       r == sem1 ? "sem1" : r == sem2 ? "sem2" : "other", ds.sem_perm.__key, (unsigned long)ds.sem_nsems, ds.sem_perm.mode);
	}
}

static void msgs(void)
{
	struct msginfo mi;
	long r = msgctl_(0, IPC_INFO, &mi);
	printf("msg IPC_INFO: %ld, msgpool %d msgmap %d msgmax %d msgmnb %d msgmni %d msgssz %d msgtql %d msgseg %u\n",
	       r, mi.msgpool, mi.msgmap, mi.msgmax, mi.msgmnb, mi.msgmni, mi.msgssz, mi.msgtql, mi.msgseg);
	r = msgctl_(0, MSG_INFO, &mi);
	printf("MSG_INFO: %ld, queues %d, messages %d, bytes %d\n", r, mi.msgpool, mi.msgmap, mi.msgtql);
	struct msqid_ds ds;
	r = msgctl_(0, MSG_STAT, &ds);
	printf("MSG_STAT 0: id is the queue's %s, %lu messages, %lu bytes\n", r == msq ? "yes" : "no", (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes);
	printf("MSG_STAT 1: %s\n", err(msgctl_(1, MSG_STAT, &ds)));
}

static void shms(void)
{
	struct shminfo si;
	long r = shmctl_(0, IPC_INFO, &si);
	printf("shm IPC_INFO: %ld, shmmax %lu shmmin %lu shmmni %lu shmseg %lu shmall %lu\n",
	       r, si.shmmax, si.shmmin, si.shmmni, si.shmseg, si.shmall);
	struct shm_info in;
	r = shmctl_(0, SHM_INFO, &in);
	printf("SHM_INFO: %ld, segments %d, pages %lu, swapped %lu\n", r, in.used_ids, in.shm_tot, in.shm_swp);
	struct shmid_ds ds;
	r = shmctl_(0, SHM_STAT, &ds);
	printf("SHM_STAT 0: id is the segment's %s, size %lu, nattch %lu\n", r == shm1 ? "yes" : "no", (unsigned long)ds.shm_segsz, (unsigned long)ds.shm_nattch);
	printf("SHM_STAT 7: %s\n", err(shmctl_(7, SHM_STAT, &ds)));
}

static void other_user(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setresuid(1234, 1234, 1234) != 0)
			_exit(1);
		struct semid_ds ds;
		struct msqid_ds mds;
		struct shmid_ds sds;
		printf("uid 1234: SEM_STAT of a 0640 set: %s\n", err(semctl_(0, 0, SEM_STAT, &ds)));
		printf("uid 1234: SEM_STAT_ANY: %s\n", err(semctl_(0, 0, SEM_STAT_ANY, &ds)));
		printf("uid 1234: MSG_STAT of a 0644 queue: %s\n", err(msgctl_(0, MSG_STAT, &mds)));
		printf("uid 1234: SHM_STAT of a 0600 segment: %s, SHM_STAT_ANY: ", err(shmctl_(0, SHM_STAT, &sds)));
		printf("%s\n", err(shmctl_(0, SHM_STAT_ANY, &sds)));
		printf("uid 1234: MSG_STAT_ANY: %s\n", err(msgctl_(0, MSG_STAT_ANY, &mds)));

		/* POSIX queues: 256 per namespace for a user without
		 * CAP_SYS_RESOURCE, then ENOSPC. */
		struct mq_attr a = {.mq_maxmsg = 1, .mq_msgsize = 1};
		char name[32];
		int made = 0;
		static mqd_t qs[300];
		for (int i = 0; i < 300; i++) {
			snprintf(name, sizeof name, "/ipcinfo-%d", i);
			if ((qs[i] = mq_open(name, O_CREAT | O_RDWR, 0600, &a)) < 0) {
				printf("uid 1234: mq_open number %d: %s\n", i + 1, strerror(errno));
				break;
			}
			made++;
		}
		printf("uid 1234: %d queues made\n", made);
		for (int i = 0; i < made; i++) {
			snprintf(name, sizeof name, "/ipcinfo-%d", i);
			mq_close(qs[i]);
			mq_unlink(name);
		}
		/* RLIMIT_MSGQUEUE bounds the bytes a user's queues may hold. */
		struct rlimit rl = {100000, 100000};
		setrlimit(RLIMIT_MSGQUEUE, &rl);
		mqd_t q1 = mq_open("/ipcinfo-big1", O_CREAT | O_RDWR, 0600, NULL);
		mqd_t q2 = mq_open("/ipcinfo-big2", O_CREAT | O_RDWR, 0600, NULL);
		int e2 = errno;
		printf("uid 1234: RLIMIT_MSGQUEUE 100000: first default queue %s, second %s\n", q1 >= 0 ? "ok" : "failed", q2 >= 0 ? "ok" : strerror(e2));
		mq_unlink("/ipcinfo-big1");
		mq_unlink("/ipcinfo-big2");
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void shmmni(void)
{
	static int ids[5000];
	int n = 0;
	for (; n < 5000; n++) {
		ids[n] = shmget(IPC_PRIVATE, 1, 0600);
		if (ids[n] < 0)
			break;
	}
	printf("SHMMNI: %d more segments, then %s\n", n, strerror(errno));
	for (int i = 0; i < n; i++)
		shmctl_(ids[i], IPC_RMID, NULL);
}

/* sysvipc prints /proc/sysvipc/NAME: the header as it is, then each row
 * with its length and its fields, times masked ("T" when not 0) and pids
 * named ("self" for this process). times and pids are column bitmasks. */
static void sysvipc(const char *name, unsigned times, unsigned pids)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/sysvipc/%s", name);
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("%s: %s\n", path, strerror(errno));
		return;
	}
	if (fgets(line, sizeof line, f))
		printf("%s header: %s", name, line);
	while (fgets(line, sizeof line, f)) {
		printf("%s row (%zu bytes):", name, strlen(line));
		int col = 0;
		for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n"), col++) {
			if (times & (1u << col) && strcmp(tok, "0") != 0)
				tok = "T";
			else if (pids & (1u << col) && strcmp(tok, "0") != 0)
				tok = atoi(tok) == getpid() ? "self" : "other";
			printf(" %s", tok);
		}
		printf("\n");
	}
	fclose(f);
}

static void ipcs(const char *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/usr/bin/ipcs", "ipcs", arg, (char *)NULL);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	printf("ipcs %s: exit %d\n", arg ? arg : "", WEXITSTATUS(st));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	unshare(CLONE_NEWIPC); /* fails in a sandbox, which has its own */
	make_objects();
	sems();
	msgs();
	shms();
	other_user();
	shmmni();
	printf("objects made, waiting for stdin\n");
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		printf("no line\n");
	sems();
	sysvipc("shm", 1u << 11 | 1u << 12 | 1u << 13, 1u << 4 | 1u << 5);
	sysvipc("sem", 1u << 8 | 1u << 9, 0);
	sysvipc("msg", 1u << 11 | 1u << 12 | 1u << 13, 1u << 5 | 1u << 6);
	ipcs(NULL);
	ipcs("-l");
	ipcs("-u");
	printf("done\n");
	return 0;
}
