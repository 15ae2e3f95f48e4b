package kernel

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/smaps"
)

func init() {
	// cowbase: 4 MiB of a pattern; for each byte on stdin it prints the
	// memory's checksum, after flipping the first byte of every page of
	// its first MiB if the byte is 'w'; for 'z' it drops 64 KiB of it
	// (MADV_DONTNEED) and says whether they read as zero.
	pausePrograms["cowbase"] = `#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#define N (4 << 20)
int main(void) {
	unsigned char *m = malloc(N);
	for (int i = 0; i < N; i++) m[i] = (unsigned char)(i * 7 + i / 4096);
	printf("ready\n"); fflush(stdout);
	char c;
	while (read(0, &c, 1) == 1) {
		if (c == 'z') {
			unsigned char *p = (unsigned char *)(((unsigned long)m + 8191) & ~4095UL);
			madvise(p, 65536, MADV_DONTNEED);
			int zero = 1;
			for (int i = 0; i < 65536; i++) zero &= p[i] == 0;
			printf("zeroed %d\n", zero); fflush(stdout);
			continue;
		}
		if (c == 'w') for (int i = 0; i < N / 4; i += 4096) m[i] ^= 0xff;
		unsigned long s = 0;
		for (int i = 0; i < N; i++) s = s * 31 + m[i];
		printf("sum %lx\n", s); fflush(stdout);
	}
	return 0;
}`
	// cowfault: 4 MiB written, then shared copy-on-write with a child
	// that waits; for each byte on stdin it writes that byte into every
	// page (a copy-on-write fault each 64 KiB) and prints it.
	pausePrograms["cowfault"] = `#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define N (4 << 20)
int main(void) {
	unsigned char *m = mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 1;
	memset(m, 'a', N);
	pid_t pid = fork();
	if (pid == 0) for (;;) pause();
	printf("ready\n"); fflush(stdout);
	char c;
	while (read(0, &c, 1) == 1) {
		for (int i = 0; i < N; i += 4096) m[i] = c;
		int same = 1;
		for (int i = 0; i < N; i += 4096) same &= m[i] == c;
		printf("wrote %c: %s\n", c, same ? "ok" : "CORRUPT"); fflush(stdout);
	}
	kill(pid, SIGKILL);
	return 0;
}`
}

// writeBase writes the saved ranges into a new file of size bytes at
// their offsets (zero pages left as holes) and returns it opened
// read-only.
func writeBase(t *testing.T, ranges []MemoryRange, size uint64) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "base")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if _, err := f.WriteAt(r.Data, int64(r.Off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

// baseMapped is smaps.Mapped, failing t on an error.
func baseMapped(t *testing.T, pid int, path string) (rss, shared uint64) {
	t.Helper()
	rss, shared, err := smaps.Mapped(pid, path)
	if err != nil {
		t.Fatal(err)
	}
	return rss, shared
}

// stubPID returns the host pid of the stub of k's first process.
func stubPID(t *testing.T, k *Kernel) int {
	t.Helper()
	has, ok := initTask(k).tg.mm.as.(hostAddressSpace)
	if !ok {
		t.Fatal("the address space is not a host process")
	}
	return has.HostPID()
}

// dataBytes returns how many bytes of f's memory file hold data (without
// loading anything, as forEachData would).
func dataBytes(t *testing.T, f *MemoryFile) uint64 {
	return uint64(allocatedBytes(t, f.fd))
}

// TestRestoreOverBase restores two sandboxes over one base: both read
// the base's pages (mapped by both stubs, shared; populated by one, on
// first touch by the other), a write in one copies
// what it writes into its own memory file and the other sees nothing of
// it, what one copied can be copied into another before it runs, and a
// save of the one that wrote, restored the ordinary way, has its memory.
func TestRestoreOverBase(t *testing.T) {
	s := startPauseSandbox(t, "cowbase")
	if l := s.next(t); l != "ready" {
		t.Fatalf("first line = %q, want ready", l)
	}
	s.stdin.Write([]byte{'r'})
	orig := s.next(t)
	pauseInSyscall(t, s.k, unix.SYS_READ)
	ranges, state := savePaused(t, s.k)
	size := s.k.mf.Size()
	base := writeBase(t, ranges, size)
	s.k.Unpause()
	s.stdin.Write([]byte{'w'})
	wantWritten := s.next(t)
	if wantWritten == orig {
		t.Fatalf("the write changed nothing: %q", orig)
	}

	type member struct {
		k   *Kernel
		in  *os.File
		out chan string
	}
	var ms [2]member
	for i := range ms {
		// The first maps the base populated (a pool member), the second
		// page by page on first touch (a restore from the restore cache).
		k, inW, outR := restoreWithPipes(t, state, RestoreOptions{Base: &MemoryBase{FD: int(base.Fd()), Size: size, Populate: i == 0}})
		k.Resume()
		ms[i] = member{k, inW, scanLines(outR, 16)}
	}
	line := func(m member) string {
		t.Helper()
		select {
		case l := <-m.out:
			return l
		case <-time.After(60 * time.Second):
			t.Fatal("the restored program printed nothing")
			return ""
		}
	}
	for i, m := range ms {
		m.in.Write([]byte{'r'})
		if got := line(m); got != orig {
			t.Errorf("member %d read %q, want %q", i, got, orig)
		}
	}
	// Both stubs map the base, and the pages both read are shared.
	for i, m := range ms {
		rss, shared := baseMapped(t, stubPID(t, m.k), base.Name())
		if rss < 2<<10 || shared < 2<<10 {
			t.Errorf("member %d maps %d KiB of the base, %d KiB shared; want at least 2 MiB of each", i, rss, shared)
		}
	}
	before := dataBytes(t, ms[0].k.mf)
	ms[0].in.Write([]byte{'w'})
	if got := line(ms[0]); got != wantWritten {
		t.Errorf("member 0 after its write: %q, want %q", got, wantWritten)
	}
	ms[1].in.Write([]byte{'r'})
	if got := line(ms[1]); got != orig {
		t.Errorf("member 1 after member 0 wrote: %q, want %q (unchanged)", got, orig)
	}
	// The write copied about the MiB written, not the memory.
	if copied := dataBytes(t, ms[0].k.mf) - before; copied < 1<<20 || copied > 2<<20 {
		t.Errorf("member 0's memory file grew by %d bytes for a write of 1 MiB", copied)
	}
	if own := dataBytes(t, ms[1].k.mf); own > 1<<20 {
		t.Errorf("member 1 holds %d bytes of its own after reading only", own)
	}
	// What member 0 copied, copied at once into a third before it runs:
	// its writes land in the copies, mapped already.
	copied := ms[0].k.BaseCopied()
	if len(copied) < 16 {
		t.Fatalf("BaseCopied() after a write of 1 MiB = %d chunks", len(copied))
	}
	k3, in3, out3 := restoreWithPipes(t, state, RestoreOptions{Base: &MemoryBase{FD: int(base.Fd()), Size: size}})
	if err := k3.CopyBase(copied); err != nil {
		t.Fatalf("CopyBase() = %v", err)
	}
	if own := dataBytes(t, k3.mf); own < uint64(len(copied))*baseChunk/2 {
		t.Errorf("after CopyBase of %d chunks the memory file holds %d bytes", len(copied), own)
	}
	k3.Resume()
	m3 := member{k3, in3, scanLines(out3, 16)}
	m3.in.Write([]byte{'w'})
	if got := line(m3); got != wantWritten {
		t.Errorf("member 3 after CopyBase and a write: %q, want %q", got, wantWritten)
	}

	// The same, the first few chunks before it runs and the others
	// copied ahead of it, in the order member 0 wrote them: once copied,
	// its writes fault on none of them.
	k4, in4, out4 := restoreWithPipes(t, state, RestoreOptions{Base: &MemoryBase{FD: int(base.Fd()), Size: size}})
	if err := k4.CopyBase(copied[:4]); err != nil {
		t.Fatalf("CopyBase() = %v", err)
	}
	select {
	case <-k4.CopyBaseAhead(copied[4:]):
	case <-time.After(60 * time.Second):
		t.Fatal("CopyBaseAhead did not end")
	}
	if own := dataBytes(t, k4.mf); own < uint64(len(copied))*baseChunk/2 {
		t.Errorf("after CopyBase and CopyBaseAhead of %d chunks the memory file holds %d bytes", len(copied), own)
	}
	atRestore := len(k4.BaseCopied()) // the chunks mapped shared, copied when mapped
	k4.Resume()
	m4 := member{k4, in4, scanLines(out4, 16)}
	m4.in.Write([]byte{'w'})
	if got := line(m4); got != wantWritten {
		t.Errorf("member 4 after CopyBaseAhead and a write: %q, want %q", got, wantWritten)
	}
	for _, i := range k4.BaseCopied()[atRestore:] {
		if slices.Contains(copied, i) {
			t.Errorf("member 4 copied chunk %d on a write fault, after CopyBaseAhead copied it", i)
		}
	}

	// The same chunks copied by the restore itself (Base.Copy), while
	// the state decodes: mapped from the memory file at once, written
	// without a fault.
	k5, in5, out5 := restoreWithPipes(t, state, RestoreOptions{Base: &MemoryBase{FD: int(base.Fd()), Size: size, Copy: append(copied, -1, 1<<30)}})
	if own := dataBytes(t, k5.mf); own < uint64(len(copied))*baseChunk/2 {
		t.Errorf("after a restore with Base.Copy of %d chunks the memory file holds %d bytes", len(copied), own)
	}
	atRestore = len(k5.BaseCopied())
	k5.Resume()
	m5 := member{k5, in5, scanLines(out5, 16)}
	m5.in.Write([]byte{'w'})
	if got := line(m5); got != wantWritten {
		t.Errorf("member 5 restored with Base.Copy, after a write: %q, want %q", got, wantWritten)
	}
	for _, i := range k5.BaseCopied()[atRestore:] {
		if slices.Contains(copied, i) {
			t.Errorf("member 5 copied chunk %d on a write fault, after the restore copied it", i)
		}
	}

	// Memory dropped reads as zero, not as the base.
	ms[1].in.Write([]byte{'z'})
	if got := line(ms[1]); got != "zeroed 1" {
		t.Errorf("member 1 after MADV_DONTNEED: %q, want %q", got, "zeroed 1")
	}

	// A save reads through the view; the image restores as any other.
	pauseInSyscall(t, ms[0].k, unix.SYS_READ)
	ranges2, state2 := savePaused(t, ms[0].k)
	size2 := ms[0].k.mf.Size()
	ms[0].k.Unpause()
	k, inW, outR := restoreWithPipes(t, state2, RestoreOptions{
		MemorySize: size2,
		LoadMemory: func(w *MemoryLoader) error { return w.WriteRuns(runsOf(ranges2)) },
	})
	k.Resume()
	lines := scanLines(outR, 4)
	inW.Write([]byte{'r'})
	select {
	case got := <-lines:
		if got != wantWritten {
			t.Errorf("saved member restored: %q, want %q", got, wantWritten)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the restored save printed nothing")
	}
}

// TestFaultFixedBeforeSaveOverBase: a task saved between a fault the MM
// fixed and its next run resumes at the faulting instruction, which
// faults again at the same address after a restore over a base (the page
// is mapped from the base, read-only, until written). That is a new
// mapping, not the same fault repeating: the task goes on rather than
// getting SIGSEGV. The hook stops the kernel right after the first
// copy-on-write fault of the forked program's parent.
func TestFaultFixedBeforeSaveOverBase(t *testing.T) {
	s := startPauseSandbox(t, "cowfault")
	if l := s.next(t); l != "ready" {
		t.Fatalf("first line = %q, want ready", l)
	}
	stopped := make(chan *Task, 1)
	var once sync.Once
	hook := func(task *Task) {
		if task.k == s.k && task.tid == 1 {
			once.Do(func() {
				task.k.requestStop()
				stopped <- task
			})
		}
	}
	faultFixedHook.Store(&hook)
	defer faultFixedHook.Store(nil)
	s.stdin.Write([]byte{'b'})
	var task *Task
	select {
	case task = <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("the program's writes fixed no fault")
	}
	s.k.waitStopped()
	faultFixedHook.Store(nil)
	if task.lastFault == 0 || task.lastFaultAccess&permWrite == 0 {
		t.Fatalf("stopped after a fault with last fault %#x, access %v; want a write fault recorded", task.lastFault, task.lastFaultAccess)
	}
	ranges, state := savePaused(t, s.k)
	s.k.Unpause()
	size := s.k.mf.Size()
	base := writeBase(t, ranges, size)

	for _, tc := range []struct {
		name     string
		populate bool
	}{
		{"restore cache", false},
		{"pool member", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, in, outR := restoreWithPipes(t, state, RestoreOptions{Base: &MemoryBase{FD: int(base.Fd()), Size: size, Populate: tc.populate}})
			out := scanLines(outR, 16)
			k.Resume()
			in.Write([]byte{'c'})
			for _, want := range []string{"wrote b: ok", "wrote c: ok"} {
				select {
				case l := <-out:
					if l != want {
						t.Fatalf("restored program printed %q, want %q", l, want)
					}
				case <-k.Exited():
					t.Fatalf("restored program ended (%+v) before printing %q", k.Wait(), want)
				case <-time.After(60 * time.Second):
					t.Fatalf("restored program printed nothing, want %q", want)
				}
			}
		})
	}
}

// TestPopulateRun: a base load's mappings split where the chunks left
// unpopulated (MemoryBase.Unpopulated) begin and end; chunks are numbered
// among those holding data, not by offset.
func TestPopulateRun(t *testing.T) {
	const c = baseChunk
	// Chunks at 0, 1, 3 and 4 (2 is a hole), indices 0..3; index 1 (at
	// 1) and index 2 (at 3) unpopulated.
	chunks := []LazyChunk{{Off: 0, Len: c}, {Off: c, Len: c}, {Off: 3 * c, Len: c}, {Off: 4 * c, Len: c}}
	tests := []struct {
		name          string
		off, end      uint64
		next          uint64
		populate      bool
		noUnpopulated bool
	}{
		{name: "populated chunk up to the unpopulated one", off: 0, end: 5 * c, next: c, populate: true},
		{name: "from inside the first chunk", off: 4096, end: 5 * c, next: c, populate: true},
		{name: "unpopulated chunk then the hole", off: c, end: 5 * c, next: 2 * c},
		{name: "the hole, populated", off: 2 * c, end: 5 * c, next: 3 * c, populate: true},
		{name: "unpopulated chunk at 3", off: 3 * c, end: 5 * c, next: 4 * c},
		{name: "range ends inside", off: c + 4096, end: c + 8192, next: c + 8192},
		{name: "last chunk", off: 4 * c, end: 5 * c, next: 5 * c, populate: true},
		{name: "nothing left unpopulated", off: 0, end: 5 * c, next: 5 * c, populate: true, noUnpopulated: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bl := &baseLoad{populate: true, chunks: chunks}
			if !tc.noUnpopulated {
				for _, i := range []int{1, 2} {
					setBits(&bl.unpopulated, uint64(i), 1)
				}
			}
			next, populate := bl.populateRun(tc.off, tc.end)
			if next != tc.next || populate != tc.populate {
				t.Errorf("populateRun(%#x, %#x) = %#x, %v, want %#x, %v", tc.off, tc.end, next, populate, tc.next, tc.populate)
			}
		})
	}
}
