package migration

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// readAhead reads a connection's frames ahead of Read: one goroutine
// reads the sealed frames off the socket while workers open, decompress
// and check earlier ones, so that the caller's handling of a frame (the
// target's write into its memory) overlaps the reading and opening of
// the next ones. Read returns the frames in order, exactly as it would
// without it, errors included (a read error ends the read-ahead and is
// returned once the frames before it are).
type readAhead struct {
	// free holds the frames not in flight; work feeds the workers;
	// order holds the frames read, in order, for Read (closed after a
	// read error, which is the last frame in it).
	free, work, order chan *inFrame
	// cur is the frame Read returned last, freed at the next Read.
	cur *inFrame
	// err is the error Read returns once order is closed; failed the
	// first frame that did not open, returned ever after (the frames
	// after it would open, but the sequence is broken).
	err, failed error
	// next is the number of the first frame readLoop did not read, set
	// before it closes order.
	next     uint64
	quit     chan struct{}
	quitOnce sync.Once
}

// inFrame is one frame read ahead: its sealed bytes, then once a worker
// opened it, its type and payload (or error).
type inFrame struct {
	n       uint64
	prefix  [lenSize]byte
	buf     []byte // sealed, opened in place
	dbuf    []byte // decompressed
	typ     byte
	payload []byte
	err     error
	opened  chan struct{}
}

// ReadAhead makes Read take its frames from a pipeline of workers
// goroutines (at least one) that open them, with that many frames more
// than workers read ahead. Call it once, before the first Read it should
// serve and after any other Read; Close ends it. A frame's payload stays
// valid until the next Read, as without it.
func (c *Conn) ReadAhead(workers int) error {
	if c.ahead != nil || workers < 1 {
		return fmt.Errorf("read-ahead of %d workers started twice or with none", workers)
	}
	depth := 2 * workers
	a := &readAhead{free: make(chan *inFrame, depth), work: make(chan *inFrame, depth),
		order: make(chan *inFrame, depth), quit: make(chan struct{})}
	for range depth {
		a.free <- &inFrame{opened: make(chan struct{}, 1)}
	}
	for range workers {
		aead, err := gcm(c.openKey)
		if err != nil {
			return fmt.Errorf("frame cipher: %w", err)
		}
		go func() {
			for f := range a.work {
				f.typ, f.payload, f.err = openFrame(aead, f.n, f.prefix, f.buf, &f.dbuf)
				f.opened <- struct{}{}
			}
		}()
	}
	c.ahead = a
	go a.readLoop(c, c.openN)
	return nil
}

// readLoop reads sealed frames, numbering them from n, until a read fails
// or the read-ahead is stopped.
func (a *readAhead) readLoop(c *Conn, n uint64) {
	defer close(a.work)
	defer close(a.order)
	defer func() { a.next = n }()
	for ; ; n++ {
		var f *inFrame
		select {
		case f = <-a.free:
		case <-a.quit:
			return
		}
		prefix, sealed, err := readSealed(c.br, &f.buf, n)
		if err != nil {
			a.err = err
			return
		}
		f.n, f.prefix, f.buf = n, prefix, sealed
		a.work <- f
		a.order <- f
	}
}

// read is Read through the read-ahead.
func (a *readAhead) read() (byte, []byte, error) {
	if a.failed != nil {
		return 0, nil, a.failed
	}
	if a.cur != nil {
		a.free <- a.cur
		a.cur = nil
	}
	f, ok := <-a.order
	if !ok {
		// Set by readLoop before it closed order.
		return 0, nil, a.err
	}
	<-f.opened
	a.cur = f
	if f.err != nil {
		a.failed = f.err
		a.stop()
		return 0, nil, f.err
	}
	return remoteError(f.typ, f.payload)
}

// stop ends the read-ahead's reading (its goroutine ends once a read in
// progress returns: the caller closes the connection).
func (a *readAhead) stop() {
	a.quitOnce.Do(func() { close(a.quit) })
}

// EndReadAhead ends the read-ahead at a point where the peer sends
// nothing until this side answers (the target, having read FrameSync,
// before it answers FrameSynced): later Reads read on the caller's
// goroutine, with no goroutine to wake per frame (which, on a loaded
// machine, can take milliseconds of a migration's pause). It interrupts
// the read waiting for the next frame with a read deadline, and leaves
// the connection without one. A frame that arrived meanwhile breaks the
// sequence: ErrCorrupt. Without a read-ahead it does nothing.
func (c *Conn) EndReadAhead() error {
	a := c.ahead
	if a == nil {
		return nil
	}
	c.ahead = nil
	a.stop()
	c.nc.SetReadDeadline(time.Unix(1, 0))
	extra := 0
	for f := range a.order {
		<-f.opened // a worker is done with it
		extra++
	}
	c.nc.SetReadDeadline(time.Time{})
	c.openN = a.next
	switch {
	case a.failed != nil:
		return a.failed
	case extra > 0:
		return fmt.Errorf("%w: %d frames sent while the peer should wait for an answer", ErrCorrupt, extra)
	case a.err != nil && !errors.Is(a.err, os.ErrDeadlineExceeded):
		return a.err
	}
	return nil
}
