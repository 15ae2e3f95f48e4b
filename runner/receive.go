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
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"snapshotter/kernel"
	"snapshotter/migration"
)

// ReceiveOptions configure the target of a live migration.
type ReceiveOptions struct {
	// Listener is where the source connects; Receive takes the first
	// source that proves it holds Token and closes the listener.
	Listener net.Listener
	// Token is the shared secret (snap receive --token-file).
	Token []byte
	// Kernel configures the restored sandbox (platform, stdio, limits,
	// ID, diagnostics), as for RestoreKernel.
	Kernel KernelOptions
	// Refuse, if set, is asked once everything arrived and the sandbox is
	// restored but before it runs; an error refuses the migration (the
	// source runs on). A detached target records its metadata here.
	Refuse func(meta map[string]string) error
	// Version is the protocol version announced to sources (zero:
	// migration.Current); tests set an older minor to play an older
	// target.
	Version migration.Version
}

// receiveDoneTimeout bounds the wait for the source's last word once the
// sandbox runs here; without it, the source may have resumed its own copy,
// and this one is killed.
const receiveDoneTimeout = 30 * time.Second

// Receive waits for one migrating sandbox, restores it from the stream and
// runs it once the source says go: it returns the running sandbox and the
// metadata the source sent. Sources with another token are refused (and
// logged) while Receive waits on. A failure before the sandbox runs here
// is reported to the source, which resumes its own copy; nothing is left
// running here.
//
// Once it told the source the sandbox is restored, Receive answers the
// source's questions (FrameQuery, on new connections to the listener)
// about what became of it, for answerKeep after that was decided: in the
// background once the sandbox runs here (the listener stays open that
// long), before returning when it does not (until the source asked, or
// answerKeep passed).
func Receive(ctx context.Context, o ReceiveOptions) (*KernelSandbox, map[string]string, error) {
	stop := context.AfterFunc(ctx, func() { o.Listener.Close() })
	a := &answerer{ln: o.Listener, token: o.Token, version: o.Version, decided: make(chan struct{}), asked: make(chan struct{})}
	// The listener is closed here unless answering goes on after return.
	keepOpen := false
	defer func() {
		if stop() && !keepOpen {
			o.Listener.Close()
		}
	}()
	for {
		nc, err := o.Listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, nil, fmt.Errorf("receive: %w", err)
		}
		c, err := migration.AcceptVersion(nc, o.Token, o.Version)
		if err != nil {
			log.Printf("receive: refused %s: %v", nc.RemoteAddr(), err)
			nc.Close()
			continue
		}
		log.Printf("receive: %s connected", nc.RemoteAddr())
		sb, meta, err := receiveOn(ctx, c, o, a)
		if err != nil {
			c.WriteError(err)
			c.Close()
			a.linger(ctx)
			return nil, nil, fmt.Errorf("receive from %s: %w", nc.RemoteAddr(), err)
		}
		c.Close()
		if a.serving {
			keepOpen = true
			// S/R-SAFE: touches only the listener, not the kernel.
			go func() {
				time.Sleep(answerKeep)
				o.Listener.Close()
			}()
		}
		return sb, meta, nil
	}
}

// answerer keeps what became of one migration, for the source's questions
// once it lost its connection (FrameQuery): the target decides once,
// running (it read FrameGo) or discarded (it did not, and never will).
type answerer struct {
	ln      net.Listener
	token   []byte
	version migration.Version
	// serving is set once questions are answered (after FrameReady was
	// sent to a 2.1 source); quiet once the source said it failed instead
	// of sending Go (it asks nothing). Exclusive to Receive's goroutine.
	serving, quiet bool
	// id is the migration's id (MetaMigration); immutable once serving.
	id string
	// mu protects cur and answer; decided is closed once answer is set,
	// asked once a question about id was answered.
	mu      sync.Mutex
	cur     *migration.Conn
	answer  byte
	decided chan struct{}
	asked   chan struct{}
	once    sync.Once
}

// serve starts answering questions about migration id, whose connection
// is c (a question cuts it: the source has given it up).
func (a *answerer) serve(id string, c *migration.Conn) {
	a.id, a.cur, a.serving = id, c, true
	// S/R-SAFE: touches only the listener and a's fields, not the kernel.
	go func() {
		for {
			nc, err := a.ln.Accept()
			if err != nil {
				return
			}
			// S/R-SAFE: as above.
			go a.handle(nc)
		}
	}()
}

// decide records the outcome (AnswerRunning or AnswerDiscarded), once.
func (a *answerer) decide(ans byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.decided:
	default:
		a.answer = ans
		a.cur = nil
		close(a.decided)
	}
}

// linger keeps answering, if serving, until the source asked, answerKeep
// passed or ctx ended.
func (a *answerer) linger(ctx context.Context) {
	if !a.serving || a.quiet {
		return
	}
	select {
	case <-a.asked:
	case <-ctx.Done():
	case <-time.After(answerKeep):
	}
}

// handle answers one connection to the listener once a sandbox was
// received: a question about it, or a refusal of another migration.
func (a *answerer) handle(nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(queryTimeout))
	c, err := migration.AcceptVersion(nc, a.token, a.version)
	if err != nil {
		log.Printf("receive: refused %s: %v", nc.RemoteAddr(), err)
		return
	}
	typ, p, err := c.Read()
	if err != nil {
		return
	}
	if typ != migration.FrameQuery || c.Minor() < 1 {
		c.WriteError(errors.New("this snap receive has received its sandbox already"))
		return
	}
	ans := migration.AnswerUnknown
	if string(p) == a.id {
		a.mu.Lock()
		if a.cur != nil {
			// Undecided: the source gave the connection up, so FrameGo
			// either was read or never comes. End the wait for it.
			a.cur.NetConn().SetReadDeadline(time.Unix(1, 0))
		}
		a.mu.Unlock()
		<-a.decided
		ans = a.answer
	}
	log.Printf("receive: %s asked about migration %q: answered %d", nc.RemoteAddr(), p, ans)
	if err := c.Write(migration.FrameAnswer, []byte{ans}); err == nil && c.Flush() == nil && ans != migration.AnswerUnknown {
		a.once.Do(func() { close(a.asked) })
	}
}

// receiveOn runs the target's side of one authenticated migration.
func receiveOn(ctx context.Context, c *migration.Conn, o ReceiveOptions, a *answerer) (*KernelSandbox, map[string]string, error) {
	stop := context.AfterFunc(ctx, func() { c.NetConn().SetDeadline(time.Unix(1, 0)) })
	defer stop()
	st, err := newStaging()
	if err != nil {
		return nil, nil, err
	}
	defer st.close()
	// The frames of the first round are read and opened ahead, on other
	// goroutines, while this one writes the pages into memory.
	if err := c.ReadAhead(sealWorkers()); err != nil {
		return nil, nil, err
	}
	cpu0, start := cpuTime(), time.Now()
	meta := map[string]string{}
	var state bytes.Buffer
	var size uint64
	for done := false; !done; {
		typ, p, err := c.Read()
		if err != nil {
			return nil, nil, fmt.Errorf("read stream: %w", err)
		}
		switch typ {
		case migration.FrameMeta:
			if err := json.Unmarshal(p, &meta); err != nil {
				return nil, nil, fmt.Errorf("%w: metadata: %v", migration.ErrCorrupt, err)
			}
		case migration.FrameRound:
			if len(p) != 12 {
				return nil, nil, fmt.Errorf("%w: round frame of %d bytes", migration.ErrCorrupt, len(p))
			}
			if size, err = st.grow(binary.LittleEndian.Uint64(p[4:])); err != nil {
				return nil, nil, err
			}
		case migration.FramePages:
			if err := st.write(p, size); err != nil {
				return nil, nil, err
			}
		case migration.FrameSync:
			if c.Minor() < 2 {
				return nil, nil, fmt.Errorf("%w: sync frame from a source that speaks %d.%d", migration.ErrCorrupt, migration.Major, c.Minor())
			}
			// The first round is stored. The later ones are small and
			// the last is paused: they are read here, without a
			// goroutine to wake per frame.
			if err := c.EndReadAhead(); err != nil {
				return nil, nil, fmt.Errorf("read stream: %w", err)
			}
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if err := sendFrame(c, migration.FrameSynced); err != nil {
				return nil, nil, fmt.Errorf("answer the source's sync: %w", err)
			}
		case migration.FrameState:
			if state.Len()+len(p) > maxStateBytes {
				return nil, nil, fmt.Errorf("%w: kernel state over %d bytes", migration.ErrCorrupt, maxStateBytes)
			}
			state.Write(p)
		case migration.FrameCommit:
			if len(p) != 16 || binary.LittleEndian.Uint64(p) != size || binary.LittleEndian.Uint64(p[8:]) != uint64(state.Len()) {
				return nil, nil, fmt.Errorf("%w: commit does not match what was received (%d bytes of memory, %d of state)", migration.ErrCorrupt, size, state.Len())
			}
			done = true
		default:
			return nil, nil, fmt.Errorf("%w: unexpected frame type %d", migration.ErrCorrupt, typ)
		}
	}
	ko := o.Kernel
	json.Unmarshal([]byte(meta[MetaArgv]), &ko.Argv)
	received, cpu := time.Now(), cpuTime()-cpu0
	tm := ko.Timings
	if tm == nil {
		tm = new(kernel.Timings)
	}
	stateLen := state.Len()
	k, err := kernel.Restore(ctx, &state, kernel.RestoreOptions{
		Config: kernel.Config{Platform: ko.Platform, Root: ko.Rootfs, Debug: ko.Debug, Log: ko.Log,
			Stdin: ko.Stdin, Stdout: ko.Stdout, Stderr: ko.Stderr, Limits: ko.Limits},
		Memory:  st.take(),
		Timings: tm,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	restored := time.Now()
	if o.Refuse != nil {
		if err := o.Refuse(meta); err != nil {
			k.Release()
			return nil, nil, err
		}
	}
	// A 2.1 source that loses the connection from now on asks what
	// became of the sandbox; a 2.0 one cannot.
	asks := c.Minor() >= 1 && meta[MetaMigration] != ""
	c.NetConn().SetReadDeadline(time.Now().Add(ackTimeout))
	if asks {
		a.serve(meta[MetaMigration], c)
	}
	if err := sendFrame(c, migration.FrameReady); err != nil {
		a.decide(migration.AnswerDiscarded)
		k.Release()
		return nil, nil, fmt.Errorf("tell the source the sandbox is restored: %w", err)
	}
	if _, err := c.Expect(migration.FrameGo); err != nil {
		if errors.Is(err, migration.ErrRemote) {
			// The source sent Error, not Go: it resumed and asks nothing.
			a.quiet = true
		}
		a.decide(migration.AnswerDiscarded)
		k.Release()
		return nil, nil, fmt.Errorf("source did not hand the sandbox over: %w", err)
	}
	// The source freed its host ports before Go (a restore binds them
	// again); a port taken here fails the migration, and the source,
	// told so instead of Running (or answered so when it asks), takes
	// them back and runs on.
	if err := k.ReopenHostSockets(); err != nil {
		a.decide(migration.AnswerDiscarded)
		k.Release()
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	// From here on the sandbox runs here, whatever happens to the
	// connection: a source that does not read FrameRunning asks.
	a.decide(migration.AnswerRunning)
	sb := &KernelSandbox{k: k, opts: ko, ran: make(chan struct{})}
	k.OnFirstSwitch(func() { close(sb.ran) })
	k.Resume()
	c.NetConn().SetReadDeadline(time.Now().Add(receiveDoneTimeout))
	err = sendFrame(c, migration.FrameRunning)
	if err == nil {
		_, err = c.Expect(migration.FrameDone)
	}
	if err != nil && asks {
		log.Printf("receive: the source did not confirm it stopped (%v): it asks, and learns the sandbox runs here", err)
	} else if err != nil {
		// A 2.0 source may have resumed its copy: never both.
		k.SignalInit(int(unix.SIGKILL))
		k.Wait()
		k.Release()
		return nil, nil, fmt.Errorf("source did not confirm it stopped (its copy may run on): %w", err)
	}
	if ko.Diag != nil {
		ko.Diag.Printf("received sandbox %s: %d bytes of memory, %d of state in %v (%v of CPU); restored in %v, running %v after the last byte",
			meta[MetaSandbox], size, stateLen, received.Sub(start).Round(time.Microsecond), cpu.Round(time.Millisecond),
			restored.Sub(received), time.Since(received))
		for _, l := range TimingLines(tm.Steps()) {
			ko.Diag.Print(l)
		}
	}
	return sb, meta, nil
}

// sendFrame sends an empty frame of type typ at once.
func sendFrame(c *migration.Conn, typ byte) error {
	if err := c.Write(typ, nil); err != nil {
		return err
	}
	return c.Flush()
}

// maxStateBytes bounds the kernel state a target accepts.
const maxStateBytes = 1 << 30

// staging is the target's copy of the source's memory: the memory file the
// restored kernel takes over (kernel.RestoreOptions.Memory), written round
// after round.
type staging struct{ mf *kernel.MemoryFile }

func newStaging() (*staging, error) {
	mf, err := kernel.NewMemoryFile("snap-memory")
	if err != nil {
		return nil, fmt.Errorf("memory staging: %w", err)
	}
	return &staging{mf: mf}, nil
}

// close releases the memory unless a restore took it.
func (s *staging) close() {
	if s.mf != nil {
		s.mf.Release()
	}
}

// take hands the memory file to a restore.
func (s *staging) take() *kernel.MemoryFile {
	mf := s.mf
	s.mf = nil
	return mf
}

// grow makes the staging memory size bytes (it never shrinks: the source's
// memory file does not) and returns the new size.
func (s *staging) grow(size uint64) (uint64, error) {
	if size%pageSize != 0 || size > kernel.MaxMemorySize {
		return 0, fmt.Errorf("%w: memory size %#x", migration.ErrCorrupt, size)
	}
	if err := s.mf.Grow(size); err != nil {
		return 0, fmt.Errorf("memory staging: %w", err)
	}
	return s.mf.Size(), nil
}

// write stores a FramePages payload (offset, pages) within size bytes.
func (s *staging) write(p []byte, size uint64) error {
	if len(p) < 8 || (len(p)-8)%pageSize != 0 {
		return fmt.Errorf("%w: pages frame of %d bytes", migration.ErrCorrupt, len(p))
	}
	off := binary.LittleEndian.Uint64(p)
	data := p[8:]
	if off%pageSize != 0 || off+uint64(len(data)) > size || off+uint64(len(data)) < off {
		return fmt.Errorf("%w: pages [%#x, +%#x) outside the %#x-byte memory", migration.ErrCorrupt, off, len(data), size)
	}
	if err := s.mf.WriteAt(data, off); err != nil {
		return fmt.Errorf("memory staging: %w", err)
	}
	return nil
}
