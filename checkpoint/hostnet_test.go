package checkpoint

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
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
// established at the save fails in the sandbox with ECONNRESET; its bound
// UDP socket is bound again and answers on the same port. The image shows
// the mode and the listener; a restore with another mode, and a second
// restore while the first holds the port, fail with one line (the latter
// naming the port) and leave nothing.
func TestHostNetworkAcrossRestore(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	id := strings.TrimSpace(e.must("run", "-d", "--network", "host", "--stdout", out, "--stderr", out, "--", program(t, "hostecho"), "udp"))
	port := hostPort(t, out, "port")
	uport := hostPort(t, out, "udp")
	udpEcho(t, uport, "dgram before")
	c := echoConn(t, port, "before")
	defer c.Close()
	waitLine(t, out, "got before")

	uri := lastLine(e.must("save", id))
	e.waitGone(id)
	info := e.must("inspect", uri)
	for _, want := range []string{"network:", fmt.Sprintf("tcp 127.0.0.1:%d (host)", port), fmt.Sprintf("udp 127.0.0.1:%d (host)", uport)} {
		if !strings.Contains(info, want) {
			t.Errorf("snap inspect does not show %q:\n%s", want, info)
		}
	}
	if !regexp.MustCompile(`network:\s+host\n`).MatchString(info) {
		t.Errorf("snap inspect does not show the network mode host:\n%s", info)
	}
	if msg := e.mustFail("restore", uri, "--network", "sandbox"); !strings.Contains(msg, "host") {
		t.Errorf("restore of a host network image with --network sandbox: %q, want the image's mode named", msg)
	}

	_, rout := e.restoreDetached(uri, "")
	c2 := echoConn(t, port, "after")
	defer c2.Close()
	waitLine(t, rout, "got after")
	waitLine(t, rout, "error ECONNRESET")
	udpEcho(t, uport, "dgram after")

	before := e.must("ps")
	msg := e.mustFail("restore", uri)
	if !strings.Contains(msg, strconv.Itoa(port)) || !strings.Contains(msg, "address already in use") {
		t.Errorf("restore on a taken host port: %q, want it named, in use", msg)
	}
	if after := e.must("ps"); after != before {
		t.Errorf("a failed restore left a sandbox:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// udpEcho sends line to 127.0.0.1:port and waits for "echo: " and it,
// sending again while nothing comes (a datagram may be dropped while the
// sandbox resumes).
func udpEcho(t *testing.T, port int, line string) {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	var got string
	for range 300 {
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			got = string(buf[:n])
			break
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			time.Sleep(20 * time.Millisecond) // refused: not published yet
		}
	}
	if want := "echo: " + line; got != want {
		t.Fatalf("UDP echo of %q on host port %d = %q, want %q", line, port, got, want)
	}
}

// TestPublishUDPAcrossRestore: -p HOSTPORT:PORT/udp relays a host
// sender's datagrams to the sandbox's UDP socket on PORT and its replies
// back; the mapping is saved, shown by snap inspect, and published again
// by a restore, whose server answers too.
func TestPublishUDPAcrossRestore(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	var id string
	var port int
	for range publishRetries {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		r := e.snap("run", "-d", "--stdout", out, "--stderr", out, "-p", fmt.Sprintf("%d:5353/udp", port),
			"--", program(t, "hostecho"), "udp", "5353")
		if r.code == 0 {
			id = strings.TrimSpace(r.stdout)
			break
		}
		if !strings.Contains(r.stderr, "address already in use") {
			t.Fatalf("snap run -p %d:5353/udp = exit %d, stderr %q", port, r.code, r.stderr)
		}
	}
	if id == "" {
		t.Fatalf("no free host UDP port in %d attempts", publishRetries)
	}
	hostPort(t, out, "udp")
	udpEcho(t, port, "one")
	waitLine(t, out, "udp got one")

	uri := lastLine(e.must("save", id))
	// The port is free once the save returns, before the sentry exits.
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("host port %d after the save returned: %v", port, err)
	}
	pc.Close()
	e.waitGone(id)
	if info, want := e.must("inspect", uri), fmt.Sprintf("127.0.0.1:%d:5353/udp", port); !strings.Contains(info, want) {
		t.Errorf("snap inspect does not show %q:\n%s", want, info)
	}
	_, rout := e.restoreDetached(uri, "")
	udpEcho(t, port, "two")
	waitLine(t, rout, "udp got two")
}

// TestMigrateHostNetwork: a --network host server migrated between two
// state directories of this machine answers on its TCP and UDP ports at
// the target (the source frees them after the target restored the
// sandbox, the target binds them before it runs), and the connection
// established before the migration fails there with ECONNRESET; also when
// the listener, and so that connection at the source, has no SO_REUSEADDR
// (the source lends it for the target's bind).
func TestMigrateHostNetwork(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{name: "reuseaddr", args: []string{"udp"}},
		{name: "no-reuseaddr", args: []string{"noreuse", "udp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.token("tok", "correct horse")
			out := filepath.Join(e.dir, "out")
			argv := append([]string{"run", "-d", "--network", "host", "--stdout", out, "--stderr", out, "--", program(t, "hostecho")}, tc.args...)
			id := strings.TrimSpace(e.must(argv...))
			port := hostPort(t, out, "port")
			uport := hostPort(t, out, "udp")
			c := echoConn(t, port, "before")
			defer c.Close()
			waitLine(t, out, "got before")

			r := startReceiver(t, tok)
			e.must("migrate", id, "tcp://"+r.addr, "--token-file", tok)
			if err := r.wait(); err != nil {
				t.Fatalf("snap receive: %v", err)
			}
			e.waitGone(id)
			c2 := echoConn(t, port, "after")
			defer c2.Close()
			waitLine(t, r.out, "got after")
			waitLine(t, r.out, "error ECONNRESET")
			udpEcho(t, uport, "dgram after")
		})
	}
}

// TestPoolHostNetwork: members of a --network host image wait without
// binding its port; the first taken listens on it and answers, a second
// take while it does fails with one line naming the port and leaves that
// member waiting (as does a take with -p, refused), and once the first is
// gone the next take answers on the port.
func TestPoolHostNetwork(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "out")
	id := strings.TrimSpace(e.must("run", "-d", "--network", "host", "--stdout", out, "--stderr", out, "--", program(t, "hostecho")))
	port := hostPort(t, out, "port")
	uri := lastLine(e.must("save", id, "--to", filepath.Join(e.dir, "echo")))
	e.waitGone(id)
	e.createPool("echo", uri, 2)

	out1 := filepath.Join(e.dir, "out1")
	id1 := strings.TrimSpace(e.must("pool", "take", "echo", "-d", "--stdout", out1, "--stderr", out1))
	c := echoConn(t, port, "first")
	c.Close()
	waitLine(t, out1, "got first")

	before := e.statuses("waiting")
	for deadline := time.Now().Add(60 * time.Second); len(before) < 2 && time.Now().Before(deadline); before = e.statuses("waiting") {
		time.Sleep(20 * time.Millisecond) // the replacement of the member taken
	}
	msg := e.mustFail("pool", "take", "echo", "-d")
	if !strings.Contains(msg, strconv.Itoa(port)) || !strings.Contains(msg, "address already in use") || strings.Contains(msg, "\n") {
		t.Errorf("take while the port is taken: %q, want one line naming port %d, in use", msg, port)
	}
	if after := e.statuses("waiting"); !slices.Equal(after, before) {
		t.Errorf("waiting members after the failed take %q, want %q as before", after, before)
	}
	msg = e.mustFail("pool", "take", "echo", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:8000", port))
	if !strings.Contains(msg, "--network host") || strings.Contains(msg, "\n") {
		t.Errorf("take -p of a --network host member: %q, want one line saying it publishes no port", msg)
	}
	if after := e.statuses("waiting"); !slices.Equal(after, before) {
		t.Errorf("waiting members after the take with -p %q, want %q as before", after, before)
	}

	e.must("kill", id1, "KILL")
	e.waitGone(id1)
	out2 := filepath.Join(e.dir, "out2")
	e.must("pool", "take", "echo", "-d", "--stdout", out2, "--stderr", out2)
	c = echoConn(t, port, "second")
	c.Close()
	waitLine(t, out2, "got second")
}
