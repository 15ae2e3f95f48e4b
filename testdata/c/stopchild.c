/*
 * stopchild [N]: a child stops itself with SIGSTOP; the parent, with
 * SIGCHLD blocked, sees the stop with waitid(WSTOPPED|WNOWAIT) and prints
 * "stopped child seen", then "waiting K" every 100 ms for N lines (default
 * 20). Then it collects the stop with waitpid(WUNTRACED), continues the
 * child (waitpid(WCONTINUED)), reaps its exit code, and takes the pending
 * SIGCHLD, which must be the first one, CLD_STOPPED (a standard signal
 * does not queue twice). It ends with "done".
 *
 * The continued child then waits for the parent to close a pipe before it
 * exits, so that the order of the reports does not depend on scheduling.
 *
 * A checkpoint test saves it during "waiting" and restores it: the child is
 * still stopped, its unconsumed stop report and the pending CLD_STOPPED
 * SIGCHLD survive, and every line after "waiting" says yes.
 */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *yesno(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20;
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);
	/* After SIGCONT the child waits for the parent to close the pipe, so
	 * that waitpid(WCONTINUED) cannot find it already exited instead. */
	int fds[2];
	if (pipe(fds) != 0) {
		printf("pipe failed\n");
		return 1;
	}
	pid_t c = fork();
	if (c == 0) {
		close(fds[1]);
		raise(SIGSTOP);
		char b;
		while (read(fds[0], &b, 1) > 0)
			;
		_exit(7);
	}
	close(fds[0]);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, c, &si, WSTOPPED | WNOWAIT) != 0 || si.si_code != CLD_STOPPED) {
		printf("waitid(WNOWAIT) failed\n");
		return 1;
	}
	printf("stopped child seen\n");
	for (int i = 1; i <= n; i++) {
		printf("waiting %d\n", i);
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	int st;
	pid_t w = waitpid(c, &st, WUNTRACED | WNOHANG);
	printf("stop still reported: %s\n", yesno(w == c && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP));
	kill(c, SIGCONT);
	w = waitpid(c, &st, WCONTINUED);
	printf("continued: %s\n", yesno(w == c && WIFCONTINUED(st)));
	close(fds[1]);
	w = waitpid(c, &st, 0);
	printf("exit 7: %s\n", yesno(w == c && WIFEXITED(st) && WEXITSTATUS(st) == 7));
	struct timespec zero = {0, 0};
	memset(&si, 0, sizeof si);
	int s = sigtimedwait(&block, &si, &zero);
	printf("pending SIGCHLD CLD_STOPPED: %s\n", yesno(s == SIGCHLD && si.si_code == CLD_STOPPED && si.si_pid == c));
	printf("done\n");
	return 0;
}
