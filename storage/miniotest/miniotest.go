// Package miniotest runs a real MinIO server for tests: on 127.0.0.1, a
// random port and a temporary data directory, stopped when the test ends.
// The binary is looked up on PATH, then in $GOPATH/bin (where .ci/run
// installs it); if absent the test is skipped, or failed under
// SNAP_REQUIRE_ALL=1.
package miniotest

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"snapshotter/internal/prereq"
)

// Credentials of the test server.
const (
	AccessKey = "snaptest"
	SecretKey = "snaptest-secret"
)

// Server is a running MinIO.
type Server struct {
	// Endpoint is host:port (plain http).
	Endpoint string
	bin      string
	dataDir  string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Binary returns the MinIO binary's path, or calls prereq.Missing.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	p := filepath.Join(filepath.SplitList(gopath)[0], "bin", "minio")
	if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
		return p
	}
	prereq.Missing(t, "minio not on PATH nor at %s (.ci/run installs it)", p)
	return ""
}

// errExited is returned by start when the server exited before it was
// ready, typically because another process took a port it was given.
var errExited = errors.New("minio exited during startup")

// startAttempts bounds how many free ports Start tries: a port found free
// can be taken by another process before MinIO binds it.
const startAttempts = 5

// Start starts a server and registers its stop with t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dataDir: t.TempDir()}
	s.logPath = filepath.Join(t.TempDir(), "minio.log")
	var err error
	for range startAttempts {
		s.Endpoint, err = freeAddr()
		if err != nil {
			t.Fatalf("pick a port: %v", err)
		}
		if err = s.start(); !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	_, port, _ := net.SplitHostPort(s.Endpoint)
	p, _ := strconv.Atoi(port)
	// The console listens on another port; it is not used but must be free.
	console, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", p),
		"--console-address", console, s.dataDir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			// Live is not ready: also wait until the S3 API answers.
			if resp.StatusCode == http.StatusOK && s.answers() {
				return nil
			}
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("%w: %s", errExited, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.Kill()
	return fmt.Errorf("minio not ready on %s after 60s", s.Endpoint)
}

func (s *Server) answers() bool {
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), MaxRetries: 1})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.ListBuckets(ctx)
	return err == nil
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5s).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Process.Signal(syscall.SIGCONT) // if paused
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Pause stops the server's process (SIGSTOP): it keeps accepting
// connections (the kernel does) but answers nothing, as a hung server.
// Resume, Stop and Kill end the pause.
func (s *Server) Pause() {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGSTOP)
		waitStopped(s.cmd.Process.Pid)
	}
}

// waitStopped returns once every thread of process pid is stopped: kill
// only queues SIGSTOP, and a thread that is running may still answer a
// request before it stops. It gives up after ten seconds (the test then
// sees a server that answers).
func waitStopped(pid int) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if allStopped(dir) {
			return
		}
	}
}

// allStopped reports whether every thread listed in dir (/proc/PID/task)
// is in state T (stopped).
func allStopped(dir string) bool {
	tids, err := os.ReadDir(dir)
	if err != nil || len(tids) == 0 {
		return false
	}
	for _, tid := range tids {
		b, err := os.ReadFile(filepath.Join(dir, tid.Name(), "stat"))
		if err != nil {
			return false
		}
		// The state follows the command, which is in parentheses and
		// may hold spaces or parentheses itself.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Client returns a minio-go client for the server.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, name string) {
	t.Helper()
	if err := s.Client(t).MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

// BuildS3Helper builds the S3 helper snap-s3 (snapshotter/cmd/snap-s3)
// into dir, as the Makefile builds it, and returns its path. Test mains
// of packages that use S3 stores call it and set storage.S3HelperEnv to
// the result (or build it next to the snap binary they run).
func BuildS3Helper(dir string) (string, error) {
	bin := filepath.Join(dir, "snap-s3")
	cmd := exec.Command("go", "build", "-o", bin, "snapshotter/cmd/snap-s3")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build snapshotter/cmd/snap-s3: %v\n%s", err, out)
	}
	return bin, nil
}
