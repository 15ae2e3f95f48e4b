package runner

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SentryCommand is the hidden snap subcommand that runs a detached sentry.
// The launcher runs `EXE sentry --state-dir DIR --id ID --ready-fd 3 ARGS...`.
const SentryCommand = "sentry"

// readyOK is what a sentry writes on its readiness pipe once it serves.
const readyOK = "ok"

// LaunchOptions describe a detached sandbox to start.
type LaunchOptions struct {
	StateDir StateDir
	// ID is the sandbox ID; empty means a random one.
	ID string
	// Stdin, Stdout and Stderr are host files for the program's standard
	// streams; empty means /dev/null. Output files are created if needed
	// and appended to.
	Stdin, Stdout, Stderr string
	// Program, Argv and RestoredFrom go into the metadata.
	Program      string
	Argv         []string
	RestoredFrom string
	// SentryArgs follow the sentry command's own flags (for example
	// "--", PROG, ARGS... or "--restore", URI).
	SentryArgs []string
	// Exe is the snap binary; empty means /proc/self/exe.
	Exe string
	// Env is added to the sentry's environment (snap's own, inherited),
	// replacing variables of the same name.
	Env []string
	// Timeout bounds the wait for readiness; zero means two minutes.
	Timeout time.Duration
	// Listening, if set, gets the address a receiving sentry listens on
	// (ListeningLine) before it is ready.
	Listening func(addr string)
}

// ListeningLine is what a receiving sentry writes on its readiness pipe
// once it listens, before the sandbox arrives: the prefix, then the
// address.
const ListeningLine = "listening "

// Launch reserves the sandbox's ID, starts its sentry in a new session
// with the given stdio, and returns once the sentry serves its control
// socket (with the metadata at that moment). If the sentry fails to start,
// its error is returned and the sandbox is marked failed.
func Launch(o LaunchOptions) (*Metadata, error) {
	self, err := procStartTime(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("launch sandbox: %w", err)
	}
	m := &Metadata{
		ID:           o.ID,
		PID:          os.Getpid(), // the launcher, until the sentry takes over
		PIDStart:     self,
		Status:       StatusStarting,
		Program:      o.Program,
		Argv:         o.Argv,
		Created:      time.Now().UTC(),
		RestoredFrom: o.RestoredFrom,
	}
	stdio, err := openStdio(o.Stdin, o.Stdout, o.Stderr)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range stdio {
			f.Close()
		}
	}()
	if err := o.StateDir.Reserve(m); err != nil {
		return nil, err
	}
	fail := func(err error) (*Metadata, error) {
		m.Status = StatusFailed
		m.Error = err.Error()
		WriteMetadata(o.StateDir.Dir(m.ID), m)
		return nil, err
	}

	r, w, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("launch sandbox %s: %w", m.ID, err))
	}
	defer r.Close()
	exe := o.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	// --launched-at lets the sentry tell how long its own start took.
	args := append([]string{SentryCommand, "--state-dir", o.StateDir.Root, "--id", m.ID, "--ready-fd", "3",
		"--launched-at", strconv.FormatInt(time.Now().UnixNano(), 10)}, o.SentryArgs...)
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	cmd.ExtraFiles = []*os.File{w}
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...) // the last of a name wins
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fail(fmt.Errorf("start sentry for %s: %w", m.ID, err))
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	r.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(io.LimitReader(r, 64<<10))
	line, rerr := br.ReadString('\n')
	line = strings.TrimSpace(line)
	for rerr == nil && strings.HasPrefix(line, ListeningLine) {
		if o.Listening != nil {
			o.Listening(strings.TrimPrefix(line, ListeningLine))
		}
		line, rerr = br.ReadString('\n')
		line = strings.TrimSpace(line)
	}
	if line == readyOK {
		// The sentry lives on in its own session; nobody waits for it here
		// (init or a subreaper reaps it).
		cmd.Process.Release()
		return o.StateDir.Lookup(m.ID)
	}
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		cmd.Process.Kill()
		cmd.Wait()
		return fail(fmt.Errorf("sandbox %s: sentry not ready after %v (see %s)", m.ID, timeout, o.StateDir.LogPath(m.ID)))
	}
	werr := cmd.Wait()
	if line != "" {
		// The sentry recorded the failure itself.
		return nil, errors.New(strings.TrimPrefix(line, "error: "))
	}
	return fail(fmt.Errorf("sandbox %s: sentry exited before it was ready (%v; see %s)", m.ID, werr, o.StateDir.LogPath(m.ID)))
}

// openStdio opens the program's standard streams for the sentry.
func openStdio(in, out, errPath string) ([3]*os.File, error) {
	var files [3]*os.File
	open := func(i int, path string, flag int) error {
		if path == "" {
			path = os.DevNull
		}
		f, err := os.OpenFile(path, flag, 0o644)
		if err != nil {
			return fmt.Errorf("open %s for the sandbox: %w", path, err)
		}
		files[i] = f
		return nil
	}
	err := open(0, in, os.O_RDONLY)
	if err == nil {
		err = open(1, out, os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	}
	if err == nil {
		err = open(2, errPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	}
	if err != nil {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
		return files, err
	}
	return files, nil
}

// SentryOptions configure the sentry side of a detached sandbox.
type SentryOptions struct {
	StateDir StateDir
	ID       string
	// ReadyFD is the readiness pipe from the launcher, or -1.
	ReadyFD int
	// Pool, if set, makes the sandbox a member of that pool: the start
	// function restores it parked (it must implement Parked), its status
	// is waiting, and it is entered in the pool before the launcher is
	// told it is ready.
	Pool string
}

// StartFunc makes the sandbox of a sentry; m is its metadata so far.
type StartFunc func(m *Metadata) (Sandbox, error)

// RunSentry is the body of `snap sentry`: it sends its own log output to
// the sandbox's sentry.log, starts the sandbox with start, serves the
// control socket, tells the launcher it is ready, and returns once the
// program has ended and its status is recorded. The returned status is the
// program's (the zero status for a sandbox stopped by a save).
func RunSentry(o SentryOptions, start StartFunc) (ExitStatus, error) {
	var ready *os.File
	if o.ReadyFD >= 0 {
		ready = os.NewFile(uintptr(o.ReadyFD), "ready")
		defer ready.Close()
	}
	tell := func(msg string) {
		if ready != nil {
			fmt.Fprintln(ready, msg)
			ready.Close()
			ready = nil
		}
	}
	if err := ValidateID(o.ID); err != nil {
		tell("error: " + err.Error())
		return ExitStatus{}, err
	}
	dir := o.StateDir.Dir(o.ID)
	if lf, err := os.OpenFile(o.StateDir.LogPath(o.ID), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		log.SetOutput(lf)
		defer lf.Close()
	}
	m, err := ReadMetadata(dir)
	if err != nil {
		tell("error: " + err.Error())
		return ExitStatus{}, err
	}
	failed := func(err error) (ExitStatus, error) {
		m.Status = StatusFailed
		m.Error = err.Error()
		WriteMetadata(dir, m)
		tell("error: " + err.Error())
		return ExitStatus{}, err
	}
	m.PID = os.Getpid()
	if m.PIDStart, err = procStartTime(m.PID); err != nil {
		return failed(err)
	}
	if err := WriteMetadata(dir, m); err != nil {
		return failed(err)
	}
	sb, err := start(m)
	if err != nil {
		return failed(err)
	}
	srv := NewServer(o.StateDir, m, sb)
	if err := srv.Listen(); err != nil {
		sb.Kill(9)
		sb.Wait()
		return failed(err)
	}
	status := StatusRunning
	if o.Pool != "" {
		status = StatusWaiting
	}
	if err := srv.Update(func(m *Metadata) { m.Status, m.Pool = status, o.Pool }); err != nil {
		srv.Shutdown(0)
		sb.Kill(9)
		sb.Wait()
		return failed(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	if o.Pool != "" {
		// Takers find it from now on.
		if err := srv.EnterPool(o.Pool); err != nil {
			srv.Shutdown(0)
			sb.Kill(9)
			sb.Wait()
			<-served
			return failed(err)
		}
	}
	log.Printf("sandbox %s: pid %d serving %s", o.ID, m.PID, o.StateDir.SocketPath(o.ID))
	tell(readyOK)
	defer dumpOnSignal(o.ID, sb)()

	st := sb.Wait()
	if err := srv.Finish(st); err != nil {
		log.Printf("sandbox %s: record exit: %v", o.ID, err)
	}
	srv.Shutdown(2 * time.Second)
	if err := <-served; err != nil {
		log.Printf("sandbox %s: %v", o.ID, err)
	}
	final := srv.Metadata()
	log.Printf("sandbox %s: %s", o.ID, final.Status)
	if srv.LeftPool() {
		// Never anyone's sandbox, and no pool rm will find it.
		o.StateDir.removeUntaken(&final)
	}
	if final.Status == StatusSaved {
		return ExitStatus{}, nil
	}
	return st, nil
}

// ParseReadyFD parses the --ready-fd flag value ("" means none).
func ParseReadyFD(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return -1, fmt.Errorf("bad --ready-fd %q", s)
	}
	return n, nil
}
