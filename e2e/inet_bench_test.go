package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"snapshotter/internal/prereq"
)

// BenchmarkPublishedHTTP measures an HTTP request to Python's http.server
// from the host (Go's net/http, a new connection per request): under snap
// through a port published with -p, and natively on the host's loopback,
// in the same run. Reported as us/request and native-us/request.
func BenchmarkPublishedHTTP(b *testing.B) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(b, "Debian's python3: %v", err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	server := []string{py, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir}
	nativePort, _ := startServer(b, append(server, "0"))
	snapPort := 0
	for range 20 {
		port := freePort(b)
		argv := append([]string{snap(b), "run", "-p", fmt.Sprintf("127.0.0.1:%d:8000", port), "--"}, server...)
		if _, ok := startServer(b, append(argv, "8000")); ok {
			snapPort = port
			break
		}
	}
	if snapPort == 0 {
		b.Fatal("no free host port to publish on")
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	request := func(port int) time.Duration {
		start := time.Now()
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/hello.txt", port))
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "hello\n" {
			b.Fatalf("GET: %q, %v", body, err)
		}
		return time.Since(start)
	}
	var sb, nat time.Duration
	const n = 50
	for b.Loop() {
		for range n {
			sb += request(snapPort)
			nat += request(nativePort)
		}
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(b.N) / n / float64(time.Microsecond) }
	b.ReportMetric(us(sb), "us/request")
	b.ReportMetric(us(nat), "native-us/request")
}

// freePort returns a host port that was free a moment ago.
func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var servingRE = regexp.MustCompile(`port (\d+)`)

// startServer starts argv (an http.server, natively or under snap run),
// killed at the end of b, and returns the port its first line names; ok is
// false if it failed because a host port was taken.
func startServer(b *testing.B, argv []string) (port int, ok bool) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = baseEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Wait()
		if strings.Contains(stderr.String(), "address already in use") {
			return 0, false
		}
		b.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, stderr.String())
	}
	m := servingRE.FindStringSubmatch(line)
	if m == nil {
		b.Fatalf("%s printed %q", strings.Join(argv, " "), line)
	}
	fmt.Sscan(m[1], &port)
	return port, true
}
