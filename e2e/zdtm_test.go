package e2e

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/ctest"
	"snapshotter/runner"
)

// The zdtm mode (after CRIU's zdtm): compare takes every program it runs
// natively and under snap run also through save and restore (compareZdtm):
// detached under snap, saved mid-run, restored from the image and let
// finish; stdout, stderr and exit status must equal the native run's. A
// program is saved at two points:
//
//   - where it blocks: once stdout has the spec's zdtm.blockedAfter line
//     (the program then waits in a read of stdin, a sleep or for a
//     signal), or, if it declares none, at its start: it runs under the
//     zdtmstart wrapper, which prints "zdtm: start" and waits for a byte
//     on stdin before it executes the program, and is saved there;
//   - at a random point: after a random delay of up to half the native
//     run's duration; a program that declares zdtm.fast (it ends too soon
//     for that to mean anything) is saved at its start instead. The seed
//     is logged on failure; SNAP_ZDTM_SEED=N repeats a run's points.
//
// The program's stdin is a FIFO that stays empty before the save, so that
// a program reading stdin blocks there; the restored sandbox gets a new one
// holding the whole stdin. If a program ends before a random save point,
// it is compared without a save (and says so in the log). Each point is a
// subtest "zdtm-<mode>" of the case, and its knownBroken key is the case's
// key followed by "/zdtm-<mode>". SNAP_E2E_ZDTM=0 leaves the mode out.

// A zdtmSpec tells the zdtm mode about a program.
type zdtmSpec struct {
	// skip leaves the program out of the zdtm mode.
	skip bool
	// blockedAfter is a stdout line after which the program blocks for a
	// while; empty means it never does, and it is saved at its start.
	blockedAfter string
	// fast says the program ends too soon to be saved at a random point.
	fast bool
}

// zdtmMode is where a run is saved.
type zdtmMode string

const (
	zdtmStart   zdtmMode = "start"
	zdtmBlocked zdtmMode = "blocked"
	zdtmRandom  zdtmMode = "random"
)

// zdtmStartLine is what zdtmstart prints before it waits.
const zdtmStartLine = "zdtm: start\n"

// modes returns the distinct save points of a program.
func (z zdtmSpec) modes() []zdtmMode {
	if z.skip {
		return nil
	}
	block, random := zdtmStart, zdtmRandom
	if z.blockedAfter != "" {
		block = zdtmBlocked
	}
	if z.fast {
		random = zdtmStart
	}
	if block == random {
		return []zdtmMode{block}
	}
	return []zdtmMode{block, random}
}

// zdtmSeed is the seed of the random save points: SNAP_ZDTM_SEED, or
// random (read once, by compareZdtm).
var zdtmSeed = sync.OnceValues(func() (uint64, error) {
	if s := os.Getenv("SNAP_ZDTM_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("SNAP_ZDTM_SEED=%q: %w", s, err)
		}
		return n, nil
	}
	return rand.Uint64(), nil
})

// compareZdtm runs argv saved and restored at each of s.zdtm's points and
// requires what native (which took took) did. dir is the native run's
// working directory.
func compareZdtm(t *testing.T, key string, argv []string, s spec, dir string, native outcome, took time.Duration) {
	t.Helper()
	if os.Getenv("SNAP_E2E_ZDTM") == "0" {
		return
	}
	seed, err := zdtmSeed()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range s.zdtm.modes() {
		t.Run("zdtm-"+string(mode), func(t *testing.T) {
			zkey := key + "/zdtm-" + string(mode)
			skipKnownBroken(t, zkey)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("random save points of this run: SNAP_ZDTM_SEED=%d", seed)
				}
			})
			h := fnv.New64a()
			h.Write([]byte(zkey))
			// Under snap a program runs about as long as natively or
			// longer: a point in the first half of the native run's
			// time is mostly mid-run.
			delay := time.Duration(rand.New(rand.NewPCG(seed, h.Sum64())).Int64N(int64(took)/2 + 1))
			z := zdtmRun{t: t, argv: argv, s: s, dir: dir, mode: mode, delay: delay}
			got := z.run()
			if got.status != native.status {
				t.Errorf("%s: status = %d, want %d (native)", zkey, got.status, native.status)
			}
			if got.stdout != native.stdout {
				t.Errorf("%s: stdout differs from native: %s", zkey, diff(native.stdout, got.stdout))
			}
			if got.stderr != native.stderr {
				t.Errorf("%s: stderr differs from native: %s", zkey, diff(native.stderr, got.stderr))
			}
		})
	}
}

// zdtmRun is one run of a program saved and restored at one point.
type zdtmRun struct {
	t     *testing.T
	argv  []string
	s     spec
	dir   string // the working directory, as for the native run
	mode  zdtmMode
	delay time.Duration // before the save, in zdtmRandom mode
}

// run starts the program detached, saves it at the run's point, restores
// it and returns what it did in all.
func (z *zdtmRun) run() outcome {
	t := z.t
	io := t.TempDir()
	path := func(name string) string { return filepath.Join(io, name) }
	argv := z.argv
	if z.mode == zdtmStart {
		// The wrapper's libc does not matter: it executes the program.
		argv = append([]string{program(t, ctest.Glibc, "zdtmstart")}, argv...)
	}
	in1 := openFIFO(t, path("in1"))
	run := append([]string{"run", "-d", "--stdin", in1.Name(), "--stdout", path("out1"), "--stderr", path("err1")}, z.s.snapFlags...)
	id := z.snapID(append(append(run, "--"), argv...)...)
	switch z.mode {
	case zdtmStart:
		waitForLine(t, path("out1"), strings.TrimSuffix(zdtmStartLine, "\n"))
	case zdtmBlocked:
		waitForLine(t, path("out1"), z.s.zdtm.blockedAfter)
	case zdtmRandom:
		time.Sleep(z.delay)
	}
	image := "file://" + path("image")
	if r := execute(t, []string{snap(t), "save", id, "--to", image}, spec{env: z.s.env}, z.dir); r.status != 0 {
		// Only a random point may come after the program's end.
		if z.mode != zdtmRandom || !strings.Contains(r.stderr, runner.ErrNotRunning.Error()) {
			t.Fatalf("snap save %s (%s): status %d, stderr %q", id, z.mode, r.status, r.stderr)
		}
		t.Logf("the program ended before the save point (%v after snap run -d returned): compared without a save", z.delay)
		return outcome{stdout: readFile(t, path("out1")), stderr: readFile(t, path("err1")), status: z.wait(id)}
	}
	in2 := openFIFO(t, path("in2"))
	stdin := z.s.stdin
	if z.mode == zdtmStart {
		stdin = "x" + stdin // the byte zdtmstart waits for
	}
	if _, err := in2.WriteString(stdin); err != nil {
		t.Fatal(err)
	}
	rid := z.snapID("restore", image, "-d", "--stdin", in2.Name(), "--stdout", path("out2"), "--stderr", path("err2"))
	in2.Close() // the restored sandbox holds the other end: it reads stdin, then EOF
	status := z.wait(rid)
	before := readFile(t, path("out1"))
	if z.mode == zdtmStart {
		if !strings.HasPrefix(before, zdtmStartLine) {
			t.Fatalf("zdtmstart output = %q, want it to start with %q", before, zdtmStartLine)
		}
		before = strings.TrimPrefix(before, zdtmStartLine)
	}
	return outcome{
		stdout: before + readFile(t, path("out2")),
		stderr: readFile(t, path("err1")) + readFile(t, path("err2")),
		status: status,
	}
}

// snapID runs a snap command that starts a detached sandbox and returns
// its ID; the sandbox is killed when the test ends if it still runs.
func (z *zdtmRun) snapID(args ...string) string {
	t := z.t
	t.Helper()
	r := execute(t, append([]string{snap(t)}, args...), spec{env: z.s.env}, z.dir)
	id := strings.TrimSpace(r.stdout)
	if r.status != 0 || id == "" {
		t.Fatalf("snap %s: status %d, stdout %q, stderr %q", strings.Join(args, " "), r.status, r.stdout, r.stderr)
	}
	t.Cleanup(func() {
		m, err := runner.StateDir{Root: filepath.Join(workDir, "state")}.Lookup(id)
		if err == nil && m.Status == runner.StatusRunning {
			execute(t, []string{snap(t), "kill", id, "KILL"}, spec{}, z.dir)
		}
	})
	return id
}

// wait returns the exit status of sandbox id's program (snap wait's).
func (z *zdtmRun) wait(id string) int {
	z.t.Helper()
	// A sandbox that has not ended shortly before execute's timeout gets
	// SIGUSR1: its sentry writes its tasks and its goroutines' stacks to
	// sentry.log, which a failed test then shows.
	dump := time.AfterFunc(runTimeout-15*time.Second, func() { z.dumpSentry(id) })
	defer dump.Stop()
	r := execute(z.t, []string{snap(z.t), "wait", id}, spec{env: z.s.env}, z.dir)
	if r.stderr != "" {
		z.t.Fatalf("snap wait %s: status %d, stderr %q", id, r.status, r.stderr)
	}
	return r.status
}

// dumpSentry sends the sentry of sandbox id SIGUSR1 and has the test, if
// it fails, log what the sentry wrote to its sentry.log.
func (z *zdtmRun) dumpSentry(id string) {
	dir := runner.StateDir{Root: filepath.Join(workDir, "state")}
	m, err := dir.Lookup(id)
	if err != nil || m.PID <= 0 || m.Status != runner.StatusRunning {
		return
	}
	// The pidfd is the sentry's only if the process it names started
	// when the sentry did (a PID reused since would not have).
	pidfd, err := unix.PidfdOpen(m.PID, 0)
	if err != nil {
		return
	}
	defer unix.Close(pidfd)
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.PID))
	i := strings.LastIndexByte(string(stat), ')')
	if err != nil || i < 0 {
		return
	}
	// Field 22, the start time, is the 20th after the command's ")".
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 || f[19] != strconv.FormatUint(m.PIDStart, 10) {
		return
	}
	if unix.PidfdSendSignal(pidfd, unix.SIGUSR1, nil, 0) != nil {
		return
	}
	z.t.Cleanup(func() {
		if z.t.Failed() {
			b, _ := os.ReadFile(dir.LogPath(id))
			z.t.Logf("sentry.log of %s after SIGUSR1:\n%s", id, b)
		}
	})
}

// openFIFO makes a named pipe at path and opens it read-write, so that
// neither the open nor a reader waits for a writer, and a reader sees EOF
// only once the returned file is closed (at the latest when the test
// ends).
func openFIFO(t *testing.T, path string) *os.File {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// waitForLine waits until the file at path has the line want. It gives up
// after runTimeout (only a hung sandbox takes that long).
func waitForLine(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(runTimeout)
	for {
		if hasLine(path, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no line %q after %v:\n%s", path, want, runTimeout, clip(readFile(t, path)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hasLine(path, want string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if sc.Text() == want {
			return true
		}
	}
	return false
}

// readFile returns the contents of path ("" if it does not exist).
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}
