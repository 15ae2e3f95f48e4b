//go:build linux && amd64

package ptrace

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// procInfo describes pid from /proc: whether it exists, its state letter
// and whether its executable is the stub memfd.
type procInfo struct {
	exists bool
	state  byte
	stub   bool
}

func readProc(pid int) procInfo {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}
	}
	// The state follows the last ')' (comm may contain anything).
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return procInfo{exists: true}
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	comm := s[strings.IndexByte(s, '(')+1 : i]
	return procInfo{exists: true, state: s[i+2], stub: strings.Contains(exe, "snap-ptrace-stub") && comm == stubName}
}

// stubPIDs lists the stub leader and stub thread pids of the platform.
func stubPIDs(p *Platform) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	if p.spare != 0 {
		pids = append(pids, p.spare)
	}
	for a := range p.spaces {
		a.mu.Lock()
		pids = append(pids, a.pid)
		for _, th := range a.threads {
			pids = append(pids, th.tid)
		}
		a.mu.Unlock()
	}
	return pids
}

// startStubs creates two address spaces with a stub thread each (plus the
// leaders) and returns their pids.
func startStubs(t testing.TB, e *env) []int {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := e.p.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	for i := 0; i < 2; i++ {
		a := e.newSpace(t)
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch = %v", err)
		}
	}
	e.p.refilling.Wait()
	pids := stubPIDs(e.p)
	if len(pids) != 5 {
		t.Fatalf("stub pids = %v, want a spare, 2 leaders and 2 threads", pids)
	}
	for _, pid := range pids {
		if pi := readProc(pid); !pi.exists || !pi.stub {
			t.Fatalf("stub %d: %+v, want a live stub process", pid, pi)
		}
	}
	return pids
}

func TestReleaseLeavesNoProcess(t *testing.T) {
	e := newEnv(t, 1<<20)
	pids := startStubs(t, e)
	e.p.Release()
	for _, pid := range pids {
		if pi := readProc(pid); pi.exists && (pi.stub || pi.state == 'Z') {
			t.Errorf("after Release: process %d = %+v, want gone", pid, pi)
		}
	}
	if _, err := e.p.NewAddressSpace(); err == nil {
		t.Errorf("NewAddressSpace after Release = nil error, want ErrReleased")
	}
}

func TestUnusedPlatformLeavesNoProcess(t *testing.T) {
	e := newEnv(t, 1<<20)
	pids := stubPIDs(e.p)
	if len(pids) != 1 {
		t.Fatalf("stubs of a new platform = %v, want one spare", pids)
	}
	e.p.Release()
	if pi := readProc(pids[0]); pi.exists && (pi.stub || pi.state == 'Z') {
		t.Errorf("after Release: spare stub %d = %+v, want gone", pids[0], pi)
	}
}

func TestAddressSpaceReleaseLeavesNoProcess(t *testing.T) {
	e := newEnv(t, 1<<20)
	startStubs(t, e)
	e.p.mu.Lock()
	var a *addressSpace
	for s := range e.p.spaces {
		a = s
		break
	}
	e.p.mu.Unlock()
	a.mu.Lock()
	pids := []int{a.pid}
	for _, th := range a.threads {
		pids = append(pids, th.tid)
	}
	a.mu.Unlock()
	a.Release()
	if got := len(stubPIDs(e.p)); got != 3 {
		t.Errorf("remaining processes = %d, want 3 (the spare, the other leader and its thread)", got)
	}
	// Reaped in the background.
	e.p.reaping.Wait()
	for _, pid := range pids {
		if pi := readProc(pid); pi.exists && (pi.stub || pi.state == 'Z') {
			t.Errorf("after AddressSpace.Release and its reaping: process %d = %+v, want gone", pid, pi)
		}
	}
	if err := a.MapFile(0x1000_0000, 0, pageSize, platform.Read, false); err == nil {
		t.Errorf("MapFile after Release = nil, want an error")
	}
}

const helperEnv = "SNAP_PTRACE_TEST_HELPER"

// TestHelperProcess is not a real test: re-executed by
// TestSigkillLeavesNoProcess, it creates stubs (a spare, stopped stub
// threads, a stub thread running an endless loop), prints their pids and
// waits to be killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestSigkillLeavesNoProcess")
	}
	e := newEnv(t, 1<<20)
	startStubs(t, e)
	// One more stub thread, running (not stopped) when the helper dies.
	a := e.newSpace(t)
	c := e.newContext(t)
	go func() {
		runtime.LockOSThread()
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSpin
		var info platform.SignalInfo
		var at platform.AccessType
		c.Switch(a, st, &info, &at)
	}()
	if err := waitRunning(c); err != nil {
		t.Fatal(err)
	}
	e.p.refilling.Wait()
	// A spare, three leaders and their stub threads (two stopped, the
	// running one, and one for the thread that mapped the third address
	// space unless that was the running goroutine's thread too).
	pids := stubPIDs(e.p)
	fmt.Printf("pids %s\n", strings.Trim(fmt.Sprint(pids), "[]"))
	os.Stdout.Sync()
	select {}
}

func TestSigkillLeavesNoProcess(t *testing.T) {
	newEnv(t, 1<<20) // skips (or fails under SNAP_REQUIRE_ALL) without ptrace
	// Become a subreaper so that the orphaned stubs become our children and
	// we can see how they ended, whatever init does with orphans here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == "pids" {
			for _, s := range f[1:] {
				pid, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("helper printed %q", sc.Text())
				}
				pids = append(pids, pid)
			}
			break
		}
	}
	if len(pids) < 7 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper stub pids = %v, want at least 7", pids)
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			// Orphans become our children: reap them, and check how they
			// ended.
			var ws unix.WaitStatus
			if got, _ := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil); got == pid && ws.Signal() != unix.SIGKILL {
				t.Errorf("stub %d ended with status %#x, want killed by SIGKILL", pid, uint32(ws))
			}
			pi := readProc(pid)
			if !pi.exists || (!pi.stub && pi.state != 'Z') {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stub %d still there (state %c) 10s after its sentry was killed", pid, pi.state)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestSpare: the first address space gets the probe stub and no spare is
// made; from the second on, NewAddressSpace hands out the spare, and the
// next one is started in the background by the first Switch of the
// address space that took it (at once when there was none to take).
func TestSpare(t *testing.T) {
	e := newEnv(t, 1<<20)
	spare := func() int {
		e.p.refilling.Wait()
		e.p.mu.Lock()
		defer e.p.mu.Unlock()
		return e.p.spare
	}
	probe := spare()
	a1, err := e.p.newAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	if a1.pid != probe {
		t.Errorf("first address space pid = %d, want the probe stub %d", a1.pid, probe)
	}
	if got := spare(); got != 0 {
		t.Errorf("spare after the first address space = %d, want none", got)
	}
	a2, err := e.p.newAddressSpace() // started synchronously, starts a spare
	if err != nil {
		t.Fatal(err)
	}
	next := spare()
	if next == 0 || next == a2.pid {
		t.Fatalf("spare after the second address space = %d, want a new stub", next)
	}
	if pi := readProc(next); !pi.stub {
		t.Errorf("spare %d = %+v, want a live stub", next, pi)
	}
	a3, err := e.p.newAddressSpace()
	if err != nil {
		t.Fatal(err)
	}
	if a3.pid != next {
		t.Errorf("third address space pid = %d, want the spare %d", a3.pid, next)
	}
	if got := spare(); got != 0 {
		t.Errorf("spare after the third address space, before it ran = %d, want none", got)
	}
	if err := a3.startRunning(); err != nil {
		t.Fatal(err)
	}
	if got := spare(); got == 0 || got == next {
		t.Errorf("spare after the third address space's first Switch = %d, want a new one", got)
	}
}

// TestConcurrentNewAddressSpaceAndRelease creates address spaces from many
// goroutines, racing with the spare's refills, then releases the platform
// while the last refills may still run: no stub may survive.
func TestConcurrentNewAddressSpaceAndRelease(t *testing.T) {
	e := newEnv(t, 1<<20)
	var mu sync.Mutex
	var pids []int
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				a, err := e.p.newAddressSpace()
				if err != nil {
					t.Errorf("NewAddressSpace = %v", err)
					return
				}
				mu.Lock()
				pids = append(pids, a.pid)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	pids = append(pids, stubPIDs(e.p)...)
	e.p.Release()
	for _, pid := range pids {
		if pi := readProc(pid); pi.exists && (pi.stub || pi.state == 'Z') {
			t.Errorf("after Release: process %d = %+v, want gone", pid, pi)
		}
	}
}

// TestStubFromFile runs a stub executed from an unlinked temporary file,
// the fallback for hosts that forbid executable memfds.
func TestStubFromFile(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	fd, err := writeStubFile(t.TempDir(), buildStubImage())
	if err != nil {
		t.Fatalf("writeStubFile = %v", err)
	}
	// Swap the platform's executable before any further stub starts.
	e.p.refilling.Wait()
	unix.Close(e.p.stubFD)
	e.p.stubFD = fd
	e.p.mu.Lock()
	spare := e.p.spare
	e.p.spare = 0
	e.p.mu.Unlock()
	killAndReap(spare)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscall
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch in a stub from a file = %v", err)
	}
	if pi := readProc(a.pid); !pi.exists || pi.state == 'Z' {
		t.Errorf("stub %d = %+v, want alive", a.pid, pi)
	}
}
