package checkpoint

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// receiver is a snap receive -d waiting in another state directory.
type receiver struct {
	e    *env // the target's environment
	addr string
	out  string // the program's output on the target
	cmd  *exec.Cmd
	// stdout is what snap receive printed (the sandbox ID once it runs).
	stdout strings.Builder
	done   chan error
}

// startReceiver starts snap receive -d on a loopback port the host picks,
// with the token in tokenFile, and returns once it listens.
func startReceiver(t *testing.T, tokenFile string) *receiver {
	t.Helper()
	return startReceiverIn(t, newEnv(t), tokenFile)
}

// startReceiverIn is startReceiver in the target environment te.
func startReceiverIn(t testing.TB, te *env, tokenFile string) *receiver {
	t.Helper()
	r := &receiver{e: te, out: filepath.Join(te.dir, "target-out"), done: make(chan error, 1)}
	r.cmd = exec.Command(snapBin, "receive", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "-d",
		"--stdout", r.out, "--stderr", r.out, "--timeout", "2m")
	r.cmd.Env = te.environ()
	r.cmd.Stdout = &r.stdout
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			r.addr = addr
			break
		}
	}
	if r.addr == "" {
		t.Fatalf("snap receive did not say where it listens")
	}
	go func() {
		for sc.Scan() {
		}
		r.done <- r.cmd.Wait()
	}()
	return r
}

// wait waits for snap receive to end and returns its error.
func (r *receiver) wait() error {
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
			return err
		}
		return nil
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("snap receive still running")
	}
}

// token writes a token file in the test directory.
func (e *env) token(name, value string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// startDirty runs dirtycount in e and waits for its first lines.
func (e *env) startDirty(t *testing.T) (string, string) {
	id, out := e.runDetached("", append([]string{program(t, "dirtycount")}, dirtyArgs...)...)
	waitLines(t, out, 2)
	return id, out
}

// checkRunsOn checks that the sandbox still runs at the source after a
// failed migration and keeps its checksums.
func (e *env) checkRunsOn(t *testing.T, id, out string) {
	t.Helper()
	if st := e.meta(id)["status"]; st != "running" {
		t.Errorf("source status after a failed migration = %v, want running", st)
	}
	checkClean(t, "source", waitLines(t, out, len(lines(out))+2))
}

// TestMigrate: dirtycount, rewriting pages all along, moves to a target in
// another state directory: the target's first line follows the source's
// last, every checksum holds on both sides, the source is gone and the
// target runs it.
func TestMigrate(t *testing.T) {
	e := newEnv(t)
	tok := e.token("tok", "correct horse")
	id, out := e.startDirty(t)
	r := startReceiver(t, tok)
	uri := lastLine(e.must("migrate", id, "tcp://"+r.addr, "--token-file", tok))
	if uri != "tcp://"+r.addr {
		t.Errorf("snap migrate printed %q, want tcp://%s", uri, r.addr)
	}
	if err := r.wait(); err != nil {
		t.Fatalf("snap receive: %v", err)
	}
	e.checkMigrated(t, r, id, out)
}

// TestMigrateRefused: a source with the wrong token is refused (and runs
// on) while the target waits on for the right one; a target killed in the
// middle of a transfer, or one whose state directory vanished before the
// sandbox could run there, leaves the sandbox running at the source.
func TestMigrateRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.token("tok", "correct horse")
	id, out := e.startDirty(t)

	t.Run("wrong-token", func(t *testing.T) {
		r := startReceiver(t, tok)
		msg := e.mustFail("migrate", id, "tcp://"+r.addr, "--token-file", e.token("bad", "battery staple"))
		if !strings.Contains(msg, "authentication") {
			t.Errorf("snap migrate with a wrong token: %q, want an authentication failure", msg)
		}
		e.checkRunsOn(t, id, out)
		r.cmd.Process.Kill()
	})
	t.Run("target-killed", func(t *testing.T) {
		r := startReceiver(t, tok)
		mig := exec.Command(snapBin, "migrate", id, "tcp://"+r.addr, "--token-file", tok)
		mig.Env = e.environ()
		var stderr strings.Builder
		mig.Stderr = &stderr
		if err := mig.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the target's sentry once the source is connected, while the
		// memory is on its way.
		tid := r.sandboxID(t)
		pid := r.waitConnected(t, tid)
		syscall.Kill(pid, syscall.SIGKILL)
		if err := mig.Wait(); err == nil {
			t.Fatalf("snap migrate to a killed target succeeded")
		}
		if msg := strings.TrimSpace(stderr.String()); msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("snap migrate stderr = %q, want one line", msg)
		}
		e.checkRunsOn(t, id, out)
	})
	t.Run("target-refuses", func(t *testing.T) {
		r := startReceiver(t, tok)
		tid := r.sandboxID(t)
		// The target's state directory goes: it cannot record the
		// sandbox, so it refuses it before it runs there.
		if err := os.RemoveAll(filepath.Join(r.e.dir, "state", tid)); err != nil {
			t.Fatal(err)
		}
		msg := e.mustFail("migrate", id, "tcp://"+r.addr, "--token-file", tok)
		if !strings.Contains(msg, "metadata") {
			t.Errorf("snap migrate to a refusing target: %q, want the target's reason", msg)
		}
		e.checkRunsOn(t, id, out)
	})
}

// sandboxID returns the ID of the sandbox the receiver reserved.
func (r *receiver) sandboxID(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(r.e.dir, "state"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("target state directory: %v, %d entries, want one sandbox", err, len(ents))
	}
	return ents[0].Name()
}

// waitConnected waits until the target's sentry log says a source
// connected, and returns the sentry's pid.
func (r *receiver) waitConnected(t *testing.T, tid string) int {
	t.Helper()
	logPath := filepath.Join(r.e.dir, "state", tid, "sentry.log")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "connected") {
			pid, _ := r.e.meta(tid)["pid"].(float64)
			return int(pid)
		}
	}
	t.Fatalf("no source connected to the target")
	return 0
}

// TestMigrateVia: snap migrate --via a store writes a chain of images (the
// last with the sandbox stopped) and prints the last one; restored in
// another state directory, the program's first line follows the source's
// last, every checksum holding.
func TestMigrateVia(t *testing.T) {
	e := newEnv(t)
	id, out := e.startDirty(t)
	store := "file://" + filepath.Join(e.dir, "via")
	uri := lastLine(e.must("migrate", id, "--via", store))
	if !strings.HasPrefix(uri, store+"/"+id+"-via-") {
		t.Errorf("snap migrate --via printed %q, want an image in %s", uri, store)
	}
	e.waitGone(id)
	if r := e.inspect(uri); r.Parent == nil {
		t.Errorf("last image %s has no parent, want the chain's previous image", uri)
	}
	src := lines(out)
	checkClean(t, "source", src)
	te := newEnv(t)
	_, rout := te.restoreDetached(uri, "")
	got := waitLines(t, rout, 2)
	checkClean(t, "target", got)
	if want := fmt.Sprintf("count %d sum OK", number(t, src[len(src)-1])+1); got[0] != want {
		t.Errorf("restored first line = %q, want %q", got[0], want)
	}
}

// TestMigrateForeground: snap receive without -d runs the sandbox it
// receives in the foreground, with its own stdout, and exits with the
// program's status.
func TestMigrateForeground(t *testing.T) {
	e := newEnv(t)
	tok := e.token("tok", "correct horse")
	// 40 lines: it ends by itself soon after it moved.
	id, out := e.runDetached("", program(t, "dirtycount"), "32", "8192", "40")
	waitLines(t, out, 2)
	te := newEnv(t)
	rcv := exec.Command(snapBin, "receive", "--listen", "127.0.0.1:0", "--token-file", tok)
	rcv.Env = te.environ()
	var rout strings.Builder
	rcv.Stdout = &rout
	stderr, err := rcv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcv.Process.Kill() })
	sc := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && sc.Scan() {
		addr, _ = strings.CutPrefix(sc.Text(), "listening on ")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	e.must("migrate", id, "tcp://"+addr, "--token-file", tok)
	if err := rcv.Wait(); err != nil {
		t.Fatalf("snap receive: %v (stdout %q)", err, rout.String())
	}
	src, got := lines(out), strings.Split(strings.TrimSpace(rout.String()), "\n")
	checkClean(t, "source", src)
	checkClean(t, "target", got)
	if want := fmt.Sprintf("count %d sum OK", number(t, src[len(src)-1])+1); got[0] != want {
		t.Errorf("target's first line = %q, want %q", got[0], want)
	}
	if last := got[len(got)-1]; last != "count 40 sum OK" {
		t.Errorf("target's last line = %q, want count 40 sum OK", last)
	}
}

// checkMigrated checks a migration of e's sandbox id (output in out) to
// receiver r that succeeded: the source is saved and gone, the target
// runs, and its first line follows the source's last, all clean.
func (e *env) checkMigrated(t *testing.T, r *receiver, id, out string) {
	t.Helper()
	tid := strings.TrimSpace(r.stdout.String())
	e.waitGone(id)
	if st := e.meta(id)["status"]; st != "saved" {
		t.Errorf("source status = %v, want saved", st)
	}
	src := lines(out)
	checkClean(t, "source", src)
	got := waitLines(t, r.out, 3)
	checkClean(t, "target", got)
	if want := fmt.Sprintf("count %d sum OK", number(t, src[len(src)-1])+1); got[0] != want {
		t.Errorf("target's first line = %q, want %q (source's last: %q)", got[0], want, src[len(src)-1])
	}
	if st := r.e.meta(tid)["status"]; st != "running" {
		t.Errorf("target sandbox %s status = %v, want running", tid, st)
	}
}
