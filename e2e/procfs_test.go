package e2e

import "testing"

// procfsCases run testdata/c/procfs.c in each mode; see its header.
var procfsCases = []struct {
	name string
	spec spec
}{
	{"comm", spec{args: []string{"comm"}, want: []string{
		"initial comm is the program name: yes",
		"/proc/self/comm = procfs",
		"PR_GET_NAME after a long name: a-name-longer-t, NUL at 15: yes, byte 16 untouched: yes",
		"/proc/self/comm = a-name-longer-t",
		"/proc/thread-self/comm = main",
		"thread: /proc/thread-self/comm = worker",
		"main: /proc/self/task/<thread>/comm = worker",
		"main: /proc/self/task/<main>/comm = main",
		"main: /proc/self/comm = main",
		"main: /proc/<thread>/comm = worker",
	}}},
	{"status", spec{args: []string{"status"}, want: []string{
		"lines present in Linux's order: yes",
		"Name: status-test",
		"State: R (running)",
		"Tgid==getpid: yes",
		"Pid==getpid: yes",
		"PPid==getppid: yes",
		"Uid starts with uid, euid: yes",
		"Gid starts with gid, egid: yes",
		"Threads: 1",
		"SigBlk has SIGUSR1: yes, 16 hex digits: yes",
		"SigIgn has SIGUSR2: yes, SIGHUP: no",
		"SigCgt has SIGHUP: yes, SIGUSR2: no",
		`VmSize format "%8lu kB": yes`,
		"0 < VmRSS <= VmSize: yes",
		"VmSize grows by 64 MiB after mmap: yes",
		"with a thread: Threads: 2",
		"with a thread: Name: status-test",
		"/proc/thread-self/status Pid==gettid: yes",
		"thread's status: Name: worker",
		"thread's status: Pid==its tid: yes, Tgid==getpid: yes",
		"after join: Threads: 1",
	}}},
	{"stat", spec{args: []string{"stat"}, want: []string{
		"pid==getpid: yes",
		"comm: a) b (c",
		"state: R",
		"ppid==getppid: yes, pgrp==getpgrp: yes, session==getsid: yes",
		"fields: 52",
		"num_threads: 1",
		"priority: 20, nice: 0",
		"exit_signal: 17",
		"arg_start==argv[0]: yes, arg_end==end of argv[argc-1]: yes",
		"env_start==environ[0]: yes, env_end==end of the last: yes",
		"vsize==VmSize: yes",
	}}},
	{"cmdline", spec{args: []string{"cmdline", "two words", "", "last"}, want: []string{
		"/proc/self/cmdline == argv joined with NULs: yes",
		"/proc/<pid>/cmdline same: yes",
		"argv strings contiguous: yes",
		"argv[0] shortened: same length: yes, bytes as in memory: yes",
		"setproctitle: runs on to environ[0]'s NUL: yes",
	}}},
}

// TestProcfs compares, with each libc, what a program reads in its own
// /proc/self/{comm,status,stat,cmdline} (and prctl PR_SET_NAME/PR_GET_NAME) under
// snap run with the native run.
func TestProcfs(t *testing.T) {
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			for _, c := range procfsCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					bin := program(t, lc, "procfs")
					s := c.spec
					s.zdtm.fast = true
					compare(t, lc.Name+"/procfs-"+c.name, append([]string{bin}, s.args...), s)
				})
			}
		})
	}
}
