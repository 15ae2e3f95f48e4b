package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"snapshotter/storage/s3wire"
)

// The S3 store's client (minio-go) runs in a helper process, snap-s3, so
// that the snap binary does not link it (see storage/s3wire). One helper
// serves every S3 store of this process: most snap commands open one store,
// and the helper's start-up (about 15 ms here) is then paid once, and its
// memory once, however many stores a long-lived process (a sentry saving
// many times, a test binary) opens. A helper is started on the first use of
// an S3 store, with this process's environment, from which minio-go takes
// the credentials chain (AWS_*, MINIO_*, ~/.aws) and proxy settings; if
// those variables change (a sentry applies each save's client environment),
// later stores get a helper of their own started with the new values, as
// the in-process client read them at first use. A helper that dies fails
// what was in flight on it with ErrUnavailable; the next use of a store
// starts a new one.

// S3HelperEnv names the environment variable that overrides where the S3
// helper program is found.
const S3HelperEnv = "SNAP_S3_HELPER"

// s3HelperName is the helper's file name, looked up next to the running
// executable, then in PATH.
const s3HelperName = "snap-s3"

var s3Helpers struct {
	mu sync.Mutex
	m  map[string]*helperConn // by helperEnvKey; protected by mu
}

// helperEnvKey returns the environment variables a helper's behaviour
// depends on, as one string.
func helperEnvKey() string {
	var kv []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		u := strings.ToUpper(k)
		if strings.HasPrefix(u, "AWS_") || strings.HasPrefix(u, "MINIO_") || strings.HasPrefix(u, "SSL_CERT_") ||
			strings.HasSuffix(u, "_PROXY") || k == "HOME" || k == S3HelperEnv {
			kv = append(kv, e)
		}
	}
	sort.Strings(kv)
	return strings.Join(kv, "\x00")
}

// s3Helper returns a live helper for the current environment, starting one
// if needed.
func s3Helper() (*helperConn, error) {
	key := helperEnvKey()
	s3Helpers.mu.Lock()
	defer s3Helpers.mu.Unlock()
	if c := s3Helpers.m[key]; c != nil && c.failed() == nil {
		return c, nil
	}
	c, err := startHelper()
	if err != nil {
		return nil, err
	}
	if s3Helpers.m == nil {
		s3Helpers.m = map[string]*helperConn{}
	}
	s3Helpers.m[key] = c
	return c, nil
}

// findS3Helper returns the helper program: $SNAP_S3_HELPER, else snap-s3
// next to the running executable, else snap-s3 in PATH.
func findS3Helper() (string, error) {
	if p := os.Getenv(S3HelperEnv); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("s3 store: helper %s=%s: %v: %w", S3HelperEnv, p, err, ErrUnavailable)
		}
		return p, nil
	}
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), s3HelperName)
		if isExecutable(p) == nil {
			return p, nil
		}
	} else {
		exe = "the snap executable"
	}
	if p, err := exec.LookPath(s3HelperName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("s3 store: helper %s not found next to %s or in PATH (install it with snap, or set %s): %w",
		s3HelperName, exe, S3HelperEnv, ErrUnavailable)
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return err
	case fi.IsDir() || fi.Mode()&0o111 == 0:
		return errors.New("not an executable file")
	}
	return nil
}

// spawner runs functions on one goroutine locked to its thread for the
// life of the process. The helper is started from it because
// PR_SET_PDEATHSIG fires when the thread that started the child exits, and
// Go ends a thread when a goroutine locked to it exits (the kernel's
// goroutines lock threads): this thread never exits.
var spawner struct {
	once sync.Once
	ch   chan func()
}

func onSpawnerThread(f func()) {
	spawner.once.Do(func() {
		spawner.ch = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: see spawner.
			for f := range spawner.ch {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawner.ch <- func() { f(); close(done) }
	<-done
}

// helperConn is one running helper and the connection to it.
type helperConn struct {
	path string
	cmd  *exec.Cmd
	ids  atomic.Uint64
	// stderr receives the helper's stderr, read when it dies.
	stderr *os.File

	wmu sync.Mutex
	w   *os.File // requests; protected by wmu

	mu      sync.Mutex
	pending map[uint64]*call // requests awaiting OpDone; protected by mu
	err     error            // why the connection ended; protected by mu
}

// call is a request awaiting its response: either done is closed, or (for
// a call made by start) cb is called.
type call struct {
	cb   func(error)   // called by readLoop with the request's error
	done chan struct{} // closed with resp, payload or err set
	resp s3wire.Msg
	out  []byte
	err  error

	// dst receives OpData payloads unless the caller gave up.
	mu        sync.Mutex
	dst       []byte // protected by mu
	abandoned bool   // protected by mu
}

func startHelper() (*helperConn, error) {
	path, err := findS3Helper()
	if err != nil {
		return nil, err
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("s3 store: start helper: %w", err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("s3 store: start helper: %w", err)
	}
	// Bigger pipes carry a 1 MiB chunk with fewer switches; best effort.
	for _, f := range []*os.File{reqW, respW} {
		_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
	stderr, err := os.CreateTemp("", "snap-s3-stderr")
	if err == nil {
		os.Remove(stderr.Name())
	}
	c := &helperConn{path: path, w: reqW, stderr: stderr, pending: map[uint64]*call{}}
	c.cmd = &exec.Cmd{
		Path:   path,
		Args:   []string{s3HelperName},
		Stdin:  reqR,
		Stdout: respW,
		Stderr: stderr, // nil (the null device) if the temp file failed
		// Its own process group keeps the terminal's ^C and ^Z, meant
		// for snap or the sandboxed program, from killing or stopping
		// it mid-restore; Pdeathsig and the end of its input still end it
		// with snap.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true},
	}
	if stderr == nil {
		c.cmd.Stderr = nil
	}
	onSpawnerThread(func() { err = c.cmd.Start() })
	reqR.Close()
	respW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		if stderr != nil {
			stderr.Close()
		}
		return nil, fmt.Errorf("s3 store: start helper %s: %v: %w", path, err, ErrUnavailable)
	}
	go c.readLoop(respR)
	return c, nil
}

// failed returns why the connection ended, or nil.
func (c *helperConn) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// kill ends the helper; readLoop then fails what is pending.
func (c *helperConn) kill() {
	_ = c.cmd.Process.Kill()
}

// readLoop dispatches responses until the helper's output ends, then reaps
// it and fails every pending call.
func (c *helperConn) readLoop(r *os.File) {
	br := bufio.NewReaderSize(r, 256<<10)
	var err error
	for err == nil {
		err = c.readFrame(br)
	}
	r.Close()
	// The helper closed its output or sent garbage: it is of no further
	// use. Kill it (a no-op if it already exited) and reap it to learn why
	// it ended.
	c.kill()
	werr := c.cmd.Wait()
	why := "exited"
	if werr != nil {
		why = werr.Error()
	}
	if !errors.Is(err, io.EOF) {
		why = fmt.Sprintf("%s (%v)", why, err)
	}
	if line := c.lastStderrLine(); line != "" {
		why += ": " + line
	}
	dead := fmt.Errorf("s3 store: helper %s (pid %d) ended: %s: %w", c.path, c.cmd.Process.Pid, why, ErrUnavailable)
	c.wmu.Lock()
	c.w.Close()
	c.wmu.Unlock()
	c.mu.Lock()
	c.err = dead
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, cl := range pending {
		if cl.cb != nil {
			cl.cb(dead)
			continue
		}
		cl.err = dead
		close(cl.done)
	}
}

func (c *helperConn) lastStderrLine() string {
	if c.stderr == nil {
		return ""
	}
	defer c.stderr.Close()
	b := make([]byte, 4096)
	fi, err := c.stderr.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-int64(len(b)), 0)
	n, _ := c.stderr.ReadAt(b, off)
	lines := strings.Split(strings.TrimSpace(string(b[:n])), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// readFrame reads and dispatches one frame.
func (c *helperConn) readFrame(br *bufio.Reader) error {
	var m s3wire.Msg
	n, err := s3wire.ReadHeader(br, &m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	cl := c.pending[m.ID]
	if m.Op == s3wire.OpDone {
		delete(c.pending, m.ID)
	}
	c.mu.Unlock()
	switch m.Op {
	case s3wire.OpData:
		if cl == nil {
			return s3wire.Discard(br, n)
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if cl.abandoned {
			return s3wire.Discard(br, n)
		}
		if m.Off < 0 || m.Off > int64(len(cl.dst)) || int64(n) > int64(len(cl.dst))-m.Off {
			return fmt.Errorf("data for %d bytes at %d of a %d-byte read: %w", n, m.Off, len(cl.dst), s3wire.ErrProtocol)
		}
		_, err := io.ReadFull(br, cl.dst[m.Off:m.Off+int64(n)])
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	case s3wire.OpDone:
		out, err := s3wire.ReadPayload(br, n)
		if err != nil {
			return err
		}
		switch {
		case cl == nil:
		case cl.cb != nil:
			var err error
			if m.Failed {
				err = s3WireError(m.Code, m.Err)
			}
			cl.cb(err)
		default:
			cl.resp, cl.out = m, out
			close(cl.done)
		}
		return nil
	}
	return fmt.Errorf("unexpected response op %d: %w", m.Op, s3wire.ErrProtocol)
}

// newID returns a fresh request or object ID.
func (c *helperConn) newID() uint64 { return c.ids.Add(1) }

// send writes one frame. A failed write leaves the stream unusable: the
// helper is killed, and readLoop fails what is pending.
func (c *helperConn) send(m *s3wire.Msg, payload []byte) error {
	c.wmu.Lock()
	err := s3wire.WriteFrame(c.w, m, payload)
	c.wmu.Unlock()
	if err != nil && !errors.Is(err, s3wire.ErrProtocol) {
		c.kill()
	}
	return err
}

// call sends request m with payload and waits for its response. If dst is
// not nil it receives the OpData of the answer. If ctx ends first, the
// helper is told to cancel the request and call returns ctx.Err() at once.
// The error of a failed request is rebuilt from its code and text.
func (c *helperConn) call(ctx context.Context, m *s3wire.Msg, payload, dst []byte) (*s3wire.Msg, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	m.ID = c.newID()
	cl := &call{done: make(chan struct{}), dst: dst}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, nil, c.err
	}
	c.pending[m.ID] = cl
	c.mu.Unlock()
	if err := c.send(m, payload); errors.Is(err, s3wire.ErrProtocol) {
		// Nothing was sent.
		c.mu.Lock()
		delete(c.pending, m.ID)
		c.mu.Unlock()
		return nil, nil, err
	}
	// After another send error, the killed helper's output ends and
	// readLoop fails the call.
	select {
	case <-cl.done:
	case <-ctx.Done():
		// Sent on the side: a helper that does not read would block the
		// send, and the caller must return now.
		go func() { _ = c.send(&s3wire.Msg{Op: s3wire.OpCancel, ID: m.ID}, nil) }()
		cl.mu.Lock()
		cl.abandoned = true
		cl.mu.Unlock()
		c.mu.Lock()
		delete(c.pending, m.ID)
		c.mu.Unlock()
		return nil, nil, ctx.Err()
	}
	if cl.err != nil {
		return nil, nil, cl.err
	}
	if cl.resp.Failed {
		return nil, nil, s3WireError(cl.resp.Code, cl.resp.Err)
	}
	return &cl.resp, cl.out, nil
}

// start sends request m with payload and returns without waiting: cb is
// called with the request's error when its response arrives (on the read
// loop: it must not block), or at once if it cannot be sent.
func (c *helperConn) start(m *s3wire.Msg, payload []byte, cb func(error)) {
	m.ID = c.newID()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		cb(err)
		return
	}
	c.pending[m.ID] = &call{cb: cb}
	c.mu.Unlock()
	if err := c.send(m, payload); errors.Is(err, s3wire.ErrProtocol) {
		c.mu.Lock()
		_, ok := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ok {
			cb(err)
		}
	}
}

// failMessage is how a blob writer's failure crosses to the helper.
func failMessage(err error) *s3wire.Msg {
	if err == nil {
		err = errors.New("blob write failed")
	}
	return &s3wire.Msg{Op: s3wire.OpFail, Failed: true, Code: S3WireCode(err), Err: err.Error()}
}
