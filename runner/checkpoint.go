package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	if uri, err := s.settleDoubt(ctx); err != nil {
		return "", err
	} else if uri != "" && req.Migrate != "" {
		return uri, nil // it moved after all
	} else if uri != "" {
		return "", fmt.Errorf("save %s: %w: it runs at %s, where it was migrated", s.opts.ID, ErrNotRunning, uri)
	}
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
	// memTotal is set by the save's goroutine once it is known, while
	// the image writer already reports.
	var memTotal atomic.Uint64
	var nextReport uint64
	var committing atomic.Bool
	report := func(done uint64) {
		if total := memTotal.Load(); (done >= nextReport || done == total) && !committing.Load() {
			progress(Progress{Phase: "memory", Done: done, Total: total})
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
	if parent != nil && parentChunks == nil && req.SignKey == nil {
		progress(Progress{Note: fmt.Sprintf("parent %s: no written pages were tracked since it was saved (only a --leave-running save with --track or --parent keeps tracking on): reading all memory; chunks the store holds are not stored again", parent.URI)})
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

	var prep prepared
	if req.LeaveRunning {
		prep = s.prepareTake()
	}
	// The file cache's retained pages go before the pause rather than in
	// it (the pause gives back only what was retained meanwhile).
	s.k.TrimFileCache()
	t0 := time.Now()
	progress(Progress{Phase: "pause"})
	pctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	err = s.k.PauseContext(pctx)
	cancel()
	if err != nil {
		if !s.k.DirtyTracking() {
			s.k.StopDirtyTracking() // undoes the preparation
		}
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
	prep.freeze = pausedAt
	paused := true
	defer func() {
		if paused {
			s.k.Unpause()
		}
	}()

	if req.LeaveRunning {
		// Paused only to start a memory snapshot: the memory is read, to a
		// local store or uploaded to a remote one, while the sandbox runs.
		st, err := s.saveLive(ctx, w, parentChunks, prep, func(n uint64) { memTotal.Store(n) }, func() {
			paused = false
			s.k.Unpause()
		})
		// The memory is read: tracking goes on only for a chain in use
		// (a later save against this one).
		keep := err == nil && (req.Track || req.Parent != "")
		if !keep {
			s.k.StopDirtyTracking()
		}
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
		if keep {
			s.base = &liveBase{uri: w.URI(), digest: m.Digest()}
		}
		nc, nb := w.NewChunks()
		log.Printf("sandbox %s: saved to %s: %d bytes of memory, paused %v; %d chunks (%d bytes) new to the store, the rest shared",
			s.opts.ID, w.URI(), st.MemoryBytes, st.Paused, nc, nb)
		return w.URI(), nil
	}

	// The state is encoded while the memory is written, from as early as
	// the memory's first step allows (startState, called once).
	stateDone := make(chan error, 1)
	stateStarted := false
	startState := func() {
		stateStarted = true
		// S/R-SAFE: runs while the kernel is paused and is waited for below.
		go func() { stateDone <- s.k.SaveState(ctx, w.StateWriter()) }()
	}
	setTotal := func(n uint64) { memTotal.Store(n) }
	var total uint64
	var rangesAt time.Duration
	if parentChunks == nil {
		total, rangesAt, err = s.writeAllMemory(w, start, startState, setTotal)
	} else {
		total, rangesAt, err = s.writeChangedMemory(w, start, startState, parentChunks, setTotal)
	}
	memDone := time.Since(start)
	if stateStarted {
		if serr := <-stateDone; err == nil {
			err = serr
		}
	}
	stateDoneAt := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	// A save that ends the sandbox (--leave-running returned above): it
	// stays paused until the image is committed, then is discarded.
	committing.Store(true)
	progress(Progress{Phase: "commit", Done: total, Total: total})
	if _, err := w.Commit(); err != nil {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, err)
	}
	committed := time.Since(start)
	s.last = SaveStats{Paused: committed, MemoryBytes: total}
	log.Printf("sandbox %s: save timing: pause took %v, memory ranges found %v, memory written %v, state %v, committed %v",
		s.opts.ID, pausedAt, rangesAt, memDone, stateDoneAt, committed)
	paused = false
	s.k.FreePorts() // before the reply: a restore may follow at once
	s.k.Discard()
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
