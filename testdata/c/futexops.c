/*
 * futexops: the futex operations that move and conditionally wake waiters,
 * called directly: FUTEX_CMP_REQUEUE (and its EAGAIN when the word
 * changed), FUTEX_REQUEUE that wakes some and moves others, FUTEX_WAKE_OP
 * with a true and a false comparison and a shifted operand, and the
 * EINVAL/ENOSYS of bad arguments. Three threads wait on word a; what each
 * call returns and the words' values are printed.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* linux/futex.h, which musl-gcc does not see. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_PRIVATE 128
#define FUTEX_OP(op, oparg, cmp, cmparg) \
	((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))
#define FUTEX_OP_SET 0
#define FUTEX_OP_ADD 1
#define FUTEX_OP_OPARG_SHIFT 8
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP_CMP_GT 4

#define NWAITERS 3

static uint32_t a, b, c = 5;
static int woke;

static long futex(uint32_t *uaddr, int op, uint32_t val, unsigned long val2, uint32_t *uaddr2, uint32_t val3)
{
	return syscall(SYS_futex, uaddr, op | FUTEX_PRIVATE, val, val2, uaddr2, val3);
}

static void *waiter(void *arg)
{
	(void)arg;
	while (futex(&a, FUTEX_WAIT, 0, 0, NULL, 0) != 0)
		;
	__atomic_add_fetch(&woke, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void pause_ms(void)
{
	struct timespec ts = {0, 1000000};
	nanosleep(&ts, NULL);
}

static void wait_woke(int n)
{
	while (__atomic_load_n(&woke, __ATOMIC_SEQ_CST) < n)
		pause_ms();
}

static const char *err(long r)
{
	if (r >= 0)
		return "ok";
	return errno == EAGAIN ? "EAGAIN" : errno == EINVAL ? "EINVAL" : errno == ENOSYS ? "ENOSYS" : "other";
}

int main(void)
{
	pthread_t th[NWAITERS];
	for (int i = 0; i < NWAITERS; i++)
		pthread_create(&th[i], NULL, waiter, NULL);

	/* Move every waiter of a to b, whenever it has started waiting. */
	long moved = 0;
	while (moved < NWAITERS) {
		long r = futex(&a, FUTEX_CMP_REQUEUE, 0, INT_MAX, &b, 0);
		if (r > 0)
			moved += r;
		else
			pause_ms();
	}
	printf("FUTEX_CMP_REQUEUE a->b: moved %ld, woke %d\n", moved, woke);
	long r = futex(&a, FUTEX_CMP_REQUEUE, 0, INT_MAX, &b, 1);
	printf("FUTEX_CMP_REQUEUE with a stale value: %ld %s\n", r, err(r));
	printf("FUTEX_WAKE a (now empty): %ld\n", futex(&a, FUTEX_WAKE, 10, 0, NULL, 0));

	r = futex(&b, FUTEX_REQUEUE, 1, 1, &a, 0);
	wait_woke(1);
	printf("FUTEX_REQUEUE b->a, wake 1, move 1: %ld, woke %d\n", r, woke);

	r = futex(&a, FUTEX_WAKE_OP, 1, 1, &c, FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 5));
	wait_woke(2);
	printf("FUTEX_WAKE_OP a, c += 3 if c == 5: %ld, c = %u, woke %d\n", r, c, woke);

	r = futex(&b, FUTEX_WAKE_OP, 1, 1, &c,
		  FUTEX_OP(FUTEX_OP_SET | FUTEX_OP_OPARG_SHIFT, 6, FUTEX_OP_CMP_GT, 100));
	wait_woke(3);
	printf("FUTEX_WAKE_OP b, c = 1<<6 if c > 100: %ld, c = %u, woke %d\n", r, c, woke);
	for (int i = 0; i < NWAITERS; i++)
		pthread_join(th[i], NULL);

	r = futex(&a, FUTEX_REQUEUE, 1, 1, (uint32_t *)((char *)&b + 1), 0);
	printf("FUTEX_REQUEUE to an unaligned word: %ld %s\n", r, err(r));
	r = futex(&a, FUTEX_CMP_REQUEUE, 1, (unsigned long)-1, &b, 0);
	printf("FUTEX_CMP_REQUEUE moving -1: %ld %s\n", r, err(r));
	r = futex(&a, FUTEX_WAKE_OP, 1, 1, &c, FUTEX_OP(7, 0, FUTEX_OP_CMP_EQ, 0));
	printf("FUTEX_WAKE_OP with operation 7: %ld %s, c = %u\n", r, err(r), c);
	r = futex(&a, FUTEX_WAKE_OP, 1, 1, &c, FUTEX_OP(FUTEX_OP_SET, 1, 9, 0));
	printf("FUTEX_WAKE_OP with comparison 9: %ld %s, c = %u\n", r, err(r), c);
	return 0;
}
