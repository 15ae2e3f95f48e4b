/*
 * mutexcount: 8 threads wait at a start gate (a condition variable the
 * main thread broadcasts once all are there), then each increments a
 * mutex-protected counter 20000 times and reports done on a second
 * condition variable, which the main thread waits on. The total must be
 * exact. Contended mutexes sleep in FUTEX_WAIT and are woken by
 * FUTEX_WAKE; musl moves the waiters of a broadcast to the mutex with
 * FUTEX_REQUEUE.
 */
#include <pthread.h>
#include <stdio.h>

#define NTHREADS 8
#define ITERS 20000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int ready, started, done;
static long counter;

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	ready++;
	pthread_cond_broadcast(&changed);
	while (!started)
		pthread_cond_wait(&changed, &mu);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < ITERS; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
	}
	pthread_mutex_lock(&mu);
	done++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(void)
{
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	pthread_mutex_lock(&mu);
	while (ready < NTHREADS)
		pthread_cond_wait(&changed, &mu);
	started = 1;
	pthread_cond_broadcast(&changed);
	while (done < NTHREADS)
		pthread_cond_wait(&changed, &mu);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	printf("%d threads at the start gate, then %d increments each: counter = %ld, exact: %s\n", NTHREADS, ITERS,
	       counter, counter == NTHREADS * ITERS ? "yes" : "no");
	return counter != NTHREADS * ITERS;
}
