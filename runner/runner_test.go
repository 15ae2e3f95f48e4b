package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	in := Request{Version: ProtocolVersion, ID: 7, Type: ReqSave, Save: &SaveRequest{To: "s3://b/p/n", LeaveRunning: true, Env: map[string]string{"HOME": "/h"}}}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, &in); err != nil {
		t.Fatalf("WriteFrame = %v", err)
	}
	var out Request
	if err := ReadFrame(&buf, &out); err != nil {
		t.Fatalf("ReadFrame = %v", err)
	}
	if out.ID != in.ID || out.Type != in.Type || out.Save == nil || !reflect.DeepEqual(*out.Save, *in.Save) {
		t.Errorf("ReadFrame(WriteFrame(%+v)) = %+v", in, out)
	}
}

func TestReadFrameBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"truncated header", []byte{0, 0}},
		{"oversized", []byte{0xff, 0xff, 0xff, 0xff}},
		{"truncated body", []byte{0, 0, 0, 10, 1, 2}},
		{"not msgpack", []byte{0, 0, 0, 1, 0xc1}},
		{"wrong shape", []byte{0, 0, 0, 1, 0x05}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := ReadFrame(bytes.NewReader(tc.in), &r)
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("ReadFrame(%x) = %v, want ErrProtocol", tc.in, err)
			}
		})
	}
}

func TestRemoteErrorCodes(t *testing.T) {
	for _, want := range []error{ErrBusy, ErrUnsupported, ErrBadSignal, ErrNotRunning, ErrProtocol} {
		w := toWire(errors.Join(errors.New("context"), want))
		got := &RemoteError{Code: w.Code, Message: w.Message}
		if !errors.Is(got, want) {
			t.Errorf("RemoteError(toWire(%v)) does not match %v (code %q)", want, want, w.Code)
		}
	}
	if w := toWire(errors.New("other")); w.Code != "failed" {
		t.Errorf("toWire(other).Code = %q, want failed", w.Code)
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"15", 15}, {"TERM", 15}, {"sigterm", 15}, {"SIGKILL", 9}, {"usr1", 10},
		{"RTMIN", 34}, {"SIGRTMIN+2", 36}, {"RTMAX-1", 63}, {"64", 64},
		{"0", -1}, {"65", -1}, {"NOPE", -1}, {"RTMIN-1", -1}, {"", -1},
	} {
		got, err := ParseSignal(tc.in)
		if tc.want < 0 {
			if !errors.Is(err, ErrBadSignal) {
				t.Errorf("ParseSignal(%q) = %d, %v, want ErrBadSignal", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSignal(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"abc123", true}, {"my-box_1.2", true}, {"", false}, {".hidden", false},
		{"a/b", false}, {"..", false}, {"a b", false}, {strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), false},
	} {
		err := ValidateID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadID) {
			t.Errorf("ValidateID(%q) = %v, want ErrBadID", tc.id, err)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if err := ValidateID(id); err != nil || len(id) != 12 || seen[id] {
			t.Fatalf("NewID() = %q (err %v, seen %v)", id, err, seen[id])
		}
		seen[id] = true
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := &Metadata{ID: "x", PID: 12, Status: StatusExited, Program: "/bin/true", Argv: []string{"true"},
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Exit: &ExitStatus{Signal: 9}}
	if err := WriteMetadata(dir, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.PID != in.PID || !out.Created.Equal(in.Created) || out.Exit == nil || *out.Exit != *in.Exit {
		t.Errorf("ReadMetadata(WriteMetadata(%+v)) = %+v", in, out)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory after WriteMetadata has %d entries, want 1 (no temporary left)", len(ents))
	}
	for _, tc := range []struct{ name, content string }{
		{"newer version", `{"version": 99, "id": "x"}`},
		{"not json", `{`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, metaFile), []byte(tc.content), 0o600)
			if m, err := ReadMetadata(dir); err == nil {
				t.Errorf("ReadMetadata(%s) = %+v, want an error", tc.content, m)
			}
		})
	}
	if _, err := ReadMetadata(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadMetadata(empty dir) = %v, want fs.ErrNotExist", err)
	}
}

// deadPID returns the PID and start time of a process that has exited.
func deadPID(t *testing.T) (int, uint64) {
	t.Helper()
	p, err := os.StartProcess(testdataProgram(t, "true"), []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	start, _ := procStartTime(p.Pid)
	p.Wait()
	return p.Pid, start + 1
}

func TestReserve(t *testing.T) {
	sd := StateDir{Root: filepath.Join(t.TempDir(), "state")}
	a := &Metadata{ID: "box", PID: os.Getpid(), Created: time.Now()}
	if err := sd.Reserve(a); err != nil {
		t.Fatalf("Reserve(box) = %v", err)
	}
	if fi, err := os.Stat(sd.Dir("box")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("Stat(dir) = %v, %v, want mode 0700", fi, err)
	}
	if err := sd.Reserve(&Metadata{ID: "box"}); !errors.Is(err, ErrIDTaken) {
		t.Errorf("Reserve(box) again = %v, want ErrIDTaken", err)
	}
	if err := sd.Reserve(&Metadata{ID: "../x"}); !errors.Is(err, ErrBadID) {
		t.Errorf("Reserve(../x) = %v, want ErrBadID", err)
	}
	// An ended sandbox's ID can be taken again.
	a.Status = StatusExited
	WriteMetadata(sd.Dir("box"), a)
	if err := sd.Reserve(&Metadata{ID: "box", PID: os.Getpid()}); err != nil {
		t.Errorf("Reserve(box) after exit = %v, want nil", err)
	}
	r := &Metadata{PID: os.Getpid()}
	if err := sd.Reserve(r); err != nil || len(r.ID) != 12 {
		t.Errorf("Reserve(random) = %v, id %q", err, r.ID)
	}
}

func TestRefreshMarksDead(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	pid, start := deadPID(t)
	m := &Metadata{ID: "gone", PID: pid, PIDStart: start, Status: StatusRunning, Created: time.Now()}
	if err := sd.Reserve(m); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(sd.SocketPath("gone"), nil, 0o600)
	live := &Metadata{ID: "live", PID: os.Getpid(), Status: StatusRunning, Created: time.Now().Add(time.Second)}
	live.PIDStart, _ = procStartTime(os.Getpid())
	if err := sd.Reserve(live); err != nil {
		t.Fatal(err)
	}
	list, err := sd.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List() = %v, %v, want 2 entries", list, err)
	}
	if list[0].ID != "gone" || list[0].Status != StatusDead {
		t.Errorf("List()[0] = %s %s, want gone dead", list[0].ID, list[0].Status)
	}
	if list[1].ID != "live" || list[1].Status != StatusRunning {
		t.Errorf("List()[1] = %s %s, want live running", list[1].ID, list[1].Status)
	}
	if _, err := os.Stat(sd.SocketPath("gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket of dead sandbox: Stat = %v, want removed", err)
	}
	if m, _ := ReadMetadata(sd.Dir("gone")); m == nil || m.Status != StatusDead {
		t.Errorf("meta of dead sandbox = %+v, want status dead on disk", m)
	}
	if _, err := Wait(context.Background(), sd, "gone"); !errors.Is(err, ErrSentryDied) {
		t.Errorf("Wait(gone) = %v, want ErrSentryDied", err)
	}
	if _, err := sd.Lookup("nope"); !errors.Is(err, ErrUnknownSandbox) {
		t.Errorf("Lookup(nope) = %v, want ErrUnknownSandbox", err)
	}
}

// launch starts a test sentry running argv with stdout to a file.
func launch(t *testing.T, sd StateDir, id string, argv ...string) (*Metadata, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	m, err := Launch(LaunchOptions{StateDir: sd, ID: id, Stdout: out, Program: argv[0], Argv: argv,
		SentryArgs: append([]string{"--"}, argv...), Exe: os.Args[0]})
	if err != nil {
		t.Fatalf("Launch(%v) = %v", argv, err)
	}
	t.Cleanup(func() {
		if m2, err := sd.Lookup(m.ID); err == nil && !Ended(m2.Status) {
			syscall.Kill(m2.PID, syscall.SIGKILL)
		}
	})
	return m, out
}

func TestLaunchKillWait(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	sh := testdataProgram(t, "sh")
	m, out := launch(t, sd, "", sh, "-c", "echo started; exec sleep 60")
	if m.Status != StatusRunning || m.PID == os.Getpid() || len(m.ID) != 12 {
		t.Errorf("Launch() metadata = %+v, want running in another process", m)
	}
	fi, err := os.Stat(sd.SocketPath(m.ID))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&fs.ModeSocket == 0 {
		t.Errorf("Stat(socket) = %v, %v, want a socket of mode 0600", fi, err)
	}
	sid, _ := syscall.Getpgid(m.PID)
	if sid != m.PID {
		t.Errorf("sentry process group = %d, want its own session %d", sid, m.PID)
	}
	ctx := context.Background()
	info, err := Info(ctx, sd, m.ID)
	if err != nil || info.ID != m.ID || info.Program != sh || info.Status != StatusRunning {
		t.Errorf("Info() = %+v, %v", info, err)
	}
	if err := Kill(ctx, sd, m.ID, 0); !errors.Is(err, ErrBadSignal) {
		t.Errorf("Kill(0) = %v, want ErrBadSignal", err)
	}

	waitForOutput(t, out, "started\n")
	// Two waiters, one connected before the kill.
	var wg sync.WaitGroup
	var early ExitStatus
	var earlyErr error
	c, err := Dial(sd, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, err := c.Call(ctx, Request{Type: ReqWait}, nil)
		if err == nil && r.Exit != nil {
			early = *r.Exit
		}
		earlyErr = err
	}()
	if err := Kill(ctx, sd, m.ID, int(syscall.SIGTERM)); err != nil {
		t.Fatalf("Kill(TERM) = %v", err)
	}
	st, err := Wait(ctx, sd, m.ID)
	want := ExitStatus{Signal: int(syscall.SIGTERM)}
	if err != nil || st != want || st.ExitCode() != 143 {
		t.Errorf("Wait() = %v, %v, want %v (143)", st, err, want)
	}
	wg.Wait()
	if earlyErr != nil || early != want {
		t.Errorf("Wait on an early connection = %v, %v, want %v", early, earlyErr, want)
	}
	// After the end: wait again, from the metadata.
	waitGone(t, m.PID)
	st, err = Wait(ctx, sd, m.ID)
	if err != nil || st != want {
		t.Errorf("Wait() after exit = %v, %v, want %v", st, err, want)
	}
	if err := Kill(ctx, sd, m.ID, 15); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill() after exit = %v, want ErrNotRunning", err)
	}
	list, err := sd.List()
	if err != nil || len(list) != 1 || list[0].Status != StatusExited {
		t.Errorf("List() after exit = %+v, %v, want one exited", list, err)
	}
	if b, _ := os.ReadFile(out); string(b) != "started\n" {
		t.Errorf("program stdout = %q, want %q", b, "started\n")
	}
	if _, err := os.Stat(sd.SocketPath(m.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after exit: Stat = %v, want removed", err)
	}
}

// waitForOutput waits until the file at path holds want.
func waitForOutput(t *testing.T, path, want string) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if b, _ := os.ReadFile(path); string(b) == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("output of the program = %q, want %q", b, want)
}

// waitGone waits until the sentry process pid has exited, and reaps it:
// Launch ran in this test process, which is therefore its parent.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait4(%d) = %v", pid, err)
	}
}

func TestLaunchExitCodeAndTakenID(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	sh := testdataProgram(t, "sh")
	m, out := launch(t, sd, "fixed", sh, "-c", "trap 'kill $!; exit 42' TERM; echo ready; sleep 60 & wait")
	if m.ID != "fixed" {
		t.Errorf("Launch(--id fixed).ID = %q", m.ID)
	}
	_, err := Launch(LaunchOptions{StateDir: sd, ID: "fixed", Program: sh, SentryArgs: []string{"--", sh}, Exe: os.Args[0]})
	if !errors.Is(err, ErrIDTaken) {
		t.Errorf("Launch(taken id) = %v, want ErrIDTaken", err)
	}
	waitForOutput(t, out, "ready\n")
	if err := Kill(context.Background(), sd, "fixed", int(syscall.SIGTERM)); err != nil {
		t.Fatalf("Kill(TERM) = %v", err)
	}
	st, err := Wait(context.Background(), sd, "fixed")
	if err != nil || st.ExitCode() != 42 {
		t.Errorf("Wait() = %v, %v, want exit 42", st, err)
	}
}

func TestLaunchFailure(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	_, err := Launch(LaunchOptions{StateDir: sd, ID: "bad", Program: "/nonexistent",
		SentryArgs: []string{"--", "/nonexistent/prog"}, Exe: os.Args[0]})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/prog") {
		t.Errorf("Launch(missing program) = %v, want an error naming it", err)
	}
	m, lerr := sd.Lookup("bad")
	if lerr != nil || m.Status != StatusFailed || m.Error == "" {
		t.Errorf("Lookup(bad) = %+v, %v, want failed with an error", m, lerr)
	}
	if _, err := Launch(LaunchOptions{StateDir: sd, Stdout: "/nonexistent/dir/out", Exe: os.Args[0]}); err == nil {
		t.Errorf("Launch(bad --stdout) = nil, want an error")
	}
}

func TestSentryKilled(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	m, _ := launch(t, sd, "victim", testdataProgram(t, "sleep"), "60")
	done := make(chan error, 1)
	go func() {
		_, err := Wait(context.Background(), sd, "victim")
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter connect (either order is valid)
	syscall.Kill(m.PID, syscall.SIGKILL)
	if err := <-done; !errors.Is(err, ErrSentryDied) {
		t.Errorf("Wait() on a killed sentry = %v, want ErrSentryDied", err)
	}
	if got, _ := sd.Lookup("victim"); got == nil || got.Status != StatusDead {
		t.Errorf("Lookup(victim) = %+v, want dead", got)
	}
}

func TestSaveProtocol(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	m, _ := launch(t, sd, "saver", testdataProgram(t, "sleep"), "60")
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "img")

	// A held save makes a concurrent one busy.
	os.WriteFile(img+".hold", nil, 0o600)
	var progress []Progress
	var uri string
	var saveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		uri, saveErr = Save(ctx, sd, "saver", SaveRequest{To: img, LeaveRunning: true}, func(p Progress) {
			progress = append(progress, p)
		})
	}()
	for i := 0; i < 400; i++ {
		if _, err := os.Stat(img); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := Save(ctx, sd, "saver", SaveRequest{To: img + "2"}, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("Save() during a save = %v, want ErrBusy", err)
	}
	os.Remove(img + ".hold")
	<-done
	if saveErr != nil || uri != "file://"+img {
		t.Errorf("Save(leave running) = %q, %v, want file://%s", uri, saveErr, img)
	}
	if len(progress) != 4 || progress[3].Done != 4 || progress[3].Phase != "memory" {
		t.Errorf("progress events = %+v, want 4 memory events", progress)
	}
	if info, err := Info(ctx, sd, "saver"); err != nil || info.Status != StatusRunning || info.SavedTo != uri {
		t.Errorf("Info() after save --leave-running = %+v, %v", info, err)
	}
	// A failing save leaves it running.
	if _, err := Save(ctx, sd, "saver", SaveRequest{To: img}, nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Save(existing) = %v, want an error", err)
	}
	if info, err := Info(ctx, sd, "saver"); err != nil || info.Status != StatusRunning {
		t.Errorf("Info() after failed save = %+v, %v, want running", info, err)
	}
	// A save without --leave-running stops it; it is then "saved".
	if _, err := Save(ctx, sd, "saver", SaveRequest{To: img + "3"}, nil); err != nil {
		t.Fatalf("Save() = %v", err)
	}
	waitGone(t, m.PID)
	got, err := sd.Lookup("saver")
	if err != nil || got.Status != StatusSaved || got.SavedTo != "file://"+img+"3" || got.Exit != nil {
		t.Errorf("Lookup() after save = %+v, %v, want saved", got, err)
	}
	if _, err := Wait(ctx, sd, "saver"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Wait() after save = %v, want ErrNotRunning", err)
	}
}

func TestLongStateDir(t *testing.T) {
	root := t.TempDir()
	for len(root) < 120 {
		root = filepath.Join(root, "a-rather-long-directory-name")
	}
	sd := StateDir{Root: root}
	m, _ := launch(t, sd, "long", testdataProgram(t, "sh"), "-c", "exit 3")
	st, err := Wait(context.Background(), sd, m.ID)
	if err != nil || st.Code != 3 {
		t.Errorf("Wait() with socket path of %d bytes = %v, %v, want exit 3", len(sd.SocketPath(m.ID)), st, err)
	}
}

// TestCallEnded: a request whose connection broke because the sandbox
// ended meanwhile (its program exited as a save arrived, and the sentry
// closed its socket) fails with ErrNotRunning and says the program ended;
// other failures stay as they are.
func TestCallEnded(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	ctx := context.Background()
	broken := fmt.Errorf("read unix: %w", syscall.ECONNRESET)
	write := func(id, status string) {
		t.Helper()
		if err := os.MkdirAll(sd.Dir(id), 0o700); err != nil {
			t.Fatal(err)
		}
		m := &Metadata{Version: 1, ID: id, Status: status, Exit: &ExitStatus{Code: 3}}
		if err := WriteMetadata(sd.Dir(id), m); err != nil {
			t.Fatal(err)
		}
	}
	write("ended", StatusExited)
	if err := callEnded(ctx, sd, "ended", broken); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "program ended") {
		t.Errorf("callEnded(exited sandbox, %v) = %v, want ErrNotRunning: the program ended", broken, err)
	}
	remote := &RemoteError{Code: "busy", Message: "busy"}
	if err := callEnded(ctx, sd, "ended", remote); err != remote {
		t.Errorf("callEnded(exited sandbox, a sentry's answer) = %v, want the answer", err)
	}
	if err := callEnded(ctx, sd, "nosuch", broken); err != broken {
		t.Errorf("callEnded(unknown sandbox, %v) = %v, want it unchanged", broken, err)
	}
	if err := callEnded(ctx, sd, "ended", nil); err != nil {
		t.Errorf("callEnded(nil) = %v, want nil", err)
	}
}
