package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// Sandbox is the running program a sentry serves. The runner's kernel
// adapter implements it over a kernel.Kernel; tests may implement it over
// anything that runs.
type Sandbox interface {
	// Kill sends signal sig (1..64) to the sandbox's init task. It fails
	// with ErrNotRunning once the program has ended.
	Kill(sig int) error

	// Wait blocks until the program has ended and returns how. It may be
	// called any number of times, concurrently.
	Wait() ExitStatus

	// Save checkpoints the sandbox into the image named by req. progress
	// may be called from any goroutine until Save returns. On success it
	// returns the image URI; unless req.LeaveRunning the sandbox then
	// stops and Wait returns. On failure the sandbox keeps running
	// unchanged. A Sandbox that cannot save returns ErrUnsupported.
	Save(ctx context.Context, req SaveRequest, progress func(Progress)) (string, error)
}

// Server serves the control protocol for one sandbox on its socket and
// keeps its metadata file current.
type Server struct {
	sd  StateDir
	dir string
	sb  Sandbox
	ln  *net.UnixListener

	id string

	// saveMu is held while a save runs; a second save gets ErrBusy, and
	// Finish waits for a running save to settle the final status.
	saveMu sync.Mutex

	// mu protects meta, stopped, conns, pooled and leftPool.
	mu      sync.Mutex
	meta    Metadata
	stopped bool
	conns   map[net.Conn]struct{}
	// pooled is a waiting pool member's watch of its pool entry
	// (EnterPool, pool_handover.go); nil once taken or ended.
	pooled *handover
	// leftPool is set when the member ended itself out of its removed
	// pool (LeftPool).
	leftPool bool

	// finished is closed by Finish, once the final status is recorded.
	finished     chan struct{}
	finishedOnce sync.Once

	// handlers counts running request handlers.
	handlers sync.WaitGroup

	// replMu protects replenish, replPool and replStarted, and is held
	// while the replenisher starts, so that Finish (and the process's
	// end) waits for a start under way.
	replMu sync.Mutex
	// replenish, once a pool member was taken, starts the replenisher of
	// its pool replPool ReplenishDelay later, or at Finish if that comes
	// first (Finish needs no s.mu for it, which a take holds while it
	// resumes the program).
	replenish   *time.Timer
	replPool    string
	replStarted bool
}

// NewServer makes a server for the sandbox whose directory is sd.Dir(m.ID).
// It does not listen yet.
func NewServer(sd StateDir, m *Metadata, sb Sandbox) *Server {
	return &Server{sd: sd, dir: sd.Dir(m.ID), id: m.ID, sb: sb, meta: *m, conns: map[net.Conn]struct{}{}, finished: make(chan struct{})}
}

// Listen creates the control socket (mode 0600), replacing a stale one.
func (s *Server) Listen() error {
	path := s.dir + "/" + socketFile
	os.Remove(path)
	addr, done, err := shortSocketPath(path)
	if err != nil {
		return err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	done()
	if err != nil {
		return fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	// The socket's directory is 0700 already; the mode says so again.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("chmod control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	s.ln = ln
	return nil
}

// Metadata returns a copy of the current metadata.
func (s *Server) Metadata() Metadata {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta
}

// Update changes the metadata under the server's lock and writes it out.
func (s *Server) Update(f func(m *Metadata)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.meta)
	m := s.meta
	return WriteMetadata(s.dir, &m)
}

// Serve accepts connections until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			stopped := s.stopped
			s.mu.Unlock()
			if stopped {
				return nil
			}
			if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept on control socket: %w", err)
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.handlers.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Shutdown stops accepting, removes the socket, lets running handlers send
// their answers for up to grace, then closes every connection.
func (s *Server) Shutdown(grace time.Duration) {
	s.mu.Lock()
	s.stopped = true
	s.stopWatchLocked()
	s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		os.Remove(s.dir + "/" + socketFile)
	}
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// connWriter serializes the frames of concurrent handlers on one connection.
type connWriter struct {
	mu sync.Mutex
	c  net.Conn
}

func (w *connWriter) send(r *Response) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WriteFrame(w.c, r)
}

func (s *Server) serveConn(c net.Conn) {
	defer s.handlers.Done()
	w := &connWriter{c: c}
	var reqs sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		reqs.Wait()
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	var r io.Reader = c
	var rr *rightsReader
	if uc, ok := c.(*net.UnixConn); ok {
		rr = newRightsReader(uc)
		r = rr
	}
	for {
		var req Request
		err := ReadFrame(r, &req)
		var files []*os.File
		if rr != nil {
			files = rr.take()
		}
		if err != nil {
			closeFiles(files)
			if !errors.Is(err, io.EOF) && errors.Is(err, ErrProtocol) {
				w.send(&Response{Kind: KindError, Error: toWire(err)})
			}
			return
		}
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			s.handle(ctx, w, &req, files)
		}()
	}
}

// handle answers req; files are the descriptors that came with it, which
// only a take keeps.
func (s *Server) handle(ctx context.Context, w *connWriter, req *Request, files []*os.File) {
	if req.Type != ReqTake {
		closeFiles(files)
	}
	reply := func(r *Response, err error) {
		if err != nil {
			r = &Response{Kind: KindError, Error: toWire(err)}
		}
		r.ID = req.ID
		w.send(r)
	}
	if req.Version != ProtocolVersion {
		if req.Type == ReqTake {
			closeFiles(files)
		}
		reply(nil, fmt.Errorf("%w: request version %d, sentry speaks %d", ErrProtocol, req.Version, ProtocolVersion))
		return
	}
	switch req.Type {
	case ReqInfo:
		m := s.Metadata()
		reply(&Response{Kind: KindResult, Info: &m}, nil)
	case ReqKill:
		if req.Signal < 1 || req.Signal > 64 {
			reply(nil, fmt.Errorf("%w: %d", ErrBadSignal, req.Signal))
			return
		}
		if Ended(s.Metadata().Status) {
			reply(nil, fmt.Errorf("kill %s: %w", s.id, ErrNotRunning))
			return
		}
		if s.Metadata().Status == StatusWaiting {
			if p, ok := s.sb.(Parked); ok {
				// Not anyone's program yet: it ends without running.
				reply(&Response{Kind: KindResult}, p.Discard(req.Signal))
				return
			}
		}
		reply(&Response{Kind: KindResult}, s.sb.Kill(req.Signal))
	case ReqWait:
		select {
		case <-s.finished:
		case <-ctx.Done():
			return // the client hung up
		}
		m := s.Metadata()
		if m.Exit == nil {
			reply(nil, fmt.Errorf("%w: sandbox %s was saved to %s and stopped", ErrNotRunning, m.ID, m.SavedTo))
			return
		}
		reply(&Response{Kind: KindResult, Exit: m.Exit}, nil)
	case ReqTake:
		reply(&Response{Kind: KindResult}, s.take(files, req.Publish))
	case ReqPrime:
		primed, err := s.prime(false)
		reply(&Response{Kind: KindResult, Primed: primed}, err)
	case ReqTrim:
		_, err := s.prime(true)
		reply(&Response{Kind: KindResult}, err)
	case ReqSave:
		uri, err := s.save(ctx, req, func(p Progress) {
			w.send(&Response{ID: req.ID, Kind: KindProgress, Progress: &p})
		})
		reply(&Response{Kind: KindResult, URI: uri}, err)
	default:
		reply(nil, fmt.Errorf("%w: unknown request type %q", ErrProtocol, req.Type))
	}
}

// Parked is a Sandbox restored with its tasks parked (a pool member): it
// runs once it is given its stdio.
type Parked interface {
	// Unpark publishes ports, binds the sandbox's stdio to stdio (the
	// sandbox owns them from then on, also on error) and resumes its
	// tasks. It fails with ErrNotWaiting if the sandbox was resumed or
	// discarded before, and with ErrTakePublish, still parked, if a port
	// cannot be published.
	Unpark(stdio [3]*os.File, publish []kernel.PortMapping) error
	// Discard ends a parked sandbox without running it, as if killed
	// by sig: Wait returns that status. It fails with ErrNotWaiting if
	// the sandbox runs.
	Discard(sig int) error
}

// Primer is a Parked sandbox that can be primed while it waits: it copies
// what its take would copy first (a pool member over a shared base).
type Primer interface {
	// Prime copies, while the sandbox waits, the memory its take would
	// copy before the program runs, and reports whether there was any.
	// It fails with ErrNotWaiting once the sandbox was resumed or
	// discarded.
	Prime() (bool, error)
	// Trim drops, while the sandbox waits, the pages of the base that
	// its take would copy before the program runs from its stubs' page
	// tables (they are never read there). It fails with ErrNotWaiting
	// once the sandbox was resumed or discarded.
	Trim() error
}

// prime has a waiting pool member primed (ReqPrime), or trimmed (ReqTrim).
func (s *Server) prime(trim bool) (bool, error) {
	p, ok := s.sb.(Primer)
	if !ok || s.Metadata().Status != StatusWaiting {
		return false, fmt.Errorf("prime %s: %w", s.id, ErrNotWaiting)
	}
	if trim {
		if err := p.Trim(); err != nil {
			return false, fmt.Errorf("trim %s: %w", s.id, err)
		}
		return false, nil
	}
	primed, err := p.Prime()
	if err != nil {
		return false, fmt.Errorf("prime %s: %w", s.id, err)
	}
	return primed, nil
}

// take hands a waiting pool member its stdio and the ports it publishes,
// and resumes it. A port that cannot be published leaves it waiting, back
// in its pool.
func (s *Server) take(files []*os.File, publish []string) error {
	if len(files) != 3 {
		closeFiles(files)
		return fmt.Errorf("%w: take with %d descriptors, want 3 (stdin, stdout, stderr)", ErrProtocol, len(files))
	}
	ms := make([]kernel.PortMapping, 0, len(publish))
	for _, v := range publish {
		m, err := kernel.ParsePortMapping(v)
		if err != nil {
			closeFiles(files)
			return fmt.Errorf("%w: take: %v", ErrProtocol, err)
		}
		ms = append(ms, m)
	}
	p, ok := s.sb.(Parked)
	if !ok {
		closeFiles(files)
		return fmt.Errorf("take %s: %w", s.id, ErrNotWaiting)
	}
	s.mu.Lock()
	if s.meta.Status != StatusWaiting {
		st := s.meta.Status
		s.mu.Unlock()
		closeFiles(files)
		return fmt.Errorf("take %s: %w (status %s)", s.id, ErrNotWaiting, st)
	}
	if err := s.claimForTakeLocked(); err != nil {
		s.mu.Unlock()
		closeFiles(files)
		return fmt.Errorf("take %s: %w", s.id, err)
	}
	s.meta.Status = StatusRunning
	now := time.Now().UTC()
	s.meta.Taken = &now
	// Armed before the program can run, so that a program that ends at
	// once finds it armed at Finish, which starts it then.
	s.armReplenisher(s.meta.Pool)
	if err := p.Unpark([3]*os.File{files[0], files[1], files[2]}, ms); err != nil {
		s.disarmReplenisher()
		s.meta.Status = StatusWaiting
		s.meta.Taken = nil
		pool := s.meta.Pool
		// Nothing ran after a port that could not be published: the
		// member is as it was, for another take.
		back := errors.Is(err, ErrTakePublish) && pool != "" && s.reenterLocked(pool) == nil
		if !back && s.pooled != nil {
			s.pooled.ending = true // no take until discarded
		}
		s.mu.Unlock()
		if !back {
			p.Discard(int(unix.SIGKILL))
		}
		return fmt.Errorf("take %s: %w", s.id, err)
	}
	s.stopWatchLocked()
	// Written before the answer, so that whoever reads the state
	// directory once the take returned (snap ps, a pool rm, a
	// replenisher) finds it taken, not waiting; the fsync follows.
	m := s.meta
	f, err := writeMetadataVisible(s.dir, &m)
	s.mu.Unlock()
	if err != nil {
		log.Printf("sandbox %s: %v", s.id, err) // ps asks the sentry anyway
	} else {
		go func() {
			f.Sync()
			f.Close()
		}()
	}
	return nil
}

// armReplenisher has the replenisher of pool started replenishDelay from
// now (or at Finish, if sooner): the replacement of a member taken is
// restored a moment later, so that the restore does not take the CPUs
// during the program's first moments, and started from here, so that the
// taker starts no process.
func (s *Server) armReplenisher(pool string) {
	s.replMu.Lock()
	defer s.replMu.Unlock()
	s.replPool = pool
	s.replenish = time.AfterFunc(replenishDelay(), func() {
		s.replMu.Lock()
		defer s.replMu.Unlock()
		s.startReplenisher(pool)
	})
}

// disarmReplenisher undoes armReplenisher for a take that failed: the
// member waits again. A replenisher already started finds the pool full.
func (s *Server) disarmReplenisher() {
	s.replMu.Lock()
	defer s.replMu.Unlock()
	if s.replenish != nil {
		s.replenish.Stop()
		s.replenish = nil
	}
	s.replStarted = false
}

// spawnPoolReplenisher starts the replenisher of a member's pool; tests
// replace it.
var spawnPoolReplenisher = spawnReplenisher

// startReplenisher starts the replenisher of pool, once.
//
// Preconditions: s.replMu is held.
func (s *Server) startReplenisher(pool string) {
	if s.replStarted {
		return
	}
	s.replStarted = true
	if err := spawnPoolReplenisher(s.sd, pool, ""); err != nil {
		log.Printf("sandbox %s: %v", s.id, err)
	}
}

func (s *Server) save(ctx context.Context, req *Request, progress func(Progress)) (string, error) {
	if req.Save == nil {
		return "", fmt.Errorf("%w: save request without arguments", ErrProtocol)
	}
	if Ended(s.Metadata().Status) {
		return "", fmt.Errorf("save %s: %w", s.id, ErrNotRunning)
	}
	if s.Metadata().Status == StatusWaiting {
		return "", fmt.Errorf("save %s: %w: a waiting pool member is its image already", s.id, ErrUnsupported)
	}
	if !s.saveMu.TryLock() {
		return "", fmt.Errorf("save %s: %w: another save is running", s.id, ErrBusy)
	}
	defer s.saveMu.Unlock()
	if req.Save.Env != nil {
		applySaveEnv(req.Save.Env)
	}
	to := cmp.Or(req.Save.To, "-")
	// Best effort: ps shows the save; a failed write hides it only.
	_ = s.Update(func(m *Metadata) { m.Saving = to })
	uri, err := s.sb.Save(ctx, *req.Save, progress)
	if err != nil {
		_ = s.Update(func(m *Metadata) { m.Saving = "" })
		return "", err
	}
	err = s.Update(func(m *Metadata) {
		m.Saving = ""
		m.SavedTo = uri
		if !req.Save.LeaveRunning {
			m.Status = StatusSaved
		}
	})
	return uri, err
}

// Finish records that the program ended with st, after any save that is
// running has settled: a sandbox stopped by a save stays StatusSaved. A
// taken pool member's replenisher that was not started yet starts now.
func (s *Server) Finish(st ExitStatus) error {
	s.replMu.Lock()
	if s.replenish != nil {
		// This process is about to end: the replenisher starts now if
		// it was not due yet (or waits for its start under way).
		s.replenish.Stop()
		s.startReplenisher(s.replPool)
	}
	s.replMu.Unlock()
	s.mu.Lock()
	s.stopWatchLocked()
	s.mu.Unlock()
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	err := s.Update(func(m *Metadata) {
		if m.Status != StatusSaved {
			m.Status = StatusExited
			m.Exit = &st
		}
	})
	s.finishedOnce.Do(func() { close(s.finished) })
	return err
}
