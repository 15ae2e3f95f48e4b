/*
 * jobctl: job control seen from a parent. A child is stopped and continued
 * by signals; the parent sees it with waitpid(WUNTRACED/WCONTINUED) and
 * waitid(WSTOPPED/WCONTINUED/WNOWAIT), and gets SIGCHLD with CLD_STOPPED,
 * CLD_CONTINUED and CLD_KILLED (taken with sigwaitinfo while blocked), or
 * none for a stop with SA_NOCLDSTOP; a child that exits while the parent
 * waits in sigtimedwait is seen by that wait. Then children are reaped
 * automatically when SIGCHLD is ignored or SA_NOCLDWAIT is set: wait gives
 * ECHILD once they have exited.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

static const char *code_name(int code)
{
	switch (code) {
	case CLD_EXITED:
		return "CLD_EXITED";
	case CLD_KILLED:
		return "CLD_KILLED";
	case CLD_DUMPED:
		return "CLD_DUMPED";
	case CLD_STOPPED:
		return "CLD_STOPPED";
	case CLD_CONTINUED:
		return "CLD_CONTINUED";
	}
	return "?";
}

/* sigchld waits for the next SIGCHLD (blocked) and describes it. */
static void sigchld(const char *what, pid_t child)
{
	sigset_t set;
	siginfo_t si;
	struct timespec ts = {5, 0};
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	int s = sigtimedwait(&set, &si, &ts);
	if (s != SIGCHLD) {
		printf("%s: no SIGCHLD (%s)\n", what, strerror(errno));
		return;
	}
	printf("%s: SIGCHLD %s status %d, from child %s\n", what, code_name(si.si_code), si.si_status,
	       yesno(si.si_pid == child));
}

static void pending_sigchld(const char *what)
{
	sigset_t set;
	sigpending(&set);
	printf("%s: SIGCHLD pending %s\n", what, yesno(sigismember(&set, SIGCHLD)));
}

static pid_t spawn_pauser(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static volatile sig_atomic_t handled;
static void on_chld(int sig)
{
	(void)sig;
	handled++;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);

	pid_t c = spawn_pauser();
	int st;
	siginfo_t si;

	/* SIGSTOP: waitid with WNOWAIT reports it and leaves it to report. */
	kill(c, SIGSTOP);
	memset(&si, 0, sizeof si);
	int r = waitid(P_PID, c, &si, WSTOPPED | WNOWAIT);
	printf("waitid(WSTOPPED|WNOWAIT): %d, %s status %s, pid matches %s\n", r, code_name(si.si_code),
	       si.si_status == SIGSTOP ? "SIGSTOP" : "?", yesno(si.si_pid == c));
	sigchld("stop", c);
	pid_t w = waitpid(c, &st, WUNTRACED);
	printf("waitpid(WUNTRACED): pid matches %s, WIFSTOPPED %s, WSTOPSIG==SIGSTOP %s\n", yesno(w == c),
	       yesno(WIFSTOPPED(st)), yesno(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP));
	w = waitpid(c, &st, WUNTRACED | WNOHANG);
	printf("again with WNOHANG: %d\n", (int)w);
	w = waitpid(c, &st, WNOHANG);
	printf("without WUNTRACED: %d\n", (int)w);

	/* SIGCONT. */
	kill(c, SIGCONT);
	sigchld("continue", c);
	w = waitpid(c, &st, WCONTINUED);
	printf("waitpid(WCONTINUED): pid matches %s, WIFCONTINUED %s\n", yesno(w == c), yesno(WIFCONTINUED(st)));
	memset(&si, 0, sizeof si);
	r = waitid(P_PID, c, &si, WCONTINUED | WNOHANG);
	printf("again: %d, si_pid %d\n", r, (int)si.si_pid);

	/* SIGTSTP seen by waitid, which consumes it. */
	kill(c, SIGTSTP);
	memset(&si, 0, sizeof si);
	r = waitid(P_ALL, 0, &si, WSTOPPED);
	printf("waitid(P_ALL, WSTOPPED): %d, %s status %s\n", r, code_name(si.si_code),
	       si.si_status == SIGTSTP ? "SIGTSTP" : "?");
	sigchld("tstp", c);
	w = waitpid(c, &st, WUNTRACED | WNOHANG);
	printf("consumed by waitid: %d\n", (int)w);

	/* SIGKILL ends the stopped child. */
	kill(c, SIGKILL);
	w = waitpid(c, &st, 0);
	printf("killed while stopped: pid matches %s, WIFSIGNALED %s, WTERMSIG==SIGKILL %s\n", yesno(w == c),
	       yesno(WIFSIGNALED(st)), yesno(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
	sigchld("kill", c);

	/*
	 * A child exits while the parent waits in sigtimedwait: SIGCHLD's
	 * action is to ignore it, yet it is queued for the wait, which
	 * unblocks nothing (Linux's real_blocked).
	 */
	c = fork();
	if (c == 0) {
		usleep(100000);
		_exit(3);
	}
	sigchld("exit during sigtimedwait", c);
	w = waitpid(c, &st, 0);
	printf("exited: pid matches %s, status %d\n", yesno(w == c), WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	/*
	 * A child stopped in sigsuspend gets a handled signal while stopped,
	 * then SIGCONT: sigsuspend returns (EINTR after the handler), it is
	 * not restarted to wait again.
	 */
	c = fork();
	if (c == 0) {
		sigset_t none;
		sigemptyset(&none);
		signal(SIGUSR1, on_chld);
		sigset_t u;
		sigemptyset(&u);
		sigaddset(&u, SIGUSR1);
		sigprocmask(SIG_BLOCK, &u, NULL);
		kill(getpid(), SIGSTOP);
		/* Continued by the parent before it sends anything. */
		while (!handled)
			sigsuspend(&none);
		_exit(7);
	}
	w = waitpid(c, &st, WUNTRACED);
	kill(c, SIGCONT);
	waitpid(c, &st, WCONTINUED);
	/* Now in sigsuspend (or about to be): stop it there. */
	usleep(100000);
	kill(c, SIGSTOP);
	waitpid(c, &st, WUNTRACED);
	kill(c, SIGUSR1);
	kill(c, SIGCONT);
	int done = 0;
	for (int i = 0; i < 500 && !done; i++) {
		w = waitpid(c, &st, WNOHANG);
		if (w == c && WIFEXITED(st))
			done = 1;
		else
			usleep(10000);
	}
	if (!done) {
		kill(c, SIGKILL);
		waitpid(c, &st, 0);
	}
	printf("signal while stopped in sigsuspend: returned %s\n", yesno(done && WEXITSTATUS(st) == 7));
	while (sigtimedwait(&block, &si, &(struct timespec){0, 0}) == SIGCHLD)
		;

	/* SA_NOCLDSTOP: the stop is waitable but sends no SIGCHLD. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	c = spawn_pauser();
	kill(c, SIGSTOP);
	w = waitpid(c, &st, WUNTRACED);
	printf("SA_NOCLDSTOP: stopped %s\n", yesno(w == c && WIFSTOPPED(st)));
	pending_sigchld("SA_NOCLDSTOP stop");
	kill(c, SIGCONT);
	w = waitpid(c, &st, WCONTINUED);
	printf("SA_NOCLDSTOP: continued %s\n", yesno(w == c && WIFCONTINUED(st)));
	pending_sigchld("SA_NOCLDSTOP continue");
	kill(c, SIGTERM);
	w = waitpid(c, &st, 0);
	printf("SA_NOCLDSTOP: terminated %s\n", yesno(w == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM));
	pending_sigchld("SA_NOCLDSTOP exit");
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	printf("handler ran once: %s\n", yesno(handled == 1));

	/* SIG_IGN: children are reaped by themselves. */
	signal(SIGCHLD, SIG_IGN);
	for (int i = 0; i < 3; i++) {
		if (fork() == 0) {
			usleep(20000 * i);
			_exit(i);
		}
	}
	errno = 0;
	w = wait(&st);
	printf("SIG_IGN: wait returns %d, ECHILD %s\n", (int)w, yesno(errno == ECHILD));

	/* SA_NOCLDWAIT with a handler: reaped, and the handler still runs. */
	handled = 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, NULL);
	for (int i = 0; i < 2; i++) {
		if (fork() == 0) {
			usleep(20000 * i);
			_exit(i);
		}
	}
	errno = 0;
	do {
		w = wait(&st);
	} while (w < 0 && errno == EINTR);
	printf("SA_NOCLDWAIT: wait returns %d, ECHILD %s, handler ran %s\n", (int)w, yesno(errno == ECHILD),
	       yesno(handled >= 1));
	return 0;
}
