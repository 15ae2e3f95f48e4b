/*
 * ptimer: POSIX timers. A periodic CLOCK_MONOTONIC timer with SIGEV_SIGNAL
 * (si_code SI_TIMER, si_value, the timer ID), timer_gettime while armed and
 * after disarming, overruns counted while the signal is blocked, SIGEV_NONE,
 * SIGEV_THREAD_ID to a chosen thread, the libc's SIGEV_THREAD, an absolute
 * CLOCK_REALTIME expiry (in the future and in the past), a fork that has no
 * timers, timers on the process and thread CPU clocks firing while the
 * process spins, and the errors of bad clocks, sigevents, timespecs and IDs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }
static const char *res(int rc) { return rc == 0 ? "ok" : strerror(errno); }

static volatile sig_atomic_t ticks, bad_code, bad_value, bad_id;
static timer_t tick_timer;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	ticks++;
	if (si->si_code != SI_TIMER)
		bad_code = 1;
	if (si->si_value.sival_int != 42)
		bad_value = 1;
	if (si->si_timerid != (int)(long)tick_timer)
		bad_id = 1;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void periodic(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	sev.sigev_value.sival_int = 42;
	printf("timer_create(CLOCK_MONOTONIC, SIGUSR1): %s\n", res(timer_create(CLOCK_MONOTONIC, &sev, &tick_timer)));
	struct itimerspec its = {{0, 20000000}, {0, 20000000}};
	printf("timer_settime 20 ms periodic: %s\n", res(timer_settime(tick_timer, 0, &its, NULL)));
	sigset_t none;
	sigemptyset(&none);
	while (ticks < 3)
		sigsuspend(&none);
	struct itimerspec cur;
	timer_gettime(tick_timer, &cur);
	printf("ticks >= 3: yes, SI_TIMER: %s, si_value 42: %s, si_timerid: %s\n", yesno(!bad_code), yesno(!bad_value),
	       yesno(!bad_id));
	printf("gettime while periodic: interval 20 ms: %s, value <= 20 ms: %s\n",
	       yesno(cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == 20000000),
	       yesno(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000));
	struct itimerspec ten = {{0, 0}, {10, 0}}, old;
	timer_settime(tick_timer, 0, &ten, &old);
	printf("old value returned: interval 20 ms: %s\n", yesno(old.it_interval.tv_nsec == 20000000));
	timer_gettime(tick_timer, &cur);
	printf("one-shot 10 s: remaining 9..10 s: %s, interval 0: %s\n",
	       yesno(cur.it_value.tv_sec == 9 || (cur.it_value.tv_sec == 10 && cur.it_value.tv_nsec == 0)),
	       yesno(cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == 0));
	struct itimerspec zero = {{0, 0}, {0, 0}};
	timer_settime(tick_timer, 0, &zero, NULL);
	timer_gettime(tick_timer, &cur);
	printf("disarmed: value 0: %s\n", yesno(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0));
}

static void overruns(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	int before = ticks;
	struct itimerspec its = {{0, 1000000}, {0, 1000000}};
	timer_settime(tick_timer, 0, &its, NULL);
	nap_ms(50);
	siginfo_t si;
	struct timespec ts = {0, 0};
	int got = sigtimedwait(&set, &si, &ts);
	int last = timer_getoverrun(tick_timer);
	printf("blocked 50 ms with a 1 ms timer: signal: %s, si_overrun > 0: %s, timer_getoverrun == si_overrun: %s\n",
	       yesno(got == SIGUSR1), yesno(si.si_overrun > 0), yesno(last == si.si_overrun));
	struct itimerspec zero = {{0, 0}, {0, 0}};
	timer_settime(tick_timer, 0, &zero, NULL);
	/* Linux 6.13 and later drop a signal still pending when the timer is
	 * reprogrammed, older ones deliver it: take it if it is there. */
	sigtimedwait(&set, NULL, &ts);
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("handler not run meanwhile: %s\n", yesno(ticks == before));
	printf("timer_delete: %s\n", res(timer_delete(tick_timer)));
	printf("timer_getoverrun after delete: %s\n", res(timer_getoverrun(tick_timer)));
	printf("timer_settime after delete: %s\n", res(timer_settime(tick_timer, 0, &its, NULL)));
}

static void sigev_none(void)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_NONE;
	timer_t t;
	timer_create(CLOCK_MONOTONIC, &sev, &t);
	struct itimerspec its = {{0, 0}, {0, 30000000}}, cur;
	timer_settime(t, 0, &its, NULL);
	timer_gettime(t, &cur);
	int armed = cur.it_value.tv_nsec > 0;
	nap_ms(60);
	timer_gettime(t, &cur);
	printf("SIGEV_NONE: armed %s, expired after 60 ms: %s\n", yesno(armed),
	       yesno(cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0));
	struct itimerspec per = {{0, 10000000}, {0, 10000000}};
	timer_settime(t, 0, &per, NULL);
	nap_ms(25);
	timer_gettime(t, &cur);
	printf("SIGEV_NONE periodic: still armed: %s\n", yesno(cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 10000000));
	timer_delete(t);
}

/* The kernel's struct sigevent with SIGEV_THREAD_ID, for the raw syscall. */
struct ksigevent {
	union sigval value;
	int signo;
	int notify;
	int tid;
	int pad[11];
};

static atomic_int target_tid;
static sem_t thread_ready;

static void *target_thread(void *arg)
{
	(void)arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	target_tid = (int)syscall(SYS_gettid);
	sem_post(&thread_ready);
	siginfo_t si;
	int sig = sigwaitinfo(&set, &si);
	printf("SIGEV_THREAD_ID: the target thread got it: %s, SI_TIMER: %s, value 7: %s\n",
	       yesno(sig == SIGRTMIN + 1), yesno(si.si_code == SI_TIMER), yesno(si.si_value.sival_int == 7));
	return NULL;
}

static void thread_id(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	sem_init(&thread_ready, 0, 0);
	pthread_t th;
	pthread_create(&th, NULL, target_thread, NULL);
	sem_wait(&thread_ready);
	struct ksigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.notify = SIGEV_SIGNAL | 4; /* SIGEV_THREAD_ID */
	sev.signo = SIGRTMIN + 1;
	sev.value.sival_int = 7;
	sev.tid = target_tid;
	int id;
	long rc = syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id);
	struct itimerspec its = {{0, 0}, {0, 10000000}};
	syscall(SYS_timer_settime, id, 0, &its, NULL);
	pthread_join(th, NULL);
	printf("SIGEV_THREAD_ID timer_create: %s\n", res((int)rc));
	syscall(SYS_timer_delete, id);
	sev.tid = 999999;
	printf("SIGEV_THREAD_ID to a missing thread: %s\n", res((int)syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id)));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static sem_t fired;
static atomic_int fired_value;

static void thread_fn(union sigval v)
{
	fired_value = v.sival_int;
	sem_post(&fired);
}

static void sigev_thread(void)
{
	sem_init(&fired, 0, 0);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = thread_fn;
	sev.sigev_value.sival_int = 99;
	timer_t t;
	int rc = timer_create(CLOCK_MONOTONIC, &sev, &t);
	struct itimerspec its = {{0, 0}, {0, 10000000}};
	timer_settime(t, 0, &its, NULL);
	while (sem_wait(&fired) != 0)
		;
	printf("SIGEV_THREAD: %s, the function ran with value 99: %s\n", res(rc), yesno(fired_value == 99));
	timer_delete(t);
}

static void absolute(void)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, &old);
	timer_t t;
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR2;
	timer_create(CLOCK_REALTIME, &sev, &t);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct itimerspec its = {{0, 0}, {now.tv_sec, now.tv_nsec}};
	its.it_value.tv_nsec += 30000000;
	if (its.it_value.tv_nsec >= 1000000000) {
		its.it_value.tv_sec++;
		its.it_value.tv_nsec -= 1000000000;
	}
	timer_settime(t, TIMER_ABSTIME, &its, NULL);
	siginfo_t si;
	int sig = sigwaitinfo(&set, &si);
	struct timespec after;
	clock_gettime(CLOCK_REALTIME, &after);
	int late = after.tv_sec > its.it_value.tv_sec ||
		   (after.tv_sec == its.it_value.tv_sec && after.tv_nsec >= its.it_value.tv_nsec);
	printf("TIMER_ABSTIME CLOCK_REALTIME: fired: %s, not before the time: %s\n", yesno(sig == SIGUSR2), yesno(late));
	its.it_value.tv_sec -= 100;
	timer_settime(t, TIMER_ABSTIME, &its, NULL);
	sig = sigwaitinfo(&set, &si);
	printf("TIMER_ABSTIME in the past fires at once: %s\n", yesno(sig == SIGUSR2));
	fflush(stdout);
	pid_t p = fork();
	if (p == 0) {
		struct itimerspec cur;
		printf("forked child: timer_gettime of the parent's timer: %s\n", res(timer_gettime(t, &cur)));
		fflush(stdout);
		_exit(0);
	}
	waitpid(p, NULL, 0);
	timer_delete(t);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static volatile sig_atomic_t cpu_fired;
static void on_cpu(int sig) { (void)sig; cpu_fired = 1; }

/* A timer on a CPU clock fires while the process spins in user mode
 * (within 10 s of wall time, or it prints no). */
static void cpu_clock(clockid_t clock, const char *name)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_cpu;
	sigaction(SIGPROF, &sa, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGPROF;
	timer_t t;
	cpu_fired = 0;
	int rc = timer_create(clock, &sev, &t);
	struct itimerspec its = {{0, 0}, {0, 20000000}}, cur;
	timer_settime(t, 0, &its, NULL);
	timer_gettime(t, &cur);
	int armed = cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	volatile unsigned long spin = 0;
	do {
		for (int i = 0; i < 100000; i++)
			spin++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!cpu_fired && now.tv_sec - start.tv_sec < 10);
	printf("%s timer: %s, armed: %s, fired while spinning: %s\n", name, res(rc), yesno(armed), yesno(cpu_fired));
	timer_delete(t);
}

static void errors(void)
{
	timer_t t;
	printf("bad clock 99: %s\n", res(timer_create(99, NULL, &t)));
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = 0;
	printf("signal 0: %s\n", res(timer_create(CLOCK_MONOTONIC, &sev, &t)));
	sev.sigev_signo = 65;
	printf("signal 65: %s\n", res(timer_create(CLOCK_MONOTONIC, &sev, &t)));
	sev.sigev_notify = 77;
	sev.sigev_signo = SIGUSR1;
	printf("bad sigev_notify: %s\n", res(timer_create(CLOCK_MONOTONIC, &sev, &t)));
	printf("NULL sigevent: %s\n", res(timer_create(CLOCK_MONOTONIC, NULL, &t)));
	struct itimerspec its = {{0, 0}, {0, 1000000000}};
	printf("tv_nsec 1e9: %s\n", res(timer_settime(t, 0, &its, NULL)));
	its.it_value.tv_nsec = -1;
	printf("tv_nsec -1: %s\n", res(timer_settime(t, 0, &its, NULL)));
	int id;
	printf("timer_gettime(12345): %s\n", res((int)syscall(SYS_timer_gettime, 12345, &its)));
	printf("timer_delete(12345): %s\n", res((int)syscall(SYS_timer_delete, 12345)));
	(void)id;
	timer_delete(t);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	periodic();
	overruns();
	sigev_none();
	thread_id();
	sigev_thread();
	absolute();
	cpu_clock(CLOCK_PROCESS_CPUTIME_ID, "CLOCK_PROCESS_CPUTIME_ID");
	cpu_clock(CLOCK_THREAD_CPUTIME_ID, "CLOCK_THREAD_CPUTIME_ID");
	errors();
	return 0;
}
