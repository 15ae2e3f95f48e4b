/*
 * ipchold [N]: holds IPC state and a pidfd, and checks them every 100 ms.
 * A semaphore set (two semaphores, IPC_PRIVATE), a System V message queue,
 * a shared memory segment, a POSIX message queue and the pidfd of a child
 * that waits, blocked in semop, for the second semaphore. At tick K the
 * first semaphore, the shared counter and the number of messages in each
 * queue are K-1 (checked), then each grows by one; the child must still be
 * waiting (the pidfd not readable, GETNCNT 1; right after a restore the
 * child is given up to 5 s to run and wait again) and must have SEM_UNDO
 * adjustments that keep the first semaphore unchanged. It prints "tick K
 * ipc OK", or "tick K CORRUPT ..." with what differs. After N ticks
 * (forever when N is 0 or absent) it releases the child through the
 * semaphore, waits for it with waitid(P_PIDFD), checks that the child's
 * SEM_UNDO took back its adjustment, removes everything and prints "done".
 *
 * A checkpoint test should check: saved and restored (twice), the ticks
 * continue from K+1 with "ipc OK" (every value, message and the child's
 * wait survived), and the run ends with "done".
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct msg {
	long type;
	char text[16];
};

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

int main(int argc, char **argv)
{
	long limit = argc > 1 ? atol(argv[1]) : 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	char name[64];
	snprintf(name, sizeof name, "/ipchold-%d", (int)getpid());
	int sem = semget(IPC_PRIVATE, 2, 0600), msg = msgget(IPC_PRIVATE, 0600), shm = shmget(IPC_PRIVATE, 4096, 0600);
	struct mq_attr attr = {.mq_maxmsg = 10, .mq_msgsize = 16};
	mqd_t mq = mq_open(name, O_CREAT | O_RDWR | O_NONBLOCK, 0600, &attr);
	volatile long *counter = shmat(shm, NULL, 0);
	if (sem < 0 || msg < 0 || shm < 0 || mq < 0 || counter == (void *)-1) {
		printf("setup failed: %s\n", strerror(errno));
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* Adds 7 to the first semaphore with SEM_UNDO, then waits for the
		 * second: its exit takes the 7 back. */
		struct sembuf add = {0, 7, SEM_UNDO}, wait1 = {1, -1, 0};
		semop(sem, &add, 1);
		while (semop(sem, &wait1, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	int pfd = syscall(SYS_pidfd_open, pid, 0);
	while (semctl(sem, 1, GETNCNT) != 1)
		nap_ms(5);
	for (long k = 1; limit == 0 || k <= limit; k++) {
		char what[160] = "";
		int n = 0;
		long want = k - 1;
		if (semctl(sem, 0, GETVAL) != want + 7)
			n += snprintf(what + n, sizeof what - n, " sem %d", semctl(sem, 0, GETVAL));
		if (*counter != want)
			n += snprintf(what + n, sizeof what - n, " shm %ld", *counter);
		struct msqid_ds ds;
		msgctl(msg, IPC_STAT, &ds);
		if ((long)ds.msg_qnum != want % 10)
			n += snprintf(what + n, sizeof what - n, " msgs %lu", (unsigned long)ds.msg_qnum);
		struct mq_attr got;
		mq_getattr(mq, &got);
		if (got.mq_curmsgs != want % 10)
			n += snprintf(what + n, sizeof what - n, " mq %ld", got.mq_curmsgs);
		/* After a restore the child waits again once it runs: give it
		 * up to 5 s to be back in semop (it must not have exited). */
		struct pollfd p = {pfd, POLLIN, 0};
		int exited = poll(&p, 1, 0) != 0, waiting = semctl(sem, 1, GETNCNT) == 1;
		for (int tries = 0; !exited && !waiting && tries < 1000; tries++) {
			nap_ms(5);
			exited = poll(&p, 1, 0) != 0;
			waiting = semctl(sem, 1, GETNCNT) == 1;
		}
		if (exited || !waiting)
			n += snprintf(what + n, sizeof what - n, " child not waiting");
		if (n > 0) {
			printf("tick %ld CORRUPT%s\n", k, what);
		} else {
			printf("tick %ld ipc OK\n", k);
		}
		struct sembuf inc = {0, 1, 0};
		semop(sem, &inc, 1);
		(*counter)++;
		struct msg m = {1, "tick"};
		char text[16] = "tick";
		if ((k - 1) % 10 == 9) { /* keep both queues below their limits */
			while (msgrcv(msg, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0)
				;
			while (mq_receive(mq, text, sizeof text, NULL) >= 0)
				;
		} else {
			msgsnd(msg, &m, 5, 0);
			mq_send(mq, text, 5, (unsigned)k);
		}
		nap_ms(100);
	}
	struct sembuf release = {1, 1, 0};
	semop(sem, &release, 1);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	waitid(P_PIDFD, pfd, &si, WEXITED);
	long want = limit;
	if (si.si_code != CLD_EXITED || semctl(sem, 0, GETVAL) != want)
		printf("end CORRUPT: child code %d, sem %d (want %ld)\n", si.si_code, semctl(sem, 0, GETVAL), want);
	shmdt((void *)counter);
	shmctl(shm, IPC_RMID, NULL);
	semctl(sem, 0, IPC_RMID);
	msgctl(msg, IPC_RMID, NULL);
	mq_close(mq);
	mq_unlink(name);
	printf("done\n");
	return 0;
}
