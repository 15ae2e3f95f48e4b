package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"snapshotter/internal/prereq"
)

// CPython's own regression tests, run natively and under snap: Debian's
// python3 with its test suite (libpython3.11-testsuite). docs/CPYTHON.md
// describes the test, why these modules, and the tests that differ.

// python is the interpreter whose test suite runs: Debian's, not another
// one on PATH.
const python = "/usr/bin/python3"

// cpythonDoc holds the tables of known differences and of tests not run.
const cpythonDoc = moduleRoot + "/docs/CPYTHON.md"

// cpythonModules are the test modules run, slowest first (so that the two
// parallel subtests finish together). The file modules write in their
// working directory, in the overlay root under snap; test_selectors,
// test_socketserver and the asyncio modules serve TCP, UDP and Unix
// sockets. A module may be a package's submodule
// ("test_asyncio.test_streams"). Tests that differ under snap are known
// differences.
var cpythonModules = []string{
	"test_subprocess", "test_io", "test_signal", "test_socket", "test_os", "test_selectors", "test_asyncio.test_sock_lowlevel",
	"test_socketserver", "test_logging", "test_asyncio.test_streams", "test_asyncio.test_server", "test_threading",
	"test_zipfile", "test_tarfile", "test_itertools", "test_pathlib",
	"test_random", "test_bytes", "test_set", "test_zlib", "test_time",
	"test_json", "test_math", "test_select", "test_poll", "test_mmap", "test_epoll", "test_hashlib", "test_heapq",
	"test_enum", "test_functools", "test_collections", "test_struct",
	"test_re", "test_base64", "test_list", "test_dict", "test_float",
	"test_fcntl", "test_resource", "test_string", "test_bisect",
	"test_operator", "test_textwrap", "test_binascii", "test_contextlib",
	"test_fractions", "test_tempfile", "test_glob", "test_stat", "test_fileio", "test_shutil", "test_posix", "test_asyncio.test_unix_events",
	"test_mailbox", "test_pty", "test_openpty",
	"test_httpservers", "test_multiprocessing_forkserver",
}

// cpythonClasses names the test classes run of a module that is not run
// whole: test_socket's Unix and loopback classes, and the process classes
// of test_multiprocessing_forkserver that pass pipes, sockets, semaphores
// and shared memory between processes (docs/CPYTHON.md says which are left
// out and why).
var cpythonClasses = map[string][]string{
	"test_socket": {
		"BasicSocketPairTest", "BasicTCPTest", "BasicTCPTest2", "BasicUDPTest",
		"BufferIOTest", "CmsgMacroTests", "ContextManagersTest", "CreateServerTest", "CreateServerFunctionalTest",
		"GeneralModuleTests", "InheritanceTest", "InterruptedRecvTimeoutTest", "InterruptedSendTimeoutTest",
		"NetworkConnectionAttributesTest", "NetworkConnectionNoServer", "NonBlockingTCPTests", "NonblockConstantTest",
		"RecvmsgTCPTest", "RecvmsgIntoTCPTest", "RecvmsgUDPTest", "RecvmsgIntoUDPTest", "RecvmsgUDP6Test", "RecvmsgIntoUDP6Test",
		"RecvmsgUnixStreamTest", "RecvmsgIntoUnixStreamTest", "RecvmsgSCMRightsStreamTest", "RecvmsgIntoSCMRightsStreamTest",
		"SendmsgTCPTest", "SendmsgUDPTest", "SendmsgUDP6Test", "SendmsgUnixStreamTest",
		"SendRecvFdsTests", "TCPCloserTest", "TCPTimeoutTest", "UDPTimeoutTest",
		"TestExceptions", "TestLinuxAbstractNamespace", "TestUnixDomain",
	},
	"test_multiprocessing_forkserver": {
		"WithProcessesTestConnection", "WithProcessesTestPicklingConnections", "WithProcessesTestListener",
		"WithProcessesTestListenerClient", "WithProcessesTestQueue", "WithProcessesTestLock", "WithProcessesTestSemaphore",
		"WithProcessesTestEvent", "WithProcessesTestValue", "WithProcessesTestArray", "WithProcessesTestSharedMemory",
	},
}

// cpythonTimeout bounds one run of one module. The slowest, test_subprocess,
// takes about a minute under snap on 2 busy cores.
const cpythonTimeout = 6 * time.Minute

// cpythonDriver runs the unittest ids given as arguments (minus those
// matching a --skip glob) and prints one line per test result on stdout:
// "@@cpython STATUS ID", STATUS pass, fail, error or skip. unittest's own
// report goes to stderr. It is not regrtest (python3 -m test), which needs a
// writable temporary directory before it runs anything.
const cpythonDriver = `
import fnmatch, sys, unittest
mods, skips, args = [], [], sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "--skip":
        skips.append(args.pop(0))
    else:
        mods.append(a)
out = sys.stdout
def emit(status, test):
    out.write("@@cpython %s %s\n" % (status, test.id()))
    out.flush()
class Result(unittest.TextTestResult):
    def addSuccess(self, t):
        super().addSuccess(t); emit("pass", t)
    def addFailure(self, t, e):
        super().addFailure(t, e); emit("fail", t)
    def addError(self, t, e):
        super().addError(t, e); emit("error", t)
    def addSkip(self, t, r):
        super().addSkip(t, r); emit("skip", t)
    def addExpectedFailure(self, t, e):
        super().addExpectedFailure(t, e); emit("pass", t)
    def addUnexpectedSuccess(self, t):
        super().addUnexpectedSuccess(t); emit("fail", t)
    def addSubTest(self, t, st, e):
        super().addSubTest(t, st, e)
        if e is not None:
            emit("fail" if issubclass(e[0], t.failureException) else "error", t)
def flat(s):
    for x in s:
        if isinstance(x, unittest.TestSuite):
            yield from flat(x)
        else:
            yield x
suite = unittest.TestSuite()
for m in mods:
    for t in flat(unittest.defaultTestLoader.loadTestsFromName(m)):
        if not any(fnmatch.fnmatchcase(t.id(), p) for p in skips):
            suite.addTest(t)
unittest.TextTestRunner(stream=sys.stderr, resultclass=Result).run(suite)
`

// A pyStatus is one test's result; a higher one is worse.
type pyStatus int

const (
	pyMissing pyStatus = iota // not reported (the run ended before it)
	pyPass                    // passed, or an expected failure
	pySkip
	pyFail
	pyError
)

var pyStatusNames = map[string]pyStatus{"pass": pyPass, "skip": pySkip, "fail": pyFail, "error": pyError}

func (s pyStatus) String() string {
	for name, v := range pyStatusNames {
		if v == s {
			return name
		}
	}
	return "missing"
}

// parsePyResults reads the driver's result lines. A test reported more than
// once (one line per failed subtest) keeps its worst status.
func parsePyResults(stdout string) map[string]pyStatus {
	res := map[string]pyStatus{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "@@cpython ")
		if !ok {
			continue
		}
		name, id, ok := strings.Cut(rest, " ")
		st, known := pyStatusNames[name]
		if !ok || !known {
			continue
		}
		if st > res[id] {
			res[id] = st
		}
	}
	return res
}

// A pyRule is a row of a table in docs/CPYTHON.md: a glob over unittest ids
// and why it is there.
type pyRule struct {
	pattern, why string
}

// readPyRules returns the rows of the table under the heading of
// docs/CPYTHON.md that starts with heading: lines "| `glob` | why |".
func readPyRules(heading string) ([]pyRule, error) {
	b, err := os.ReadFile(cpythonDoc)
	if err != nil {
		return nil, err
	}
	var rules []pyRule
	in, found := false, false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			in = strings.HasPrefix(line, heading)
			found = found || in
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) != 2 {
			return nil, fmt.Errorf("%s:%d: want | `glob` | why |, got %q", cpythonDoc, i+1, line)
		}
		p, why := strings.Trim(strings.TrimSpace(cells[0]), "`"), strings.TrimSpace(cells[1])
		if _, err := path.Match(p, ""); err != nil || why == "" {
			return nil, fmt.Errorf("%s:%d: bad pattern or no reason in %q", cpythonDoc, i+1, line)
		}
		rules = append(rules, pyRule{pattern: p, why: why})
	}
	if !found {
		// A table may be empty, not missing: a renamed heading would
		// silently drop every rule.
		return nil, fmt.Errorf("%s: no heading %q", cpythonDoc, heading)
	}
	return rules, nil
}

const (
	knownDiffHeading = "## Known differences"
	notRunHeading    = "## Not run"
)

// ruleModule is the module of cpythonModules a rule's pattern belongs to
// ("test.test_json.*" -> "test_json", "test.test_asyncio.test_streams.*"
// -> "test_asyncio.test_streams"): the longest that prefixes it, or "".
func ruleModule(p string) string {
	best := ""
	for _, m := range cpythonModules {
		if strings.HasPrefix(p, "test."+m+".") && len(m) > len(best) {
			best = m
		}
	}
	return best
}

func rulesOf(rules []pyRule, module string) []pyRule {
	var out []pyRule
	for _, r := range rules {
		if ruleModule(r.pattern) == module {
			out = append(out, r)
		}
	}
	return out
}

func matchRule(rules []pyRule, id string) (pyRule, bool) {
	for _, r := range rules {
		if ok, _ := path.Match(r.pattern, id); ok {
			return r, true
		}
	}
	return pyRule{}, false
}

// runPython runs the driver on module natively or under snap (snapBin
// non-empty), in dir, and returns the results and stderr.
func runPython(snapBin, module, dir string, skips []pyRule) (map[string]pyStatus, string, error) {
	argv := []string{python, "-c", cpythonDriver}
	if classes := cpythonClasses[module]; len(classes) > 0 {
		for _, c := range classes {
			argv = append(argv, "test."+module+"."+c)
		}
	} else {
		argv = append(argv, "test."+module)
	}
	for _, r := range skips {
		argv = append(argv, "--skip", r.pattern)
	}
	where := "natively"
	if snapBin != "" {
		// The working directory is writable in both runs: under snap
		// in the overlay root.
		argv = append([]string{snapBin, "run", "--"}, argv...)
		where = "under snap"
	}
	ctx, cancel := context.WithTimeout(context.Background(), cpythonTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// No .pyc files: natively they would land in the host's tree.
	cmd.Env = append(baseEnv(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, "", fmt.Errorf("%s %s: timed out after %v\nstderr:\n%s", module, where, cpythonTimeout, clip(stderr.String()))
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		return nil, "", fmt.Errorf("%s %s: %v", module, where, err)
	}
	return parsePyResults(stdout.String()), stderr.String(), nil
}

func count(res map[string]pyStatus, st pyStatus) int {
	n := 0
	for _, s := range res {
		if s == st {
			n++
		}
	}
	return n
}

// TestCPython runs each module of cpythonModules natively and under snap and
// requires every test that passes natively to pass under snap, except those
// listed under "Known differences" in docs/CPYTHON.md; a listed pattern
// whose tests now pass both ways fails the test, so that the list stays
// true.
func TestCPython(t *testing.T) {
	check := exec.Command(python, "-c", "import test.support, test.test_json")
	check.Env = append(baseEnv(), "PYTHONDONTWRITEBYTECODE=1")
	if out, err := check.CombinedOutput(); err != nil {
		prereq.Missing(t, "%s with its test suite (Debian's libpython3.11-testsuite): %v: %s", python, err, strings.TrimSpace(string(out)))
	}
	snap(t)
	known, err := readPyRules(knownDiffHeading)
	if err != nil {
		t.Fatal(err)
	}
	notRun, err := readPyRules(notRunHeading)
	if err != nil {
		t.Fatal(err)
	}
	for _, module := range cpythonModules {
		t.Run(module, func(t *testing.T) {
			t.Parallel()
			// Both runs at once: most of the time goes to sleeps and
			// waits for child processes, not to the CPU.
			type run struct {
				res    map[string]pyStatus
				stderr string
				err    error
			}
			done := make(chan run, 1)
			nativeDir := t.TempDir()
			go func() {
				res, stderr, err := runPython("", module, nativeDir, rulesOf(notRun, module))
				done <- run{res, stderr, err}
			}()
			sandboxed, stderr, serr := runPython(snap(t), module, t.TempDir(), rulesOf(notRun, module))
			nr := <-done
			for _, err := range []error{nr.err, serr} {
				if err != nil {
					t.Fatal(err)
				}
			}
			native := nr.res
			if count(native, pyPass) == 0 {
				t.Fatalf("natively, no test of %s passed; stderr:\n%s", module, clip(nr.stderr))
			}
			t.Logf("%s: native %d passed %d skipped %d failed; snap %d passed %d skipped %d failed",
				module, count(native, pyPass), count(native, pySkip), count(native, pyFail)+count(native, pyError),
				count(sandboxed, pyPass), count(sandboxed, pySkip), count(sandboxed, pyFail)+count(sandboxed, pyError))
			checkPyResults(t, native, sandboxed, rulesOf(known, module), stderr)
		})
	}
}

// checkPyResults fails t with what comparePy finds.
func checkPyResults(t *testing.T, native, sandboxed map[string]pyStatus, known []pyRule, stderr string) {
	t.Helper()
	unexpected, stale, unchecked := comparePy(native, sandboxed, known)
	if len(unexpected) > 0 {
		t.Errorf("%d tests pass natively but not under snap, and are not known differences in %s:\n\t%s\nstderr under snap:\n%s",
			len(unexpected), cpythonDoc, strings.Join(unexpected, "\n\t"), clip(stderr))
	}
	for _, s := range stale {
		t.Errorf("%s in %s", s, cpythonDoc)
	}
	for _, s := range unchecked {
		t.Log(s)
	}
}

// comparePy compares the results of one module: the tests that pass
// natively and not under snap without a known difference matching them; the
// known differences that no longer hold (a test they match passes both
// ways and none differs, or they match no test); and those that could not
// be checked because none of their tests passed natively.
func comparePy(native, sandboxed map[string]pyStatus, known []pyRule) (unexpected, stale, unchecked []string) {
	var ids []string
	for id := range native {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	used := map[string]bool{}
	for _, id := range ids {
		if native[id] != pyPass || sandboxed[id] == pyPass {
			continue
		}
		if r, ok := matchRule(known, id); ok {
			used[r.pattern] = true
			continue
		}
		unexpected = append(unexpected, fmt.Sprintf("%s: %v under snap", id, sandboxed[id]))
	}
	for _, r := range known {
		if used[r.pattern] {
			continue
		}
		matched, passing := 0, 0
		for _, id := range ids {
			if ok, _ := path.Match(r.pattern, id); ok {
				matched++
				if native[id] == pyPass {
					passing++
				}
			}
		}
		switch {
		case matched == 0:
			stale = append(stale, fmt.Sprintf("known difference %q (%s) matches no test: fix or remove it", r.pattern, r.why))
		case passing > 0:
			stale = append(stale, fmt.Sprintf("known difference %q (%s) no longer differs: its tests pass under snap too; remove it", r.pattern, r.why))
		default:
			unchecked = append(unchecked, fmt.Sprintf("known difference %q: none of its %d tests passed natively in this run, so it was not checked", r.pattern, matched))
		}
	}
	return unexpected, stale, unchecked
}

// TestComparePy checks the rules TestCPython applies to one module.
func TestComparePy(t *testing.T) {
	known := []pyRule{{"test.m.A.fs_*", "writes files"}, {"test.m.A.gone", "fixed since"}, {"test.m.A.flaky", "native skip"}, {"test.m.A.nosuch", "typo"}}
	native := map[string]pyStatus{"test.m.A.ok": pyPass, "test.m.A.fs_1": pyPass, "test.m.A.fs_2": pyPass, "test.m.A.new": pyPass,
		"test.m.A.gone": pyPass, "test.m.A.flaky": pySkip, "test.m.A.nativefail": pyFail}
	sandboxed := map[string]pyStatus{"test.m.A.ok": pyPass, "test.m.A.fs_1": pyError, "test.m.A.fs_2": pyPass,
		"test.m.A.gone": pyPass, "test.m.A.flaky": pyError, "test.m.A.nativefail": pyError}
	unexpected, stale, unchecked := comparePy(native, sandboxed, known)
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"unexpected", unexpected, []string{"test.m.A.new: missing under snap"}},
		{"stale", stale, []string{`known difference "test.m.A.gone" (fixed since) no longer differs`, `known difference "test.m.A.nosuch" (typo) matches no test`}},
		{"unchecked", unchecked, []string{`known difference "test.m.A.flaky": none of its 1 tests passed natively`}},
	} {
		if len(tc.got) != len(tc.want) {
			t.Errorf("comparePy %s = %q, want %d entries starting %q", tc.name, tc.got, len(tc.want), tc.want)
			continue
		}
		for i := range tc.got {
			if !strings.HasPrefix(tc.got[i], tc.want[i]) {
				t.Errorf("comparePy %s[%d] = %q, want it to start with %q", tc.name, i, tc.got[i], tc.want[i])
			}
		}
	}
}

// TestCPythonDocTables checks the tables of docs/CPYTHON.md: every row
// names a module that TestCPython runs.
func TestCPythonDocTables(t *testing.T) {
	run := map[string]bool{}
	for _, m := range cpythonModules {
		run[m] = true
	}
	for _, heading := range []string{knownDiffHeading, notRunHeading} {
		rules, err := readPyRules(heading)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if !run[ruleModule(r.pattern)] {
				t.Errorf("%s: %q names no module of cpythonModules", heading, r.pattern)
			}
		}
	}
}

// TestParsePyResults checks the reading of the driver's output.
func TestParsePyResults(t *testing.T) {
	out := "noise\n@@cpython pass test.a.A.x\n@@cpython fail test.a.A.y\n@@cpython error test.a.A.y\n" +
		"@@cpython skip test.a.A.z\n@@cpython bogus test.a.A.w\n@@cpython pass setUpModule (test.b)\n"
	want := map[string]pyStatus{"test.a.A.x": pyPass, "test.a.A.y": pyError, "test.a.A.z": pySkip, "setUpModule (test.b)": pyPass}
	got := parsePyResults(out)
	if len(got) != len(want) {
		t.Fatalf("parsePyResults = %v, want %v", got, want)
	}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("parsePyResults[%q] = %v, want %v", id, got[id], st)
		}
	}
}
