package e2e

import (
	"bufio"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"snapshotter/internal/ctest"
	"snapshotter/runner"
)

// The zdtm mode (after CRIU's zdtm): TestZdtm runs every C case of
// TestPrograms, with each libc, detached under snap, saves it mid-run,
// restores the image and lets the program finish; stdout, stderr and exit
// status must equal an uninterrupted native run's. A case is saved at two
// points:
//
//   - where it blocks: once stdout has the case's zdtm.blockedAfter line
//     (the program then waits in a read of stdin, a sleep or for a
//     signal), or, if it declares none, at its start: it runs under the
//     zdtmstart wrapper, which prints "zdtm: start" and waits for a byte
//     on stdin before it executes the program, and is saved there;
//   - at a random point: after a random delay of up to half the native
//     run's duration; a case that declares zdtm.fast (it ends too soon for
//     that to mean anything) is saved at its start instead. The seed is
//     logged; SNAP_ZDTM_SEED=N repeats a run's points.
//
// The program's stdin is a FIFO that stays empty before the save, so that
// a program reading stdin blocks there; the restored sandbox gets a new
// one holding the case's whole stdin. If a program ends before a random
// save point, the case is compared without a save (and says so in the log).
// Keys in knownBroken: "<libc>/<case>/zdtm-<mode>".

// A zdtmSpec tells the zdtm mode about a case.
type zdtmSpec struct {
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

// modes returns the distinct save points of a case.
func (z zdtmSpec) modes() []zdtmMode {
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

// zdtmSeed returns the seed of the random save points.
func zdtmSeed(t *testing.T) uint64 {
	if s := os.Getenv("SNAP_ZDTM_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SNAP_ZDTM_SEED=%q: %v", s, err)
		}
		return n
	}
	return rand.Uint64()
}

// TestZdtm runs every C case saved and restored mid-run (see above).
func TestZdtm(t *testing.T) {
	seed := zdtmSeed(t)
	t.Logf("random save points: SNAP_ZDTM_SEED=%d", seed)
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			for _, c := range cCases {
				for _, mode := range c.zdtm.modes() {
					t.Run(c.name+"/"+string(mode), func(t *testing.T) {
						t.Parallel()
						key := lc.Name + "/" + c.name + "/zdtm-" + string(mode)
						skipKnownBroken(t, key)
						bin := program(t, lc, c.prog)
						s := c.spec
						if c.setup != nil {
							c.setup(t, t.TempDir(), &s)
						}
						argv := append([]string{bin}, s.args...)
						dir := t.TempDir()
						start := time.Now()
						native := execute(t, argv, s, dir)
						took := time.Since(start)
						if native.status != s.status {
							t.Fatalf("native %s: status = %d, want %d\nstdout:\n%s\nstderr:\n%s", key, native.status, s.status,
								clip(native.stdout), clip(native.stderr))
						}
						checkWant(t, "native", native.stdout, s.want)
						if t.Failed() {
							return
						}
						h := fnv.New64a()
						h.Write([]byte(key))
						// Under snap a program runs about as long as natively or
						// longer: a point in the first half of the native run's
						// time is mostly mid-run.
						delay := time.Duration(rand.New(rand.NewPCG(seed, h.Sum64())).Int64N(int64(took)/2 + 1))
						z := zdtmRun{t: t, lc: lc, argv: argv, s: s, dir: dir, mode: mode, blockedAfter: c.zdtm.blockedAfter, delay: delay}
						got := z.run()
						if got.status != native.status {
							t.Errorf("%s: status = %d, want %d (native)", key, got.status, native.status)
						}
						if got.stdout != native.stdout {
							t.Errorf("%s: stdout differs from native: %s", key, diff(native.stdout, got.stdout))
						}
						if got.stderr != native.stderr {
							t.Errorf("%s: stderr differs from native: %s", key, diff(native.stderr, got.stderr))
						}
					})
				}
			}
		})
	}
}

// zdtmRun is one run of a case saved and restored at one point.
type zdtmRun struct {
	t            *testing.T
	lc           ctest.Libc
	argv         []string
	s            spec
	dir          string // the working directory, as for the native run
	mode         zdtmMode
	blockedAfter string
	delay        time.Duration // before the save, in zdtmRandom mode
}

// run starts the program detached, saves it at the run's point, restores
// it and returns what it did in all.
func (z *zdtmRun) run() outcome {
	t := z.t
	io := t.TempDir()
	path := func(name string) string { return filepath.Join(io, name) }
	argv := z.argv
	if z.mode == zdtmStart {
		argv = append([]string{program(t, z.lc, "zdtmstart")}, argv...)
	}
	in1 := openFIFO(t, path("in1"))
	id := z.snapID(append([]string{"run", "-d", "--stdin", in1.Name(), "--stdout", path("out1"), "--stderr", path("err1"), "--"}, argv...)...)
	switch z.mode {
	case zdtmStart:
		waitForLine(t, path("out1"), strings.TrimSuffix(zdtmStartLine, "\n"))
	case zdtmBlocked:
		waitForLine(t, path("out1"), z.blockedAfter)
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
			syscall.Kill(m.PID, syscall.SIGKILL)
		}
	})
	return id
}

// wait returns the exit status of sandbox id's program (snap wait's).
func (z *zdtmRun) wait(id string) int {
	z.t.Helper()
	r := execute(z.t, []string{snap(z.t), "wait", id}, spec{env: z.s.env}, z.dir)
	if r.stderr != "" {
		z.t.Fatalf("snap wait %s: status %d, stderr %q", id, r.status, r.stderr)
	}
	return r.status
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
