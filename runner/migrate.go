package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/migration"
)

// Migration tuning.
const (
	// DefaultMaxDowntime is the pause a migration aims at when the request
	// gives none: the last round is sent once the dirty pages left would
	// take about this long.
	DefaultMaxDowntime = 50 * time.Millisecond
	// maxRounds bounds the copying rounds before the last one, whatever
	// the dirty rate.
	maxRounds = 30
	// pageFrame is the most memory one frame carries.
	pageFrame = 1 << 20
	// pipelineMin is the smallest round sealed on workers.
	pipelineMin = 16 << 20
	// ackTimeout bounds each wait for the target's answer once the memory
	// is sent (it restores in between).
	ackTimeout = 60 * time.Second
	// reasonWait bounds the wait for the target's reason after the
	// connection failed.
	reasonWait = 2 * time.Second
	// resolveWait bounds how long a source that lost its connection after
	// sending FrameGo keeps asking the target, on new connections, whether
	// the sandbox runs there; answerKeep is how long a target keeps the
	// answer (longer, so that a source still asking finds it).
	resolveWait = 30 * time.Second
	answerKeep  = 2 * resolveWait
	// queryTimeout bounds one question to the target (connect, handshake,
	// answer).
	queryTimeout = 5 * time.Second
)

// MetaMigration is the metadata key of a migration's id (FrameMeta): the
// id a source asks about when it lost its connection after FrameGo.
const MetaMigration = "migration"

// ErrMigrationInDoubt means a source lost its connection after telling the
// target to run the sandbox and could not ask the target, within
// resolveWait, whether it does: the sandbox stays paused here (it may run
// there), and the next save or migration of it asks again.
var ErrMigrationInDoubt = errors.New("migration in doubt")

// migrationDoubt is a migration whose outcome the source could not learn:
// the target to ask and the migration's id.
type migrationDoubt struct {
	addr, id, uri string
	token         []byte
}

// errMigrateTarget marks a bad migration target URI.
var errMigrateTarget = errors.New("migration target must be tcp://HOST:PORT")

// migrationAddr returns the HOST:PORT of a tcp:// target.
func migrationAddr(uri string) (string, error) {
	addr, ok := strings.CutPrefix(uri, "tcp://")
	if !ok || addr == "" {
		return "", fmt.Errorf("%q: %w", uri, errMigrateTarget)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("%q: %w: %v", uri, errMigrateTarget, err)
	}
	return addr, nil
}

// migrator is one live migration from the source's side: its steps are
// connect, start (dirty tracking on, the first full copy), rounds of what
// was dirtied, then the last round while paused, the state, and the
// hand-over. Any failure before the target says the sandbox runs there
// resumes it here.
type migrator struct {
	s        *KernelSandbox
	c        *migration.Conn
	addr     string
	uri      string
	token    []byte
	progress func(Progress)
	maxDown  time.Duration
	// loopback is set when the target is on this machine's loopback.
	loopback bool
	// id names this migration (MetaMigration), for the questions a
	// source asks after losing its connection past FrameGo.
	id string
	// rate is the bytes per second the last round achieved.
	rate float64
	// paused is set while the migration holds the kernel paused.
	paused bool
	// released is set once the sandbox's host ports are freed for the
	// target (Kernel.ReleaseHostPorts).
	released bool
	// sentGo is set once the source starts sending FrameGo: from then on
	// the target may run the sandbox, and the source never resumes its
	// copy without the target's word that it does not.
	sentGo bool
	// start, down and rounds are when the migration started, when the
	// last pause began, and the rounds sent.
	start, down time.Time
	rounds      int
	// steps are the downtime's parts, for the log: the last round sent,
	// the state saved, the target's Ready (restored) and Running.
	steps     [4]time.Duration
	stateSize int
}

// migrate moves the sandbox to the target req.Migrate names (Save with
// SaveRequest.Migrate). On success the sandbox has stopped here and runs
// there; on failure it runs here, unchanged.
func (s *KernelSandbox) migrate(ctx context.Context, req SaveRequest, progress func(Progress)) (string, error) {
	addr, err := migrationAddr(req.Migrate)
	if err != nil {
		return "", fmt.Errorf("migrate %s: %w", s.opts.ID, err)
	}
	nc, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("migrate %s: %w", s.opts.ID, err)
	}
	defer nc.Close()
	// A cancelled save (timeout, client gone) unblocks every read and write.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := migration.ConnectVersion(nc, req.Token, req.MigrateVersion)
	if err != nil {
		return "", fmt.Errorf("migrate %s to %s: %w", s.opts.ID, addr, err)
	}
	// The rounds reset the dirty set: no later save can build on an
	// earlier one.
	s.base = nil
	m := &migrator{s: s, c: c, addr: addr, uri: "tcp://" + addr, token: req.Token, progress: progress,
		maxDown: req.MaxDowntime, id: newMigrationID(), loopback: isLoopback(nc.RemoteAddr())}
	if m.maxDown <= 0 {
		m.maxDown = DefaultMaxDowntime
	}
	err = m.run(ctx)
	if err != nil && m.sentGo && c.Minor() >= 1 && !errors.Is(err, migration.ErrRemote) {
		// The target's own Error (a host port it found taken) is an
		// answer; anything else after Go needs asking.
		err = m.resolve(ctx, err)
	}
	if err != nil {
		if errors.Is(err, ErrMigrationInDoubt) {
			// Paused for good until the target answers (settleDoubt).
			s.k.StopDirtyTracking()
			s.doubt.Store(&migrationDoubt{addr: addr, id: m.id, uri: m.uri, token: req.Token})
			log.Printf("sandbox %s: %v", s.opts.ID, err)
			return "", fmt.Errorf("migrate %s to %s: %w", s.opts.ID, addr, err)
		}
		if m.released {
			if rerr := s.k.ReclaimHostPorts(); rerr != nil {
				log.Printf("sandbox %s: runs on without some of its host sockets: %v", s.opts.ID, rerr)
			}
		}
		if m.paused {
			s.k.Unpause()
		}
		s.k.StopDirtyTracking()
		err = m.targetReason(err)
		c.WriteError(err)
		return "", fmt.Errorf("migrate %s to %s: %w", s.opts.ID, addr, err)
	}
	return m.uri, nil
}

// newMigrationID returns a fresh random migration id.
func newMigrationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// resolve is what a source does when its connection failed (with cause)
// after it began to send FrameGo: the target may or may not have got it.
// It asks the target on new connections, for up to resolveWait, and ends
// the sandbox here if the target runs it (nil), or returns an error that
// resumes it here if the target says it never got FrameGo. If no answer
// comes, the error is ErrMigrationInDoubt and the sandbox stays paused.
func (m *migrator) resolve(ctx context.Context, cause error) error {
	log.Printf("sandbox %s: connection to %s lost after the hand-over (%v): asking the target", m.s.opts.ID, m.addr, cause)
	ans, err := askTarget(ctx, m.addr, m.token, m.id, resolveWait)
	switch {
	case err != nil:
		return fmt.Errorf("%w: the connection was lost after the target was told to run the sandbox (%v), and the target could not be asked whether it does (%v); the sandbox stays paused here: snap save or snap migrate of it asks again, snap kill ends it",
			ErrMigrationInDoubt, cause, err)
	case ans == migration.AnswerRunning:
		m.finish()
		return nil
	default:
		return fmt.Errorf("target did not run the sandbox (its connection was lost before the target read the order to: %v)", cause)
	}
}

// askTarget asks the target at addr, on new connections, what became of
// migration id, until it answers AnswerRunning or AnswerDiscarded or wait
// passes (even if ctx ended: the question must be answered).
func askTarget(ctx context.Context, addr string, token []byte, id string, wait time.Duration) (byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	var last error
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		ans, err := queryOnce(ctx, addr, token, id)
		if err == nil && ans != migration.AnswerUnknown {
			return ans, nil
		}
		if err == nil {
			err = errors.New("the target does not know this migration")
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no answer within %v: %w", wait, last)
		case <-time.After(delay):
		}
	}
}

// queryOnce asks the target once (FrameQuery) and returns its answer.
func queryOnce(ctx context.Context, addr string, token []byte, id string) (byte, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(qctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	dl, _ := qctx.Deadline()
	nc.SetDeadline(dl)
	c, err := migration.Connect(nc, token)
	if err != nil {
		return 0, err
	}
	if c.Minor() < 1 {
		return 0, fmt.Errorf("%w: the target speaks %d.%d, which has no questions", migration.ErrIncompatibleVersion, migration.Major, c.Minor())
	}
	if err := c.Write(migration.FrameQuery, []byte(id)); err != nil {
		return 0, err
	}
	if err := c.Flush(); err != nil {
		return 0, err
	}
	p, err := c.Expect(migration.FrameAnswer)
	if err != nil {
		return 0, err
	}
	if len(p) != 1 || p[0] > migration.AnswerDiscarded {
		return 0, fmt.Errorf("%w: answer %x", migration.ErrCorrupt, p)
	}
	return p[0], nil
}

// settleDoubt asks the target of an earlier migration in doubt, if any,
// before another save or migration: if it runs the sandbox, this copy
// ends and its URI is returned; if not, this copy resumes and the save
// goes on; if it still cannot be asked, ErrMigrationInDoubt.
func (s *KernelSandbox) settleDoubt(ctx context.Context) (string, error) {
	d := s.doubt.Load()
	if d == nil {
		return "", nil
	}
	ans, err := askTarget(ctx, d.addr, d.token, d.id, resolveWait)
	if err != nil {
		return "", fmt.Errorf("save %s: %w: the migration to %s is still unresolved (%v); the sandbox stays paused here", s.opts.ID, ErrMigrationInDoubt, d.uri, err)
	}
	if !s.doubt.CompareAndSwap(d, nil) {
		return "", fmt.Errorf("save %s: %w", s.opts.ID, ErrNotRunning) // killed meanwhile
	}
	if ans == migration.AnswerRunning {
		log.Printf("sandbox %s: the target %s runs it: ending it here", s.opts.ID, d.uri)
		s.k.Discard()
		return d.uri, nil
	}
	log.Printf("sandbox %s: the target %s never ran it: resuming it here", s.opts.ID, d.uri)
	s.k.Unpause()
	return "", nil
}

func (m *migrator) run(ctx context.Context) error {
	k := m.s.k
	if err := m.sendMeta(); err != nil {
		return err
	}
	start := time.Now()
	m.start = start
	// Round 0: tracking on, then everything, while the program runs.
	// Each pause's write protection is done ahead of it where it can be,
	// while the program runs (the pause protects what is written since).
	m.s.prepareTake()
	if err := m.pause(ctx); err != nil {
		return err
	}
	if err := k.StartDirtyTracking(); err != nil {
		return err
	}
	size := k.MemorySize()
	m.resume()
	// Found while it runs: what changes meanwhile is dirty, sent later.
	alloc, err := k.TrackedMemoryRanges(minHole)
	if err != nil {
		return err
	}
	if err := m.sendRound(0, size, alloc, true); err != nil {
		return err
	}
	var dirty [][2]uint64
	lastTake := start
	round := 1
	for ; ; round++ {
		m.s.prepareTake()
		if err := m.pause(ctx); err != nil {
			return err
		}
		if dirty, err = k.TakeDirty(); err != nil {
			return err
		}
		size = k.MemorySize()
		n := rangesBytes(dirty)
		expected := time.Duration(float64(n) / max(m.rate, 1) * float64(time.Second))
		elapsed := time.Since(lastTake)
		lastTake = time.Now()
		m.progress(Progress{Phase: fmt.Sprintf("round %d: %.1f MiB dirtied at %.1f MiB/s, sent at %.1f MiB/s, expected pause %v",
			round, float64(n)/(1<<20), float64(n)/(1<<20)/max(elapsed.Seconds(), 1e-3), m.rate/(1<<20), expected.Round(time.Millisecond))})
		// The pause holds more than the sending of the last round: the
		// target stores it, restores and answers (on loopback about as
		// long again as the sending), so the last round is one expected
		// to take half the allowed downtime.
		if expected <= m.maxDown/2 || round >= maxRounds {
			break // the last round is sent while paused
		}
		m.resume()
		if err := m.sendRound(round, size, dirty, false); err != nil {
			return err
		}
	}
	m.down = time.Now()
	m.rounds = round + 1
	if err := m.sendRound(round, size, dirty, false); err != nil {
		return err
	}
	m.steps[0] = time.Since(m.down)
	var state bytes.Buffer
	if err := k.SaveState(ctx, &state); err != nil {
		return err
	}
	m.steps[1], m.stateSize = time.Since(m.down), state.Len()
	if err := m.handOver(state.Bytes(), size); err != nil {
		return err
	}
	m.finish()
	m.c.Write(migration.FrameDone, nil)
	m.c.Flush()
	return nil
}

// finish ends the sandbox here once the target runs it.
func (m *migrator) finish() {
	m.paused = false
	m.s.k.Discard()
	log.Printf("sandbox %s: migrated to %s in %d rounds: %d bytes sent (%d before compression) in %v, paused %v",
		m.s.opts.ID, m.uri, m.rounds, m.c.WireBytes, m.c.RawBytes, time.Since(m.start), time.Since(m.down))
	log.Printf("sandbox %s: migration pause: last round sent at %v, %d bytes of state saved at %v, target ready at %v, running at %v",
		m.s.opts.ID, m.steps[0].Round(time.Microsecond), m.stateSize, m.steps[1].Round(time.Microsecond),
		m.steps[2].Round(time.Microsecond), m.steps[3].Round(time.Microsecond))
	m.s.last = SaveStats{Paused: time.Since(m.down), MemoryBytes: m.c.RawBytes}
}

// targetReason returns the target's own error if it sent one before the
// connection broke (a target that refuses the stream, a frame that fails
// to open there, says why and closes, so the source's write fails first),
// else err.
func (m *migrator) targetReason(err error) error {
	if errors.Is(err, migration.ErrRemote) {
		return err
	}
	m.c.NetConn().SetReadDeadline(time.Now().Add(reasonWait))
	for {
		_, _, rerr := m.c.Read()
		if errors.Is(rerr, migration.ErrRemote) {
			return rerr
		}
		if rerr != nil {
			return err
		}
	}
}

// pause pauses the kernel (bounded) unless the program has ended.
func (m *migrator) pause(ctx context.Context) error {
	m.s.k.TrimFileCache() // rather than in the pause (Kernel.TrimFileCache)
	pctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	err := m.s.k.PauseContext(pctx)
	cancel()
	if err != nil {
		return err
	}
	m.paused = true
	select {
	case <-m.s.k.Exited():
		return fmt.Errorf("%w: the program has ended", ErrNotRunning)
	default:
	}
	return nil
}

func (m *migrator) resume() {
	m.paused = false
	m.s.k.Unpause()
}

func (m *migrator) sendMeta() error {
	argv, _ := json.Marshal(m.s.opts.Argv)
	meta := map[string]string{MetaSandbox: m.s.opts.ID, MetaArgv: string(argv), MetaMigration: m.id}
	if len(m.s.opts.Argv) > 0 {
		meta[MetaProgram] = m.s.opts.Argv[0]
	}
	b, _ := json.Marshal(meta)
	return m.c.Write(migration.FrameMeta, b)
}

// sendRound sends the pages of ranges: in the first round the non-zero
// ones (the target's memory starts as zeros), later every page (a page
// may have become zero).
func (m *migrator) sendRound(round int, size uint64, ranges [][2]uint64, skipZero bool) error {
	t0, gc0, wire0, cpu0 := time.Now(), gcCycles(), m.c.WireBytes, cpuTime()
	var hdr [12]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(round))
	binary.LittleEndian.PutUint64(hdr[4:], size)
	if err := m.c.Write(migration.FrameRound, hdr[:]); err != nil {
		return err
	}
	// Read here, sealed on workers, written by the pipeline's writer:
	// the three overlap. A small round (the last one, paused, above all)
	// is sealed and written here: waking the workers for a few pages
	// costs more than it overlaps.
	total, sent := rangesBytes(ranges), uint64(0)
	workers := sealWorkers()
	if total < pipelineMin {
		workers = 0
	}
	// A big round to a loopback target goes uncompressed: there S2
	// costs about as much CPU as the bytes it saves (1 GiB of
	// dirtycount's pages: 1.4-1.7 s of the source's CPU without, 1.8-2.1
	// with), and both sides' CPU is what bounds the round. A small one
	// is compressed: a few megabytes become a fraction that fits the
	// socket's buffers, so that a paused round does not wait for the
	// target to read.
	m.c.SetCompression(!m.loopback || workers == 0)
	w, err := m.c.NewPageWriter(pageFrame, workers, skipZero)
	if err != nil {
		return err
	}
	mem := m.s.k.MemoryReader()
	for _, r := range ranges {
		for off := r[0]; off < r[0]+r[1]; {
			n := min(uint64(pageFrame), r[0]+r[1]-off)
			b, err := w.Add(off, int(n))
			if err != nil {
				w.Abort()
				return err
			}
			if _, err := mem.ReadAt(b, int64(off)); err != nil {
				w.Abort()
				return err
			}
			off += n
			sent += n
		}
		if round == 0 {
			m.progress(Progress{Phase: "round 0", Done: sent, Total: total})
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := m.c.Flush(); err != nil {
		return err
	}
	// A round sent while the program runs ends when the target has
	// stored it (a 2.2 target): the rate is then the target's, and the
	// pause that follows does not include the target's backlog.
	if !m.paused && m.c.Minor() >= 2 {
		if err := m.c.Write(migration.FrameSync, nil); err != nil {
			return err
		}
		if err := m.c.Flush(); err != nil {
			return err
		}
		if _, err := m.c.Expect(migration.FrameSynced); err != nil {
			return fmt.Errorf("target did not store round %d: %w", round, err)
		}
	}
	d := time.Since(t0)
	if total > 0 && d > 0 {
		m.rate = float64(total) / d.Seconds()
	}
	log.Printf("sandbox %s: migration round %d: %d pages (%d ranges) in %v, %d bytes on the wire, %d GC cycles, %v of the sentry's CPU",
		m.s.opts.ID, round, total/pageSize, len(ranges), d.Round(time.Microsecond), m.c.WireBytes-wire0, gcCycles()-gc0,
		(cpuTime() - cpu0).Round(time.Millisecond))
	return nil
}

// gcCycles is the number of garbage collections the sentry has finished
// (read without stopping the world), for the migration's round log. It
// reads them with runtime/debug rather than runtime/metrics, whose package
// initialisation (a table of 95 allocations, about 0.1 ms) every snap
// process would pay before a pool take's fast path.
func gcCycles() uint64 {
	var st debug.GCStats
	debug.ReadGCStats(&st) // under the heap's lock; about 10 KB of pause history
	return uint64(st.NumGC)
}

// cpuTime is the CPU time (user and system) this process has used, for
// the migration's logs: unlike the times, it hardly depends on what else
// runs on the machine.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sealWorkers is how many goroutines seal a round's frames: one per CPU
// up to four, the reading and writing being the pipeline's own.
func sealWorkers() int { return max(1, min(4, runtime.GOMAXPROCS(0))) }

// isLoopback says whether addr is a loopback address.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// handOver sends the state and waits for the target: restored (Ready),
// then, told to go, running there (Running).
func (m *migrator) handOver(state []byte, size uint64) error {
	for p := state; len(p) > 0; {
		n := min(len(p), pageFrame)
		if err := m.c.Write(migration.FrameState, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	var commit [16]byte
	binary.LittleEndian.PutUint64(commit[:], size)
	binary.LittleEndian.PutUint64(commit[8:], uint64(len(state)))
	if err := m.c.Write(migration.FrameCommit, commit[:]); err != nil {
		return err
	}
	if err := m.c.Flush(); err != nil {
		return err
	}
	m.c.NetConn().SetReadDeadline(time.Now().Add(ackTimeout))
	if _, err := m.c.Expect(migration.FrameReady); err != nil {
		return fmt.Errorf("target did not restore the sandbox: %w", err)
	}
	m.steps[2] = time.Since(m.down)
	// Under --network host the target binds the sandbox's ports after Go:
	// free them here first, in case it is this host. Until Running, a
	// failure (a port the target finds taken) takes them back.
	m.s.k.ReleaseHostPorts()
	m.released = true
	m.sentGo = true
	if err := m.c.Write(migration.FrameGo, nil); err != nil {
		return err
	}
	if err := m.c.Flush(); err != nil {
		return err
	}
	if _, err := m.c.Expect(migration.FrameRunning); err != nil {
		return fmt.Errorf("target did not confirm the sandbox runs: %w", err)
	}
	m.steps[3] = time.Since(m.down)
	return nil
}

const pageSize = 4096

func rangesBytes(rs [][2]uint64) uint64 {
	var n uint64
	for _, r := range rs {
		n += r[1]
	}
	return n
}
