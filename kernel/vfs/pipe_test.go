package vfs

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPipeReadWrite(t *testing.T) {
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	msg := []byte("hello pipe")
	if n, err := w.Write(nil, msg); n != len(msg) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(msg))
	}
	if got := r.Readiness(unix.POLLIN); got&unix.POLLIN == 0 {
		t.Errorf("Readiness(POLLIN) = %#x with data buffered, want POLLIN", got)
	}
	var b [4]byte
	if _, err := r.Ioctl(fionread, b[:]); err != nil || le32(b[:]) != uint32(len(msg)) {
		t.Errorf("FIONREAD = %d, %v; want %d", le32(b[:]), err, len(msg))
	}
	buf := make([]byte, 5)
	if n, err := r.Read(nil, buf); n != 5 || err != nil || string(buf) != "hello" {
		t.Errorf("Read(5) = %q, %v; want \"hello\"", buf[:n], err)
	}
	buf = make([]byte, 100)
	if n, err := r.Read(nil, buf); err != nil || string(buf[:n]) != " pipe" {
		t.Errorf("Read(100) = %q, %v; want \" pipe\"", buf[:n], err)
	}
	if _, err := r.Write(nil, msg); err != unix.EBADF {
		t.Errorf("Write(read end) = %v, want EBADF", err)
	}
	if _, err := w.Read(nil, buf); err != unix.EBADF {
		t.Errorf("Read(write end) = %v, want EBADF", err)
	}
	if _, err := r.PRead(buf, 0); err != unix.ESPIPE {
		t.Errorf("PRead(pipe) = %v, want ESPIPE", err)
	}
	if _, err := r.Seek(0, unix.SEEK_SET); err != unix.ESPIPE {
		t.Errorf("Seek(pipe) = %v, want ESPIPE", err)
	}
	st, err := r.Stat()
	if err != nil || st.FileType() != unix.S_IFIFO {
		t.Errorf("Stat(pipe) type = %#o, %v; want S_IFIFO", st.FileType(), err)
	}
	want := "pipe:[" + strconv.FormatUint(st.Ino, 10) + "]"
	if r.LinkName() != want || w.LinkName() != want {
		t.Errorf("LinkName() of the ends = %q, %q; want %q", r.LinkName(), w.LinkName(), want)
	}
	r2, w2 := NewPipe(0)
	defer r2.DecRef()
	defer w2.DecRef()
	if st2, _ := r2.Stat(); st2.Ino == st.Ino {
		t.Errorf("two pipes share inode %d, want distinct", st.Ino)
	}
}

// TestPipeWrapAround moves more than PipeSize bytes through the ring.
func TestPipeWrapAround(t *testing.T) {
	r, w := NewPipe(0)
	defer r.DecRef()
	want := make([]byte, 5*PipeSize+123)
	for i := range want {
		want[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.DecRef()
		for off := 0; off < len(want); {
			n, err := w.Write(nil, want[off:min(len(want), off+10000)])
			if err != nil {
				t.Errorf("Write = %v", err)
				return
			}
			off += n
		}
	}()
	var got []byte
	buf := make([]byte, 3333)
	for {
		n, err := r.Read(nil, buf)
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		if n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	wg.Wait()
	if !bytes.Equal(got, want) {
		t.Errorf("pipe delivered %d bytes differing from the %d written", len(got), len(want))
	}
}

func TestPipeEOFAndEPIPE(t *testing.T) {
	t.Run("EOF after writer close", func(t *testing.T) {
		r, w := NewPipe(0)
		defer r.DecRef()
		w.Write(nil, []byte("x"))
		w.DecRef()
		buf := make([]byte, 4)
		if n, err := r.Read(nil, buf); n != 1 || err != nil {
			t.Errorf("Read = %d, %v; want buffered byte first", n, err)
		}
		if n, err := r.Read(nil, buf); n != 0 || err != nil {
			t.Errorf("Read after writer closed = %d, %v; want 0, nil (EOF)", n, err)
		}
		if got := r.Readiness(unix.POLLIN); got&unix.POLLHUP == 0 {
			t.Errorf("Readiness = %#x, want POLLHUP", got)
		}
	})
	t.Run("EPIPE after reader close", func(t *testing.T) {
		r, w := NewPipe(0)
		defer w.DecRef()
		r.DecRef()
		if n, err := w.Write(nil, nil); n != 0 || err != nil {
			t.Errorf("Write(0 bytes) after reader closed = %d, %v; want 0, nil as Linux", n, err)
		}
		if n, err := w.Write(nil, []byte("x")); n != 0 || err != unix.EPIPE {
			t.Errorf("Write after reader closed = %d, %v; want EPIPE", n, err)
		}
		if got := w.Readiness(unix.POLLOUT); got&unix.POLLERR == 0 {
			t.Errorf("Readiness = %#x, want POLLERR", got)
		}
	})
	t.Run("blocked reader wakes on writer close", func(t *testing.T) {
		r, w := NewPipe(0)
		defer r.DecRef()
		done := make(chan error, 1)
		go func() {
			n, err := r.Read(nil, make([]byte, 4))
			if n != 0 {
				err = errors.New("read returned data")
			}
			done <- err
		}()
		w.DecRef()
		if err := <-done; err != nil {
			t.Errorf("blocked Read after writer close = %v, want EOF", err)
		}
	})
}

func TestPipeNonblock(t *testing.T) {
	r, w := NewPipe(unix.O_NONBLOCK)
	defer r.DecRef()
	defer w.DecRef()
	if _, err := r.Read(nil, make([]byte, 1)); err != unix.EAGAIN {
		t.Errorf("Read(empty, O_NONBLOCK) = %v, want EAGAIN", err)
	}
	big := make([]byte, PipeSize+100)
	if n, err := w.Write(nil, big); n != PipeSize || err != nil {
		t.Errorf("Write(%d, O_NONBLOCK) = %d, %v; want %d, nil (partial)", len(big), n, err, PipeSize)
	}
	if n, err := w.Write(nil, []byte("x")); n != 0 || err != unix.EAGAIN {
		t.Errorf("Write(full, O_NONBLOCK) = %d, %v; want EAGAIN", n, err)
	}
	if got := w.Readiness(unix.POLLOUT); got != 0 {
		t.Errorf("Readiness(POLLOUT) of full pipe = %#x, want 0", got)
	}
	// An atomic write (<= PIPE_BUF) needs room for all of it.
	if _, err := r.Read(nil, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(nil, make([]byte, 200)); n != 0 || err != unix.EAGAIN {
		t.Errorf("Write(200 bytes, 100 free) = %d, %v; want EAGAIN (atomic)", n, err)
	}
	// F_SETFL clears O_NONBLOCK.
	r.SetStatusFlags(0)
	if r.StatusFlags()&unix.O_NONBLOCK != 0 {
		t.Errorf("StatusFlags after SetStatusFlags(0) = %#x, want O_NONBLOCK clear", r.StatusFlags())
	}
	if r.StatusFlags()&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("SetStatusFlags changed the access mode: %#x", r.StatusFlags())
	}
}

func TestPipeCancel(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		r, w := NewPipe(0)
		defer r.DecRef()
		defer w.DecRef()
		cancel := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := r.Read(cancel, make([]byte, 1))
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Read on empty pipe returned %v before cancel", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(cancel)
		if err := <-done; err != ErrInterrupted {
			t.Errorf("cancelled Read = %v, want ErrInterrupted", err)
		}
	})
	t.Run("write partial", func(t *testing.T) {
		r, w := NewPipe(0)
		defer r.DecRef()
		defer w.DecRef()
		cancel := make(chan struct{})
		done := make(chan int, 1)
		go func() {
			n, err := w.Write(cancel, make([]byte, PipeSize+10))
			if err != nil {
				n = -1
			}
			done <- n
		}()
		// Cancel once the writer has filled the pipe (however long the
		// goroutine takes to get there), so that it has a partial count.
		for buffered(t, r) < PipeSize {
			time.Sleep(time.Millisecond)
		}
		close(cancel)
		if n := <-done; n != PipeSize {
			t.Errorf("cancelled Write of %d bytes = %d, want %d (partial count, no error)", PipeSize+10, n, PipeSize)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		r, w := NewPipe(0)
		defer r.DecRef()
		defer w.DecRef()
		cancel := make(chan struct{})
		close(cancel)
		if _, err := r.Read(cancel, make([]byte, 1)); err != ErrInterrupted {
			t.Errorf("Read with closed cancel = %v, want ErrInterrupted", err)
		}
	})
}

func TestPipeWatch(t *testing.T) {
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	ch, stop := r.Watch(unix.POLLIN)
	defer stop()
	select {
	case <-ch:
		t.Fatal("Watch fired before any change")
	default:
	}
	w.Write(nil, []byte("x"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not fire after a write")
	}
}

// buffered returns how many bytes the pipe of read end r holds (FIONREAD).
func buffered(t *testing.T, r *File) int {
	t.Helper()
	var b [4]byte
	if _, err := r.Ioctl(fionread, b[:]); err != nil {
		t.Fatalf("FIONREAD: %v", err)
	}
	return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
}
