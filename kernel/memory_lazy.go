package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// Lazy restore: the program runs before its memory is loaded.
//
// The saved memory is a sorted list of chunks (LazyChunk), each loaded as
// a whole. While a lazy load is under way (MemoryFile.lazy is set):
//
//   - address spaces map only the loaded parts of each vma
//     (MM.mapLazyLocked): a chunk that is not loaded is not mapped into
//     any stub, so the stub's first touch faults into the sentry, which
//     loads the chunk (MM.handleFault) and maps the loaded piece around
//     the fault;
//   - every access of the sentry itself (MemoryFile.Bytes: copy-in/out,
//     file and tmpfs pages, the vDSO page; copy-on-write copies and fork's
//     copies through forEachData; writeAt; Decommit, so that a freed page
//     is never written by the loader later) loads the chunks it covers
//     first;
//   - a save first loads everything (MemoryFile.waitLoaded);
//   - a background loader loads the rest in chunk order (in one stream
//     through LazyMemory.Stream, else in batches through Load), from the
//     moment the program first returns to the sentry (or
//     lazyKickWait after the start, if it has not by then): until then
//     it would take the CPUs the program's start needs (a task goroutine
//     coming back from a stub waits for a P behind the decoders).
//
// While the background loader runs, the program's stub threads run under
// the host's SCHED_IDLE policy (lazyStubIdle): the program then runs on what CPU
// the loader leaves, rather than taking half of it from the load, whose
// end it would delay by its own work (as an eager restore's program does
// none before its memory is loaded); its faults into the sentry are served
// as before. Their priority is put back when the load ends, however it
// ends (lazyLoad.end); the sentry lowers it only if it may raise it back
// (canRaiseNice).
//
// While it streams, the program's task goroutines also give their P back
// to the Go scheduler each time they wait for the application
// (Kernel.lazyHandOff, pHandOffer): an ordinary system call keeps its P
// until the runtime's monitor takes it, some milliseconds later when the
// monitor has had little to do, and the program's stubs, which run only
// on what CPU the loader leaves, are often waited for that long; each such
// wait took one of the loader's two Ps from it until then.
//
// When the last chunk is loaded, MemoryFile.lazy is cleared (no cost
// afterwards), every address space is mapped in full again and its pages
// prefaulted. If a chunk cannot be loaded (the store is gone, a checksum
// fails), the sandbox is killed with one line in the kernel's log, and
// every waiter gets the error: nothing waits for ever.
//
// Why not userfaultfd: its registrations belong to mappings, so the
// sentry's own mapping would have to be registered too, and a Go thread
// blocked in a fault on it holds its P; with every P held by such threads
// the goroutine that would serve the faults never runs. Here every wait
// for a chunk is an ordinary Go wait (a fault of the stub reaches the
// sentry through ptrace, as any fault does), and the stub needs no
// change.

// LazyChunk is one piece of saved memory that a lazy restore loads as a
// whole: [Off, Off+Len) of the memory file, page aligned.
type LazyChunk struct {
	Off, Len uint64
}

// LazyMemory makes Restore start the program before its memory is loaded
// (RestoreOptions.Lazy).
type LazyMemory struct {
	// Chunks are the saved memory's chunks, sorted by offset, disjoint,
	// page aligned and within the memory size. Memory in no chunk is
	// zero.
	Chunks []LazyChunk

	// Eager are chunk indices (ascending) loaded in one batch before the
	// program starts (the image's working set), while the state decodes.
	Eager []int

	// Load loads the chunks idx (ascending) into w, calling loaded(i)
	// once chunk i is written (in any order). It is called concurrently
	// for disjoint sets of chunks. It must return when ctx is cancelled
	// (the sandbox ended) and not wait for ever on a store that stopped
	// answering: its error kills the sandbox.
	Load func(ctx context.Context, idx []int, w *MemoryLoader, loaded func(i int)) error

	// Stream, if set, is what the background loader uses instead of Load
	// in batches: one call for every chunk not claimed when it starts
	// (idx, ascending), read and decoded as an eager restore does, where
	// chunk i is decoded and written only if claim(i), called once it is
	// read, just before its decoding, returns true (false: it was touched
	// and loaded meanwhile, and is skipped without being decoded), and
	// loaded(i) follows the write. Its error kills the sandbox, as
	// Load's.
	Stream func(ctx context.Context, idx []int, w *MemoryLoader, claim func(i int) bool, loaded func(i int)) error

	// Done, if set, is called once, on a goroutine of its own, when the
	// load has ended: everything loaded (Err nil), the load failed (the
	// sandbox has been killed), or the kernel was released first
	// (ErrLoadCancelled).
	Done func(LazyStats)
}

// LazyStats describes a lazy load.
type LazyStats struct {
	// Chunks is the number of chunks; Eager of them were loaded before the
	// program started, Background by the background loader, and OnDemand
	// (ascending) on first touch, before the background loader reached
	// them: the working set.
	Chunks, Eager, Background int
	OnDemand                  []int
	// Start is when the program was allowed to run (the background loader
	// started), End when the load ended.
	Start, End time.Time
	// Err is why the load ended early, nil if everything was loaded.
	Err error
	// ProgramCPU is the CPU time the program's stub threads used while
	// the background loader ran (what they took from the load; a stub
	// that ended meanwhile is not counted).
	ProgramCPU time.Duration
	// SentryCPU is the CPU time the sentry used while the background
	// loader ran (the loader's, and the program's faults served there),
	// and Faults how many faults of the program reached the sentry
	// meanwhile.
	SentryCPU time.Duration
	Faults    uint64
}

// Errors of a lazy load.
var (
	// ErrMemoryLoad means a chunk of a lazily restored sandbox's memory
	// could not be loaded; the sandbox is killed.
	ErrMemoryLoad = errors.New("lazy restore: memory could not be loaded")
	// ErrLoadCancelled means the sandbox ended (its kernel was released)
	// before its memory was all loaded.
	ErrLoadCancelled = errors.New("lazy restore: the sandbox ended before its memory was loaded")
)

// Chunk states (lazyLoad.state).
const (
	chunkUnloaded uint32 = iota
	chunkLoading
	chunkLoaded
)

// lazyBatch is the most chunks one background worker asks Load for at
// once (one ranged read of consecutive chunks), few enough that a first
// touch of a chunk it has claimed does not wait long; lazyWorkers is how
// many do so at a time.
const (
	lazyBatch   = 16
	lazyWorkers = 4
)

// lazyKickWait is how long the background loader waits for the program
// to first return to the sentry before it starts anyway (a program blocked
// in a system call at the save may not return for a long time).
const lazyKickWait = 100 * time.Millisecond

// lazyLoad is a lazy load in progress (see the top of this file).
type lazyLoad struct {
	lm *LazyMemory
	w  *MemoryLoader
	// base is set when the load copies from a base (memory_base.go):
	// chunks not loaded are mapped from it, and nothing loads in the
	// background. Immutable.
	base   *baseLoad
	chunks []LazyChunk
	// state is each chunk's state; a chunk only moves forward
	// (unloaded, loading, loaded). Accessed atomically; the moves out of
	// chunkLoading also hold mu, so that waiters on cond see them.
	state []atomic.Uint32

	ctx    context.Context
	cancel context.CancelFunc

	// mu protects everything below; cond is signalled when a chunk leaves
	// chunkLoading or the load ends.
	mu   sync.Mutex
	cond *sync.Cond
	// onFail kills the sandbox; onLoaded maps the address spaces in
	// full. Both are set once the kernel is decoded (attach), with mf,
	// the kernel's memory file, and run at most once. Protected by mu.
	onFail   func(error)
	onLoaded func()
	mf       *MemoryFile
	// left counts the chunks not loaded yet. Protected by mu.
	left int
	// err is why the load failed. Protected by mu.
	err error
	// stats are the counts so far. Protected by mu.
	stats LazyStats
	// ended is set once Done has been called (or is about to be).
	// Protected by mu.
	ended bool

	// done is closed when the load ended (all loaded, failed or
	// cancelled); bgDone when the background loader returned.
	done   chan struct{}
	bgDone chan struct{}
	// started is set once the background loader runs. Accessed
	// atomically.
	started atomic.Bool
	// kicked is closed (once, kickOnce) when the program has first run:
	// the background loader may start.
	kicked   chan struct{}
	kickOnce sync.Once

	// cpu0 is the sentry's CPU clock and faults0 the kernel's fault
	// count when the background loader started (lowerStubs); faults
	// reads that count, set by attach. Protected by mu.
	cpu0, faults0 uint64
	faults        func() uint64
	// handOff sets the kernel's lazyHandOff, set by attach; the load
	// sets it while the background loader streams (lowerStubs) and
	// clears it when the load ends. Protected by mu.
	handOff func(bool)

	// stubs are the stub threads the program has run on, by pid;
	// lowering is set once the background loader runs (stubs are
	// lowered from then on: SCHED_IDLE if stubNice is lazyStubIdle, else
	// that nice value). Protected by mu.
	stubs    map[int]lazyStub
	lowering bool
	stubNice int
}

// newLazyLoad prepares a lazy load of lm into w; nothing runs yet.
func newLazyLoad(lm *LazyMemory, w *MemoryLoader) (*lazyLoad, error) {
	var prevEnd uint64
	for i, c := range lm.Chunks {
		if c.Off%pageSize != 0 || c.Len%pageSize != 0 || c.Len == 0 || c.Off < prevEnd || c.Off+c.Len > w.size || c.Off+c.Len < c.Off {
			return nil, fmt.Errorf("%w: lazy chunk %d [%#x, +%#x) not page aligned, out of order or beyond %#x", ErrBadState, i, c.Off, c.Len, w.size)
		}
		prevEnd = c.Off + c.Len
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &lazyLoad{
		lm:     lm,
		w:      w,
		chunks: lm.Chunks,
		state:  make([]atomic.Uint32, len(lm.Chunks)),
		ctx:    ctx,
		cancel: cancel,
		left:   len(lm.Chunks),
		done:   make(chan struct{}),
		bgDone: make(chan struct{}),
		kicked: make(chan struct{}),
	}
	l.cond = sync.NewCond(&l.mu)
	l.stats.Chunks = len(lm.Chunks)
	return l, nil
}

// loadEager loads the chunks of lm.Eager, all at once.
func (l *lazyLoad) loadEager() error {
	idx := make([]int, 0, len(l.lm.Eager))
	for _, i := range l.lm.Eager {
		if i >= 0 && i < len(l.chunks) && l.state[i].CompareAndSwap(chunkUnloaded, chunkLoading) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	err := l.lm.Load(l.ctx, idx, l.w, func(i int) { l.loaded(i, loadEager) })
	if err != nil {
		return fmt.Errorf("load the working set (%d chunks): %w", len(idx), err)
	}
	return nil
}

// start starts the background loader: the program may run.
func (l *lazyLoad) start() {
	l.started.Store(true)
	l.mu.Lock()
	l.stats.Start = time.Now()
	none := l.left == 0 // no chunks at all
	l.mu.Unlock()
	if none {
		l.end(nil)
	}
	if l.base != nil {
		close(l.bgDone) // chunks are copied when written, never before
		return
	}
	// S/R-SAFE: the loader writes only pages no one has used yet (chunks
	// not loaded are mapped nowhere and every other access waits for
	// them), and a save loads everything first (waitLoaded).
	go l.background()
}

// lazyHoldEnv, set to a duration (time.ParseDuration), holds the
// background loader back that long after the program starts, so that
// tests see chunks load on first touch only (and a store that goes away
// while they do).
const lazyHoldEnv = "SNAP_LAZY_BACKGROUND_HOLD"

// background loads every chunk nobody has claimed, in order: lazyWorkers
// goroutines each claim the next run of up to lazyBatch unclaimed chunks
// and load it, until none is left.
func (l *lazyLoad) background() {
	defer close(l.bgDone)
	if d, err := time.ParseDuration(os.Getenv(lazyHoldEnv)); err == nil && d > 0 {
		select {
		case <-time.After(d):
		case <-l.ctx.Done():
			return
		}
	}
	select {
	case <-l.kicked:
	case <-time.After(lazyKickWait):
	case <-l.ctx.Done():
		return
	}
	l.lowerStubs()
	if l.lm.Stream != nil {
		l.stream()
		return
	}
	var (
		mu   sync.Mutex
		next int // the first chunk not looked at yet; protected by mu
		wg   sync.WaitGroup
	)
	claim := func(batch []int) []int {
		mu.Lock()
		defer mu.Unlock()
		for ; next < len(l.chunks) && len(batch) < lazyBatch; next++ {
			if l.state[next].CompareAndSwap(chunkUnloaded, chunkLoading) {
				batch = append(batch, next)
			} else if len(batch) > 0 {
				next++
				break // a run ends at a chunk loaded otherwise
			}
		}
		return batch
	}
	for w := 0; w < lazyWorkers; w++ {
		wg.Add(1)
		// S/R-SAFE: see start.
		go func() {
			defer wg.Done()
			batch := make([]int, 0, lazyBatch)
			for {
				if batch = claim(batch[:0]); len(batch) == 0 || l.failed() != nil {
					return
				}
				if err := l.lm.Load(l.ctx, batch, l.w, func(i int) { l.loaded(i, loadBackground) }); err != nil {
					l.fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// stream loads every chunk nobody has claimed through LazyMemory.Stream,
// claiming each one just before it is decoded and written, so that a
// first touch never waits for the stream to reach a chunk it has claimed
// (at most for one chunk's decoding and write).
func (l *lazyLoad) stream() {
	var idx []int
	for i := range l.chunks {
		if l.state[i].Load() == chunkUnloaded {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 || l.failed() != nil {
		return
	}
	claim := func(i int) bool {
		return i >= 0 && i < len(l.state) && l.failed() == nil && l.state[i].CompareAndSwap(chunkUnloaded, chunkLoading)
	}
	if err := l.lm.Stream(l.ctx, idx, l.w, claim, func(i int) { l.loaded(i, loadBackground) }); err != nil {
		l.fail(err)
	}
}

// Who loaded a chunk (lazyLoad.loaded).
const (
	loadEager = iota
	loadBackground
	loadOnDemand
	loadDropped // over a base: decommitted whole, never copied
)

// loaded marks chunk i loaded by who (loadEager...).
func (l *lazyLoad) loaded(i int, who int) {
	l.mu.Lock()
	if l.state[i].Swap(chunkLoaded) == chunkLoaded {
		l.mu.Unlock()
		return
	}
	switch who {
	case loadEager:
		l.stats.Eager++
	case loadBackground:
		l.stats.Background++
	case loadDropped:
	default:
		l.stats.OnDemand = append(l.stats.OnDemand, i)
	}
	l.left--
	last := l.left == 0 && l.err == nil
	l.cond.Broadcast()
	l.mu.Unlock()
	if last {
		l.end(nil)
	}
}

// fail ends the load with err: the sandbox is killed (unless the load was
// cancelled) and every waiter returns err.
func (l *lazyLoad) fail(err error) {
	cancelled := l.ctx.Err() != nil
	if cancelled {
		err = ErrLoadCancelled
	} else {
		err = fmt.Errorf("%w: %v", ErrMemoryLoad, err)
	}
	l.mu.Lock()
	if l.err != nil || l.ended {
		l.mu.Unlock()
		return
	}
	l.err = err
	l.cond.Broadcast()
	onFail := l.onFail
	l.mu.Unlock()
	if !cancelled && onFail != nil {
		onFail(err)
	}
	l.end(err)
}

// end reports the end of the load once: Done is called on its own
// goroutine, after onLoaded when everything was loaded.
func (l *lazyLoad) end(err error) {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = true
	l.stats.ProgramCPU = restoreStubs(l.stubs, l.lowering, l.stubNice)
	if l.lowering {
		l.stats.SentryCPU = time.Duration(uint64(clockNano(unix.CLOCK_PROCESS_CPUTIME_ID)) - l.cpu0)
		if l.faults != nil {
			l.stats.Faults = l.faults() - l.faults0
		}
	}
	l.stubs = nil
	if l.handOff != nil {
		l.handOff(false)
	}
	l.stats.End = time.Now()
	if l.stats.Start.IsZero() {
		l.stats.Start = l.stats.End // loaded before the program started
	}
	l.stats.Err = err
	st := l.stats
	st.OnDemand = append([]int(nil), l.stats.OnDemand...)
	onLoaded, mf := l.onLoaded, l.mf
	l.mu.Unlock()
	sort.Ints(st.OnDemand)
	if err == nil && mf != nil {
		mf.lazy.CompareAndSwap(l, nil) // the machinery is off from here
	}
	close(l.done)
	if err == nil && onLoaded != nil {
		// S/R-SAFE: onLoaded maps pages that are loaded (no kernel
		// state changes but the platform's mappings, under each MM's
		// lock).
		go onLoaded()
	}
	if l.lm.Done != nil {
		// S/R-SAFE: Done is the caller's and touches no kernel state.
		go l.lm.Done(st)
	}
}

// failed returns why the load failed, or nil.
func (l *lazyLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// stop cancels the load (the kernel is being released) and waits until
// the background loader has returned.
func (l *lazyLoad) stop() {
	l.cancel()
	l.w.abort()
	l.fail(ErrLoadCancelled)
	if l.started.Load() {
		<-l.bgDone
	}
}

// wait waits until the load has ended and returns its error.
func (l *lazyLoad) wait() error {
	<-l.done
	return l.failed()
}

// ensure loads every chunk that overlaps [start, end), on first touch.
func (l *lazyLoad) ensure(start, end uint64) error {
	for i := l.find(start); i < len(l.chunks) && l.chunks[i].Off < end; i++ {
		if err := l.ensureChunk(i); err != nil {
			return err
		}
	}
	return nil
}

// find returns the index of the first chunk that ends after off.
func (l *lazyLoad) find(off uint64) int {
	return sort.Search(len(l.chunks), func(i int) bool { return l.chunks[i].Off+l.chunks[i].Len > off })
}

// ensureChunk loads chunk i unless it is loaded, or waits for whoever is
// loading it.
func (l *lazyLoad) ensureChunk(i int) error {
	for {
		switch l.state[i].Load() {
		case chunkLoaded:
			return nil
		case chunkUnloaded:
			if !l.state[i].CompareAndSwap(chunkUnloaded, chunkLoading) {
				continue
			}
			if err := l.failed(); err != nil {
				return err
			}
			err := l.lm.Load(l.ctx, []int{i}, l.w, func(i int) { l.loaded(i, loadOnDemand) })
			if err != nil {
				l.fail(fmt.Errorf("chunk %d on first touch: %w", i, err))
				return l.failed()
			}
		default:
			l.mu.Lock()
			for l.state[i].Load() == chunkLoading && l.err == nil {
				l.cond.Wait()
			}
			err := l.err
			l.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// loadedAt reports whether memory file offset off is loaded, and where,
// before end, that stops being so: the next chunk boundary of another
// state. A chunk being loaded counts as not loaded.
func (l *lazyLoad) loadedAt(off, end uint64) (bool, uint64) {
	i := l.find(off)
	if i < len(l.chunks) && l.chunks[i].Off <= off && l.state[i].Load() != chunkLoaded {
		// Not loaded: up to the end of the run of unloaded chunks, the
		// zero pages between them included (they cost a fault each
		// gap, rather than a mapping each).
		// Over a base, the gaps are the sandbox's own (zero) pages.
		next := l.chunks[i].Off + l.chunks[i].Len
		for i++; i < len(l.chunks) && l.chunks[i].Off < end && l.state[i].Load() != chunkLoaded && (l.base == nil || l.chunks[i].Off == next); i++ {
			next = l.chunks[i].Off + l.chunks[i].Len
		}
		return false, min(next, end)
	}
	// Loaded (or in no chunk): up to the next chunk that is not.
	for ; i < len(l.chunks) && l.chunks[i].Off < end; i++ {
		if l.state[i].Load() != chunkLoaded {
			return true, max(l.chunks[i].Off, off)
		}
	}
	return true, end
}

// loadedAround returns the largest range inside [lo, hi) around off that
// is loaded (off itself must be).
func (l *lazyLoad) loadedAround(off, lo, hi uint64) (uint64, uint64) {
	_, end := l.loadedAt(off, hi)
	start := lo
	for i := l.find(off) - 1; i >= 0 && l.chunks[i].Off+l.chunks[i].Len > lo; i-- {
		if l.state[i].Load() != chunkLoaded {
			start = max(lo, l.chunks[i].Off+l.chunks[i].Len)
			break
		}
	}
	if i := l.find(off); i < len(l.chunks) && l.chunks[i].Off <= off && l.state[i].Load() != chunkLoaded {
		return off, off // not loaded after all
	}
	return start, end
}

// attach makes k's memory file load lazily through l from now on, unless
// the working set was everything; the first task goroutine back from its
// application kicks the background loader.
func (l *lazyLoad) attach(k *Kernel) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onFail, l.onLoaded, l.mf = k.lazyFailed, k.lazyLoaded, k.mf
	l.faults = k.counts.faults.Load
	if l.base == nil {
		l.handOff = k.lazyHandOff.Store
	}
	if !l.ended {
		k.mf.lazy.Store(l)
		if l.base == nil {
			k.lazyKick.Store(l)
		}
	}
	if l.base != nil {
		k.baseLoad.Store(l)
	}
}

// kick lets the background loader start: the program has run.
func (l *lazyLoad) kick() { l.kickOnce.Do(func() { close(l.kicked) }) }

// While the background loader runs, the program's stub threads run under
// the host's SCHED_IDLE policy: they get a CPU only when no thread of
// ordinary priority wants it, and a loader thread that wakes takes the CPU
// from them at once. A nice value, even the lowest, does not do that: the
// host's fair scheduler lets a running thread finish its slice (a few
// milliseconds) before a woken one of any weight, and the stub shares its
// CPU with its tracer (cpu_pin.go), so each time a loader thread blocked
// briefly there (a read, a hand-over of the write lock) the program could
// keep that CPU from it for a slice.
//
// lazyNiceEnv, set to a nice value from 1 to 19, has the stubs get that
// nice value instead (their policy unchanged); 0 leaves them alone
// (benchmarks compare the three).
const lazyNiceEnv = "SNAP_LAZY_PROGRAM_NICE"

// lazyStubIdle, as lazyLoad.stubNice, means the stubs get SCHED_IDLE.
const lazyStubIdle = -1

// lazyStubMaxNice is the highest nice value lazyNiceEnv takes.
const lazyStubMaxNice = 19

// lazyStub is a stub thread the program has run on during a lazy load.
type lazyStub struct {
	// nice is its host nice value before the load lowered it, -1 if the
	// load did not (then idle is false too); idle says that the load
	// made it SCHED_IDLE (from SCHED_NORMAL); cpu is its CPU clock when
	// the background loader started (or when it was first seen, if
	// later), in nanoseconds.
	nice int
	idle bool
	cpu  int64
}

// noteStub records stub thread pid, on which the program is about to run
// and whose CPU clock shows cpu, and lowers its priority if the
// background loader runs.
func (l *lazyLoad) noteStub(pid int, cpu int64) {
	if pid <= 0 || l.base != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.stubs[pid]; ok || l.ended {
		return
	}
	if l.stubs == nil {
		l.stubs = map[int]lazyStub{}
	}
	l.stubs[pid] = lazyStub{nice: -1, cpu: cpu}
	if l.lowering {
		l.lowerLocked(pid)
	}
}

// lowerStubs lowers the priority of the program's stub threads, from now
// until the load ends: the background loader starts.
func (l *lazyLoad) lowerStubs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.lowering = true
	l.cpu0 = uint64(clockNano(unix.CLOCK_PROCESS_CPUTIME_ID))
	if l.faults != nil {
		l.faults0 = l.faults()
	}
	l.stubNice = lazyStubIdle
	if n, err := strconv.Atoi(os.Getenv(lazyNiceEnv)); err == nil && n >= 0 && n <= lazyStubMaxNice {
		l.stubNice = n
	}
	for pid := range l.stubs {
		l.stubs[pid] = lazyStub{nice: -1, cpu: processCPUNow(pid)}
		l.lowerLocked(pid)
	}
	if l.handOff != nil && os.Getenv(lazyKeepPEnv) != "1" {
		l.handOff(true)
	}
}

// lazyKeepPEnv, set to 1, has the program's task goroutines keep their P
// while the background loader streams, as at any other time (benchmarks
// compare the two).
const lazyKeepPEnv = "SNAP_LAZY_KEEP_P"

// pHandOffer is implemented by platform contexts whose Switch can give the
// calling thread's P back to the Go scheduler while the application runs
// (ptrace).
type pHandOffer interface {
	// HandOffP applies from the next Switch.
	HandOffP(on bool)
}

// applyHandOff passes the kernel's lazyHandOff to the task's context when
// it changed since the last Switch.
//
// Preconditions: the caller is the task goroutine.
func (t *Task) applyHandOff() {
	on := t.k.lazyHandOff.Load()
	if on == t.handOffApplied {
		return
	}
	t.handOffApplied = on
	if p, ok := t.ctx.(pHandOffer); ok {
		p.HandOffP(on)
	}
}

// lowerLocked makes stub thread pid SCHED_IDLE, or gives it the nice
// value l.stubNice, remembering what it had, if the sentry may set that
// back afterwards.
//
// Preconditions: l.mu is held; pid is in l.stubs.
func (l *lazyLoad) lowerLocked(pid int) {
	if l.stubNice == 0 {
		return
	}
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		return // gone
	}
	nice := int(attr.Nice)
	if !canRaiseNice(nice) {
		return
	}
	st := l.stubs[pid]
	if l.stubNice == lazyStubIdle {
		switch {
		case attr.Policy == unix.SCHED_IDLE && !sentryIdle():
			// A thread the program started from a lowered one during
			// the load, which inherited the policy.
			st.nice, st.idle = nice, true
		case attr.Policy == unix.SCHED_NORMAL && setPolicy(pid, unix.SCHED_IDLE, nice) == nil:
			st.nice, st.idle = nice, true
		}
		l.stubs[pid] = st
		return
	}
	if attr.Policy == unix.SCHED_NORMAL && nice < l.stubNice && unix.Setpriority(unix.PRIO_PROCESS, pid, l.stubNice) == nil {
		st.nice = nice
		l.stubs[pid] = st
	}
}

// sentryIdle reports whether the calling sentry thread runs under
// SCHED_IDLE (the sentry was started so): its stubs then do too, by
// inheritance, and are left so.
func sentryIdle() bool {
	attr, err := unix.SchedGetAttr(0, 0)
	return err == nil && attr.Policy == unix.SCHED_IDLE
}

// setPolicy sets thread pid's scheduling policy (SCHED_NORMAL or
// SCHED_IDLE) and nice value.
func setPolicy(pid int, policy uint32, nice int) error {
	return unix.SchedSetAttr(pid, &unix.SchedAttr{Policy: policy, Nice: int32(nice)}, 0)
}

// restoreStubs puts back what lowerLocked changed: the policy of a stub
// thread it made SCHED_IDLE (if it still is), the nice value of one it
// gave stubNice (if it still has it); a stub thread gone meanwhile is
// skipped, and so is a process that reused its pid unless it looks the
// same. It returns the CPU time the stubs used since the background
// loader started, if it did.
func restoreStubs(stubs map[int]lazyStub, lowering bool, stubNice int) time.Duration {
	var cpu int64
	for pid, st := range stubs {
		if now := processCPUNow(pid); lowering && now > st.cpu && st.cpu > 0 {
			cpu += now - st.cpu
		}
		if st.nice < 0 {
			continue
		}
		attr, err := unix.SchedGetAttr(pid, 0)
		switch {
		case err != nil:
		case st.idle && attr.Policy == unix.SCHED_IDLE:
			setPolicy(pid, unix.SCHED_NORMAL, st.nice)
		case !st.idle && attr.Policy == unix.SCHED_NORMAL && int(attr.Nice) == stubNice:
			unix.Setpriority(unix.PRIO_PROCESS, pid, st.nice)
		}
	}
	return time.Duration(cpu)
}

// canRaiseNice reports whether the sentry may set a thread's nice value
// back to nice once it has raised it: RLIMIT_NICE allows it, or the
// sentry has CAP_SYS_NICE.
func canRaiseNice(nice int) bool {
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NICE, &r) == nil && (r.Cur == unix.RLIM_INFINITY || 20-int(min(r.Cur, 40)) <= nice) {
		return true // the ceiling RLIMIT_NICE sets is 20 - its value
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[unix.CAP_SYS_NICE/32].Effective&(1<<(unix.CAP_SYS_NICE%32)) != 0
}

// lazyLoader returns the lazy load in progress, or nil.
func (f *MemoryFile) lazyLoader() *lazyLoad { return f.lazy.Load() }

// ensureLoaded loads whatever of [start, end) a lazy restore has not loaded
// yet.
func (f *MemoryFile) ensureLoaded(start, end uint64) error {
	if l := f.lazy.Load(); l != nil {
		return l.ensure(start, end)
	}
	return nil
}

// loadAll loads every chunk nobody has claimed yet, all at once, and
// waits for the others.
func (l *lazyLoad) loadAll() error {
	var idx []int
	for i := range l.chunks {
		if l.state[i].CompareAndSwap(chunkUnloaded, chunkLoading) {
			idx = append(idx, i)
		}
	}
	if len(idx) > 0 {
		if err := l.lm.Load(l.ctx, idx, l.w, func(i int) { l.loaded(i, loadBackground) }); err != nil {
			l.fail(err)
		}
	}
	return l.wait()
}

// waitLoaded loads whatever a lazy restore has not loaded yet and waits
// until everything is: a save reads the whole file.
func (f *MemoryFile) waitLoaded() error {
	if l := f.lazy.Load(); l != nil {
		if err := l.loadAll(); err != nil {
			return fmt.Errorf("wait for the memory of a lazy restore: %w", err)
		}
	}
	return nil
}

// stopLazy cancels a lazy load in progress (the memory file is released).
func (f *MemoryFile) stopLazy() {
	if l := f.lazy.Swap(nil); l != nil {
		l.stop()
	}
}

// mapLazyLocked maps the loaded parts of v into the address space with
// access at and unmaps, if unmapRest, the others: these fault into the
// sentry on first touch (handleFaultLocked).
//
// Preconditions: mm.mu is held for writing; mm.as is not nil.
func (mm *MM) mapLazyLocked(l *lazyLoad, v *vma, at platform.AccessType, precommit, unmapRest bool) error {
	end := v.Off + v.length()
	for pos := v.Off; pos < end; {
		loaded, next := l.loadedAt(pos, end)
		addr, length := v.Start+(pos-v.Off), next-pos
		var err error
		switch {
		case loaded:
			err = mm.as.MapFile(addr, pos, length, at, precommit)
		case l.base != nil && !v.mapsBase():
			// Memory the sentry writes while stubs map it: copied.
			if err = l.ensure(pos, next); err == nil {
				err = mm.as.MapFile(addr, pos, length, at, precommit)
			}
		case l.base != nil:
			err = mm.mapBaseLocked(l.base, addr, pos, length, at)
		case unmapRest:
			err = mm.as.Unmap(addr, length)
		}
		if err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// mapLoadedAroundLocked maps the loaded piece of v around addr, whose page
// is loaded, in one call.
//
// Preconditions: mm.mu is held for writing; mm.as is not nil.
func (mm *MM) mapLoadedAroundLocked(l *lazyLoad, v *vma, addr uint64) error {
	mm.gen++
	at := v.Perms.access()
	if v.COW {
		at.Write = false
	}
	off := v.Off + (pageRoundDown(addr) - v.Start)
	lo, hi := l.loadedAround(off, v.Off, v.Off+v.length())
	if lo == hi {
		return nil // a chunk went back to loading? It cannot; refault.
	}
	if err := mm.as.MapFile(v.Start+(lo-v.Off), lo, hi-lo, at, false); err != nil {
		return fmt.Errorf("map [%#x, %#x) %v into address space: %w", v.Start+(lo-v.Off), v.Start+(hi-v.Off), v.Perms, err)
	}
	return nil
}

// remapAll maps every vma in full again once a lazy load has ended, and
// then prefaults the present pages.
func (mm *MM) remapAll() {
	mm.mu.Lock()
	for i := range mm.vmas {
		if err := mm.mapIntoLocked(&mm.vmas[i], false); err != nil {
			break // what is left faults in on first touch
		}
	}
	mm.mu.Unlock()
	mm.prefaultPresent()
}

// lazyLoaded is called once a lazy load has loaded everything: every
// address space is mapped in full again.
func (k *Kernel) lazyLoaded() {
	seen := map[*MM]bool{}
	for _, tg := range k.threadGroups() {
		if mm := tg.mm; mm != nil && !seen[mm] {
			seen[mm] = true
			mm.remapAll()
		}
	}
}

// StopLazyLoad stops the lazy load of a restored kernel whose program has
// ended (its Done then reports ErrLoadCancelled with what was loaded on
// first touch); it does nothing once the load has ended.
func (k *Kernel) StopLazyLoad() {
	if k.mf != nil {
		k.mf.stopLazy()
	}
}

// lazyFailed kills every process after a chunk could not be loaded.
func (k *Kernel) lazyFailed(err error) {
	fmt.Fprintf(k.log, "snap: %v: killing the sandbox\n", err)
	for _, tg := range k.threadGroups() {
		tg.exitGroup(ExitStatus{Signal: int(unix.SIGKILL)})
	}
}
