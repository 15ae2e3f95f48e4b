package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	// sparse: 16 MiB of which every third page is written with a pattern
	// and the others are never touched; then, for each byte read from
	// stdin, it reads all 16 MiB and prints their checksum (see sparseSum).
	pausePrograms["sparse"] = `#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#define SIZE (16UL << 20)
int main(void) {
	unsigned long *p = mmap(0, SIZE, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return 2;
	for (unsigned long pg = 0; pg < SIZE / 4096; pg += 3)
		for (unsigned long i = 0; i < 512; i++)
			p[pg * 512 + i] = (pg * 0x9e3779b97f4a7c15UL) ^ i;
	printf("ready\n"); fflush(stdout);
	char c;
	while (read(0, &c, 1) == 1) {
		unsigned long s = 0;
		for (unsigned long i = 0; i < SIZE / 8; i++) s = s * 31 + p[i];
		printf("sum %lx\n", s); fflush(stdout);
	}
	return 0;
}`
}

// sparseSum is the checksum the sparse program prints when its memory is
// intact.
func sparseSum() uint64 {
	const size = 16 << 20
	var s uint64
	for w := uint64(0); w < size/8; w++ {
		pg, i := w/512, w%512
		var v uint64
		if pg%3 == 0 {
			v = (pg * 0x9e3779b97f4a7c15) ^ i
		}
		s = s*31 + v
	}
	return s
}

// runsOf yields the ranges as (offset, bytes) runs.
func runsOf(ranges []MemoryRange) iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		for _, r := range ranges {
			if !yield(r.Off, r.Data) {
				return
			}
		}
	}
}

// dataExtents returns the non-hole extents of the memory file, from
// SEEK_DATA/SEEK_HOLE.
func dataExtents(t *testing.T, f *MemoryFile) []fileRange {
	t.Helper()
	var out []fileRange
	err := f.forEachData(fileRange{0, f.Size()}, func(r fileRange) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("forEachData() = %v", err)
	}
	return out
}

// allocatedBytes is the memory the host file really holds.
func allocatedBytes(t *testing.T, fd int) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat memory file: %v", err)
	}
	return st.Blocks * 512
}

// TestRestoreSparseMemory saves a program whose memory is two thirds
// holes, restores it through a MemoryLoader, and checks that the restored
// memory file holds exactly the saved pages (the holes stay holes: no
// block is allocated for them, SEEK_DATA finds only written ranges), then
// that the restored program, reading all of its memory right away, gets
// the checksum of the memory it wrote.
func TestRestoreSparseMemory(t *testing.T) {
	s, ranges, state := savedSparse(t)
	var written uint64
	for _, r := range ranges {
		written += uint64(len(r.Data))
	}
	for _, tc := range []struct {
		name string
		size uint64 // RestoreOptions.MemorySize
	}{
		{"load after decoding", 0},
		{"load while decoding", s.k.mf.Size()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSparseRestore(t, state, ranges, written, tc.size)
		})
	}
}

// savedSparse starts the sparse program, pauses it in its read once it is
// ready and saves it: the sandbox (paused until the test ends), its memory
// ranges and its state.
func savedSparse(t *testing.T) (*pauseSandbox, []MemoryRange, []byte) {
	t.Helper()
	s := startPauseSandbox(t, "sparse")
	if l := s.next(t); l != "ready" {
		t.Fatalf("first line = %q, want ready", l)
	}
	pauseInSyscall(t, s.k, unix.SYS_READ)
	t.Cleanup(s.k.Unpause)
	ranges, state := savePaused(t, s.k)
	return s, ranges, state
}

// savePaused returns the memory ranges and the state blob of the paused
// kernel k (the ranges alias its memory while it stays paused).
func savePaused(t *testing.T, k *Kernel) ([]MemoryRange, []byte) {
	t.Helper()
	ranges, err := k.MemoryRanges()
	if err != nil {
		t.Fatalf("MemoryRanges() = %v", err)
	}
	var state bytes.Buffer
	if err := k.SaveState(context.Background(), &state); err != nil {
		t.Fatalf("SaveState() = %v", err)
	}
	return ranges, state.Bytes()
}

// restoreWithPipes restores state with o, its stdio replaced by pipes, and
// returns the (not yet resumed) kernel with the write end of its stdin and
// the read end of its stdout. When the test ends the sandbox is killed and
// released, then the pipes are closed.
func restoreWithPipes(t *testing.T, state []byte, o RestoreOptions) (k *Kernel, stdin, stdout *os.File) {
	t.Helper()
	inR, inW, outR, outW := stdioPipes(t)
	for _, f := range []*os.File{inR, inW, outR, outW} {
		t.Cleanup(func() { f.Close() })
	}
	o.Config.Stdin, o.Config.Stdout, o.Config.Stderr = inR, outW, outW
	k, err := Restore(context.Background(), bytes.NewReader(state), o)
	if err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	t.Cleanup(func() {
		k.SignalInit(int(unix.SIGKILL))
		k.Wait()
		k.Release()
	})
	return k, inW, outR
}

// checkSparseRestore restores the sparse program from state and ranges
// with RestoreOptions.MemorySize size and checks its memory and its sum.
func checkSparseRestore(t *testing.T, state []byte, ranges []MemoryRange, written, size uint64) {
	tm := new(Timings)
	k, inW, outR := restoreWithPipes(t, state, RestoreOptions{
		Timings:    tm,
		MemorySize: size,
		LoadMemory: func(w *MemoryLoader) error {
			// Two writers at once, as the image reader does.
			half := len(ranges) / 2
			errs := make(chan error, 2)
			go func() { errs <- w.WriteRuns(runsOf(ranges[:half])) }()
			go func() { errs <- w.WriteRuns(runsOf(ranges[half:])) }()
			return errors.Join(<-errs, <-errs)
		},
	})
	checkRestoreSteps(t, tm.Steps())

	// Holes stay holes: the file holds exactly the pages written.
	if got := allocatedBytes(t, k.mf.fd); got != int64(written) {
		t.Errorf("restored memory file allocates %d bytes, want the %d bytes written", got, written)
	}
	if size := k.mf.Size(); written > size/2 {
		t.Errorf("%d of %d bytes were saved: the program's untouched pages were not left out", written, size)
	}
	inRange := func(r fileRange) bool {
		for _, m := range ranges {
			if r.Start >= m.Off && r.End <= m.Off+uint64(len(m.Data)) {
				return true
			}
		}
		return false
	}
	for _, ext := range dataExtents(t, k.mf) {
		// SEEK_DATA may merge adjacent written ranges; check page by page.
		for p := ext.Start; p < ext.End; p += pageSize {
			if !inRange(fileRange{p, p + pageSize}) {
				t.Fatalf("restored memory file has data at %#x, which was not written", p)
			}
		}
	}
	// The written bytes are the saved ones, but for the vDSO parameter
	// page, which the restore rewrites for this host.
	params := k.vdso.paramsRange()
	for _, r := range ranges {
		got, err := k.mf.Bytes(r.Off, uint64(len(r.Data)))
		if err != nil {
			t.Fatalf("restored memory at %#x (+%#x): %v", r.Off, len(r.Data), err)
		}
		for p := uint64(0); p < uint64(len(got)); p += pageSize {
			if off := r.Off + p; off >= params.Start && off < params.End {
				continue
			}
			if !bytes.Equal(got[p:p+pageSize], r.Data[p:p+pageSize]) {
				t.Fatalf("restored memory at %#x differs from the saved memory", r.Off+p)
			}
		}
	}

	// The present pages are mapped into the stub in bulk (Restore started
	// that on the side; do it again and wait), still without allocating
	// any hole.
	var mapped int64
	for _, tg := range k.threadGroups() {
		if n := tg.mm.prefaultPresent(); n == 0 {
			t.Errorf("prefaultPresent() of process %d read no window", tg.tgid)
		}
		has, ok := tg.mm.as.(hostAddressSpace)
		if !ok {
			t.Fatalf("address space %T of process %d has no HostPID: nothing can be prefaulted", tg.mm.as, tg.tgid)
		}
		mapped += memoryFileRss(t, has.HostPID())
	}
	if mapped < int64(written)*9/10 {
		t.Errorf("after prefaultPresent the stubs map %d bytes of the memory file, want about the %d bytes written", mapped, written)
	}
	if got := allocatedBytes(t, k.mf.fd); got != int64(written) {
		t.Errorf("after prefaultPresent the memory file allocates %d bytes, want %d", got, written)
	}

	k.Resume()
	lines := scanLines(outR, 4)
	want := fmt.Sprintf("sum %x", sparseSum())
	for round := 0; round < 2; round++ {
		if _, err := inW.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-lines:
			if l != want {
				t.Errorf("restored program, round %d: %q, want %q", round, l, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("restored program printed nothing")
		}
	}
}

// memoryFileRss is how much of the memory file process pid has mapped in
// its page tables (the Rss of its snap-memory mappings).
func memoryFileRss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var rss int64
	inFile := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			inFile = strings.Contains(line, "snap-memory")
		case inFile && len(f) == 3 && f[0] == "Rss:":
			var kb int64
			fmt.Sscan(f[1], &kb)
			rss += kb << 10
		}
	}
	return rss
}

// memoryFileFDs counts the descriptors of this process that are memory
// files named snap-memory.
func memoryFileFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "/memfd:snap-memory") {
			n++
		}
	}
	return n
}

// TestRestoreLoadFailure checks that a loader error (a corrupt chunk, as
// the image reader reports it) fails Restore with that error still
// recognisable, and leaves nothing behind: no memory file and no stub
// process.
func TestRestoreLoadFailure(t *testing.T) {
	s, ranges, state := savedSparse(t)
	errCorrupt := errors.New("memory chunk 3: checksum mismatch")
	size := s.k.mf.Size()
	beyond := []MemoryRange{{Off: size, Data: make([]byte, pageSize)}}
	corruptHalfway := func(w *MemoryLoader) error {
		if err := w.WriteRuns(runsOf(ranges[:len(ranges)/2])); err != nil {
			return err
		}
		return errCorrupt
	}
	loadAll := func(w *MemoryLoader) error { return w.WriteRuns(runsOf(ranges)) }
	tests := []struct {
		name  string
		state []byte
		size  uint64 // RestoreOptions.MemorySize
		load  func(w *MemoryLoader) error
		want  error // nil: any error
	}{
		{"corrupt chunk after some memory", state, 0, corruptHalfway, errCorrupt},
		{"corrupt chunk while decoding", state, size, corruptHalfway, errCorrupt},
		{"run beyond the memory file", state, 0, func(w *MemoryLoader) error {
			return w.WriteRuns(runsOf(beyond))
		}, ErrBadState},
		{"image memory larger than the memory file", state, size + 1<<20, loadAll, ErrBadState},
		{"memory size not page aligned", state, size - 1, loadAll, ErrBadState},
		{"truncated state while loading", state[:len(state)/2], size, loadAll, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			memfds := memoryFileFDs(t)
			stubs := childCount(t)
			k, err := Restore(context.Background(), bytes.NewReader(tc.state), RestoreOptions{MemorySize: tc.size, LoadMemory: tc.load})
			if err == nil {
				k.Release()
				t.Fatalf("Restore() = nil error, want %v", tc.want)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Restore() = %v, want %v", err, tc.want)
			}
			if got := memoryFileFDs(t); got != memfds {
				t.Errorf("after a failed Restore, %d memory files are open, want %d", got, memfds)
			}
			if got := childCount(t); got != stubs {
				t.Errorf("after a failed Restore, %d child processes, want %d", got, stubs)
			}
		})
	}
}

// childCount counts this process's child processes (stubs).
func childCount(t *testing.T) int {
	t.Helper()
	n := 0
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err == nil {
			n += len(strings.Fields(string(b)))
		}
	}
	return n
}

// TestMemoryLoaderWriteRuns writes scattered runs, short ones, an empty
// one, more than one process_vm_writev batch and long ones, through each
// way the loader has (pwrite; the sentry's mapping while another call
// writes with pwrite; pwrite after process_vm_writev failed), and checks
// the bytes, the holes between them (nothing but the runs is allocated),
// and the range check.
func TestMemoryLoaderWriteRuns(t *testing.T) {
	run := func(page uint64, pages int, b byte) MemoryRange {
		return MemoryRange{Off: page * pageSize, Data: bytes.Repeat([]byte{b}, pages*pageSize)}
	}
	tests := []struct {
		name string
		runs []MemoryRange
	}{
		{"one page", []MemoryRange{run(3, 1, 1)}},
		{"scattered short", []MemoryRange{run(0, 1, 1), run(2, 3, 2), run(7, 1, 3), run(9, rawWriteMax/pageSize, 4)}},
		{"empty run", []MemoryRange{run(1, 1, 5), {Off: 4 * pageSize}, run(5, 1, 6)}},
		{"long", []MemoryRange{run(0, rawWriteMax/pageSize+1, 7), run(40, 256, 8)}},
		{"more than a batch", nil},
	}
	for p := uint64(0); p < 2*mapBatch+10; p++ {
		tests[len(tests)-1].runs = append(tests[len(tests)-1].runs, run(2*p, 1, byte(p)))
	}
	ways := []struct {
		name               string
		mapped, pwriteOnly bool
	}{
		{"pwrite", false, false},
		{"mapped", true, false},
		{"mapped, process_vm_writev failed", true, true},
	}
	for _, tc := range tests {
		for _, way := range ways {
			t.Run(tc.name+"/"+way.name, func(t *testing.T) {
				last := tc.runs[len(tc.runs)-1]
				size := last.Off + uint64(len(last.Data)) + pageSize
				var written int64
				for _, r := range tc.runs {
					written += int64(len(r.Data))
				}
				f, err := NewMemoryFile("snap-test-loader")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Release()
				if err := unix.Ftruncate(f.fd, int64(size)); err != nil {
					t.Fatal(err)
				}
				f.size = size
				l := &MemoryLoader{f: f, size: size}
				l.pwriteOnly.Store(way.pwriteOnly)
				if way.mapped {
					// As if another call wrote with pwrite and one more
					// waited for it.
					l.writeMu.Lock()
					l.waiting.Store(1)
				}
				if err := l.WriteRuns(runsOf(tc.runs)); err != nil {
					t.Fatalf("WriteRuns() = %v", err)
				}
				want := make([]byte, size)
				for _, r := range tc.runs {
					copy(want[r.Off:], r.Data)
				}
				got := make([]byte, size)
				if _, err := unix.Pread(f.fd, got, 0); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("WriteRuns wrote the wrong bytes")
				}
				if a := allocatedBytes(t, f.fd); a != written {
					t.Errorf("memory file allocates %d bytes after WriteRuns, want %d", a, written)
				}
				err = l.WriteRuns(runsOf([]MemoryRange{{Off: size - pageSize, Data: make([]byte, 2*pageSize)}}))
				if !errors.Is(err, ErrBadState) {
					t.Errorf("WriteRuns(run past the end) = %v, want ErrBadState", err)
				}
			})
		}
	}
}

// TestRestoreReleaseWithoutRunning releases restored kernels that never
// ran, at once, while their prefault may still be going on the side: the
// prefault must stop without touching the released memory file.
func TestRestoreReleaseWithoutRunning(t *testing.T) {
	s, ranges, state := savedSparse(t)
	memfds := memoryFileFDs(t)
	for i := 0; i < 10; i++ {
		k, err := Restore(context.Background(), bytes.NewReader(state), RestoreOptions{
			MemorySize: s.k.mf.Size(),
			LoadMemory: func(w *MemoryLoader) error { return w.WriteRuns(runsOf(ranges)) },
		})
		if err != nil {
			t.Fatalf("Restore() = %v", err)
		}
		k.Release()
	}
	if got := memoryFileFDs(t); got != memfds {
		t.Errorf("after releasing the restored kernels, %d memory files are open, want %d", got, memfds)
	}
}

// checkRestoreSteps requires each of Restore's steps once, none ending
// before it began (how long they took is not checked).
func checkRestoreSteps(t *testing.T, steps []Step) {
	t.Helper()
	seen := map[string]int{}
	for _, s := range steps {
		seen[s.Name]++
		if s.End.Before(s.Start) {
			t.Errorf("step %s ends before it begins: %v to %v", s.Name, s.Start, s.End)
		}
	}
	for _, name := range []string{StepReadHeader, StepPlatform, StepMemory, StepReadState, StepDecode,
		StepAfterLoad, StepConfigure, StepAttach, StepWaitMemory, StepStartKernel} {
		if seen[name] != 1 {
			t.Errorf("Restore recorded step %s %d times, want once (steps %v)", name, seen[name], seen)
		}
	}
	if len(seen) != 10 {
		t.Errorf("Restore recorded steps %v, want the 10 named ones", seen)
	}
}
