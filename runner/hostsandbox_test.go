package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run the real launcher against this test binary: when started
// as `runner.test sentry --state-dir D --id ID --ready-fd N -- PROG ARGS`,
// TestMain acts as a sentry whose sandbox is a host process (hostSandbox).
// The kernel-backed sandbox is tested end to end with the snap binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == SentryCommand {
		os.Exit(testSentryMain(os.Args[2:]))
	}
	spawnPoolReplenisher = testSpawnReplenisher
	os.Exit(m.Run())
}

func testSentryMain(args []string) int {
	var o SentryOptions
	var prog []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--state-dir":
			i++
			o.StateDir.Root = args[i]
		case "--id":
			i++
			o.ID = args[i]
		case "--ready-fd":
			i++
			fd, err := ParseReadyFD(args[i])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			o.ReadyFD = fd
		case "--":
			prog = args[i+1:]
			i = len(args)
		}
	}
	st, err := RunSentry(o, func(*Metadata) (Sandbox, error) { return startHostSandbox(prog) })
	if err != nil {
		return 1
	}
	return st.ExitCode()
}

// hostSandbox runs a host process as a stand-in for a kernel so that the
// control protocol, metadata and launcher are tested without the sentry.
// Its Save writes a marker file at req.To after reporting progress.
type hostSandbox struct {
	cmd  *exec.Cmd
	done chan struct{}
	st   ExitStatus

	mu    sync.Mutex
	ended bool
}

func startHostSandbox(argv []string) (*hostSandbox, error) {
	if len(argv) == 0 {
		return nil, errors.New("no program")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	h := &hostSandbox{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			h.st = ExitStatus{Signal: int(ws.Signal())}
		} else {
			h.st = ExitStatus{Code: ws.ExitStatus()}
		}
		h.mu.Lock()
		h.ended = true
		h.mu.Unlock()
		close(h.done)
	}()
	return h, nil
}

func (h *hostSandbox) Kill(sig int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return ErrNotRunning
	}
	return syscall.Kill(h.cmd.Process.Pid, syscall.Signal(sig))
}

func (h *hostSandbox) Wait() ExitStatus {
	<-h.done
	return h.st
}

func (h *hostSandbox) Save(ctx context.Context, req SaveRequest, progress func(Progress)) (string, error) {
	if req.To == "" {
		return "", errors.New("test sandbox needs --to")
	}
	for i := uint64(1); i <= 4; i++ {
		progress(Progress{Phase: "memory", Done: i, Total: 4})
	}
	// A test holds the save in progress with a file named To+".hold".
	for {
		if _, err := os.Stat(req.To + ".hold"); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := os.OpenFile(req.To, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("save: %w", err)
	}
	fmt.Fprintf(f, "pid %d\n", h.cmd.Process.Pid)
	f.Close()
	if !req.LeaveRunning {
		h.cmd.Process.Kill()
		<-h.done
	}
	return "file://" + req.To, nil
}

func testdataProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("LookPath(%q) = %v", name, err)
	}
	return p
}
