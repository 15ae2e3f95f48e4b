package kernel_test

import (
	"bufio"
	"bytes"
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
// thread and the OS thread tracing it share exactly one CPU, also after
// many system calls during which the task ran a Switch unpinned now and
// then (the debug log says where it woke); with NoCPUPinning no traced
// process is confined to fewer CPUs than the sentry has.
func TestTaskThreadsPinned(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skip("one CPU: the kernel pins nothing")
	}
	bin := probe(t, "gcc")
	tests := []struct {
		name    string
		pin     bool
		args    []string
		want    string // in the output
		wantLog string // in the debug log
	}{
		{"pinned", true, []string{"sleep", "900"}, "slept>=900ms=1", ""},
		// 20000 getpid calls take 0.3 s or more: several repinIntervals.
		{"pinned after unpinned switches", true, []string{"getpid", "20000", "900"}, "getpid 20000 done", "after an unpinned switch"},
		{"not pinned", false, []string{"sleep", "900"}, "slept>=900ms=1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var report []string
			var confined string // a traced process on fewer CPUs (NoCPUPinning)
			pinned, checked := 0, 0
			var log bytes.Buffer // written by the task goroutine, read after Wait
			cfg := kernel.Config{NoCPUPinning: !tc.pin, Debug: tc.wantLog != "", Log: &log}
			out, st := runConfig(t, cfg, append([]string{bin}, tc.args...), nil, func(*kernel.Kernel) {
				// Look until a pinned pair is seen (or, unpinned, for
				// 800 ms after the first traced stub). A loaded machine
				// may start the stub late: until one is seen, look for
				// up to 10 s (the run is over well before on success).
				var first time.Time
				for giveUp := time.Now().Add(10 * time.Second); pinned == 0 && time.Now().Before(giveUp); time.Sleep(20 * time.Millisecond) {
					if !first.IsZero() && time.Since(first) > 800*time.Millisecond {
						break
					}
					traced := stubsTracedByUs(t)
					if len(traced) > 0 {
						report = report[:0]
						if first.IsZero() {
							first = time.Now()
						}
					}
					for stub, tracer := range traced {
						var s, tr unix.CPUSet
						if unix.SchedGetaffinity(stub, &s) != nil || unix.SchedGetaffinity(tracer, &tr) != nil {
							continue
						}
						checked++
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
			if st != (kernel.ExitStatus{}) || !strings.Contains(out, tc.want) {
				t.Fatalf("%v: status %v, output %q, want 0 and %q", tc.args, st, out, tc.want)
			}
			if tc.pin && pinned == 0 {
				t.Errorf("no stub thread shares a single CPU with its tracer; traced: %v", report)
			}
			if !tc.pin && checked == 0 {
				t.Errorf("NoCPUPinning: found no traced stub to check")
			}
			if !tc.pin && confined != "" {
				t.Errorf("NoCPUPinning: %s, want %d CPUs each", confined, all.Count())
			}
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("debug log has no %q:\n%s", tc.wantLog, log.String())
			}
		})
	}
}
