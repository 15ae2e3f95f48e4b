package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Client is a connection to one sandbox's control socket. Calls may be
// made from several goroutines; each waits for its own answer.
type Client struct {
	id   string
	conn net.Conn

	// writeMu serializes request frames.
	writeMu sync.Mutex

	// mu protects nextID, pending and readErr.
	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *Response
	readErr error
}

// Dial connects to the control socket of sandbox id. If the sandbox exists
// but its sentry does not run any more, the error matches ErrNotRunning (or
// ErrSentryDied); an unknown ID gives ErrUnknownSandbox.
func Dial(sd StateDir, id string) (*Client, error) {
	m, err := sd.Lookup(id)
	if err != nil {
		return nil, err
	}
	if Ended(m.Status) {
		return nil, endedError(m)
	}
	addr, done, err := shortSocketPath(sd.SocketPath(id))
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
	done()
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			// The sentry is starting, or has just ended: ask again.
			if m2, lerr := sd.Lookup(id); lerr == nil && Ended(m2.Status) {
				return nil, endedError(m2)
			}
		}
		return nil, fmt.Errorf("connect to sandbox %s: %w", id, err)
	}
	c := &Client{id: id, conn: conn, pending: map[uint64]chan *Response{}}
	go c.readLoop()
	return c, nil
}

// endedError describes why an ended sandbox cannot take requests.
func endedError(m *Metadata) error {
	switch m.Status {
	case StatusDead:
		return fmt.Errorf("sandbox %s: %w (%s)", m.ID, ErrSentryDied, m.Error)
	case StatusSaved:
		return fmt.Errorf("sandbox %s: %w: it was saved to %s and stopped", m.ID, ErrNotRunning, m.SavedTo)
	case StatusExited:
		return fmt.Errorf("sandbox %s: %w: the program ended (%v)", m.ID, ErrNotRunning, m.Exit)
	}
	return fmt.Errorf("sandbox %s: %w: %s %s", m.ID, ErrNotRunning, m.Status, m.Error)
}

// Close closes the connection; calls in progress fail.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) readLoop() {
	for {
		var r Response
		err := ReadFrame(c.conn, &r)
		c.mu.Lock()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("sandbox %s closed the control connection: %w", c.id, io.ErrUnexpectedEOF)
			}
			c.readErr = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		ch := c.pending[r.ID]
		if ch != nil && r.Kind != KindProgress {
			delete(c.pending, r.ID)
		}
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		if r.Kind == KindProgress {
			// Keep one slot for the final response, so that this loop
			// never blocks on a caller: a slow caller loses progress
			// events, never its answer.
			if len(ch) < cap(ch)-1 {
				ch <- &r
			}
			continue
		}
		ch <- &r
		close(ch)
	}
}

// Call sends req (its Version and ID are filled in) and waits for the final
// response, passing progress events to progress (which may be nil). A
// KindError response becomes a *RemoteError. Cancelling ctx abandons the
// call (the connection must then be closed).
func (c *Client) Call(ctx context.Context, req Request, progress func(Progress)) (*Response, error) {
	return c.CallFiles(ctx, req, nil, progress)
}

// CallFiles is Call with files passed along with the request (SCM_RIGHTS);
// the caller keeps its own descriptors.
func (c *Client) CallFiles(ctx context.Context, req Request, files []*os.File, progress func(Progress)) (*Response, error) {
	req.Version = ProtocolVersion
	ch := make(chan *Response, 16)
	c.mu.Lock()
	if c.readErr != nil {
		err := c.readErr
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	req.ID = c.nextID
	c.pending[req.ID] = ch
	c.mu.Unlock()

	c.writeMu.Lock()
	err := c.send(&req, files)
	c.writeMu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
		return nil, fmt.Errorf("send %s request to sandbox %s: %w", req.Type, c.id, err)
	}
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			delete(c.pending, req.ID)
			c.mu.Unlock()
			return nil, ctx.Err()
		case r, ok := <-ch:
			if !ok {
				c.mu.Lock()
				err := c.readErr
				c.mu.Unlock()
				return nil, err
			}
			switch r.Kind {
			case KindProgress:
				if progress != nil && r.Progress != nil {
					progress(*r.Progress)
				}
			case KindError:
				if r.Error == nil {
					return nil, fmt.Errorf("%w: error response without error", ErrProtocol)
				}
				return nil, &RemoteError{Code: r.Error.Code, Message: r.Error.Message}
			case KindResult:
				return r, nil
			default:
				return nil, fmt.Errorf("%w: response kind %q", ErrProtocol, r.Kind)
			}
		}
	}
}

// send writes req's frame, with files as SCM_RIGHTS on its first byte.
//
// Preconditions: c.writeMu is held.
func (c *Client) send(req *Request, files []*os.File) error {
	if len(files) == 0 {
		return WriteFrame(c.conn, req)
	}
	uc, ok := c.conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%w: descriptors need a unix socket", ErrProtocol)
	}
	buf, err := encodeFrame(req)
	if err != nil {
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	n, _, err := uc.WriteMsgUnix(buf, unix.UnixRights(fds...), nil)
	if err == nil && n < len(buf) {
		_, err = uc.Write(buf[n:])
	}
	for _, f := range files {
		runtime.KeepAlive(f)
	}
	return err
}

// Info returns the metadata of sandbox id as its sentry knows it, or as
// recorded if the sentry no longer runs.
func Info(ctx context.Context, sd StateDir, id string) (*Metadata, error) {
	c, err := Dial(sd, id)
	if err != nil {
		if errors.Is(err, ErrNotRunning) || errors.Is(err, ErrSentryDied) {
			return sd.Lookup(id)
		}
		return nil, err
	}
	defer c.Close()
	r, err := c.Call(ctx, Request{Type: ReqInfo}, nil)
	if err != nil {
		return nil, err
	}
	if r.Info == nil {
		return nil, fmt.Errorf("%w: info response without metadata", ErrProtocol)
	}
	return r.Info, nil
}

// Kill sends signal sig to the init task of sandbox id.
func Kill(ctx context.Context, sd StateDir, id string, sig int) error {
	c, err := Dial(sd, id)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Call(ctx, Request{Type: ReqKill, Signal: sig}, nil)
	return callEnded(ctx, sd, id, err)
}

// Wait waits until the program of sandbox id has ended and returns how. If
// it ended before, the recorded status is returned. A sandbox that was
// saved and stopped gives ErrNotRunning; one whose sentry died,
// ErrSentryDied.
func Wait(ctx context.Context, sd StateDir, id string) (ExitStatus, error) {
	for attempt := 0; ; attempt++ {
		st, err := waitOnce(ctx, sd, id)
		if err == nil || ctx.Err() != nil {
			return st, err
		}
		var re *RemoteError
		if errors.As(err, &re) || errors.Is(err, ErrUnknownSandbox) || errors.Is(err, ErrBadID) {
			return st, err
		}
		// The connection broke or could not be made: the sentry is
		// exiting (it records the status first) or died. Look again.
		m, lerr := sd.Lookup(id)
		if lerr != nil {
			return ExitStatus{}, lerr
		}
		if m.Exit != nil {
			return *m.Exit, nil
		}
		if Ended(m.Status) {
			return ExitStatus{}, endedError(m)
		}
		if attempt >= 50 {
			return ExitStatus{}, fmt.Errorf("wait for sandbox %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return ExitStatus{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitOnce(ctx context.Context, sd StateDir, id string) (ExitStatus, error) {
	c, err := Dial(sd, id)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			if m, lerr := sd.Lookup(id); lerr == nil && m.Exit != nil {
				return *m.Exit, nil
			}
		}
		return ExitStatus{}, err
	}
	defer c.Close()
	r, err := c.Call(ctx, Request{Type: ReqWait}, nil)
	if err != nil {
		return ExitStatus{}, err
	}
	if r.Exit == nil {
		return ExitStatus{}, fmt.Errorf("%w: wait response without exit status", ErrProtocol)
	}
	return *r.Exit, nil
}

// callEnded returns err, the failure of a call to sandbox id, unless the
// connection broke because the sandbox ended meanwhile (its program exited
// while the request was on its way): then the error says so and matches
// ErrNotRunning or ErrSentryDied, as a request made a moment later would.
// The sentry records its final status before it closes its socket; a
// sentry killed outright is marked dead by the lookup.
func callEnded(ctx context.Context, sd StateDir, id string, err error) error {
	var re *RemoteError
	if err == nil || errors.As(err, &re) || ctx.Err() != nil {
		return err
	}
	for attempt := 0; attempt < 50; attempt++ {
		m, lerr := sd.Lookup(id)
		if lerr != nil {
			return err
		}
		if Ended(m.Status) {
			return endedError(m)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	return err
}

// Save checkpoints sandbox id as req says and returns the image URI.
// progress receives the sentry's progress events (it may be nil).
func Save(ctx context.Context, sd StateDir, id string, req SaveRequest, progress func(Progress)) (string, error) {
	c, err := Dial(sd, id)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if req.Env == nil {
		req.Env = clientSaveEnv()
	}
	r, err := c.Call(ctx, Request{Type: ReqSave, Save: &req}, progress)
	if err != nil {
		return "", callEnded(ctx, sd, id, err)
	}
	if r.URI == "" {
		return "", fmt.Errorf("%w: save response without image URI", ErrProtocol)
	}
	return r.URI, nil
}
