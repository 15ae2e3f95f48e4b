package runner

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// OpenImage opens the image at uri (a bare name is looked up in store)
// and checks everything that can be checked before its state is decoded:
// the manifest, the index and the blob sizes, a memory size this kernel
// can hold, and with verifyKey the image's signature and the SHA-256 of
// its memory blob. It is what snap restore and snap inspect both use.
func OpenImage(ctx context.Context, uri, store string, verifyKey ed25519.PublicKey) (*storage.Image, error) {
	return storage.OpenImageWith(ctx, uri, store, storage.OpenOptions{
		MaxMemorySize: kernel.MaxMemorySize, VerifyKey: verifyKey,
	})
}

// RestoreKernel restores the image at uri (a bare name is looked up in
// store) into a new kernel with o's platform and stdio, and resumes it.
// With o.VerifyKey, an image that is not signed by that key, or that was
// altered since, is refused before anything is decoded. Its steps
// (StepOpenImage, kernel.Restore's, StepResume) are recorded in
// o.Timings (StepFirstSwitch once the program has run: WaitRan), and with
// o.Diag written there too (TimingLines) once it has.
func RestoreKernel(ctx context.Context, o KernelOptions, uri, store string) (*KernelSandbox, *storage.Manifest, error) {
	tm := o.Timings
	if tm == nil && o.Diag != nil {
		tm = new(kernel.Timings)
	}
	start := time.Now()
	img, err := OpenImage(ctx, uri, store, o.VerifyKey)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	defer img.Close()
	state, err := img.State(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	defer state.Close()
	tm.Since(StepOpenImage, start)
	k, err := kernel.Restore(ctx, state, kernel.RestoreOptions{
		Config: kernel.Config{Platform: o.Platform, Root: o.Rootfs, Debug: o.Debug, Log: o.Log,
			Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Limits: o.Limits},
		MemorySize: img.Manifest().MemorySize,
		LoadMemory: func(w *kernel.MemoryLoader) error {
			return img.ReadMemoryRuns(ctx, func(runs []storage.PageRun) error {
				return w.WriteRuns(func(yield func(uint64, []byte) bool) {
					for _, r := range runs {
						if !yield(r.Off, r.Data) {
							return
						}
					}
				})
			})
		},
		Timings: tm,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	m := img.Manifest()
	if o.Argv == nil {
		json.Unmarshal([]byte(m.Metadata[MetaArgv]), &o.Argv)
	}
	sb := &KernelSandbox{k: k, opts: o, ran: make(chan struct{})}
	resumed := time.Now()
	k.OnFirstSwitch(func() {
		tm.Since(StepFirstSwitch, resumed)
		close(sb.ran)
	})
	k.Resume()
	tm.Since(StepResume, resumed)
	if o.Diag != nil {
		o.Diag.Printf("restored %s: %d bytes of memory", uri, m.MemorySize)
		// Once the program has run: the launcher is not kept waiting.
		go func() {
			sb.WaitRan()
			for _, l := range TimingLines(tm.Steps()) {
				o.Diag.Print(l)
			}
		}()
	}
	return sb, m, nil
}

// WaitRan waits until a restored program has run (StepFirstSwitch) or
// ended; for a started sandbox it returns at once.
func (s *KernelSandbox) WaitRan() {
	if s.ran == nil {
		return
	}
	select {
	case <-s.ran:
	case <-s.k.Exited():
	}
}

// The steps RestoreKernel adds to kernel.Restore's, and those of snap's
// start that its callers record.
const (
	// StepProcessStart: from the start of snap's process (its exec, or
	// for a detached sentry the launcher's start of it) to main.
	StepProcessStart = "process-start"
	// StepCommand: from main until the command starts restoring (package
	// initialisation is before main; this is the command line's parsing).
	StepCommand = "command"
	// StepOpenImage opens the image: the manifest, index and blob checks,
	// a signature check, and the state blob.
	StepOpenImage = "open-image"
	// StepResume starts the task goroutines.
	StepResume = "resume"
	// StepFirstSwitch: from the start of StepResume until an application
	// thread first came back to the sentry (its first system call, fault
	// or interrupt): the restored program has run.
	StepFirstSwitch = "first-switch"
)

// TimingLines formats steps, one line each, as
//
//	restore step NAME at START ms took DURATION ms
//
// with START relative to the first step's start and both in milliseconds
// with three decimals. Steps that overlap ran concurrently.
func TimingLines(steps []kernel.Step) []string { return StepLines("restore", steps) }

// StepLines formats steps as TimingLines does, with what in place of
// "restore" (`snap run --timings` writes "run step ...").
func StepLines(what string, steps []kernel.Step) []string {
	if len(steps) == 0 {
		return nil
	}
	origin := steps[0].Start
	out := make([]string, 0, len(steps))
	for _, s := range steps {
		out = append(out, fmt.Sprintf("%s step %-14s at %8.3f ms took %8.3f ms",
			what, s.Name, ms(s.Start.Sub(origin)), ms(s.End.Sub(s.Start))))
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ProcessStart returns when this process started, to the host's clock tick
// (10 ms): the start time in /proc/self/stat against CLOCK_BOOTTIME.
func ProcessStart() (time.Time, error) {
	ticks, err := procStartTime(os.Getpid())
	if err != nil {
		return time.Time{}, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, err
	}
	// USER_HZ, the unit of the start time, is 100 on x86-64.
	age := time.Duration(ts.Nano()) - time.Duration(ticks)*10*time.Millisecond
	return time.Now().Add(-age), nil
}
