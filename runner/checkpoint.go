package runner

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
	"snapshotter/storage"
)

func init() {
	extraWireCodes = append(extraWireCodes,
		struct {
			code string
			err  error
		}{"exists", storage.ErrAlreadyExists},
		struct {
			code string
			err  error
		}{"not_found", storage.ErrNotFound},
		struct {
			code string
			err  error
		}{"corrupt", storage.ErrCorrupt},
		struct {
			code string
			err  error
		}{"incompatible", storage.ErrIncompatibleVersion},
		struct {
			code string
			err  error
		}{"wrong_arch", storage.ErrWrongArch},
		struct {
			code string
			err  error
		}{"invalid", storage.ErrInvalidArgument},
		struct {
			code string
			err  error
		}{"signature", storage.ErrSignature},
		struct {
			code string
			err  error
		}{"parent_changed", storage.ErrParentChanged},
	)
}

// Image metadata keys written by a save.
const (
	MetaProgram = "program"
	MetaArgv    = "argv"    // JSON array of strings
	MetaSandbox = "sandbox" // the saved sandbox's ID
	// MetaListening lists the sandbox's listening TCP and bound UDP
	// sockets ("tcp 127.0.0.1:8000, udp [::]:53"); MetaPublished its
	// published ports as -p gives them.
	MetaListening = "listening"
	MetaPublished = "published"
	// MetaNetwork is the network mode (sandbox, none or host).
	MetaNetwork = "network"
)

// pauseTimeout bounds how long a save waits for every thread to stop.
const pauseTimeout = 30 * time.Second

// progressStep is how many memory bytes pass between progress events.
const progressStep = 32 << 20

// minHole is the shortest hole of the memory file a save skips; shorter
// ones are read as zeros with the data around them. Finding holes costs up
// to two lseek calls per minHole block holding data (about 2 ms per GiB at
// 1 MiB), and reading a 1 MiB hole about 0.1 ms of copying zeros, so a
// sandbox that maps much more memory than it touches saves fast while a
// dense one pays almost nothing.
const minHole = 1 << 20

// SaveStats describes the last save of a KernelSandbox.
type SaveStats struct {
	// Paused is how long the sandbox was paused.
	Paused time.Duration
	// MemoryBytes is the allocated memory handed to the image (zero pages
	// included; the image stores only non-zero ones).
	MemoryBytes uint64
}

// DefaultImageName is the image name a save without --to uses.
func DefaultImageName(id string, now time.Time) string {
	return fmt.Sprintf("%s-%s", id, now.UTC().Format("20060102-150405.000"))
}

// DefaultSaveTimeout bounds a save whose request gives no timeout.
const DefaultSaveTimeout = 60 * time.Second

// Save checkpoints the sandbox: the image writer is created first (a name
// that exists or an unreachable store fails before anything stops), then
// the kernel pauses, its state and memory stream into the image in
// parallel, and the manifest is committed. With req.LeaveRunning the
// sandbox resumes, otherwise it is discarded. Any failure aborts the image
// and resumes the sandbox unchanged. The whole save is bounded by
// req.Timeout: past it the save fails with ErrSaveTimeout, the sandbox
// resumes at once, and the image's leftovers are removed in the
// background (a store that stopped answering may keep them until
// snap prune); after any other failure they are removed before Save
// returns.
func (s *KernelSandbox) Save(ctx context.Context, req SaveRequest, progress func(Progress)) (string, error) {
	timeout := cmp.Or(req.Timeout, DefaultSaveTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %v (snap save --timeout)", ErrSaveTimeout, timeout))
	defer cancel()
	save := s.save
	if req.Migrate != "" {
		save = s.migrate
	}
	uri, err := save(ctx, req, serialProgress(progress))
	if err != nil && errors.Is(context.Cause(ctx), ErrSaveTimeout) {
		// Whatever failed, it failed because the deadline passed: say so.
		inner := strings.TrimPrefix(err.Error(), "save "+s.opts.ID+": ")
		err = fmt.Errorf("save %s: %w: %s", s.opts.ID, context.Cause(ctx), inner)
	}
	return uri, err
}

func (s *KernelSandbox) save(ctx context.Context, req SaveRequest, progress func(Progress)) (string, error) {
	to := req.To
	if to == "" {
		to = DefaultImageName(s.opts.ID, time.Now())
	}
	argv, _ := json.Marshal(s.opts.Argv)
	meta := map[string]string{MetaSandbox: s.opts.ID, MetaArgv: string(argv)}
	if len(s.opts.Argv) > 0 {
		meta[MetaProgram] = s.opts.Argv[0]
	}
	addNetworkMeta(meta, s.k)
	progress = serialProgress(progress)
	// The memory total is set before the first byte of memory is handed
	// over; the writer's drain goroutine reports after that, and stops
	// once the commit phase is reported.
	var memTotal, nextReport uint64
	var committing atomic.Bool
	report := func(done uint64) {
		if (done >= nextReport || done == memTotal) && !committing.Load() {
			progress(Progress{Phase: "memory", Done: done, Total: memTotal})
			nextReport = done + progressStep
		}
	}
	var parent *storage.ParentRef
	var parentChunks []storage.Chunk
	if req.Parent != "" {
		ref, pm, err := storage.ResolveParent(ctx, req.Parent, req.Store)
		if err != nil {
			return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
		}
		if got := pm.Metadata[MetaSandbox]; got != s.opts.ID {
			return "", fmt.Errorf("save %s: parent %s is a save of sandbox %q, not of %s: %w", s.opts.ID, ref.URI, got, s.opts.ID, storage.ErrInvalidArgument)
		}
		parent = ref
		parentChunks = s.baseChunks(ctx, ref, req)
	}
	// Whatever happens, the dirty set this save takes is the last one.
	s.base = nil
	w, err := storage.CreateImage(ctx, to, req.Store, storage.CreateOptions{
		Metadata: meta, SnapVersion: s.opts.Version,
		Codec: req.Compression, Level: req.Level, Progress: report,
		SignKey: req.SignKey, Parent: parent,
	})
	if err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	// After Commit, Abort does nothing. After a failure it deletes what
	// was written, before the caller is answered (and after the sandbox
	// resumed: that defer runs first). A save whose deadline passed is
	// answered at once instead: its store may have stopped answering,
	// and the abort would wait until its requests time out.
	defer func() {
		if ctx.Err() == nil {
			abortImage(w)
			return
		}
		// S/R-SAFE: the writer's goroutines have all stopped or are
		// stopped by Abort; it touches no kernel state.
		go abortImage(w)
	}()

	t0 := time.Now()
	progress(Progress{Phase: "pause"})
	pctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	err = s.k.PauseContext(pctx)
	cancel()
	if err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	select {
	case <-s.k.Exited():
		s.k.Unpause()
		return "", fmt.Errorf("save %s: %w: the program has ended", s.opts.ID, ErrNotRunning)
	default:
	}
	start := time.Now()
	pausedAt := start.Sub(t0)
	paused := true
	defer func() {
		if paused {
			s.k.Unpause()
		}
	}()

	if req.LeaveRunning && !strings.HasPrefix(w.URI(), "file://") {
		// A remote store may take long to take the image: copy the
		// sandbox out while paused and upload it while it runs, if the
		// copy fits in memory. A local store takes it faster than a copy
		// (see copyOutMax).
		snap, err := s.copyOut(ctx)
		if err != nil {
			return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
		}
		if snap != nil {
			defer snap.release()
			paused = false
			s.k.Unpause()
			pauseDur := time.Since(start)
			memTotal = uint64(len(snap.data))
			if err := snap.write(w); err != nil {
				return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
			}
			committing.Store(true)
			progress(Progress{Phase: "commit", Done: uint64(len(snap.data)), Total: uint64(len(snap.data))})
			if _, err := w.Commit(); err != nil {
				return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
			}
			s.last = SaveStats{Paused: pauseDur, MemoryBytes: uint64(len(snap.data))}
			log.Printf("sandbox %s: saved to %s (copied out): %d bytes of memory, paused %v, written in %v",
				s.opts.ID, w.URI(), len(snap.data), pauseDur, time.Since(start))
			return w.URI(), nil
		}
	}

	if req.LeaveRunning && strings.HasPrefix(w.URI(), "file://") {
		st, err := s.saveLive(ctx, w, parentChunks, func(n uint64) { memTotal = n }, func() {
			paused = false
			s.k.Unpause()
		})
		if err != nil {
			return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
		}
		committing.Store(true)
		progress(Progress{Phase: "commit", Done: st.MemoryBytes, Total: st.MemoryBytes})
		m, err := w.Commit()
		if err != nil {
			return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
		}
		s.last = st
		s.base = &liveBase{uri: w.URI(), digest: m.Digest()}
		nc, nb := w.NewChunks()
		log.Printf("sandbox %s: saved to %s: %d bytes of memory, paused %v; %d chunks (%d bytes) new to the store, the rest shared",
			s.opts.ID, w.URI(), st.MemoryBytes, st.Paused, nc, nb)
		return w.URI(), nil
	}

	alloc, mem, err := s.k.SavedMemory(minHole)
	rangesAt := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	plan := planIncremental(alloc, nil, nil)
	if parentChunks != nil {
		// Tracking has run since the parent's pause: the spans written
		// since are read, the others are the parent's chunks.
		dirty, err := s.k.TakeDirty()
		if err != nil {
			return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
		}
		plan = planIncremental(alloc, dirty, parentChunks)
	}
	total := plan.bytes()
	memTotal = total
	stateDone := make(chan error, 1)
	// S/R-SAFE: runs while the kernel is paused and is waited for below.
	go func() { stateDone <- s.k.SaveState(ctx, w.StateWriter()) }()
	// The image writer's workers pread the ranges from the memory file in
	// parallel, drop zero pages and compress (short holes read as zeros
	// without allocating, and no page of the sentry's mapping is faulted
	// in).
	err = plan.write(w, mem)
	memDone := time.Since(start)
	if serr := <-stateDone; err == nil {
		err = serr
	}
	stateDoneAt := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	pauseDur := time.Duration(0)
	if req.LeaveRunning {
		// Every byte of the sandbox is in the writer now (WriteMemoryFrom
		// returns once all is read): it may run while the image is
		// finished and committed.
		paused = false
		s.k.Unpause()
		pauseDur = time.Since(start)
	}
	committing.Store(true)
	progress(Progress{Phase: "commit", Done: total, Total: total})
	if _, err := w.Commit(); err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	committed := time.Since(start)
	if !req.LeaveRunning {
		pauseDur = committed
	}
	s.last = SaveStats{Paused: pauseDur, MemoryBytes: total}
	log.Printf("sandbox %s: save timing: pause took %v, memory ranges found %v, memory written %v, state %v, committed %v",
		s.opts.ID, pausedAt, rangesAt, memDone, stateDoneAt, committed)
	if !req.LeaveRunning {
		paused = false
		s.k.Discard()
	}
	nc, nb := w.NewChunks()
	log.Printf("sandbox %s: saved to %s: %d bytes of memory, paused %v; %d chunks (%d bytes) new to the store, the rest shared",
		s.opts.ID, w.URI(), total, s.last.Paused, nc, nb)
	return w.URI(), nil
}

// abortImage aborts a failed image write and logs why cleanup failed.
func abortImage(w *storage.Writer) {
	if err := w.Abort(); err != nil {
		log.Printf("%v (snap prune removes what is left)", err)
	}
}

// snapshot is a paused sandbox copied out: its state blob and the pages its
// memory file holds (runs[i] is offs[i] with lens[i] bytes, back to back in
// data).
type snapshot struct {
	state []byte
	offs  []uint64
	lens  []int
	pos   []int // where run i starts in data
	data  []byte
}

// copyOutMax bounds the memory a copy-out may take. Filling fresh memory
// costs a first-touch fault per page on this machine kind (about 11 µs in
// a Firecracker VM, even with MAP_POPULATE for memory the host has not
// backed yet). Since the image writer reads, scans and compresses in
// parallel (S2), streaming to a local store pauses less than copying out
// at every size: --leave-running pauses, load average 4.9, copied out vs
// streamed: 64 MiB 50-94 ms vs 37 ms, 256 MiB 280-340 ms vs 79 ms. So only
// a save to a remote store, whose upload time has no bound, copies out.
const copyOutMax = 256 << 20

// copyOut copies the paused sandbox into memory, or returns nil if its
// memory would take more than copyOutMax or a quarter of the host's
// available memory.
//
// Preconditions: the kernel is paused.
func (s *KernelSandbox) copyOut(ctx context.Context) (*snapshot, error) {
	t0 := time.Now()
	runs, err := s.k.MemoryRanges()
	if err != nil {
		return nil, err
	}
	var total int
	for _, r := range runs {
		total += len(r.Data)
	}
	if avail := memAvailable(); avail == 0 || uint64(total) > min(avail/4, copyOutMax) {
		return nil, nil
	}
	var state bytes.Buffer
	if err := s.k.SaveState(ctx, &state); err != nil {
		return nil, err
	}
	// An anonymous mapping populated in one call: a Go slice this large
	// would take a first-touch fault per page while being filled.
	data, err := unix.Mmap(-1, 0, max(total, 1), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil // not enough memory now: save without copying out
	}
	snap := &snapshot{state: state.Bytes(), data: data[:total]}
	t1 := time.Now()
	// Read the allocated ranges in 1 MiB blocks with pread (holes come
	// back as zeros without being allocated; one system call per block,
	// not per run) and keep the present pages.
	alloc, mem, err := s.k.AllocatedMemory()
	if err != nil {
		snap.release()
		return nil, err
	}
	block := make([]byte, storage.ChunkSpan)
	pos, ri := 0, 0
	for _, a := range alloc {
		for boff := a[0]; boff < a[0]+a[1] && ri < len(runs); {
			bend := min(boff+uint64(len(block)), a[0]+a[1])
			if runs[ri].Off >= bend {
				boff = max(bend, runs[ri].Off-runs[ri].Off%storage.PageSize)
				if boff >= a[0]+a[1] {
					break
				}
				continue
			}
			if _, err := mem.ReadAt(block[:bend-boff], int64(boff)); err != nil {
				snap.release()
				return nil, err
			}
			// Copy every part of a run inside [boff, bend).
			for ri < len(runs) && runs[ri].Off < bend {
				r := runs[ri]
				rend := r.Off + uint64(len(r.Data))
				from, to := max(r.Off, boff), min(rend, bend)
				if from == r.Off {
					snap.offs = append(snap.offs, r.Off)
					snap.lens = append(snap.lens, len(r.Data))
					snap.pos = append(snap.pos, pos)
				}
				copy(snap.data[pos:], block[from-boff:to-boff])
				pos += int(to - from)
				if rend > bend {
					break // the rest of this run is in the next block
				}
				ri++
			}
			boff = bend
		}
	}
	if pos != total || ri != len(runs) {
		snap.release()
		return nil, fmt.Errorf("copy out: copied %d of %d bytes, %d of %d runs", pos, total, ri, len(runs))
	}
	log.Printf("sandbox %s: copied out %d runs of pages: find runs, state and buffer %v, copy %v", s.opts.ID, len(runs), t1.Sub(t0), time.Since(t1))
	return snap, nil
}

// release unmaps the snapshot's memory.
func (sn *snapshot) release() { unix.Munmap(sn.data[:cap(sn.data)]) }

// write hands the snapshot to the image writer.
func (sn *snapshot) write(w *storage.Writer) error {
	if _, err := w.StateWriter().Write(sn.state); err != nil {
		return err
	}
	ranges := make([]storage.Range, len(sn.offs))
	for i, off := range sn.offs {
		ranges[i] = storage.Range{Off: off, Len: uint64(sn.lens[i])}
	}
	return w.WriteMemoryFrom(sn, ranges)
}

// ReadAt reads the copied-out pages at memory offset off; the read must lie
// inside one run (the image writer reads the runs it was given, each in
// parts that do not cross a run).
func (sn *snapshot) ReadAt(p []byte, off int64) (int, error) {
	i := sort.Search(len(sn.offs), func(i int) bool { return sn.offs[i] > uint64(off) }) - 1
	if i < 0 || uint64(off)+uint64(len(p)) > sn.offs[i]+uint64(sn.lens[i]) {
		return 0, fmt.Errorf("copied-out memory: read [%#x+%#x] outside the copied runs: %w", off, len(p), io.ErrUnexpectedEOF)
	}
	return copy(p, sn.data[sn.pos[i]+int(uint64(off)-sn.offs[i]):]), nil
}

// memAvailable returns the host's MemAvailable in bytes, 0 if unknown.
func memAvailable() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// serialProgress makes progress safe to call from several goroutines (the
// image writer reports from its own), one call at a time.
func serialProgress(progress func(Progress)) func(Progress) {
	if progress == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		progress(p)
	}
}

// LastSave returns statistics of the last successful save.
func (s *KernelSandbox) LastSave() SaveStats { return s.last }

// addNetworkMeta records in an image's metadata what snap inspect shows of
// the network: the sandbox's listening ports and the published ones.
func addNetworkMeta(meta map[string]string, k *kernel.Kernel) {
	meta[MetaNetwork] = k.Network()
	if ls := k.ListeningPorts(); len(ls) > 0 {
		meta[MetaListening] = strings.Join(ls, ", ")
	}
	var ps []string
	for _, m := range k.Published() {
		ps = append(ps, m.String())
	}
	if len(ps) > 0 {
		meta[MetaPublished] = strings.Join(ps, ", ")
	}
}
