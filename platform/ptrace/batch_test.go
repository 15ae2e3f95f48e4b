//go:build linux && amd64

package ptrace

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// TestStubBatchCode pins the layout the injector relies on: batchEntry at
// stubBatchOff (its first instruction, mov rax, [r12]), and the whole code
// inside the stub's page.
func TestStubBatchCode(t *testing.T) {
	want := []byte{0x49, 0x8b, 0x04, 0x24}
	if got := stubCode[stubBatchOff : stubBatchOff+len(want)]; string(got) != string(want) {
		t.Errorf("stubCode[%#x:] = % x, want % x (mov rax, [r12])", stubBatchOff, got, want)
	}
	if last := stubCode[len(stubCode)-1]; last != 0xcc {
		t.Errorf("stubCode ends with %#x, want int3", last)
	}
	if n := stubCodeOff + len(stubCode); n > pageSize {
		t.Errorf("stub image is %d bytes, want at most a page", n)
	}
}

// mapped reports whether addr is mapped in the stub process pid.
func mapped(pid int, addr uint64) bool {
	var b [1]byte
	n, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &b[0], Len: 1}}, []unix.RemoteIovec{{Base: uintptr(addr), Len: 1}}, 0)
	return err == nil && n == 1
}

// TestInjectBatch runs batches in a stub: every call in order, or up to the
// first that fails, which it reports with its errno.
func TestInjectBatch(t *testing.T) {
	const x, y = 0x2000_0000, 0x2001_0000
	mmap := func(addr uint64) stubCall {
		return stubCall{sysMmap, [6]uint64{addr, pageSize, unix.PROT_READ, unix.MAP_SHARED | unix.MAP_FIXED, stubFDInStub, 0}}
	}
	munmap := func(addr, length uint64) stubCall { return stubCall{sysMunmap, [6]uint64{addr, length}} }
	tests := []struct {
		name       string
		calls      []stubCall
		wantFailed int
		wantErr    error
		// wantX and wantY say whether x and y are mapped afterwards.
		wantX, wantY bool
	}{
		{name: "all succeed", calls: []stubCall{mmap(x), mmap(y), munmap(y, pageSize)}, wantFailed: -1, wantX: true},
		{name: "second fails", calls: []stubCall{mmap(x), munmap(y+1, pageSize), mmap(y)}, wantFailed: 1, wantErr: unix.EINVAL, wantX: true},
		{name: "first fails", calls: []stubCall{munmap(x+1, pageSize), mmap(x)}, wantFailed: 0, wantErr: unix.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			a, st := spaceWithThread(t)
			failed, err := injectBatch(st.tid, &a.leaderRegs, tc.calls, a.table)
			if failed != tc.wantFailed || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("injectBatch = %d, %v; want %d, %v", failed, err, tc.wantFailed, tc.wantErr)
			}
			if got := mapped(a.pid, x); got != tc.wantX {
				t.Errorf("after the batch, %#x mapped = %v, want %v", uint64(x), got, tc.wantX)
			}
			if got := mapped(a.pid, y); got != tc.wantY {
				t.Errorf("after the batch, %#x mapped = %v, want %v", uint64(y), got, tc.wantY)
			}
		})
	}
}

// spaceWithThread returns a new address space, released when t ends, and
// its stub thread traced by the calling OS thread, which the caller has
// locked.
func spaceWithThread(t *testing.T) (*addressSpace, *stubThread) {
	t.Helper()
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	t.Cleanup(a.Release)
	st, err := a.threadFor(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

// TestQueuedMappings checks that an address space that never ran queues
// its mappings, that the first Switch makes them all in one stop, and that
// mappings then take effect at once.
func TestQueuedMappings(t *testing.T) {
	const n = batchMax + 10 // more than one batch
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	defer a.Release()
	base := uint64(0x3000_0000)
	for i := range uint64(n) {
		if err := a.MapFile(base+i*2*pageSize, 0, pageSize, platform.Read, false); err != nil {
			t.Fatalf("MapFile %d: %v", i, err)
		}
	}
	if err := a.Unmap(base, pageSize); err != nil {
		t.Fatalf("Unmap: %v", err)
	}
	stops := e.p.counts.injections.Load()
	c := e.newContext(t)
	switchToLoop(t, c, a)
	// Queued: the code page and n mappings, then the unmap. Full batches
	// were made as the queue filled; the rest at the Switch.
	if got, want := e.p.counts.injections.Load()-stops, uint64(1); got > want+1 {
		t.Errorf("the first Switch took %d injection stops, want at most %d more than its batch", got, want)
	}
	for i := range uint64(n) {
		addr := base + i*2*pageSize
		if got, want := mapped(a.pid, addr), i != 0; got != want {
			t.Errorf("after the first Switch, mapping %d at %#x mapped = %v, want %v", i, addr, got, want)
		}
	}
	late := base + 2*n*pageSize
	if err := a.MapFile(late, 0, pageSize, platform.Read, false); err != nil {
		t.Fatalf("MapFile after running: %v", err)
	}
	if !mapped(a.pid, late) {
		t.Errorf("MapFile after the first Switch: %#x not mapped at once", late)
	}
}

// TestBatchAfterRunning checks that between BeginBatch and EndBatch an
// address space that has run queues its mappings, and EndBatch makes them.
func TestBatchAfterRunning(t *testing.T) {
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	defer a.Release()
	c := e.newContext(t)
	switchToLoop(t, c, a)
	const addr = 0x4000_0000
	a.BeginBatch()
	if err := a.MapFile(addr, 0, pageSize, platform.Read, false); err != nil {
		t.Fatalf("MapFile in a batch: %v", err)
	}
	if mapped(a.pid, addr) {
		t.Errorf("MapFile in a batch: %#x mapped before EndBatch", uint64(addr))
	}
	if err := a.EndBatch(); err != nil {
		t.Fatalf("EndBatch: %v", err)
	}
	if !mapped(a.pid, addr) {
		t.Errorf("after EndBatch: %#x not mapped", uint64(addr))
	}
}

// TestQueuedMmapsMerge checks that queued mappings of neighbouring memory
// file ranges at neighbouring addresses, with the same access, are made
// by one mmap, and that others are not merged.
func TestQueuedMmapsMerge(t *testing.T) {
	const base = 0x6000_0000
	e := newEnv(t, 1<<20)
	a := e.newSpace(t) // queues the code page's mapping
	defer a.Release()
	for _, m := range []struct {
		addr, off uint64
		at        platform.AccessType
	}{
		{base, dataOff, platform.Read},
		{base + pageSize, dataOff + pageSize, platform.Read},          // merges
		{base + 2*pageSize, dataOff + 2*pageSize, platform.ReadWrite}, // other access
		{base + 4*pageSize, dataOff + 3*pageSize, platform.ReadWrite}, // address gap
		{base + 5*pageSize, dataOff + 5*pageSize, platform.ReadWrite}, // file gap
	} {
		if err := a.MapFile(m.addr, m.off, pageSize, m.at, false); err != nil {
			t.Fatal(err)
		}
	}
	a.opMu.Lock()
	queued := len(a.pending)
	a.opMu.Unlock()
	if want := 1 + 4; queued != want {
		t.Errorf("queued calls = %d, want %d (the code page, then 5 mappings of which 2 merged)", queued, want)
	}
	c := e.newContext(t)
	switchToLoop(t, c, a)
	for _, addr := range []uint64{base, base + pageSize, base + 2*pageSize, base + 4*pageSize, base + 5*pageSize} {
		if !mapped(a.pid, addr) {
			t.Errorf("after the first Switch: %#x not mapped", addr)
		}
	}
	if mapped(a.pid, base+3*pageSize) {
		t.Errorf("after the first Switch: the gap at %#x mapped", uint64(base+3*pageSize))
	}
}

// TestStubStrippedDown checks what a new stub holds after its one batch
// of set-up calls: the stub page and its table page, read-only and shared
// (the scratch page the exec mapped is gone), nothing else of the user
// range and nothing writable, no descriptor but the memory file's, its
// name, and SIGCHLD ignored.
func TestStubStrippedDown(t *testing.T) {
	e := newEnv(t, 1<<20)
	a, err := e.p.newAddressSpace()
	if err != nil {
		t.Fatalf("NewAddressSpace: %v", err)
	}
	defer a.Release()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", a.pid))
	if err != nil {
		t.Fatal(err)
	}
	var starts []string
	for _, line := range strings.Split(strings.TrimSpace(string(maps)), "\n") {
		r := strings.Fields(line)
		if strings.HasPrefix(r[0], "ffffffffff600000") {
			continue // the vsyscall page, outside the user range
		}
		starts = append(starts, r[0]+" "+r[1])
	}
	want := []string{
		fmt.Sprintf("%x-%x r-xp", uint64(stubBase), uint64(stubBase+pageSize)),
		fmt.Sprintf("%x-%x r--s", uint64(stubTableAddr), uint64(stubTableAddr+pageSize)),
	}
	if !slices.Equal(starts, want) {
		t.Errorf("stub mappings = %q, want %q", starts, want)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.pid))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fd := range fds {
		names = append(names, fd.Name())
	}
	if want := []string{strconv.Itoa(stubFDInStub)}; !slices.Equal(names, want) {
		t.Errorf("stub descriptors = %q, want %q", names, want)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", a.pid))
	if err != nil || strings.TrimSpace(string(comm)) != stubName {
		t.Errorf("stub name = %q (%v), want %q", comm, err, stubName)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.pid))
	if err != nil {
		t.Fatal(err)
	}
	var ign uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			ign, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if ign&(1<<(unix.SIGCHLD-1)) == 0 {
		t.Errorf("SigIgn = %#x, want SIGCHLD ignored", ign)
	}
}

// switchToLoop switches c into a once, at the stub's system call loop, on
// a thread of its own (which then exits), and fails t if the switch fails.
func switchToLoop(t *testing.T, c platform.Context, a platform.AddressSpace) {
	t.Helper()
	var err error
	onOwnThread(func() {
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscallLoop
		_, _, err = switchOnce(c, a, st)
	})
	if err != nil {
		t.Fatalf("Switch: %v", err)
	}
}
