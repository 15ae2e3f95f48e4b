/*
 * condbarrier: 3 threads meet at a barrier built from a mutex and a
 * condition variable, ROUNDS times; each round every thread adds its share
 * to a per-round sum before the barrier and checks the complete sum after
 * it. Then the same with pthread_barrier_wait. musl's condition variables
 * requeue waiters to the mutex, and its barriers wait on shared counters:
 * the futex operations behind both must work as on Linux.
 *
 * With an argument "wait", the main thread first prints "waiting" and
 * blocks on a condition variable until a line arrives on stdin (a
 * checkpoint test saves there, with the other threads also waiting).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 3
#define ROUNDS 2000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int arrived;
static unsigned long generation;
static long sums[ROUNDS];
static int bad;

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open = 1;
static int at_gate;

static pthread_barrier_t barrier;

/* cond_barrier: the classic barrier; waits until all NTHREADS arrived. */
static void cond_barrier(void)
{
	pthread_mutex_lock(&mu);
	unsigned long gen = generation;
	if (++arrived == NTHREADS) {
		arrived = 0;
		generation++;
		pthread_cond_broadcast(&cv);
	} else {
		while (gen == generation)
			pthread_cond_wait(&cv, &mu);
	}
	pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
	long id = (long)arg;
	pthread_mutex_lock(&gate_mu);
	at_gate++;
	pthread_cond_broadcast(&gate_cv);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);

	for (int r = 0; r < ROUNDS; r++) {
		pthread_mutex_lock(&mu);
		sums[r] += id + 1;
		pthread_mutex_unlock(&mu);
		cond_barrier();
		pthread_mutex_lock(&mu);
		if (sums[r] != NTHREADS * (NTHREADS + 1) / 2)
			bad++;
		pthread_mutex_unlock(&mu);
		cond_barrier();
	}
	for (int r = 0; r < ROUNDS; r++) {
		int ret = pthread_barrier_wait(&barrier);
		if (ret != 0 && ret != PTHREAD_BARRIER_SERIAL_THREAD)
			bad++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int wait_stdin = argc > 1 && strcmp(argv[1], "wait") == 0;
	pthread_t th[NTHREADS];
	pthread_barrier_init(&barrier, NULL, NTHREADS);
	if (wait_stdin)
		gate_open = 0;
	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	if (wait_stdin) {
		pthread_mutex_lock(&gate_mu);
		while (at_gate < NTHREADS)
			pthread_cond_wait(&gate_cv, &gate_mu);
		pthread_mutex_unlock(&gate_mu);
		printf("waiting\n");
		fflush(stdout);
		char line[64];
		if (fgets(line, sizeof line, stdin) == NULL)
			printf("no line on stdin\n");
		pthread_mutex_lock(&gate_mu);
		gate_open = 1;
		pthread_cond_broadcast(&gate_cv);
		pthread_mutex_unlock(&gate_mu);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	printf("%d threads met %d times at a condition-variable barrier: sums right: %s\n",
	       NTHREADS, 2 * ROUNDS, bad ? "no" : "yes");
	printf("pthread_barrier_wait %d times: ok\n", ROUNDS);
	return bad != 0;
}
