package kernel

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lazyChunks cuts the saved ranges into chunks of at most 1 MiB that do
// not cross a 1 MiB boundary, as an image's are.
func lazyChunks(ranges []MemoryRange) ([]LazyChunk, [][]byte) {
	var chunks []LazyChunk
	var data [][]byte
	for _, r := range ranges {
		for off := uint64(0); off < uint64(len(r.Data)); {
			start := r.Off + off
			end := min((start/(1<<20)+1)*(1<<20), r.Off+uint64(len(r.Data)))
			chunks = append(chunks, LazyChunk{Off: start, Len: end - start})
			data = append(data, r.Data[off:off+end-start])
			off += end - start
		}
	}
	return chunks, data
}

// lazyRecorder is a LazyMemory over saved ranges that fails chunk bad (if
// not -1) and records the stats Done gets.
type lazyRecorder struct {
	data  [][]byte
	bad   int
	ended chan LazyStats
	// stream gives the LazyMemory a Stream for the background loader.
	stream bool
	// skipped counts the chunks Stream did not write: claimed by a first
	// touch before it reached them.
	skipped int
	// streaming, if set, is closed when Stream starts, which then waits
	// for gate to be closed.
	streaming, gate chan struct{}
}

func (lr *lazyRecorder) memory(chunks []LazyChunk, eager []int) *LazyMemory {
	lr.ended = make(chan LazyStats, 1)
	var stream func(context.Context, []int, *MemoryLoader, func(int) bool, func(int)) error
	if lr.stream {
		stream = func(_ context.Context, idx []int, w *MemoryLoader, claim func(int) bool, loaded func(int)) error {
			if lr.streaming != nil {
				close(lr.streaming)
				<-lr.gate
			}
			for _, i := range idx {
				if !claim(i) {
					lr.skipped++
					continue
				}
				if err := w.WriteRuns(runsOf([]MemoryRange{{Off: chunks[i].Off, Data: lr.data[i]}})); err != nil {
					return err
				}
				loaded(i)
			}
			return nil
		}
	}
	return &LazyMemory{
		Stream: stream,
		Chunks: chunks,
		Eager:  eager,
		Load: func(_ context.Context, idx []int, w *MemoryLoader, loaded func(int)) error {
			for _, i := range idx {
				if i == lr.bad {
					return fmt.Errorf("chunk %d: the store is gone", i)
				}
				if err := w.WriteRuns(runsOf([]MemoryRange{{Off: chunks[i].Off, Data: lr.data[i]}})); err != nil {
					return err
				}
				loaded(i)
			}
			return nil
		},
		Done: func(st LazyStats) { lr.ended <- st },
	}
}

// TestRestoreLazy restores the sparse program lazily: its memory loads on
// first touch (the sentry's own reads, the program's faults) and, unless
// held back, in the background, after which the lazy load switches off;
// a chunk that cannot be loaded kills the sandbox.
func TestRestoreLazy(t *testing.T) {
	s, ranges, state := savedSparse(t)
	chunks, data := lazyChunks(ranges)
	if len(chunks) < 4 {
		t.Fatalf("%d chunks, want at least 4", len(chunks))
	}
	want := fmt.Sprintf("sum %x", sparseSum())

	for _, tc := range []struct {
		name       string
		hold       bool
		bad        int // chunk that fails, -1 for none
		wantLoaded bool
		stream     bool // the background loader streams (LazyMemory.Stream)
	}{
		{"background", false, -1, true, false},
		{"background streamed", false, -1, true, true},
		{"first touch only", true, -1, false, false}, // the program loads what it touches
		{"chunk fails", true, len(chunks) / 2, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.hold {
				t.Setenv(lazyHoldEnv, "1h")
			}
			lr := &lazyRecorder{data: data, bad: tc.bad, stream: tc.stream}
			tm := new(Timings)
			k, inW, outR := restoreWithPipes(t, state, RestoreOptions{
				Timings: tm, MemorySize: s.k.mf.Size(), Lazy: lr.memory(chunks, []int{0}),
			})
			if k.lazyKick.Load() != k.mf.lazyLoader() {
				t.Error("after Restore the background loader does not wait for the program's first return to the sentry")
			}
			if tc.hold {
				l := k.mf.lazyLoader()
				if l == nil {
					t.Fatal("a held-back lazy load is not under way after Restore")
				}
				if l.state[0].Load() != chunkLoaded || l.state[len(chunks)-1].Load() == chunkLoaded && tc.bad < 0 {
					t.Errorf("after Restore: chunk 0 (eager) %d, last chunk %d; want the eager one loaded only", l.state[0].Load(), l.state[len(chunks)-1].Load())
				}
			}
			k.Resume()
			lines := scanLines(outR, 4)
			inW.Write([]byte{'x'})
			select {
			case l := <-lines:
				if tc.bad >= 0 {
					t.Errorf("program printed %q with chunk %d failing", l, tc.bad)
				} else if l != want {
					t.Errorf("restored program: %q, want %q", l, want)
				}
			case <-k.Exited():
				if tc.bad < 0 {
					t.Fatal("the restored program ended")
				}
			case <-time.After(60 * time.Second):
				t.Fatal("restored program printed nothing")
			}
			if tc.bad >= 0 {
				if st := k.Wait(); st.Signal != int(unix.SIGKILL) {
					t.Errorf("sandbox whose chunk failed: %+v, want killed by SIGKILL", st)
				}
				st := <-lr.ended
				if !errors.Is(st.Err, ErrMemoryLoad) {
					t.Errorf("Done after a failed chunk: %v, want ErrMemoryLoad", st.Err)
				}
				if _, err := k.mf.Bytes(chunks[tc.bad].Off, pageSize); !errors.Is(err, ErrMemoryLoad) {
					t.Errorf("Bytes(failed chunk) = %v, want ErrMemoryLoad", err)
				}
				return
			}
			if !tc.wantLoaded {
				// The program's sum touched its pages: loaded on first
				// touch only (perhaps all of them, then the load ended).
				if k.mf.lazyLoader() != nil {
					return
				}
				st := <-lr.ended
				if st.Err != nil || st.Background != 0 || len(st.OnDemand) == 0 {
					t.Errorf("held-back lazy load ended with %+v, want all on first touch", st)
				}
				return
			}
			var st LazyStats
			select {
			case st = <-lr.ended:
			case <-time.After(60 * time.Second):
				t.Fatal("the lazy load did not end")
			}
			if st.Err != nil || st.Eager != 1 || st.Eager+st.Background+len(st.OnDemand) != len(chunks) {
				t.Errorf("Done(%+v), want every one of %d chunks loaded, 1 eagerly", st, len(chunks))
			}
			if tc.stream && (st.Background == 0 || lr.skipped > len(st.OnDemand)) {
				t.Errorf("streamed %d chunks and skipped %d with %d loaded on first touch; want some streamed, and only chunks loaded on first touch skipped",
					st.Background, lr.skipped, len(st.OnDemand))
			}
			if k.mf.lazyLoader() != nil {
				t.Error("the lazy load is still set once everything is loaded")
			}
			if k.lazyKick.Load() != nil {
				t.Error("the background loader's kick is still set once the program has run")
			}
			inW.Write([]byte{'x'})
			if l := <-lines; l != want {
				t.Errorf("restored program once loaded: %q, want %q", l, want)
			}
		})
	}
}

// TestLazyLoadedAt: the pieces mapLazyLocked maps and leaves out.
func TestLazyLoadedAt(t *testing.T) {
	const mib = 1 << 20
	l, err := newLazyLoad(&LazyMemory{Chunks: []LazyChunk{
		{0, mib - pageSize}, {mib, mib}, {2 * mib, mib / 2}, {4 * mib, mib},
	}}, &MemoryLoader{size: 8 * mib})
	if err != nil {
		t.Fatal(err)
	}
	l.state[2].Store(chunkLoaded)
	for _, tc := range []struct {
		off, end   uint64
		wantLoaded bool
		wantNext   uint64
	}{
		{0, 8 * mib, false, 2 * mib},                                // chunks 0 and 1 with the page between
		{2 * mib, 8 * mib, true, 4 * mib},                           // chunk 2 and the zeros after it
		{3 * mib, 8 * mib, true, 4 * mib},                           // in no chunk
		{4 * mib, 8 * mib, false, 5 * mib},                          // chunk 3
		{5 * mib, 8 * mib, true, 8 * mib},                           // beyond every chunk
		{mib + pageSize, mib + 2*pageSize, false, mib + 2*pageSize}, // cut at end
	} {
		loaded, next := l.loadedAt(tc.off, tc.end)
		if loaded != tc.wantLoaded || next != tc.wantNext {
			t.Errorf("loadedAt(%#x, %#x) = %v, %#x; want %v, %#x", tc.off, tc.end, loaded, next, tc.wantLoaded, tc.wantNext)
		}
	}
	if lo, hi := l.loadedAround(3*mib, 0, 8*mib); lo != 2*mib || hi != 4*mib {
		t.Errorf("loadedAround(3 MiB) = [%#x, %#x), want [2 MiB, 4 MiB)", lo, hi)
	}
	if _, err := newLazyLoad(&LazyMemory{Chunks: []LazyChunk{{mib, mib}, {0, mib}}}, &MemoryLoader{size: 8 * mib}); !errors.Is(err, ErrBadState) {
		t.Errorf("newLazyLoad(chunks out of order) = %v, want ErrBadState", err)
	}
}

// stubSched is a stub thread's host scheduling policy and nice value.
type stubSched struct {
	policy uint32
	nice   int
}

// stubScheds returns the host scheduling policy and nice value of the
// stub thread of each task of k that has run.
func stubScheds(t *testing.T, k *Kernel) []stubSched {
	t.Helper()
	var scheds []stubSched
	for _, tg := range k.threadGroups() {
		tg.mu.Lock()
		for _, task := range tg.tasks {
			if pid := task.sig.ruStub; pid != 0 {
				attr, err := unix.SchedGetAttr(pid, 0)
				if err != nil {
					t.Errorf("sched_getattr of stub %d: %v", pid, err)
					continue
				}
				scheds = append(scheds, stubSched{attr.Policy, int(attr.Nice)})
			}
		}
		tg.mu.Unlock()
	}
	return scheds
}

// TestRestoreLazyLowersProgram: while the background loader streams, the
// program's stub runs under SCHED_IDLE (or at the nice value
// SNAP_LAZY_PROGRAM_NICE gives); once the load has ended it is back under
// SCHED_NORMAL with the nice value it had.
func TestRestoreLazyLowersProgram(t *testing.T) {
	if !canRaiseNice(0) {
		t.Skip("the test cannot set a nice value back to 0 (no CAP_SYS_NICE, RLIMIT_NICE below 20): the sentry lowers nothing")
	}
	for _, tc := range []struct {
		name, env string
		during    stubSched
	}{
		{"idle", "", stubSched{unix.SCHED_IDLE, 0}},
		{"nice", "19", stubSched{unix.SCHED_NORMAL, 19}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(lazyNiceEnv, tc.env)
			during, after := lazySchedsDuringAndAfter(t)
			for _, c := range []struct {
				when   string
				scheds []stubSched
				want   stubSched
			}{
				{"while the loader streams", during, tc.during},
				{"once loaded", after, stubSched{unix.SCHED_NORMAL, 0}},
			} {
				if len(c.scheds) == 0 {
					t.Errorf("%s: no stub has run the program", c.when)
				}
				for _, got := range c.scheds {
					if got != c.want {
						t.Errorf("%s: stub policies and nice values %+v, want %+v", c.when, c.scheds, c.want)
						break
					}
				}
			}
		})
	}
}

// lazySchedsDuringAndAfter restores the sparse program lazily and returns
// its stubs' policies and nice values while the background loader
// streams and once the load has ended; the program must still give its
// sum.
func lazySchedsDuringAndAfter(t *testing.T) (during, after []stubSched) {
	t.Helper()
	duringAndAfterLazyStream(t, func(k *Kernel) {
		// The loader starts at the program's first return to the
		// sentry, or after lazyKickWait if that is later: the program's
		// stub may not have run yet.
		during = stubScheds(t, k)
		for deadline := time.Now().Add(30 * time.Second); len(during) == 0 && time.Now().Before(deadline); during = stubScheds(t, k) {
			time.Sleep(time.Millisecond)
		}
	}, func(k *Kernel) { after = stubScheds(t, k) })
	return during, after
}

// duringAndAfterLazyStream restores the sparse program lazily, calls
// during while the background loader streams (held until during returns)
// and after once the load has ended, all loaded; the program must then
// give its sum.
func duringAndAfterLazyStream(t *testing.T, during, after func(k *Kernel)) {
	t.Helper()
	s, ranges, state := savedSparse(t)
	chunks, data := lazyChunks(ranges)
	lr := &lazyRecorder{data: data, bad: -1, stream: true, streaming: make(chan struct{}), gate: make(chan struct{})}
	k, inW, outR := restoreWithPipes(t, state, RestoreOptions{
		Timings: new(Timings), MemorySize: s.k.mf.Size(), Lazy: lr.memory(chunks, nil),
	})
	k.Resume()
	select {
	case <-lr.streaming:
	case <-time.After(60 * time.Second):
		close(lr.gate)
		t.Fatal("the background loader did not start")
	}
	during(k)
	close(lr.gate)
	select {
	case st := <-lr.ended:
		if st.Err != nil {
			t.Errorf("Done(%+v), want everything loaded", st)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the lazy load did not end")
	}
	after(k)
	lines := scanLines(outR, 1)
	inW.Write([]byte{'x'})
	if l := <-lines; l != fmt.Sprintf("sum %x", sparseSum()) {
		t.Errorf("restored program: %q, want sum %x", l, sparseSum())
	}
}

// TestRestoreLazyHandsOffP: while the background loader streams, the
// kernel has task goroutines hand their P off while their application runs
// (Kernel.lazyHandOff), unless SNAP_LAZY_KEEP_P=1; once the load has ended
// they keep it again, and the program gives its sum.
func TestRestoreLazyHandsOffP(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		during    bool
	}{
		{"default", "", true},
		{"kept", "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(lazyKeepPEnv, tc.env)
			var during, after bool
			duringAndAfterLazyStream(t,
				func(k *Kernel) { during = k.lazyHandOff.Load() },
				func(k *Kernel) { after = k.lazyHandOff.Load() })
			if during != tc.during {
				t.Errorf("lazyHandOff while the loader streams = %v, want %v", during, tc.during)
			}
			if after {
				t.Errorf("lazyHandOff once loaded = %v, want false", after)
			}
		})
	}
}
