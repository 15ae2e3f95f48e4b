package e2e

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
)

// hostSpecials makes, in a new temporary directory of the host, one file of
// each kind the sandbox must never open: a FIFO, a socket, a character
// device (the host's /dev/null numbers), a procfs and a sysfs mounted by the
// test itself (unmounted at the end). It returns LABEL=PATH arguments for
// testdata/c/boundary.c's host mode, and the lines it must print for them.
func hostSpecials(t *testing.T) (args, want []string) {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := unix.Mkfifo(p("fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", p("sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := unix.Mknod(p("null2"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		prereq.Missing(t, "mknod (root): %v", err)
	}
	for _, fs := range []string{"proc", "sysfs"} {
		mnt := p(fs + "2")
		if err := os.Mkdir(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(fs, mnt, fs, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			prereq.Missing(t, "mount -t %s (root with CAP_SYS_ADMIN): %v", fs, err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
		})
	}
	for _, c := range []struct{ label, path, want string }{
		{"fifo", p("fifo"), "open EACCES, stat ok"},
		{"socket", p("sock"), "open EACCES, stat ok"},
		{"socket-new", p("new.sock"), "open ENOENT, stat ENOENT"},
		{"chardev", p("null2"), "open EACCES, stat ok"},
		{"procfs", p("proc2"), "open EACCES, stat EACCES"},
		{"procfs-init", p("proc2/1/status"), "open EACCES, stat EACCES"},
		{"procfs-no-such-pid", p("proc2/999999999/status"), "open EACCES, stat EACCES"},
		{"procfs-environ", p("proc2/self/environ"), "open EACCES, stat EACCES"},
		{"procfs-kallsyms", p("proc2/kallsyms"), "open EACCES, stat EACCES"},
		{"procfs-keys", p("proc2/keys"), "open EACCES, stat EACCES"},
		{"sysfs-pci", p("sysfs2/bus/pci/devices"), "open EACCES, stat EACCES"},
		{"proc-kallsyms", "/proc/kallsyms", "open ENOENT, stat ENOENT"},
		{"proc-timer_list", "/proc/timer_list", "open ENOENT, stat ENOENT"},
		// The sandbox's own PID 1 (the program): its environ is the sentry's.
		{"proc-init", "/proc/1/environ", "open ok, stat ok"},
		{"proc-no-such-pid", "/proc/999999/environ", "open ENOENT, stat ENOENT"},
		{"sys-pci", "/sys/bus/pci/devices", "open ENOENT, stat ENOENT"},
		// The sandbox's own /dev/tty, never the host's terminal: the
		// program has no controlling terminal, so opening it is ENXIO.
		{"dev-tty", "/dev/tty", "open ENXIO, stat ok"},
		{"dev-null", "/dev/null", "open ok, stat ok"},
	} {
		args = append(args, c.label+"="+c.path)
		want = append(want, c.label+": "+c.want)
	}
	// A host socket is never reached through a Unix socket of the sandbox;
	// a new socket file is made in the overlay root's upper layer, never on
	// the host.
	want = append(want, "socket: connect ECONNREFUSED, bind EADDRINUSE", "socket-new: connect ENOENT, bind ok")
	t.Cleanup(func() {
		if _, err := os.Lstat(p("new.sock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lstat of new.sock on the host = %v, want it not to exist", err)
		}
	})
	return args, want
}

// TestHostBoundary runs testdata/c/boundary.c's host mode in a sandbox
// (only there: natively its FIFO open would block) and checks that every
// host FIFO, socket, device and pseudo-filesystem file is refused wherever
// it is, that /proc, /sys and /dev are the sentry's, and that a sandbox that
// tried them still ends on a signal.
func TestHostBoundary(t *testing.T) {
	lc := libcs[0]
	bin := program(t, lc, "boundary")
	args, want := hostSpecials(t)

	t.Run("refused", func(t *testing.T) {
		got := execute(t, append([]string{snap(t), "run", "--", bin, "host"}, args...), spec{}, t.TempDir())
		if got.status != 0 {
			t.Fatalf("snap run boundary host: status %d, stderr %q; want 0", got.status, got.stderr)
		}
		checkWant(t, "snap run", got.stdout, want)
	})

	// A foreground snap forwards SIGTERM to the program, which dies of it.
	t.Run("sigterm", func(t *testing.T) {
		cmd := exec.Command(snap(t), append([]string{"run", "--", bin, "host", "--wait"}, args...)...)
		cmd.Env = baseEnv()
		cmd.Dir = t.TempDir()
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := false
		defer func() {
			if !done {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				_ = cmd.Wait()
			}
		}()
		var lines []string
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "waiting" {
			lines = append(lines, sc.Text())
		}
		checkWant(t, "snap run --wait", strings.Join(lines, "\n")+"\n", want)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		done = true
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
			t.Errorf("snap run after SIGTERM: %v, want exit status %d", err, 128+int(syscall.SIGTERM))
		}
	})
}
