package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"snapshotter/internal/smaps"
	"snapshotter/runner"
)

// poolImage saves poolmember (testdata/c/poolmember.c) once it printed
// "ready", blocked reading its stdin, and returns the image's URI.
func (e *env) poolImage(name string) string {
	e.t.Helper()
	e.fifo(name + ".in")
	id, out := e.runDetached(filepath.Join(e.dir, name+".in"), program(e.t, "poolmember"))
	uri, last := e.saveAfter(id, out, 1, "--to", "file://"+filepath.Join(e.dir, name))
	if last != "ready" {
		e.t.Fatalf("poolmember printed %q before the save, want ready", last)
	}
	return uri
}

// createPool creates pool name of size members of uri, and removes it at
// the end of the test (before the remaining sandboxes are killed).
func (e *env) createPool(name, uri string, size int) {
	e.t.Helper()
	e.must("pool", "create", name, "--image", uri, "--size", fmt.Sprint(size))
	e.t.Cleanup(func() { e.removePool(name) })
}

// removePool waits for the pool's replenisher, if one works, and removes
// the pool (if it still exists).
func (e *env) removePool(name string) {
	dir := filepath.Join(e.dir, "state", ".pools", name)
	if f, err := os.Open(filepath.Join(dir, "lock")); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		defer f.Close()
	}
	if _, err := os.Stat(dir); err == nil {
		e.snap("pool", "rm", name)
	}
}

// poolRow returns the columns of pool name in snap pool ls (nil if absent).
func (e *env) poolRow(name string) []string {
	e.t.Helper()
	for _, l := range strings.Split(e.must("pool", "ls"), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// waitPoolFull waits until pool name has size waiting members, as snap
// pool ls says.
func (e *env) waitPoolFull(name string, size int) {
	e.t.Helper()
	want := fmt.Sprint(size)
	for i := 0; i < 3000; i++ {
		if f := e.poolRow(name); len(f) >= 4 && f[3] == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("pool %s: never %d waiting members: %q", name, size, e.poolRow(name))
}

// statuses returns the IDs of the sandboxes snap ps lists with status.
func (e *env) statuses(status string) []string {
	e.t.Helper()
	var ids []string
	for _, l := range strings.Split(e.must("ps"), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 2 && f[2] == status {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// takeDetached takes a member of pool with commands on its stdin and its
// stdout and stderr in files; returns the ID and the two files.
func (e *env) takeDetached(pool, commands string, extra ...string) (id, out, errf string) {
	e.t.Helper()
	in := filepath.Join(e.dir, fmt.Sprintf("take-%d.in", time.Now().UnixNano()))
	if err := os.WriteFile(in, []byte(commands), 0o600); err != nil {
		e.t.Fatal(err)
	}
	out, errf = in+".out", in+".err"
	args := append([]string{"pool", "take", pool, "-d", "--stdin", in, "--stdout", out, "--stderr", errf}, extra...)
	return strings.TrimSpace(e.must(args...)), out, errf
}

// TestPoolLifecycle creates a pool, takes members detached and in the
// foreground (through the fast path and the full one), checks their
// output files, that the pool is refilled, that a taken member is an
// ordinary sandbox, and that rm ends the waiting members only.
func TestPoolLifecycle(t *testing.T) {
	e := newEnv(t)
	uri := e.poolImage("img")
	e.createPool("p", uri, 2)
	if f := e.poolRow("p"); len(f) < 4 || f[1] != uri || f[2] != "2" || f[3] != "2" {
		t.Fatalf("pool ls row = %q, want p %s 2 2", f, uri)
	}
	if w := e.statuses("waiting"); len(w) != 2 {
		t.Fatalf("ps: waiting sandboxes %q, want 2", w)
	}
	for _, path := range []struct{ name, env string }{{"entry", ""}, {"full", "SNAP_NO_FAST_TAKE=1"}} {
		t.Run(path.name, func(t *testing.T) {
			e.extra = []string{path.env}
			defer func() { e.extra = nil }()
			id, out, errf := e.takeDetached("p", "check\nset b\ncheck\n")
			e.must("wait", id) // exit status 0
			wantLines(t, "stdout of "+id, lines(out), "pages hold a", "pages hold b", "bye after 3 commands")
			wantLines(t, "stderr of "+id, lines(errf), "stderr: 3 commands")
			if m := e.meta(id); m["pool"] != "p" || m["taken"] == nil || m["status"] != "exited" {
				t.Errorf("metadata of taken %s: pool %v, taken %v, status %v, want p, a time, exited", id, m["pool"], m["taken"], m["status"])
			}

			// Foreground: snap's own stdio and the program's status.
			cmd := exec.Command(snapBin, "pool", "take", "p")
			cmd.Env = append(e.environ(), path.env)
			cmd.Stdin = strings.NewReader("set c\ncheck\n")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("pool take p (foreground): %v, stderr %q", err, stderr.String())
			}
			wantLines(t, "foreground stdout", strings.Split(strings.TrimSpace(stdout.String()), "\n"), "pages hold c", "bye after 2 commands")
			if got := strings.TrimSpace(stderr.String()); got != "stderr: 2 commands" {
				t.Errorf("foreground stderr = %q, want %q", got, "stderr: 2 commands")
			}
			e.waitPoolFull("p", 2)

			// A signal to a foreground take reaches the program.
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			outPath := filepath.Join(e.dir, "signalled-"+path.name)
			outf, err := os.Create(outPath)
			if err != nil {
				t.Fatal(err)
			}
			defer outf.Close()
			cmd = exec.Command(snapBin, "pool", "take", "p")
			cmd.Env = append(e.environ(), path.env)
			cmd.Stdin, cmd.Stdout = pr, outf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pr.Close()
			pw.WriteString("check\n")
			waitLines(t, outPath, 1)
			cmd.Process.Signal(syscall.SIGTERM)
			err = cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+int(syscall.SIGTERM) {
				t.Errorf("foreground take sent SIGTERM: %v, want exit status %d", err, 128+int(syscall.SIGTERM))
			}
			e.waitPoolFull("p", 2)
		})
	}

	// A taken member is an ordinary sandbox: it saves and is killed.
	e.fifo("held.in")
	held := filepath.Join(e.dir, "held.in")
	id := strings.TrimSpace(e.must("pool", "take", "p", "-d", "--stdin", held))
	e.must("save", id, "--leave-running", "--to", "file://"+filepath.Join(e.dir, "taken"))
	e.waitPoolFull("p", 2)
	e.must("pool", "rm", "p")
	if f := e.poolRow("p"); f != nil {
		t.Errorf("pool ls after rm lists %q", f)
	}
	if w := e.statuses("waiting"); len(w) != 0 {
		t.Errorf("ps after pool rm: waiting sandboxes %q, want none", w)
	}
	if r := e.statuses("running"); !slices.Equal(r, []string{id}) {
		t.Errorf("ps after pool rm: running %q, want the taken %s only", r, id)
	}
	e.must("kill", id, "9")
}

// TestPoolConcurrentTakes has more takers than members, all with --wait:
// each member is taken once, every taker gets one, and each sees only its
// own writes.
func TestPoolConcurrentTakes(t *testing.T) {
	e := newEnv(t)
	e.createPool("p", e.poolImage("img"), 2)
	const takers = 5
	type took struct{ id, out string }
	got := make([]took, takers)
	var wg sync.WaitGroup
	for i := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := string(rune('b' + i))
			id, out, _ := e.takeDetached("p", "set "+c+"\ncheck\n", "--wait")
			got[i] = took{id, out}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, g := range got {
		if g.id == "" || seen[g.id] {
			t.Fatalf("taker %d got member %q; all: %v", i, g.id, got)
		}
		seen[g.id] = true
		e.must("wait", g.id)
		wantLines(t, "stdout of taker "+fmt.Sprint(i), lines(g.out), "pages hold "+string(rune('b'+i)), "bye after 2 commands")
	}
}

// TestPoolImageDeleted takes from a pool whose image was removed: the
// waiting member still runs, replacing it fails with the reason and its
// time in pool ls, and the empty pool is a one-line error, with --wait
// too. Once the image is back, a replenishment fills the pool and clears
// the error.
func TestPoolImageDeleted(t *testing.T) {
	e := newEnv(t)
	uri := e.poolImage("img")
	e.createPool("p", uri, 1)
	kept := filepath.Join(e.dir, "img.kept")
	if out, err := exec.Command("cp", "-a", filepath.Join(e.dir, "img"), kept).CombinedOutput(); err != nil {
		t.Fatalf("cp -a img: %v %s", err, out)
	}
	e.must("rm", uri)
	id, out, _ := e.takeDetached("p", "check\n")
	e.must("wait", id)
	wantLines(t, "stdout", lines(out), "pages hold a", "bye after 1 commands")
	for i := 0; ; i++ {
		if f := e.poolRow("p"); len(f) > 4 {
			if f[3] != "0" {
				t.Errorf("pool ls row %q: want 0 waiting", f)
			}
			break
		}
		if i == 3000 {
			t.Fatalf("pool ls never shows why replacing failed: %q", e.poolRow("p"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	msg := e.mustFail("pool", "take", "p", "-d")
	if !strings.Contains(msg, "no waiting member") {
		t.Errorf("take from the empty pool: %q, want it to say the pool has no waiting member", msg)
	}
	msg = e.mustFail("pool", "take", "p", "-d", "--wait")
	if !strings.Contains(msg, "replacing members fails") {
		t.Errorf("take --wait from the broken pool: %q, want it to say replacing fails", msg)
	}
	if w := e.statuses("waiting"); len(w) != 0 {
		t.Errorf("ps: waiting %q, want none", w)
	}
	f := e.poolRow("p")
	if len(f) < 6 || !strings.Contains(strings.Join(f[5:], " "), "not found") {
		t.Errorf("pool ls row %q: want the time of the failure, then why", f)
	} else if _, err := time.Parse(time.RFC3339, f[4]); err != nil {
		t.Errorf("pool ls row %q: error column begins with %q, want the time of the failure (%v)", f, f[4], err)
	}

	// The image back, a replenishment (the command a take starts; it
	// runs after any still at work, under the pool's lock) fills the
	// pool, and the error is gone.
	if err := os.Rename(kept, filepath.Join(e.dir, "img")); err != nil {
		t.Fatal(err)
	}
	e.must("pool", "replenish", "p")
	if f := e.poolRow("p"); len(f) != 4 || f[3] != "1" {
		t.Errorf("pool ls row after a replenishment that filled the pool: %q, want 1 waiting and no error", f)
	}
}

// TestPoolMemberKilled kills one waiting member's sentry: takes skip it,
// the pool is refilled, and the dead member leaves nothing in snap ps.
func TestPoolMemberKilled(t *testing.T) {
	e := newEnv(t)
	e.createPool("p", e.poolImage("img"), 2)
	victim := e.statuses("waiting")[0]
	pid := int(e.meta(victim)["pid"].(float64))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; syscall.Kill(pid, 0) == nil; i++ {
		if i == 2000 {
			t.Fatalf("killed member's sentry %d still there", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 2 {
		id, out, _ := e.takeDetached("p", "check\n", "--wait")
		if id == victim {
			t.Fatalf("take %d got the killed member %s", i, id)
		}
		e.must("wait", id)
		wantLines(t, "stdout", lines(out), "pages hold a", "bye after 1 commands")
	}
	e.waitPoolFull("p", 2)
	for _, l := range strings.Split(e.must("ps"), "\n") {
		if strings.HasPrefix(l, victim) {
			t.Errorf("ps still lists the killed member: %q", l)
		}
	}
}

// TestPoolTakerDied plays a taker that dies between its claim and its
// take (the test unlinks the member's entry in waiting/ itself): the
// member, whose hand-over timeout is short here, waits in its pool again
// and is then taken as any other and answers; claimed that way again and
// its pool removed, it ends and leaves nothing behind.
func TestPoolTakerDied(t *testing.T) {
	e := newEnv(t)
	uri := e.poolImage("img")
	e.extra = []string{runner.HandoverTimeoutEnv + "=300ms"} // members inherit it
	e.createPool("p", uri, 1)
	waiting := filepath.Join(e.dir, "state", ".pools", "p", "waiting")
	claim := func() string {
		ids := e.statuses("waiting")
		if len(ids) != 1 {
			t.Fatalf("ps: waiting %q, want one member", ids)
		}
		if err := os.Remove(filepath.Join(waiting, ids[0])); err != nil {
			t.Fatal(err)
		}
		return ids[0]
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if d, ok := t.Deadline(); ok && time.Now().After(d.Add(-5*time.Second)) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	id := claim()
	eventually("the claimed member waits in its pool again", func() bool {
		_, err := os.Stat(filepath.Join(waiting, id))
		return err == nil
	})
	took, out, _ := e.takeDetached("p", "check\n")
	if took != id {
		t.Fatalf("take got %q, want the member that came back, %s", took, id)
	}
	e.must("wait", id)
	wantLines(t, "stdout of "+id, lines(out), "pages hold a", "bye after 1 commands")

	e.waitPoolFull("p", 1)
	id = claim()
	pid := int(e.meta(id)["pid"].(float64))
	e.must("pool", "rm", "p")
	eventually("the claimed member of the removed pool ends", func() bool {
		_, err := os.Stat(filepath.Join(e.dir, "state", id))
		return syscall.Kill(pid, 0) != nil && os.IsNotExist(err)
	})
	for _, l := range strings.Split(e.must("ps"), "\n") {
		if strings.HasPrefix(l, id) {
			t.Errorf("ps still lists the member ended out of its pool: %q", l)
		}
	}
}

// TestPoolBadInput: each bad command is one line on stderr and a non-zero
// status, and leaves no pool and no sandbox behind.
func TestPoolBadInput(t *testing.T) {
	e := newEnv(t)
	uri := e.poolImage("img")
	e.createPool("p", uri, 1)
	before := e.must("ps")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"take unknown", []string{"pool", "take", "nope"}, "no such pool"},
		{"take unknown detached", []string{"pool", "take", "nope", "-d"}, "no such pool"},
		{"rm unknown", []string{"pool", "rm", "nope"}, "no such pool"},
		{"duplicate", []string{"pool", "create", "p", "--image", uri, "--size", "1"}, "already exists"},
		{"size 0", []string{"pool", "create", "q", "--image", uri, "--size", "0"}, "--size 0"},
		{"no image", []string{"pool", "create", "q", "--size", "1"}, "--image is required"},
		{"bad image", []string{"pool", "create", "q", "--image", "file://" + filepath.Join(e.dir, "none"), "--size", "1"}, "q"},
		{"bad scheme", []string{"pool", "create", "q", "--image", "ftp://x/y", "--size", "1"}, "q"},
		{"bad name", []string{"pool", "create", ".q", "--image", uri, "--size", "1"}, "pool name"},
		{"publish", []string{"pool", "create", "q", "--image", uri, "--size", "1", "-p", "8080:80"}, "publish no ports"},
		{"take stdin missing", []string{"pool", "take", "p", "-d", "--stdin", filepath.Join(e.dir, "none")}, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := e.mustFail(tc.args...)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("snap %s: %q, want it to mention %q", strings.Join(tc.args, " "), msg, tc.want)
			}
		})
	}
	if got := e.must("ps"); got != before {
		t.Errorf("ps after the bad commands:\n%s\nwant as before:\n%s", got, before)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, "state", ".pools"))
	if len(ents) != 1 || ents[0].Name() != "p" {
		t.Errorf("pools after the bad commands: %v, want p only", ents)
	}
}

// stubPIDs returns the stub processes (snap-stub) whose parent is the
// sentry pid.
func stubPIDs(t *testing.T, sentry int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(snap-stub") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(sentry) {
			out = append(out, pid)
		}
	}
	return out
}

// mappedKiB is smaps.Mapped, failing t on an error.
func mappedKiB(t *testing.T, pid int, path string) (rss, shared uint64) {
	t.Helper()
	rss, shared, err := smaps.Mapped(pid, path)
	if err != nil {
		t.Fatal(err)
	}
	return rss, shared
}

// TestPoolSharedBase: the members of a pool restore from one base of
// their image's memory, whose pages both waiting members' stubs map,
// shared; a member's writes stay its own; a taken member keeps working,
// with its memory, once the pool (and its base's name) is removed, and
// its save restores with that memory. A pool created with --private-memory
// makes no base.
func TestPoolSharedBase(t *testing.T) {
	e := newEnv(t)
	img := e.poolImage("img")
	e.createPool("p", img, 2)
	bases, _ := filepath.Glob(filepath.Join(e.dir, "state", ".pools", "p", "base-*"))
	if len(bases) != 1 {
		t.Fatalf("pool directory holds bases %q, want one", bases)
	}
	waiting := e.statuses("waiting")
	if len(waiting) != 2 {
		t.Fatalf("waiting members %q, want 2", waiting)
	}
	for _, id := range waiting {
		sentry := int(e.meta(id)["pid"].(float64))
		var rss, shared uint64
		for _, pid := range stubPIDs(t, sentry) {
			r, s := mappedKiB(t, pid, bases[0])
			rss, shared = rss+r, shared+s
		}
		// poolmember's 4 MiB of 'a' are in the base.
		if rss < 4<<10 || shared < 4<<10 {
			t.Errorf("member %s's stubs map %d KiB of the base, %d KiB shared; want at least 4 MiB of each", id, rss, shared)
		}
	}

	in := e.fifo("held.in")
	held := filepath.Join(e.dir, "held.in")
	out := held + ".out"
	id := strings.TrimSpace(e.must("pool", "take", "p", "-d", "--stdin", held, "--stdout", out))
	other, otherOut, _ := e.takeDetached("p", "set b\ncheck\n")
	e.must("wait", other)
	wantLines(t, "stdout of "+other, lines(otherOut), "pages hold b", "bye after 2 commands")

	e.removePool("p")
	if _, err := os.Stat(bases[0]); err == nil {
		t.Errorf("base %s still there after pool rm", bases[0])
	}
	in.WriteString("check\nset c\ncheck\n")
	wantLines(t, "stdout of "+id, waitLines(t, out, 2), "pages hold a", "pages hold c")

	uri := "file://" + filepath.Join(e.dir, "taken")
	e.must("save", id, "--to", uri)
	cmd := exec.Command(snapBin, "restore", uri)
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader("check\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("restore of the saved member: %v, stderr %q", err, stderr.String())
	}
	wantLines(t, "restored member", strings.Split(strings.TrimSpace(stdout.String()), "\n"), "pages hold c", "bye after 4 commands")

	// --private-memory: no base; members load copies of their own.
	e.must("pool", "create", "own", "--image", img, "--size", "1", "--private-memory")
	t.Cleanup(func() { e.removePool("own") })
	if bases, _ := filepath.Glob(filepath.Join(e.dir, "state", ".pools", "own", "base-*")); len(bases) != 0 {
		t.Errorf("pool created with --private-memory holds bases %q", bases)
	}
	own, ownOut, _ := e.takeDetached("own", "set d\ncheck\n")
	e.must("wait", own)
	wantLines(t, "stdout of "+own, lines(ownOut), "pages hold d", "bye after 2 commands")
}

// TestPoolRecordsWrites: the first member taken from a pool records the
// chunks of the base it wrote (writes-<digest>, which later takes copy
// before their program runs), also when its program ends before the
// recording was due (ReplenishDelay after the take): poolmember writes its
// 4 MiB and ends at once.
func TestPoolRecordsWrites(t *testing.T) {
	e := newEnv(t)
	img := e.poolImage("img")
	e.createPool("p", img, 1)
	id, out, _ := e.takeDetached("p", "set b\n")
	e.must("wait", id)
	wantLines(t, "stdout of "+id, lines(out), "bye after 1 commands")
	files, _ := filepath.Glob(filepath.Join(e.dir, "state", ".pools", "p", "writes-*"))
	if len(files) != 1 {
		t.Fatalf("pool directory holds writes files %q once its first member ended, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	if err := json.Unmarshal(b, &idx); err != nil || len(idx) == 0 {
		t.Errorf("writes file %s = %q (%v), want the chunks written", files[0], b, err)
	}
}

// waitPoolSettled waits until pool name has size waiting members and no
// replenisher holds its lock (it primes a member last).
func (e *env) waitPoolSettled(name string, size int) {
	e.t.Helper()
	e.waitPoolFull(name, size)
	f, err := os.Open(filepath.Join(e.dir, "state", ".pools", name, "lock"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// primedMember returns the member the primed link of pool name names, or
// "".
func (e *env) primedMember(name string) string {
	id, _ := os.Readlink(filepath.Join(e.dir, "state", ".pools", name, "primed"))
	return id
}

// TestPoolPrimesMember: once a pool recorded the chunks its first taken
// member wrote, its replenisher primes one waiting member (which copies
// the first of them into memory of its own, no longer mapping the base
// there) and names it; the fast take and the full one take that member
// first, whose program sees its memory as saved and its own writes; the
// next replenisher primes another. A pool whose members have copies of
// their own primes none.
func TestPoolPrimesMember(t *testing.T) {
	// The chunks recorded are those the first taken program wrote before
	// the replenish delay or its end: here its end, whatever the load.
	t.Setenv(runner.ReplenishDelayEnv, "10m")
	e := newEnv(t)
	img := e.poolImage("img")
	e.createPool("p", img, 2)
	if id := e.primedMember("p"); id != "" {
		t.Errorf("pool with no writes recorded names primed member %s", id)
	}
	bases, _ := filepath.Glob(filepath.Join(e.dir, "state", ".pools", "p", "base-*"))
	if len(bases) != 1 {
		t.Fatalf("pool directory holds bases %q, want one", bases)
	}
	// baseKiB is what member id's stubs map of the base.
	baseKiB := func(id string) uint64 {
		var rss uint64
		for _, pid := range stubPIDs(t, int(e.meta(id)["pid"].(float64))) {
			r, _ := mappedKiB(t, pid, bases[0])
			rss += r
		}
		return rss
	}
	populated := baseKiB(e.statuses("waiting")[0])
	first, out, _ := e.takeDetached("p", "set b\n")
	e.must("wait", first)
	wantLines(t, "stdout of "+first, lines(out), "bye after 1 commands")
	// ownKiB is what member id's stubs map of its memory file.
	ownKiB := func(id string) float64 {
		var kib float64
		for _, pid := range stubPIDs(t, int(e.meta(id)["pid"].(float64))) {
			kib += rollupKiB(pid, "Pss_Shmem:")
		}
		return kib
	}
	for _, path := range []struct{ name, env string }{{"entry", ""}, {"full", "SNAP_NO_FAST_TAKE=1"}} {
		e.waitPoolSettled("p", 2)
		primed := e.primedMember("p")
		waiting := e.statuses("waiting")
		if !slices.Contains(waiting, primed) {
			t.Fatalf("%s: primed member %q is not among the waiting %q", path.name, primed, waiting)
		}
		for _, other := range waiting {
			// The first 48 chunks written (3 MiB of poolmember's 4) are
			// the primed member's own, mapped by its stub.
			if other == primed {
				continue
			}
			if ownKiB(primed) < ownKiB(other)+2048 {
				t.Errorf("%s: primed member %s's stubs map %.0f KiB of its memory file, another's %.0f KiB; want at least 2 MiB more", path.name, primed, ownKiB(primed), ownKiB(other))
			}
			// The others' stubs hold no pages of the base there
			// (restored so, or trimmed).
			if got := baseKiB(other); got+2048 > populated {
				t.Errorf("%s: waiting member %s's stubs map %d KiB of the base, one before the first take %d KiB; want at least 2 MiB less", path.name, other, got, populated)
			}
		}
		e.extra = []string{path.env}
		id, out, _ := e.takeDetached("p", "check\nset c\ncheck\n")
		e.extra = nil
		if id != primed {
			t.Errorf("%s take got member %s, want the primed %s", path.name, id, primed)
		}
		e.must("wait", id)
		wantLines(t, "stdout of "+id, lines(out), "pages hold a", "pages hold c", "bye after 3 commands")
	}
	e.waitPoolSettled("p", 2)
	if primed := e.primedMember("p"); !slices.Contains(e.statuses("waiting"), primed) {
		t.Errorf("after two takes the primed member %q is not waiting", primed)
	}

	e.must("pool", "create", "own", "--image", img, "--size", "1", "--private-memory")
	t.Cleanup(func() { e.removePool("own") })
	own, _, _ := e.takeDetached("own", "set d\n")
	e.must("wait", own)
	e.waitPoolSettled("own", 1)
	if id := e.primedMember("own"); id != "" {
		t.Errorf("pool created with --private-memory names primed member %s", id)
	}
}
