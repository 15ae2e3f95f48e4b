package runner

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
	"snapshotter/kernel/vfs"
	"snapshotter/storage"
)

// OpenImage opens the image at uri (a bare name is looked up in store)
// and checks everything that can be checked before its state is decoded:
// the manifest, the index and the blob sizes, a memory size this kernel
// can hold, and with verifyKey the image's signature and the SHA-256 of
// its memory blob. It is what snap restore and snap inspect both use.
func OpenImage(ctx context.Context, uri, store string, verifyKey ed25519.PublicKey) (*storage.Image, error) {
	return storage.OpenImageWith(ctx, uri, store, openOptions(verifyKey))
}

// openOptions are the checks OpenImage applies.
func openOptions(verifyKey ed25519.PublicKey) storage.OpenOptions {
	return storage.OpenOptions{MaxMemorySize: kernel.MaxMemorySize, VerifyKey: verifyKey}
}

// RestoreKernel restores the image at uri (a bare name is looked up in
// store) into a new kernel with o's platform and stdio, and resumes it.
// With o.VerifyKey, an image that is not signed by that key, or that was
// altered since, is refused before anything is decoded. Its steps
// (StepOpenImage, kernel.Restore's, StepResume) are recorded in
// o.Timings (StepFirstSwitch once the program has run: WaitRan), and with
// o.Diag written there too (TimingLines) once it has.
func RestoreKernel(ctx context.Context, o KernelOptions, uri, store string) (*KernelSandbox, *storage.Manifest, error) {
	if !o.Park {
		return restoreKernel(ctx, o, uri, store)
	}
	// A member waits, perhaps long, among many: it restores on a
	// goroutine of its own, whose stack (grown deep by the decoding) is
	// freed when it ends, and what the restore left on the heap (the
	// state read and decoded) goes back to the host now rather than at
	// the collector's pace.
	var (
		sb  *KernelSandbox
		m   *storage.Manifest
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sb, m, err = restoreKernel(ctx, o, uri, store)
		warmProtocol()
	}()
	<-done
	debug.FreeOSMemory()
	return sb, m, err
}

// restoreKernel is RestoreKernel.
func restoreKernel(ctx context.Context, o KernelOptions, uri, store string) (*KernelSandbox, *storage.Manifest, error) {
	tm := o.Timings
	if tm == nil && o.Diag != nil {
		tm = new(kernel.Timings)
	}
	start := time.Now()
	img, err := storage.OpenImage(ctx, uri, store)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	// A restore that is neither lazy nor parked runs over the copy of
	// the image's memory in the restore cache, or makes it
	// (restore_cache.go).
	var (
		cached *os.File
		fill   *cacheFill
	)
	useCache := !o.Lazy && !o.Park && o.Cache.cacheable(img.Manifest())
	if useCache {
		cacheStart := time.Now()
		if cached, err = o.Cache.open(img.Manifest()); err != nil {
			if !errors.Is(err, fs.ErrNotExist) && o.Diag != nil {
				o.Diag.Printf("restore %s: cached memory not used: %v", uri, err)
			}
			cached = nil
		} else {
			defer cached.Close() // the kernel keeps what it needs
			tm.Since(StepOpenCache, cacheStart)
		}
	}
	// The same checks as OpenImage. A restore without a key has its
	// chunks checked by their CRC-32C alone, as they load: the SHA-256 of
	// each against its address proves nothing an unsigned index does not
	// (storage.OpenOptions.ChecksumsOnly), except for the copy kept in
	// the cache, which a restore with a key trusts later without reading
	// the memory again (SignatureOnly).
	oo := openOptions(o.VerifyKey)
	oo.ChecksumsOnly = !useCache || cached != nil
	oo.SignatureOnly = cached != nil
	if err := img.Check(ctx, oo); err != nil {
		img.Close()
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	// A lazy load keeps the image until it has ended.
	var lazy, lr *lazyRestore
	// writes is where the chunks of the base a taken member writes first
	// are recorded, if restored over a base (pool_base.go).
	var writes string
	// Over the restore cache's copy: ahead are the recorded chunks the
	// program's start copies beside it; record, that there were none and
	// this restore records them.
	var (
		ahead  []int
		record bool
	)
	// writesIdx: the chunks recorded written first, if they were when
	// the restore began (then left unpopulated: parking.trimmed).
	var writesIdx []int
	defer func() {
		switch {
		case lazy != nil:
		case lr != nil:
			lr.closeImage()
		default:
			img.Close()
		}
	}()
	state, err := img.State(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	defer state.Close()
	var stdio *vfs.StdioSet
	if o.Park {
		stdio = new(vfs.StdioSet)
	}
	ro := kernel.RestoreOptions{
		Config: kernel.Config{Platform: o.Platform, Root: o.Rootfs, Debug: o.Debug, Log: o.Log,
			Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Limits: o.Limits, Binds: o.Binds},
		MemorySize: img.Manifest().MemorySize,
		LoadMemory: func(w *kernel.MemoryLoader) error {
			return img.ReadMemoryRuns(ctx, func(runs []storage.PageRun) error {
				if fill != nil {
					fill.write(runs)
				}
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
		Stdio:   stdio,
	}
	if o.Lazy {
		lr = newLazyRestore(ctx, img, o, tm, uri)
		ro.Lazy = lr.memory()
	} else if cached != nil {
		ro.Base = &kernel.MemoryBase{FD: int(cached.Fd()), Size: img.Manifest().MemorySize}
		writes = writesPath(o.Cache.Dir, img.Manifest())
		// The chunks the restore before wrote first: the first copied
		// while the state decodes, the rest beside the program.
		switch idx, err := readWrites(writes); {
		case errors.Is(err, fs.ErrNotExist):
			record = true
		case err != nil:
			if o.Diag != nil {
				o.Diag.Printf("restore %s: chunks written first not copied: %v", uri, err)
			}
		default:
			n := min(len(idx), restoreCopyFirst)
			ro.Base.Copy, ahead = idx[:n], idx[n:]
		}
	} else if useCache && o.Cache.admit(img.Manifest()) {
		if fill, err = o.Cache.startFill(img.Manifest()); err != nil {
			if o.Diag != nil {
				o.Diag.Printf("restore %s: memory not cached: %v", uri, err)
			}
			fill = nil
		} else {
			defer func() {
				if fill != nil {
					fill.abort()
				}
			}()
		}
	} else if o.Park && o.BaseDir != "" {
		base, err := openBase(ctx, img, o.BaseDir)
		if err != nil {
			if o.Diag != nil {
				o.Diag.Printf("restore %s: no shared base, loading a copy of its own: %v", uri, err)
			}
		} else {
			defer base.Close() // the kernel keeps what it needs
			ro.Base = &kernel.MemoryBase{FD: int(base.Fd()), Size: img.Manifest().MemorySize, Populate: true}
			writes = writesPath(o.BaseDir, img.Manifest())
			// What the take copies first its stubs never read from the
			// base (copyWrites, Prime).
			if idx, err := readWrites(writes); err == nil {
				ro.Base.Unpopulated = idx[:min(len(idx), takeCopyFirst)]
				writesIdx = idx
			}
		}
	}
	tm.Since(StepOpenImage, start)
	k, err := kernel.Restore(ctx, state, ro)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	if fill != nil {
		// The memory has loaded whole: the copy is complete.
		fillStart := time.Now()
		if err := fill.commit(); err != nil && o.Diag != nil {
			o.Diag.Printf("restore %s: memory not cached: %v", uri, err)
		}
		fill = nil
		tm.Since(StepFillCache, fillStart)
	}
	if err := k.SetNetwork(o.Network); err != nil {
		k.Release()
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	// A pool member binds its host ports (--network host) when it is
	// taken (Unpark): every member of one image would claim the same.
	if !o.Park {
		if err := k.ReopenHostSockets(); err != nil {
			k.Release()
			return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
		}
	}
	// A pool member publishes nothing: every member of one image would
	// claim the same host ports.
	ms := o.Publish
	if ms == nil && !o.Park {
		ms = k.Published()
	}
	if err := k.Publish(ms); err != nil {
		k.Release()
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	lazy = lr
	if lr != nil {
		lr.running.Store(true)
	}
	m := img.Manifest()
	if o.Argv == nil {
		json.Unmarshal([]byte(m.Metadata[MetaArgv]), &o.Argv)
	}
	sb := &KernelSandbox{k: k, opts: o, ran: make(chan struct{}), tm: tm, uri: uri, memSize: m.MemorySize, lazy: lazy}
	if o.Park {
		sb.parked = &parking{stdio: stdio, discarded: make(chan struct{}), writes: writes, trimmed: writesIdx != nil, writesIdx: writesIdx}
		sb.park()
		return sb, m, nil
	}
	if record {
		sb.recordWritesLater(writes)
	}
	sb.resumed = time.Now()
	sb.onFirstSwitch()
	k.Resume()
	k.CopyBaseAhead(ahead)
	tm.Since(StepResume, sb.resumed)
	sb.logTimings()
	return sb, m, nil
}

// onFirstSwitch has StepFirstSwitch recorded (from s.resumed) and s.ran
// closed once the program has run.
func (s *KernelSandbox) onFirstSwitch() {
	s.k.OnFirstSwitch(func() {
		s.tm.Since(StepFirstSwitch, s.resumed)
		close(s.ran)
	})
}

// park starts the task goroutines of a restored kernel under a pause, and
// returns once every one has made its platform context (a stub thread)
// and parked before running anything: Unpark then only releases the
// pause.
func (s *KernelSandbox) park() {
	s.k.Pause() // no task runs yet: nothing to wait for
	s.onFirstSwitch()
	s.k.Resume()
	for !s.k.Paused() {
		time.Sleep(time.Millisecond)
	}
}

// logTimings has the restore's steps logged to o.Diag once the program
// has run.
func (s *KernelSandbox) logTimings() {
	tm, o := s.tm, s.opts
	if o.Diag != nil {
		o.Diag.Printf("restored %s: %d bytes of memory", s.uri, s.memSize)
		// Once the program has run: the launcher is not kept waiting.
		go func() {
			s.WaitRan()
			for _, l := range TimingLines(tm.Steps()) {
				o.Diag.Print(l)
			}
		}()
	}
}

// BaseLine says, for a sandbox restored over a base (the restore cache's
// copy, a pool's base), how many of the base's chunks were copied ahead
// of the program and how many on its writes so far; false if it was not.
func (s *KernelSandbox) BaseLine() (string, bool) {
	st, ok := s.k.BaseStats()
	if !ok {
		return "", false
	}
	return fmt.Sprintf("restore over a copy: %d chunks of %d copied, %d ahead of the program, %d on its writes",
		st.Eager+len(st.OnDemand), st.Chunks, st.Eager, len(st.OnDemand)), true
}

// parking is the state of a sandbox restored with KernelOptions.Park.
type parking struct {
	// stdio are the restored stdio files, bound again by Unpark.
	stdio *vfs.StdioSet
	// discarded is closed by Discard; status is then how it ended.
	discarded chan struct{}

	// mu protects state and held.
	mu sync.Mutex
	// state is parkWaiting, then parkResumed or parkDiscarded.
	state int
	// held keeps the stdio given to Unpark open while the sandbox runs.
	held   [3]*os.File
	status ExitStatus
	// writes is the file of the chunks of the base that a taken member
	// wrote first (copied by Unpark at once, or recorded after it), empty
	// if the sandbox is not restored over a base. Immutable.
	writes string
	// trimmed is set once the stubs map the base's pages of the first of
	// those chunks unpopulated, or none of them from the base (restored
	// so, Trim, Prime). Protected by mu.
	trimmed bool
	// writesIdx are the chunks recorded in writes, once read (at the
	// restore, Trim or Prime), so that the take does not read them on
	// its path; nil until then. Protected by mu.
	writesIdx []int
}

const (
	parkWaiting = iota
	parkResumed
	parkDiscarded
)

// Unpark implements Parked: it publishes ports, binds stdio and resumes
// the tasks.
func (s *KernelSandbox) Unpark(stdio [3]*os.File, publish []kernel.PortMapping) error {
	p, err := s.lockWaiting()
	if err != nil {
		closeFiles(stdio[:])
		return err
	}
	defer p.mu.Unlock()
	if err := s.bindHostPorts(publish); err != nil {
		closeFiles(stdio[:])
		return err
	}
	if err := s.k.Publish(publish); err != nil {
		closeFiles(stdio[:])
		return fmt.Errorf("%w: %v", ErrTakePublish, err)
	}
	if err := p.stdio.Rebind(stdio); err != nil {
		closeFiles(stdio[:])
		return fmt.Errorf("bind stdio: %w", err)
	}
	ahead, record := s.copyWrites(p.writes)
	if record {
		s.recordWritesLater(p.writes) // before the program runs (immutable then)
	}
	p.held = stdio
	p.state = parkResumed
	// What would compete with the program's first moments waits for its
	// second system call (a request read, an answer written back), or
	// ReplenishDelay if it makes none: GOMAXPROCS given back (a stop of
	// the world) and the rest of the recorded chunks copied ahead of it.
	// Meanwhile the member's one P is the task goroutine's.
	var later sync.Once
	afterStart := func() {
		later.Do(func() {
			restoreMaxProcs()
			s.k.CopyBaseAhead(ahead)
		})
	}
	s.k.AfterSyscalls(2, afterStart)
	time.AfterFunc(ReplenishDelay, afterStart)
	s.resumed = time.Now()
	s.k.Unpause()
	s.tm.Since(StepResume, s.resumed)
	s.logTimings()
	// The member has one P until the program's second system call, and
	// this goroutine holds it: the task goroutine that Unpause readied
	// would wait for the rest of the take (the metadata written and
	// renamed, the answer sent) before it could let the program run.
	// Yielding hands the P to it now; the take goes on once the task
	// goroutine waits for its stub (Unpause to the program's first
	// system call: 0.36 against 1.5 ms median at load 8).
	runtime.Gosched()
	return nil
}

// bindHostPorts makes the host sockets of a parked --network host sandbox
// again at its take (the restore left them closed): ErrTakePublish, with
// none left open, if a port is taken or the take asks to publish one (the
// sandbox's ports are the host's).
func (s *KernelSandbox) bindHostPorts(publish []kernel.PortMapping) error {
	if s.k.Network() != kernel.NetworkHost {
		return nil
	}
	if len(publish) > 0 {
		return fmt.Errorf("%w: -p: --network host publishes no port (the sandbox's ports are the host's)", ErrTakePublish)
	}
	if err := s.k.ReopenHostSockets(); err != nil {
		return fmt.Errorf("%w: %v", ErrTakePublish, err)
	}
	return nil
}

// lockWaiting returns the parking of a sandbox restored parked that still
// waits, its mu locked (the caller unlocks it); ErrNotWaiting otherwise.
func (s *KernelSandbox) lockWaiting() (*parking, error) {
	p := s.parked
	if p == nil {
		return nil, fmt.Errorf("%w: the sandbox was not restored parked", ErrNotWaiting)
	}
	p.mu.Lock()
	if p.state != parkWaiting {
		p.mu.Unlock()
		return nil, ErrNotWaiting
	}
	return p, nil
}

// Discard implements Parked: a parked sandbox ends without running, as if
// killed by sig.
func (s *KernelSandbox) Discard(sig int) error {
	p, err := s.lockWaiting()
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	p.state = parkDiscarded
	p.status = ExitStatus{Signal: sig}
	close(p.discarded)
	return nil
}

// WaitRan waits until a restored program has run (StepFirstSwitch) or
// ended; for a started sandbox it returns at once.
func (s *KernelSandbox) WaitRan() {
	if s.ran == nil {
		return
	}
	var discarded chan struct{}
	if s.parked != nil {
		discarded = s.parked.discarded
	}
	select {
	case <-s.ran:
	case <-s.k.Exited():
	case <-discarded:
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
	// StepOpenCache finds and opens the copy of the image's memory in the
	// restore cache: the restore runs over it and loads nothing.
	StepOpenCache = "open-cache"
	// StepFillCache puts the copy of the memory that the load wrote in
	// place in the restore cache (a restore that found none).
	StepFillCache = "fill-cache"
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
