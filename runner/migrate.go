package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

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
	// ackTimeout bounds each wait for the target's answer once the memory
	// is sent (it restores in between).
	ackTimeout = 60 * time.Second
	// reasonWait bounds the wait for the target's reason after the
	// connection failed.
	reasonWait = 2 * time.Second
)

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
	uri      string
	progress func(Progress)
	maxDown  time.Duration
	// rate is the bytes per second the last round achieved.
	rate float64
	// paused is set while the migration holds the kernel paused.
	paused bool
	// released is set once the sandbox's host ports are freed for the
	// target (Kernel.ReleaseHostPorts).
	released bool
	buf      []byte
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
	c, err := migration.Connect(nc, req.Token)
	if err != nil {
		return "", fmt.Errorf("migrate %s to %s: %w", s.opts.ID, addr, err)
	}
	// The rounds reset the dirty set: no later save can build on an
	// earlier one.
	s.base = nil
	m := &migrator{s: s, c: c, uri: "tcp://" + addr, progress: progress, maxDown: req.MaxDowntime}
	if m.maxDown <= 0 {
		m.maxDown = DefaultMaxDowntime
	}
	if err := m.run(ctx); err != nil {
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

func (m *migrator) run(ctx context.Context) error {
	k := m.s.k
	if err := m.sendMeta(); err != nil {
		return err
	}
	start := time.Now()
	// Round 0: tracking on, then everything, while the program runs.
	if err := m.pause(ctx); err != nil {
		return err
	}
	if err := k.StartDirtyTracking(); err != nil {
		return err
	}
	alloc, _, err := k.SavedMemory(minHole)
	if err != nil {
		return err
	}
	size := k.MemorySize()
	m.resume()
	if err := m.sendRound(0, size, alloc, true); err != nil {
		return err
	}
	var dirty [][2]uint64
	lastTake := start
	round := 1
	for ; ; round++ {
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
		if expected <= m.maxDown || round >= maxRounds {
			break // the last round is sent while paused
		}
		m.resume()
		if err := m.sendRound(round, size, dirty, false); err != nil {
			return err
		}
	}
	down := time.Now()
	if err := m.sendRound(round, size, dirty, false); err != nil {
		return err
	}
	var state bytes.Buffer
	if err := k.SaveState(ctx, &state); err != nil {
		return err
	}
	if err := m.handOver(state.Bytes(), size); err != nil {
		return err
	}
	// The target runs the sandbox: end it here.
	m.paused = false
	k.Discard()
	m.c.Write(migration.FrameDone, nil)
	m.c.Flush()
	log.Printf("sandbox %s: migrated to %s in %d rounds: %d bytes sent (%d before compression) in %v, paused %v",
		m.s.opts.ID, m.uri, round+1, m.c.WireBytes, m.c.RawBytes, time.Since(start), time.Since(down))
	m.s.last = SaveStats{Paused: time.Since(down), MemoryBytes: m.c.RawBytes}
	return nil
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
	meta := map[string]string{MetaSandbox: m.s.opts.ID, MetaArgv: string(argv)}
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
	t0 := time.Now()
	var hdr [12]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(round))
	binary.LittleEndian.PutUint64(hdr[4:], size)
	if err := m.c.Write(migration.FrameRound, hdr[:]); err != nil {
		return err
	}
	if m.buf == nil {
		m.buf = make([]byte, pageFrame)
	}
	mem := m.s.k.MemoryReader()
	total, sent := rangesBytes(ranges), uint64(0)
	for _, r := range ranges {
		for off := r[0]; off < r[0]+r[1]; {
			n := min(uint64(pageFrame), r[0]+r[1]-off)
			b := m.buf[:n]
			if _, err := mem.ReadAt(b, int64(off)); err != nil {
				return err
			}
			if err := m.sendPages(off, b, skipZero); err != nil {
				return err
			}
			off += n
			sent += n
		}
		if round == 0 {
			m.progress(Progress{Phase: "round 0", Done: sent, Total: total})
		}
	}
	if err := m.c.Flush(); err != nil {
		return err
	}
	if d := time.Since(t0); total > 0 && d > 0 {
		m.rate = float64(total) / d.Seconds()
	}
	return nil
}

// sendPages sends b, memory at off: whole, or its runs of non-zero pages.
func (m *migrator) sendPages(off uint64, b []byte, skipZero bool) error {
	if !skipZero {
		return m.c.WritePages(off, b)
	}
	for i := 0; i < len(b); {
		if isZeroPage(b[i : i+pageSize]) {
			i += pageSize
			continue
		}
		j := i + pageSize
		for j < len(b) && !isZeroPage(b[j:j+pageSize]) {
			j += pageSize
		}
		if err := m.c.WritePages(off+uint64(i), b[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
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
	// Under --network host the target binds the sandbox's ports after Go:
	// free them here first, in case it is this host. Until Running, a
	// failure (a port the target finds taken) takes them back.
	m.s.k.ReleaseHostPorts()
	m.released = true
	if err := m.c.Write(migration.FrameGo, nil); err != nil {
		return err
	}
	if err := m.c.Flush(); err != nil {
		return err
	}
	if _, err := m.c.Expect(migration.FrameRunning); err != nil {
		return fmt.Errorf("target did not confirm the sandbox runs: %w", err)
	}
	return nil
}

const pageSize = 4096

var zeroPage [pageSize]byte

func isZeroPage(p []byte) bool { return bytes.Equal(p, zeroPage[:]) }

func rangesBytes(rs [][2]uint64) uint64 {
	var n uint64
	for _, r := range rs {
		n += r[1]
	}
	return n
}
