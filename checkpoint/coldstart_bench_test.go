package checkpoint

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
)

// coldStartScript is the cold-start workload: a CPython that imports json,
// decimal, asyncio, email and http.client, prints "ready", waits for a
// line on stdin, answers it and exits.
const coldStartScript = `import json, decimal, asyncio, email, http.client, sys
sys.stdout.write("ready\n"); sys.stdout.flush()
line = sys.stdin.readline()
sys.stdout.write("answer %s\n" % json.dumps(line.strip())); sys.stdout.flush()
`

// coldStartRuns is how many runs of each kind one iteration of
// BenchmarkColdStart makes, so that even a single iteration has a median.
const coldStartRuns = 5

// BenchmarkColdStart measures the cold-start workload from the start of a
// command until the answer is read, as the median of 5·b.N runs of each:
// python3 natively, under `snap run`, `snap restore` (foreground) of an
// image saved after "ready", over the copy of its memory that the restore
// cache keeps (made by one restore before the timed ones), and `snap
// restore --no-cache`, which loads the memory from the image; with the
// ratios to native. Its line is on stdin from the start.
func BenchmarkColdStart(b *testing.B) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(b, "Debian's python3: %v", err)
	}
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	b.ReportAllocs()
	e := &env{dir: b.TempDir()}
	b.Cleanup(e.killAll)
	uri := e.coldStartImage(b, py)
	modes := []struct {
		name string
		argv []string
	}{
		{"native", []string{py, "-c", coldStartScript}},
		{"run", []string{snapBin, "run", "--", py, "-c", coldStartScript}},
		{"restore", []string{snapBin, "restore", uri}},
		{"restore-nocache", []string{snapBin, "restore", uri, "--no-cache"}},
	}
	e.untilAnswer(b, modes[2].argv) // makes the restore cache's copy
	times := make([][]time.Duration, len(modes))
	b.ResetTimer()
	for i := 0; i < b.N*coldStartRuns; i++ {
		for m, mode := range modes {
			times[m] = append(times[m], e.untilAnswer(b, mode.argv))
		}
	}
	b.StopTimer()
	med := make([]float64, len(modes))
	for m, mode := range modes {
		med[m] = median(times[m])
		b.ReportMetric(med[m], mode.name+"-ms")
	}
	b.ReportMetric(med[1]/med[0], "run/native")
	b.ReportMetric(med[2]/med[0], "restore/native")
	b.ReportMetric(med[3]/med[0], "restore-nocache/native")
}

// coldStartImage runs the cold-start workload detached, with its stdin a
// FIFO that nobody writes, saves it once it printed "ready" and returns
// the image's URI.
func (e *env) coldStartImage(b *testing.B, py string) string {
	fifo := filepath.Join(e.dir, "stdin")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		b.Fatal(err)
	}
	// Held open for writing, so that the program's read blocks.
	hold, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer hold.Close()
	out := filepath.Join(e.dir, "ready.out")
	id := strings.TrimSpace(e.benchSnap(b, "run", "-d", "--stdin", fifo, "--stdout", out, "--", py, "-c", coldStartScript))
	waitLinesB(b, out, 1)
	if l := lines(out)[0]; l != "ready" {
		b.Fatalf("cold-start workload printed %q, want ready", l)
	}
	return strings.TrimSpace(e.benchSnap(b, "save", id, "--to", "coldstart"))
}

// untilAnswer runs argv with "hello" on its stdin and returns the time from
// its start until it printed its answer; it then waits for it to exit 0.
func (e *env) untilAnswer(b *testing.B, argv []string) time.Duration {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader("hello\n")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == `answer "hello"` {
			took = time.Since(start)
		}
	}
	if err := cmd.Wait(); err != nil || took == 0 {
		b.Fatalf("%v: %v, answered after %v, stderr %q", argv, err, took, stderr.String())
	}
	return took
}

// median returns the median of ds in milliseconds.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// poolTakeRuns is how many takes one iteration of BenchmarkPoolTake makes.
const poolTakeRuns = 10

// BenchmarkPoolTake measures `snap pool take` of the cold-start workload
// from the command's start until the answer is read, as the median of
// 10·b.N takes from a full pool of 2 members with no replenisher at work
// (each take waits for the pool to be full and quiet again, outside the
// timing), against a foreground `snap restore` of the same image in the
// same run, and against takes, in turn with those, from a pool whose
// members have copies of their own (--private-memory: private-take-ms).
func BenchmarkPoolTake(b *testing.B) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(b, "Debian's python3: %v", err)
	}
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	b.ReportAllocs()
	e := &env{dir: b.TempDir()}
	b.Cleanup(e.killAll)
	uri := e.coldStartImage(b, py)
	const size = 2
	e.benchSnap(b, "pool", "create", "cold", "--image", uri, "--size", fmt.Sprint(size))
	b.Cleanup(func() { e.benchSnapAllowFail("pool", "rm", "cold") })
	e.benchSnap(b, "pool", "create", "own", "--image", uri, "--size", fmt.Sprint(size), "--private-memory")
	b.Cleanup(func() { e.benchSnapAllowFail("pool", "rm", "own") })
	var takes, privateTakes, restores []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N*poolTakeRuns; i++ {
		b.StopTimer()
		e.waitPoolQuiet(b, "cold", size)
		e.waitPoolQuiet(b, "own", size)
		b.StartTimer()
		takes = append(takes, e.untilAnswer(b, []string{snapBin, "pool", "take", "cold"}))
		b.StopTimer()
		e.waitPoolQuiet(b, "cold", size)
		b.StartTimer()
		privateTakes = append(privateTakes, e.untilAnswer(b, []string{snapBin, "pool", "take", "own"}))
		if i%2 == 0 {
			b.StopTimer()
			e.waitPoolQuiet(b, "cold", size)
			b.StartTimer()
			restores = append(restores, e.untilAnswer(b, []string{snapBin, "restore", uri}))
		}
	}
	b.StopTimer()
	take, restore := median(takes), median(restores)
	b.ReportMetric(take, "take-ms")
	b.ReportMetric(float64(slices.Min(takes))/1e6, "take-min-ms")
	b.ReportMetric(restore, "restore-ms")
	b.ReportMetric(restore/take, "restore/take")
	b.ReportMetric(median(privateTakes), "private-take-ms")
	b.ReportMetric(float64(slices.Min(privateTakes))/1e6, "private-take-min-ms")
}

// waitPoolQuiet waits until pool name has size waiting members and no
// replenisher holds its lock.
func (e *env) waitPoolQuiet(b *testing.B, name string, size int) {
	b.Helper()
	dir := filepath.Join(e.dir, "state", ".pools", name)
	deadline := time.Now().Add(120 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join(dir, "waiting"))
		if len(ents) >= size {
			f, err := os.Open(filepath.Join(dir, "lock"))
			if err != nil {
				b.Fatal(err)
			}
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			f.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("pool %s: not %d waiting members after 120 s", name, size)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// benchSnapAllowFail runs snap and ignores how it ends (cleanup).
func (e *env) benchSnapAllowFail(args ...string) {
	cmd := exec.Command(snapBin, args...)
	cmd.Env = e.environ()
	cmd.Run()
}

// BenchmarkPoolMemory measures the host memory of a pool of the cold-start
// workload's image with 1, 10 and 20 waiting members: the sum of the
// proportional set sizes (Pss in /proc/PID/smaps_rollup) of every member's
// sentry and stub processes, in MiB, and its ratio to one member's. Each
// pool is measured in use: after a first take has recorded the chunks its
// program wrote first, the pool refilled and one member primed
// (runner/pool_prime.go), and every member restored before that replaced
// (x-one-member). The ratio right after the first take, with the older
// members trimmed rather than replaced, is first-take-x-one-member.
func BenchmarkPoolMemory(b *testing.B) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(b, "Debian's python3: %v", err)
	}
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	b.ReportAllocs()
	e := &env{dir: b.TempDir()}
	b.Cleanup(e.killAll)
	uri := e.coldStartImage(b, py)
	var one, firstOne float64
	for _, n := range []int{1, 10, 20} {
		name := fmt.Sprintf("mem%d", n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var pss, sentries, base, firstPss float64
			for i := 0; i < b.N; i++ {
				e.benchSnap(b, "pool", "create", name, "--image", uri, "--size", fmt.Sprint(n))
				e.waitPoolQuiet(b, name, n)
				old, _ := os.ReadDir(filepath.Join(e.dir, "state", ".pools", name, "waiting"))
				e.untilAnswer(b, []string{snapBin, "pool", "take", name})
				e.waitPoolQuiet(b, name, n)
				e.waitOnlyMembers(b, name)
				firstPss, _ = e.poolPss(b, name)
				// The members restored before the writes were recorded
				// end, and the replenisher replaces them.
				for _, m := range old {
					e.benchSnapAllowFail("kill", m.Name(), "9")
				}
				e.benchSnap(b, "pool", "replenish", name)
				e.waitPoolQuiet(b, name, n)
				e.waitOnlyMembers(b, name)
				pss, sentries = e.poolPss(b, name)
				base = e.poolBaseMiB(b, name)
				e.benchSnap(b, "pool", "rm", name)
			}
			if n == 1 {
				one, firstOne = pss, firstPss
			}
			b.ReportMetric(pss, "pss-MiB")
			b.ReportMetric(firstPss, "first-take-pss-MiB")
			b.ReportMetric(sentries, "sentries-pss-MiB")
			b.ReportMetric(base, "base-MiB")
			if one > 0 {
				b.ReportMetric(pss/one, "x-one-member")
				b.ReportMetric(firstPss/firstOne, "first-take-x-one-member")
			}
		})
	}
}

// waitOnlyMembers waits until the only processes running snap are the
// waiting members of pool name: the member taken and the replenisher
// have exited. A process of snap still alive would share snap's text
// with the members, and take its part of their Pss.
func (e *env) waitOnlyMembers(b *testing.B, name string) {
	b.Helper()
	state := filepath.Join(e.dir, "state")
	deadline := time.Now().Add(30 * time.Second)
	for {
		members := map[int]bool{}
		ents, _ := os.ReadDir(filepath.Join(state, ".pools", name, "waiting"))
		for _, ent := range ents {
			raw, _ := os.ReadFile(filepath.Join(state, ent.Name(), "meta.json"))
			var m struct {
				PID int `json:"pid"`
			}
			if json.Unmarshal(raw, &m) == nil {
				members[m.PID] = true
			}
		}
		others := 0
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil || members[pid] {
				continue
			}
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == snapBin {
				others++
			}
		}
		if others == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("pool %s: %d processes of snap besides its members after 30 s", name, others)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// poolBaseMiB returns the memory (allocated blocks) of the base files in
// pool name's directory, in MiB: the one copy of the image's memory its
// members map (their Pss counts the pages they map, shared).
func (e *env) poolBaseMiB(b *testing.B, name string) float64 {
	b.Helper()
	bases, _ := filepath.Glob(filepath.Join(e.dir, "state", ".pools", name, "base-*"))
	var bytes int64
	for _, p := range bases {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil {
			bytes += st.Blocks * 512
		}
	}
	return float64(bytes) / (1 << 20)
}

// poolPss returns the summed Pss of the waiting members of pool name and
// of their descendants (the stubs), each address space once, and of that
// the sentries' own, in MiB.
func (e *env) poolPss(b *testing.B, name string) (float64, float64) {
	b.Helper()
	state := filepath.Join(e.dir, "state")
	ents, err := os.ReadDir(filepath.Join(state, ".pools", name, "waiting"))
	if err != nil {
		b.Fatal(err)
	}
	var kib, sentryKiB float64
	for _, ent := range ents {
		raw, err := os.ReadFile(filepath.Join(state, ent.Name(), "meta.json"))
		if err != nil {
			b.Fatal(err)
		}
		var m struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
		for _, pid := range distinctMMs(withDescendants(m.PID)) {
			kib += rollupKiB(pid, "Pss:")
		}
		sentryKiB += rollupKiB(m.PID, "Pss:")
	}
	return kib / 1024, sentryKiB / 1024
}

// withDescendants returns pid and every process below it, each once: a
// child task that is a thread of another process (the stubs' threads are
// listed as children) shares its address space and is left out.
func withDescendants(pid int) []int {
	out := []int{pid}
	seen := map[int]bool{pid: true}
	for i := 0; i < len(out); i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", out[i]))
		for _, t := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", out[i], t.Name()))
			for _, f := range strings.Fields(string(b)) {
				var c int
				if _, err := fmt.Sscan(f, &c); err == nil && !seen[c] && tgid(c) == c {
					seen[c] = true
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// distinctMMs keeps one process of each address space among pids: stub
// threads are processes of their own that share their stub's memory, and
// each would report the whole of its Pss.
func distinctMMs(pids []int) []int {
	const kcmpVM = 1 // KCMP_VM
	var out []int
	for _, p := range pids {
		dup := false
		for _, q := range out {
			r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(p), uintptr(q), kcmpVM, 0, 0, 0)
			if errno == 0 && r == 0 {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// tgid returns the thread group (process) of task tid, or 0.
func tgid(tid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	return 0
}

// rollupKiB returns a field of /proc/PID/smaps_rollup in KiB (0 if absent).
func rollupKiB(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			var v float64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	return 0
}
