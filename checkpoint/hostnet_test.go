package checkpoint

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostPort waits for the line "PREFIX N" of a sandbox's output and
// returns N.
func hostPort(t *testing.T, out, prefix string) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range lines(out) {
			if p, ok := strings.CutPrefix(l, prefix+" "); ok {
				n, err := strconv.Atoi(p)
				if err != nil {
					t.Fatalf("%s: %q", out, l)
				}
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no %q line in %q", out, prefix, lines(out))
	return 0
}

// echoConn connects to the echo server on 127.0.0.1:port and checks one
// exchange; the caller closes the connection.
func echoConn(t *testing.T, port int, line string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("connect to the sandbox's host port %d: %v", port, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if want := "echo: " + line + "\n"; got != want || err != nil {
		t.Fatalf("echo of %q = %q (%v), want %q", line, got, err, want)
	}
	return c
}

// waitLine waits until the sandbox's output has the line want.
func waitLine(t *testing.T, out, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range lines(out) {
			if l == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no line %q in %q", out, want, lines(out))
}

// TestHostNetworkAcrossRestore: under --network host, a server in the
// sandbox listening on a host port it got by binding port 0 answers a host
// client; it is saved with a connection established and restored: it
// listens on the same port and answers again, and the connection
// established at the save fails in the sandbox with ECONNRESET. The
// image shows the mode and the listener; a second restore while the first
// holds the port fails with one line naming it and leaves nothing.
func TestHostNetworkAcrossRestore(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	id := strings.TrimSpace(e.must("run", "-d", "--network", "host", "--stdout", out, "--stderr", out, "--", program(t, "hostecho")))
	port := hostPort(t, out, "port")
	c := echoConn(t, port, "before")
	defer c.Close()
	waitLine(t, out, "got before")

	uri := lastLine(e.must("save", id))
	e.waitGone(id)
	info := e.must("inspect", uri)
	for _, want := range []string{"host", fmt.Sprintf("tcp 127.0.0.1:%d (host)", port)} {
		if !strings.Contains(info, want) {
			t.Errorf("snap inspect does not show %q:\n%s", want, info)
		}
	}

	_, rout := e.restoreDetached(uri, "")
	c2 := echoConn(t, port, "after")
	defer c2.Close()
	waitLine(t, rout, "got after")
	waitLine(t, rout, "error ECONNRESET")

	before := e.must("ps")
	msg := e.mustFail("restore", uri)
	if !strings.Contains(msg, strconv.Itoa(port)) || !strings.Contains(msg, "address already in use") {
		t.Errorf("restore on a taken host port: %q, want it named, in use", msg)
	}
	if after := e.must("ps"); after != before {
		t.Errorf("a failed restore left a sandbox:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
