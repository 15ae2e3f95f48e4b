package runner

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log"
	"net"
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
func Receive(ctx context.Context, o ReceiveOptions) (*KernelSandbox, map[string]string, error) {
	defer o.Listener.Close()
	stop := context.AfterFunc(ctx, func() { o.Listener.Close() })
	defer stop()
	for {
		nc, err := o.Listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, nil, fmt.Errorf("receive: %w", err)
		}
		c, err := migration.Accept(nc, o.Token)
		if err != nil {
			log.Printf("receive: refused %s: %v", nc.RemoteAddr(), err)
			nc.Close()
			continue
		}
		log.Printf("receive: %s connected", nc.RemoteAddr())
		sb, meta, err := receiveOn(ctx, c, o)
		if err != nil {
			c.WriteError(err)
			nc.Close()
			return nil, nil, fmt.Errorf("receive from %s: %w", nc.RemoteAddr(), err)
		}
		nc.Close()
		return sb, meta, nil
	}
}

// receiveOn runs the target's side of one authenticated migration.
func receiveOn(ctx context.Context, c *migration.Conn, o ReceiveOptions) (*KernelSandbox, map[string]string, error) {
	stop := context.AfterFunc(ctx, func() { c.NetConn().SetDeadline(time.Unix(1, 0)) })
	defer stop()
	st, err := newStaging()
	if err != nil {
		return nil, nil, err
	}
	defer st.close()
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
	received := time.Now()
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
	c.NetConn().SetReadDeadline(time.Now().Add(ackTimeout))
	if err := sendFrame(c, migration.FrameReady); err != nil {
		k.Release()
		return nil, nil, fmt.Errorf("tell the source the sandbox is restored: %w", err)
	}
	if _, err := c.Expect(migration.FrameGo); err != nil {
		k.Release()
		return nil, nil, fmt.Errorf("source did not hand the sandbox over: %w", err)
	}
	// The source freed its host ports before Go (a restore binds them
	// again); a port taken here fails the migration, and the source,
	// told so instead of Running, takes them back and runs on.
	if err := k.ReopenHostSockets(); err != nil {
		k.Release()
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	sb := &KernelSandbox{k: k, opts: ko, ran: make(chan struct{})}
	k.OnFirstSwitch(func() { close(sb.ran) })
	k.Resume()
	c.NetConn().SetReadDeadline(time.Now().Add(receiveDoneTimeout))
	err = sendFrame(c, migration.FrameRunning)
	if err == nil {
		_, err = c.Expect(migration.FrameDone)
	}
	if err != nil {
		// The source may have resumed its copy: never both.
		k.SignalInit(int(unix.SIGKILL))
		k.Wait()
		k.Release()
		return nil, nil, fmt.Errorf("source did not confirm it stopped (its copy may run on): %w", err)
	}
	if ko.Diag != nil {
		ko.Diag.Printf("received sandbox %s: %d bytes of memory, %d of state; restored in %v, running %v after the last byte",
			meta[MetaSandbox], size, stateLen, restored.Sub(received), time.Since(received))
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
