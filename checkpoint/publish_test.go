package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"snapshotter/internal/prereq"
)

// httpPort is the port the sandboxed http.server listens on.
const httpPort = "8000"

// publishRetries bounds the attempts at a host port that another process
// took between the test's pick and snap's listen.
const publishRetries = 20

// pickPort returns a host port the host had free a moment ago.
func pickPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// publishing runs snap with args plus -p 127.0.0.1:PORT:8000 on a port it
// picks, again on another port when that one was taken meanwhile; it
// returns snap's stdout and the host port.
func (e *env) publishing(args ...string) (string, int) {
	e.t.Helper()
	for range publishRetries {
		port := pickPort(e.t)
		p := fmt.Sprintf("127.0.0.1:%d:%s", port, httpPort)
		full := append(append([]string{}, args[:len(args)-len(afterDash(args))]...), "-p", p)
		full = append(full, afterDash(args)...)
		r := e.snap(full...)
		if r.code == 0 {
			return r.stdout, port
		}
		if !strings.Contains(r.stderr, "address already in use") {
			e.t.Fatalf("snap %s = exit %d, stderr %q", strings.Join(full, " "), r.code, r.stderr)
		}
	}
	e.t.Fatalf("no free host port in %d attempts", publishRetries)
	return "", 0
}

// afterDash returns args from "--" on (nothing if there is none).
func afterDash(args []string) []string {
	for i, a := range args {
		if a == "--" {
			return args[i:]
		}
	}
	return nil
}

// get fetches path from 127.0.0.1:port until it answers (the program may
// still be starting or resuming), then requires status 200 and body.
func get(t *testing.T, port int, path, body string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	var err error
	for range 400 {
		var resp *http.Response
		if resp, err = c.Get(url); err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || rerr != nil || string(b) != body {
				t.Fatalf("GET %s = %d %q (%v), want 200 %q", url, resp.StatusCode, b, rerr, body)
			}
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, err)
}

// httpServer starts Python's http.server in a sandbox of e, serving a
// directory whose hello.txt holds body on the sandbox's 127.0.0.1:8000,
// published on a free host port; it returns the sandbox's ID and that
// port once the server has answered.
func (e *env) httpServer(t *testing.T, body string) (string, int) {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(t, "Debian's python3: %v", err)
	}
	www := filepath.Join(e.dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "hello.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(e.dir, "out")
	stdout, port := e.publishing("run", "-d", "--stdout", out, "--stderr", out,
		"--", py, "-m", "http.server", "--bind", "127.0.0.1", "--directory", www, httpPort)
	get(t, port, "/hello.txt", body)
	return strings.TrimSpace(stdout), port
}

// takenPort returns a host port of 127.0.0.1 that a listener of the test
// holds until it ends.
func takenPort(t *testing.T) int {
	t.Helper()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	return taken.Addr().(*net.TCPAddr).Port
}

// TestPublishAcrossRestores: Python's http.server, listening on the
// sandbox's 127.0.0.1:8000 and published on a host port, answers the
// host, also after a save that leaves it running; a connection from
// outside open at the save is reset; the image
// lists the listener and the published port; three restored copies, each
// published on its own host port, all answer; a restore whose host port
// is taken fails with one line naming it and starts nothing.
func TestPublishAcrossRestores(t *testing.T) {
	e := newEnv(t)
	id, port := e.httpServer(t, "hello from the sandbox\n")
	e.must("save", id, "--leave-running", "--to", filepath.Join(e.dir, "running"))
	get(t, port, "/hello.txt", "hello from the sandbox\n") // served again after the save

	outside, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	if _, err := outside.Write([]byte("GET /hello.txt HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	uri := lastLine(e.must("save", id))
	e.waitGone(id)
	outside.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := outside.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read of a connection open at the save = %v, want ECONNRESET", err)
	}

	info := e.must("inspect", uri)
	for _, want := range []string{"tcp 127.0.0.1:" + httpPort, fmt.Sprintf("127.0.0.1:%d:%s", port, httpPort)} {
		if !strings.Contains(info, want) {
			t.Errorf("snap inspect does not show %q:\n%s", want, info)
		}
	}

	var ports []int
	for i := range 3 {
		rout := filepath.Join(e.dir, "rout"+strconv.Itoa(i))
		_, p := e.publishing("restore", uri, "-d", "--stdout", rout, "--stderr", rout)
		ports = append(ports, p)
	}
	for _, p := range ports {
		get(t, p, "/hello.txt", "hello from the sandbox\n")
	}

	tp := takenPort(t)
	before := e.must("ps")
	msg := e.mustFail("restore", uri, "-p", fmt.Sprintf("127.0.0.1:%d:%s", tp, httpPort))
	if !strings.Contains(msg, strconv.Itoa(tp)) || !strings.Contains(msg, "address already in use") {
		t.Errorf("restore on a taken host port: %q, want it named, in use", msg)
	}
	msg = e.mustFail("run", "-p", fmt.Sprintf("127.0.0.1:%d:%s", tp, httpPort), "--", "/bin/true")
	if !strings.Contains(msg, strconv.Itoa(tp)) {
		t.Errorf("run on a taken host port: %q, want it named", msg)
	}
	if after := e.must("ps"); after != before {
		t.Errorf("a failed publish left a sandbox:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestPoolTakePublish: members of one http.server image taken with -p on
// two host ports both answer; a take whose host port is in use fails with
// one line and leaves the member waiting in the pool.
func TestPoolTakePublish(t *testing.T) {
	e := newEnv(t)
	id, _ := e.httpServer(t, "hello from a member\n")
	uri := lastLine(e.must("save", id, "--to", filepath.Join(e.dir, "web")))
	e.waitGone(id)
	e.createPool("web", uri, 2)

	tp := takenPort(t)
	before := e.statuses("waiting")
	msg := e.mustFail("pool", "take", "web", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:%s", tp, httpPort))
	if !strings.Contains(msg, "address already in use") || strings.Contains(msg, "\n") {
		t.Errorf("take onto a host port in use: %q, want one line saying the address is in use", msg)
	}
	if after := e.statuses("waiting"); !slices.Equal(after, before) {
		t.Errorf("waiting members after the failed take %q, want %q as before", after, before)
	}

	var ports []int
	for range 2 {
		_, p := e.publishing("pool", "take", "web", "-d")
		ports = append(ports, p)
	}
	for _, p := range ports {
		get(t, p, "/hello.txt", "hello from a member\n")
	}
	msg = e.mustFail("pool", "take", "web", "-d", "-p", "nonsense")
	if !strings.Contains(msg, "-p") {
		t.Errorf("take -p nonsense: %q, want it to name -p", msg)
	}
}
