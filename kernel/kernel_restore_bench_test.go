package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/ctest"
)

// touchProgram writes every other page of 128 MiB, prints "ready", then,
// for each byte read from stdin, increments the first word of each page it
// wrote, reads all their words and prints their sum: right after a
// restore, that is the program's first touch of all its memory, a write
// first as most programs do.
const touchProgram = `#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#define SIZE (128UL << 20)
int main(void) {
	unsigned long *p = mmap(0, SIZE, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return 2;
	for (unsigned long pg = 0; pg < SIZE / 4096; pg += 2)
		for (unsigned long i = 0; i < 512; i++) p[pg * 512 + i] = pg ^ i;
	printf("ready\n"); fflush(stdout);
	char c;
	while (read(0, &c, 1) == 1) {
		unsigned long s = 0;
		for (unsigned long pg = 0; pg < SIZE / 4096; pg += 2) p[pg * 512]++;
		for (unsigned long pg = 0; pg < SIZE / 4096; pg += 2)
			for (unsigned long i = 0; i < 512; i++) s += p[pg * 512 + i];
		printf("sum %lu\n", s); fflush(stdout);
	}
	return 0;
}`

// benchSandbox is a kernel with its stdio on pipes.
type benchSandbox struct {
	k          *Kernel
	in         *os.File
	lines      chan string
	closeFiles func()
}

func newBenchSandbox(b *testing.B, start func(stdin, stdout *os.File) (*Kernel, error)) *benchSandbox {
	b.Helper()
	inR, inW, outR, outW := stdioPipes(b)
	k, err := start(inR, outW)
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSandbox{k: k, in: inW, lines: scanLines(outR, 16)}
	s.closeFiles = func() {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
	}
	return s
}

func (s *benchSandbox) line(b *testing.B) string {
	b.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			b.Fatal("program output ended")
		}
		return l
	case <-time.After(60 * time.Second):
		b.Fatal("no output from the program")
	}
	return ""
}

// touch asks the program to read all its pages and returns how long the
// answer took and the answer.
func (s *benchSandbox) touch(b *testing.B) (time.Duration, string) {
	b.Helper()
	start := time.Now()
	if _, err := s.in.Write([]byte{'x'}); err != nil {
		b.Fatal(err)
	}
	l := s.line(b)
	return time.Since(start), l
}

func (s *benchSandbox) end() {
	s.k.SignalInit(int(unix.SIGKILL))
	s.k.Wait()
	s.k.Release()
	s.closeFiles()
}

// BenchmarkRestoreTouch measures a restored program's first touch of its
// 64 MiB of present pages (every other page of 128 MiB) right after
// Restore and Resume, against the same touch in the original sandbox
// where the pages are mapped already (touch-mapped-ms, measured in the
// same run), and the memory load itself (load-ms).
func BenchmarkRestoreTouch(b *testing.B) {
	bin := ctest.Source(b, "gcc", "touch", touchProgram, "-static", "-O2")
	orig := newBenchSandbox(b, func(stdin, stdout *os.File) (*Kernel, error) {
		k, err := New(Config{})
		if err != nil {
			return nil, err
		}
		return k, k.Start(StartOptions{Argv: []string{bin}, Stdin: stdin, Stdout: stdout, Stderr: stdout})
	})
	defer orig.end()
	if l := orig.line(b); l != "ready" {
		b.Fatalf("first line %q, want ready", l)
	}
	var mapped time.Duration
	var sums []uint64
	for range 3 { // the first touch maps the pages; take the best of the rest
		d, l := orig.touch(b)
		if mapped == 0 || d < mapped {
			mapped = d
		}
		var sum uint64
		if _, err := fmt.Sscanf(l, "sum %d", &sum); err != nil {
			b.Fatalf("program printed %q, want a sum", l)
		}
		sums = append(sums, sum)
	}
	// Each touch adds the same amount: the restored program's first one
	// prints the next sum.
	want := fmt.Sprintf("sum %d", sums[2]+sums[2]-sums[1])
	// Save while the program waits in read.
	for attempt := 0; ; attempt++ {
		if attempt == 500 {
			b.Fatal("the program never paused in read")
		}
		orig.k.Pause()
		if t := initTask(orig.k); t.regs.OrigRax == unix.SYS_READ && t.haveSyscallReturn {
			break
		}
		orig.k.Unpause()
		time.Sleep(2 * time.Millisecond)
	}
	defer orig.k.Unpause()
	ranges, err := orig.k.MemoryRanges()
	if err != nil {
		b.Fatal(err)
	}
	var state bytes.Buffer
	if err := orig.k.SaveState(context.Background(), &state); err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	var touched, load time.Duration
	for range b.N {
		var loadStart time.Time
		s := newBenchSandbox(b, func(stdin, stdout *os.File) (*Kernel, error) {
			return Restore(context.Background(), bytes.NewReader(state.Bytes()), RestoreOptions{
				Config: Config{Stdin: stdin, Stdout: stdout, Stderr: stdout},
				LoadMemory: func(w *MemoryLoader) error {
					loadStart = time.Now()
					defer func() { load += time.Since(loadStart) }()
					return w.WriteRuns(runsOf(ranges))
				},
			})
		})
		s.k.Resume()
		d, l := s.touch(b)
		touched += d
		s.end()
		if l != want {
			b.Fatalf("restored program printed %q, want %q", l, want)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(touched.Microseconds())/n/1000, "touch-restored-ms")
	b.ReportMetric(float64(mapped.Microseconds())/1000, "touch-mapped-ms")
	b.ReportMetric(float64(load.Microseconds())/n/1000, "load-ms")
}

// BenchmarkMemoryLoader measures MemoryLoader.WriteRuns filling a fresh
// 256 MiB memory file from two goroutines, one call per 1 MiB chunk as the
// image reader makes them: every other page present (runs of one page) or
// all pages in 1 MiB runs. The baseline, in the same run, writes the same
// runs with process_vm_writev into the sentry's mapping of the file, up to
// 256 runs a call (what the loader did for short runs before). Besides the
// time it reports the process's CPU time (cpu-ms), which another load on
// the machine moves less.
func BenchmarkMemoryLoader(b *testing.B) {
	const size = 256 << 20
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i>>12) | 1
	}
	layouts := []struct {
		name string
		runs []MemoryRange
	}{
		{"sparse", nil},
		{"dense", nil},
	}
	for off := 0; off < size; off += 2 * pageSize {
		layouts[0].runs = append(layouts[0].runs, MemoryRange{Off: uint64(off), Data: src[off : off+pageSize]})
	}
	for off := 0; off < size; off += 1 << 20 {
		layouts[1].runs = append(layouts[1].runs, MemoryRange{Off: uint64(off), Data: src[off : off+1<<20]})
	}
	for _, lay := range layouts {
		for _, baseline := range []bool{false, true} {
			name := lay.name + "/loader"
			if baseline {
				name = lay.name + "/baseline-process_vm_writev"
			}
			b.Run(name, func(b *testing.B) {
				var bytes int64
				for _, r := range lay.runs {
					bytes += int64(len(r.Data))
				}
				b.SetBytes(bytes)
				b.ReportAllocs()
				var cpu time.Duration
				for range b.N {
					b.StopTimer()
					f, err := NewMemoryFile("snap-bench-loader")
					if err != nil {
						b.Fatal(err)
					}
					if err := unix.Ftruncate(f.fd, size); err != nil {
						b.Fatal(err)
					}
					l := &MemoryLoader{f: f, size: size}
					write := func(runs []MemoryRange) error {
						for len(runs) > 0 {
							// One call per 1 MiB chunk.
							n := 1
							for n < len(runs) && runs[n].Off < runs[0].Off&^(1<<20-1)+1<<20 {
								n++
							}
							var err error
							if baseline {
								err = processVMWriteRuns(f, runs[:n])
							} else {
								err = l.WriteRuns(runsOf(runs[:n]))
							}
							if err != nil {
								return err
							}
							runs = runs[n:]
						}
						return nil
					}
					half := len(lay.runs) / 2
					cpu0 := processCPU(b)
					b.StartTimer()
					errs := make(chan error, 2)
					go func() { errs <- write(lay.runs[:half]) }()
					go func() { errs <- write(lay.runs[half:]) }()
					err1, err2 := <-errs, <-errs
					b.StopTimer()
					cpu += processCPU(b) - cpu0
					if err1 != nil || err2 != nil {
						b.Fatal(err1, err2)
					}
					f.Release()
					b.StartTimer()
				}
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N)/1000, "cpu-ms/op")
			})
		}
	}
}

// processVMWriteRuns writes runs into f through the sentry's mapping of
// it with process_vm_writev, up to 256 runs a call: BenchmarkMemoryLoader's
// baseline.
func processVMWriteRuns(f *MemoryFile, runs []MemoryRange) error {
	const batch = 256
	for len(runs) > 0 {
		n := min(batch, len(runs))
		local := make([]unix.Iovec, n)
		remote := make([]unix.RemoteIovec, n)
		total := 0
		for i, r := range runs[:n] {
			local[i].Base = &r.Data[0]
			local[i].SetLen(len(r.Data))
			remote[i] = unix.RemoteIovec{Base: addrOf(f.mapping, r.Off), Len: len(r.Data)}
			total += len(r.Data)
		}
		if w, err := unix.ProcessVMWritev(os.Getpid(), local, remote, 0); err != nil || w != total {
			return fmt.Errorf("process_vm_writev of %d runs: %d of %d bytes: %v", n, w, total, err)
		}
		runs = runs[n:]
	}
	return nil
}

// processCPU returns the CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
