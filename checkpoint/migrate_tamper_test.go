package checkpoint

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// flipProxy forwards one TCP connection from its listener to target,
// flipping bit 6 of byte at of the source-to-target direction.
type flipProxy struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startFlipProxy(t *testing.T, target string, at int64) *flipProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flipProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		src, err := ln.Accept()
		if err != nil {
			return
		}
		defer src.Close()
		dst, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer dst.Close()
		var inner sync.WaitGroup
		inner.Add(1)
		go func() {
			defer inner.Done()
			io.Copy(src, dst)
			src.Close()
		}()
		flipCopy(dst, src, at)
		// Half-close only: what the target still sends (its reason for
		// refusing the stream) must reach the source, so the copy back
		// ends when the target closes, not when this direction did.
		dst.(*net.TCPConn).CloseWrite()
		inner.Wait()
	}()
	return p
}

// flipCopy copies r to w, flipping one bit of byte at.
func flipCopy(w io.Writer, r io.Reader, at int64) {
	buf := make([]byte, 32<<10)
	var pos int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if at >= pos && at < pos+int64(n) {
				buf[at-pos] ^= 0x40
			}
			pos += int64(n)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestMigrateTampered: the migration stream passes a proxy that changes
// one byte of a frame in flight (past the handshake, in the memory the
// first round sends): the frame fails to open at the target, the
// migration fails with one line, the source runs on with every checksum
// holding, and the target runs nothing.
func TestMigrateTampered(t *testing.T) {
	e := newEnv(t)
	tok := e.token("tok", "correct horse")
	id, out := e.startDirty(t)
	r := startReceiver(t, tok)
	// The source's handshake is 76 bytes; the first frames are the
	// metadata and round 0's pages.
	p := startFlipProxy(t, r.addr, 64<<10)
	msg := e.mustFail("migrate", id, "tcp://"+p.ln.Addr().String(), "--token-file", tok)
	if !strings.Contains(msg, "authentication") && !strings.Contains(msg, "corrupt") {
		t.Errorf("snap migrate through a tampering proxy: %q, want the frame's authentication failure", msg)
	}
	e.checkRunsOn(t, id, out)
	if err := r.wait(); err == nil {
		t.Errorf("snap receive of a tampered stream succeeded")
	}
	// The target's output file has snap receive's one line, and nothing
	// of the program.
	l := lines(r.out)
	if len(l) != 1 || !strings.Contains(l[0], "fails authentication") {
		t.Errorf("the target printed %q, want one line saying a frame fails authentication", l)
	}
}
