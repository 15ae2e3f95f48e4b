package kernel_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/ctest"
	"snapshotter/internal/prereq"
	"snapshotter/kernel"
	_ "snapshotter/platform/ptrace"
)

// TestMain removes the programs compiled by internal/ctest at the end.
func TestMain(m *testing.M) {
	code := m.Run()
	ctest.Cleanup()
	os.Exit(code)
}

// probe compiles testdata/kprobe.c statically with compiler (once per test
// binary run) and returns the executable.
func probe(t testing.TB, compiler string) string {
	t.Helper()
	return probeLinked(t, compiler, "-static")
}

// probeLinked compiles testdata/kprobe.c with compiler and the link mode
// flag ("-static", "-static-pie" or "" for a dynamic executable).
func probeLinked(t testing.TB, compiler, link string) string {
	t.Helper()
	flags := []string{"-O2", "-pthread"}
	if link != "" {
		flags = append([]string{link}, flags...)
	}
	return ctest.File(t, compiler, "testdata/kprobe.c", flags...)
}

// run executes argv in a new kernel and returns its stdout and status.
func run(t *testing.T, argv, env []string) (string, kernel.ExitStatus) {
	return runWith(t, argv, env, nil)
}

// runWith is run that calls during(k) after the program started.
func runWith(t *testing.T, argv, env []string, during func(k *kernel.Kernel)) (string, kernel.ExitStatus) {
	t.Helper()
	return runConfig(t, kernel.Config{}, argv, env, during)
}

// runConfig is runWith with a kernel made from cfg (its stdio is replaced).
func runConfig(t *testing.T, cfg kernel.Config, argv, env []string, during func(k *kernel.Kernel)) (string, kernel.ExitStatus) {
	t.Helper()
	k, err := kernel.New(cfg)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			prereq.Missing(t, "ptrace not permitted: %v", err)
		}
		t.Fatalf("kernel.New: %v", err)
	}
	defer k.Release()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []byte
	done := make(chan struct{})
	go func() {
		out, _ = io.ReadAll(r)
		close(done)
	}()
	err = k.Start(kernel.StartOptions{Argv: argv, Env: env, Stdout: w, Stderr: w})
	if err != nil {
		w.Close()
		t.Fatalf("Start(%q): %v", argv, err)
	}
	if during != nil {
		during(k)
	}
	st := k.Wait()
	w.Close()
	<-done
	return string(out), st
}

func TestRunStaticPrograms(t *testing.T) {
	if os.Getenv("SNAP_REQUIRE_ALL") != "1" && testing.Short() {
		t.Skip("short mode")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte("hello file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        []string
		want       []string // lines that must appear, in order
		wantStatus kernel.ExitStatus
	}{
		{"args", []string{"args", "a b", ""}, []string{"KPROBE=yes"}, []string{
			"argv[1]=args", "argv[2]=a b", "argv[3]=", "env=yes", "pid=1 ppid=0 tid=1", "pagesz=4096 random=1 execfn=", "exe-ok=1 stdout-alias=1",
		}, kernel.ExitStatus{}},
		{"file through symlink", []string{"file", link}, nil, []string{
			"read 11 bytes, size 11: hello file", "open for writing: ok", "mmap: hello",
		}, kernel.ExitStatus{}},
		{"mem", []string{"mem"}, nil, []string{"sum=", "brk-ok=1"}, kernel.ExitStatus{}},
		{"sleep", []string{"sleep"}, nil, []string{"slept>=50ms=1"}, kernel.ExitStatus{}},
		{"uname", []string{"uname"}, nil, []string{"Linux x86_64"}, kernel.ExitStatus{}},
		{"threads", []string{"threads"}, nil, []string{"counter=80000 distinct-tids=1"}, kernel.ExitStatus{}},
		{"main thread exits first", []string{"thread-exit"}, nil, nil, kernel.ExitStatus{}},
		{"fork, exec, spawn, wait", []string{"fork"}, nil, []string{"fork child pid>1=1 exit=5", "spawn child signal=11", "echild=1"}, kernel.ExitStatus{}},
		{"select and poll on a pipe", []string{"select"}, nil, []string{
			"select empty: n=0 set=0", "poll empty: n=0", "select ready: n=2 r=1 w=1", "poll ready: n=1 in=1", "read=1 eof-read=0",
		}, kernel.ExitStatus{}},
		{"epoll and eventfd", []string{"epoll"}, nil, []string{
			"epoll idle: n=0", "eventfd: write=8 n=1 data=7", "eventfd read=8 value=3 again=-1 eagain=1", "pipe: n=1 data=9", "ctl errors: exist=1 noent=1",
		}, kernel.ExitStatus{}},
		{"exit 42", []string{"exit", "42"}, nil, nil, kernel.ExitStatus{Code: 42}},
		{"null dereference", []string{"segv"}, nil, nil, kernel.ExitStatus{Signal: int(unix.SIGSEGV)}},
		{"unknown syscall", []string{"enosys"}, nil, nil, kernel.ExitStatus{}},
	}
	for _, build := range []struct{ name, cc, link string }{
		{"gcc", "gcc", "-static"},
		{"musl-gcc", "musl-gcc", "-static"},
		{"gcc-static-pie", "gcc", "-static-pie"},
		{"gcc-dynamic", "gcc", ""},
	} {
		t.Run(build.name, func(t *testing.T) {
			bin := probeLinked(t, build.cc, build.link)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					out, st := run(t, append([]string{bin}, tc.args...), tc.env)
					if st != tc.wantStatus {
						t.Errorf("run %v: status = %v, want %v; output:\n%s", tc.args, st, tc.wantStatus, out)
					}
					rest := out
					for _, w := range tc.want {
						i := strings.Index(rest, w)
						if i < 0 {
							t.Errorf("run %v: output lacks %q (in order); output:\n%s", tc.args, w, out)
							break
						}
						rest = rest[i+len(w):]
					}
				})
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("not an elf\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("\x7fELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := kernel.New(kernel.Config{})
	if err != nil {
		t.Fatalf("kernel.New: %v", err)
	}
	defer k.Release()
	tests := []struct {
		argv []string
		want error
	}{
		{[]string{filepath.Join(dir, "missing")}, unix.ENOENT},
		{[]string{"no-such-program-anywhere"}, unix.ENOENT},
		{[]string{text}, kernel.ErrNoExec},
		{[]string{noexec}, unix.EACCES},
		{[]string{dir}, unix.EACCES},
		{nil, unix.EINVAL},
	}
	for _, tc := range tests {
		if err := k.Start(kernel.StartOptions{Argv: tc.argv}); !errors.Is(err, tc.want) {
			t.Errorf("Start(%q) = %v, want %v", tc.argv, err, tc.want)
		}
	}
}

// TestStopDuringSleep stops the kernel while the program sleeps in
// nanosleep, several times: every stop must park the task (waitStopped
// returns) and the sleep must still complete with its full duration.
func TestStopDuringSleep(t *testing.T) {
	bin := probe(t, "gcc")
	out, st := runWith(t, []string{bin, "sleep"}, nil, func(k *kernel.Kernel) {
		for range 5 {
			k.StopForTest()
			k.ResumeForTest()
		}
	})
	if st != (kernel.ExitStatus{}) || !strings.Contains(out, "slept>=50ms=1") {
		t.Errorf("sleep with stops: status %v, output %q, want status 0 and slept>=50ms=1", st, out)
	}
}

// TestStopDuringPoll stops the kernel while the program waits in poll with
// a timeout: the poll restarts with its deadline and still waits it out.
func TestStopDuringPoll(t *testing.T) {
	bin := probe(t, "gcc")
	out, st := runWith(t, []string{bin, "pollsleep"}, nil, func(k *kernel.Kernel) {
		for range 5 {
			k.StopForTest()
			k.ResumeForTest()
		}
	})
	if st != (kernel.ExitStatus{}) || !strings.Contains(out, "poll=0 waited>=80ms=1") {
		t.Errorf("poll with stops: status %v, output %q, want status 0 and poll=0 waited>=80ms=1", st, out)
	}
}
