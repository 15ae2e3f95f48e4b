package kernel_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// stubsTracedByUs returns, for every host process traced by a thread of
// this process, the tracer's thread id by the traced pid.
func stubsTracedByUs(t *testing.T) map[int]int {
	t.Helper()
	ours := map[int]bool{}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		ours[tid] = true
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	traced := map[int]int{}
	for _, path := range procs {
		f, err := os.Open(path)
		if err != nil {
			continue // gone meanwhile
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "TracerPid:"); ok {
				tracer, _ := strconv.Atoi(strings.TrimSpace(v))
				if ours[tracer] {
					pid, _ := strconv.Atoi(strings.Split(path, "/")[2])
					traced[pid] = tracer
				}
				break
			}
		}
		f.Close()
	}
	return traced
}

// TestTaskThreadsPinned: while a sandbox's only task sleeps, its stub
// thread and the OS thread tracing it share exactly one CPU; with
// NoCPUPinning no traced process is confined to fewer CPUs than the
// sentry has.
func TestTaskThreadsPinned(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skip("one CPU: the kernel pins nothing")
	}
	bin := probe(t, "gcc")
	for _, pin := range []bool{true, false} {
		t.Run(fmt.Sprintf("pinning=%v", pin), func(t *testing.T) {
			var report []string
			var confined string // a traced process on fewer CPUs (NoCPUPinning)
			pinned := 0
			out, st := runConfig(t, kernel.Config{NoCPUPinning: !pin}, []string{bin, "sleep", "900"}, nil, func(*kernel.Kernel) {
				// The task switches into the application before it
				// sleeps; look while it sleeps.
				for deadline := time.Now().Add(800 * time.Millisecond); time.Now().Before(deadline) && pinned == 0; time.Sleep(20 * time.Millisecond) {
					report = report[:0]
					for stub, tracer := range stubsTracedByUs(t) {
						var s, tr unix.CPUSet
						if unix.SchedGetaffinity(stub, &s) != nil || unix.SchedGetaffinity(tracer, &tr) != nil {
							continue
						}
						report = append(report, fmt.Sprintf("stub %d on %d CPUs, tracer %d on %d", stub, s.Count(), tracer, tr.Count()))
						if s.Count() == 1 && s == tr {
							pinned++
						}
						if s.Count() < all.Count() || tr.Count() < all.Count() {
							confined = report[len(report)-1]
						}
					}
				}
			})
			if st != (kernel.ExitStatus{}) || !strings.Contains(out, "slept>=900ms=1") {
				t.Fatalf("sleep 900: status %v, output %q", st, out)
			}
			if pin && pinned == 0 {
				t.Errorf("no stub thread shares a single CPU with its tracer; traced: %v", report)
			}
			if !pin && len(report) == 0 {
				t.Errorf("NoCPUPinning: found no traced stub to check")
			}
			if !pin && confined != "" {
				t.Errorf("NoCPUPinning: %s, want %d CPUs each", confined, all.Count())
			}
		})
	}
}
