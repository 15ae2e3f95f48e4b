package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// workingSetTimeout bounds the write of a working set once a lazy restore
// has loaded everything.
const workingSetTimeout = 30 * time.Second

// lazyRestore is the lazy part of a restore (KernelOptions.Lazy): what the
// kernel loads on first touch and in the background, from img, which it
// keeps open until the load has ended.
type lazyRestore struct {
	img  *storage.Image
	o    KernelOptions
	tm   *kernel.Timings
	uri  string
	done chan struct{}
	// stats are the load's, valid once done is closed.
	stats kernel.LazyStats
	// record is true if this restore had no working set to use and
	// records one (never with NoWorkingSet).
	record bool
	// closeImg closes img once.
	closeImg sync.Once
	// running is set once the kernel is restored: the program may run.
	running atomic.Bool
	// units are the image's chunks that are not patches, by the kernel's
	// chunk index; unitOf gives the kernel's index of each image chunk.
	// Set by memory, immutable afterwards.
	units, unitOf []int
}

// closeImage closes the image, once.
func (lr *lazyRestore) closeImage() { lr.closeImg.Do(func() { lr.img.Close() }) }

// newLazyRestore prepares the lazy load of img's memory: its working set,
// unless o.NoWorkingSet, is loaded before the program starts; a working
// set that cannot be read is reported on o.Diag (or the kernel log) and
// not used.
func newLazyRestore(ctx context.Context, img *storage.Image, o KernelOptions, tm *kernel.Timings, uri string) *lazyRestore {
	lr := &lazyRestore{img: img, o: o, tm: tm, uri: uri, done: make(chan struct{})}
	if o.NoWorkingSet {
		return lr
	}
	ws, ok, err := img.WorkingSet(ctx)
	switch {
	case err != nil:
		lr.warnf("lazy restore of %s: working set not used: %v", uri, err)
	case ok:
		lr.o.workingSet = ws
	default:
		lr.record = true
	}
	return lr
}

// warnf writes one line to the sentry's log (detached) or the kernel's
// log (stderr in the foreground).
func (lr *lazyRestore) warnf(format string, args ...any) {
	if lr.o.Diag != nil {
		lr.o.Diag.Printf(format, args...)
		return
	}
	if lr.o.Log != nil {
		fmt.Fprintf(lr.o.Log, "snap: "+format+"\n", args...)
	}
}

// diagf writes one line to the sentry's log (detached only: a foreground
// restore prints LazyLine with --timings).
func (lr *lazyRestore) diagf(format string, args ...any) {
	if lr.o.Diag != nil {
		lr.o.Diag.Printf(format, args...)
	}
}

// memory describes the lazy load to kernel.Restore. The kernel's chunks
// are the image's chunks less their patches (storage.Chunk.IsPatch): a
// chunk is loaded with its patch, and is loaded once both are written.
// Working sets name the kernel's chunks.
func (lr *lazyRestore) memory() *kernel.LazyMemory {
	chunks := lr.img.Chunks()
	lc := make([]kernel.LazyChunk, 0, len(chunks))
	lr.unitOf = make([]int, len(chunks))
	for i, c := range chunks {
		if c.IsPatch() {
			lr.unitOf[i] = len(lc) - 1
			continue
		}
		lr.unitOf[i] = len(lc)
		lr.units = append(lr.units, i)
		lc = append(lc, kernel.LazyChunk{Off: c.Offset, Len: uint64(c.Span)})
	}
	return &kernel.LazyMemory{Chunks: lc, Eager: lr.o.workingSet, Load: lr.load, Stream: lr.stream, Done: lr.ended}
}

// load reads the kernel's chunks idx (with their patches) and writes
// their present pages through w: stream with every chunk claimed.
func (lr *lazyRestore) load(ctx context.Context, idx []int, w *kernel.MemoryLoader, loaded func(int)) error {
	return lr.stream(ctx, idx, w, func(int) bool { return true }, loaded)
}

// stream is the background loader's read of the kernel's chunks idx
// (kernel.LazyMemory.Stream): one ReadChunkRunsIf, decoded in parallel as
// an eager restore's, where a chunk is decoded and written only if claim,
// asked just before its decoding, says that no first touch loaded it
// meanwhile. A chunk and its patch are put on one goroutine, base first:
// the base's claim decides for both.
func (lr *lazyRestore) stream(ctx context.Context, idx []int, w *kernel.MemoryLoader, claim func(int) bool, loaded func(int)) error {
	chunks := lr.img.Chunks()
	recs := make([]int, 0, len(idx))
	for _, u := range idx {
		if u < 0 || u >= len(lr.units) {
			return fmt.Errorf("lazy restore of %s: chunk %d of %d: %w", lr.uri, u, len(lr.units), storage.ErrInvalidArgument)
		}
		i := lr.units[u]
		recs = append(recs, i)
		if i+1 < len(chunks) && chunks[i+1].IsPatch() {
			recs = append(recs, i+1)
		}
	}
	// claimed[u] is written and read by the goroutine that puts unit u's
	// records (ReadChunkRunsIf puts a base and its patch on one).
	claimed := make([]bool, len(lr.units))
	want := func(i int) bool {
		u := lr.unitOf[i]
		if !chunks[i].IsPatch() {
			claimed[u] = claim(u)
		}
		return claimed[u]
	}
	return lr.img.ReadChunkRunsIf(ctx, recs, want, func(i int, runs []storage.PageRun) error {
		u := lr.unitOf[i]
		err := w.WriteRuns(func(yield func(uint64, []byte) bool) {
			for _, r := range runs {
				if !yield(r.Off, r.Data) {
					return
				}
			}
		})
		if err == nil && (i+1 == len(chunks) || !chunks[i+1].IsPatch()) {
			loaded(u)
		}
		return err
	})
}

// ended is called once the load has ended: it records the step, the
// working set (on a first lazy restore that loaded everything), says so
// in the log, and closes the image.
func (lr *lazyRestore) ended(st kernel.LazyStats) {
	defer close(lr.done)
	defer lr.closeImage()
	lr.stats = st
	switch {
	case st.Err == nil:
		lr.tm.Add(StepLazyLoad, st.Start, st.End)
		lr.diagf("%s", LazyLine(st))
	case errors.Is(st.Err, kernel.ErrLoadCancelled) && lr.running.Load():
		// The program ended first: what it touched is its working set.
	default:
		return
	}
	if !lr.record || (st.Err != nil && len(st.OnDemand) == 0) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), workingSetTimeout)
	defer cancel()
	if err := lr.img.PutWorkingSet(ctx, st.OnDemand); err != nil {
		lr.warnf("lazy restore of %s: working set not recorded: %v", lr.uri, err)
		return
	}
	lr.diagf("lazy restore of %s: working set of %d chunks recorded", lr.uri, len(st.OnDemand))
}

// StepLazyLoad: a lazy restore, from the program's start until all its
// memory was loaded (recorded once it is).
const StepLazyLoad = "lazy-load"

// LazyLine describes a lazy load that ended in one line:
//
//	lazy restore: N chunks loaded: E working set, D on first touch, B in the background, in T ms; program CPU P ms; sentry CPU S ms, F faults
//
// where P is the CPU time the program used while the background loader
// ran, S the sentry's (the loader's and the program's faults') and F the
// program's faults that reached the sentry meanwhile.
func LazyLine(st kernel.LazyStats) string {
	return fmt.Sprintf("lazy restore: %d chunks loaded: %d working set, %d on first touch, %d in the background, in %.3f ms; program CPU %.3f ms; sentry CPU %.3f ms, %d faults",
		st.Chunks, st.Eager, len(st.OnDemand), st.Background, ms(st.End.Sub(st.Start)), ms(st.ProgramCPU), ms(st.SentryCPU), st.Faults)
}

// WaitLoaded waits until a lazily restored sandbox has all its memory, and
// returns the load's statistics; false if it ended first, or the sandbox
// was not restored lazily.
func (s *KernelSandbox) WaitLoaded() (kernel.LazyStats, bool) {
	if s.lazy == nil {
		return kernel.LazyStats{}, false
	}
	select {
	case <-s.lazy.done:
		return s.lazy.stats, s.lazy.stats.Err == nil
	case <-s.k.Exited():
		return kernel.LazyStats{}, false
	}
}
