package checkpoint

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Where cutProxy cuts the first connection of a migration.
const (
	// cutRunning drops the target's second frame (Running, after Ready):
	// the target got Go and runs the sandbox, the source never hears so.
	cutRunning = iota
	// cutGo drops what the source sends once the target's first frame
	// (Ready) has passed, that is Go: the target never gets it.
	cutGo
)

// The handshake's messages from the target before its first frame:
// greeting (magic, version, nonce), then, once the source answered, its
// status and proof.
var targetHandshake = []int{8 + 4 + 32, 1 + 32}

// emptySealed is the length prefix of a frame without payload (header and
// GCM tag), as Sync, Go, Ready and Running are.
const emptySealed = 10 + 16

// cutProxy forwards TCP connections from its listener to target. The first
// one it cuts (both directions closed at once) at the point where says;
// later ones (the source asking what became of the sandbox) pass whole.
type cutProxy struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startCutProxy(t *testing.T, target string, where int) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for n := 0; ; n++ {
			src, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func(first bool) {
				defer p.wg.Done()
				p.forward(src, target, first, where)
			}(n == 0)
		}
	}()
	return p
}

// forward joins src to a new connection to target; if cut, it ends both
// at the point where says.
func (p *cutProxy) forward(src net.Conn, target string, cut bool, where int) {
	defer src.Close()
	dst, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer dst.Close()
	if !cut {
		go func() { io.Copy(dst, src); dst.(*net.TCPConn).CloseWrite() }()
		io.Copy(src, dst)
		return
	}
	var once sync.Once
	end := func() { once.Do(func() { src.Close(); dst.Close() }) }
	readyPassed := make(chan struct{})
	// syncAsked is set while the source's last frame is an empty one
	// before Ready, a Sync (2.2): the target's next frame answers it.
	var syncAsked atomic.Bool
	go func() {
		defer end()
		// The source's handshake passes whole, then its frames one by
		// one: a length prefix, then the sealed frame.
		hs := make([]byte, 8+4+32+32)
		if _, err := io.ReadFull(src, hs); err != nil {
			return
		}
		if _, err := dst.Write(hs); err != nil {
			return
		}
		for {
			var hdr [4]byte
			if _, err := io.ReadFull(src, hdr[:]); err != nil {
				return
			}
			select {
			case <-readyPassed:
				if where == cutGo {
					return // Go: dropped
				}
			default:
				syncAsked.Store(binary.LittleEndian.Uint32(hdr[:]) <= emptySealed)
			}
			body := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(src, body); err != nil {
				return
			}
			if _, err := dst.Write(append(hdr[:], body...)); err != nil {
				return
			}
		}
	}()
	defer end()
	for _, n := range targetHandshake {
		hs := make([]byte, n)
		if _, err := io.ReadFull(dst, hs); err != nil {
			return
		}
		if _, err := src.Write(hs); err != nil {
			return
		}
	}
	for frame := 0; ; {
		var hdr [4]byte
		if _, err := io.ReadFull(dst, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(dst, body); err != nil {
			return
		}
		if frame == 0 && syncAsked.Load() {
			// Synced: forwarded, not counted.
			if _, err := src.Write(append(hdr[:], body...)); err != nil {
				return
			}
			continue
		}
		if frame == 1 && where == cutRunning {
			return // Running: dropped
		}
		if frame == 0 {
			close(readyPassed)
		}
		if _, err := src.Write(append(hdr[:], body...)); err != nil {
			return
		}
		frame++
	}
}

// TestMigrateCut: the connection is cut at the hand-over, where neither
// side can know from it what the other did. The source asks the target
// again on a new connection, and the sandbox ends up running in exactly
// one place, its output continuing: at the target if the target got Go
// (Running lost), at the source if it did not (Go lost).
func TestMigrateCut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		where      int
		wantTarget bool
	}{
		{"running-lost", cutRunning, true},
		{"go-lost", cutGo, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.token("tok", "correct horse")
			id, out := e.startDirty(t)
			r := startReceiver(t, tok)
			p := startCutProxy(t, r.addr, tc.where)
			args := []string{"migrate", id, "tcp://" + p.ln.Addr().String(), "--token-file", tok}
			// The source learnt the outcome by asking on a new connection.
			defer func() {
				b, _ := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
				if !strings.Contains(string(b), "asking the target") {
					t.Errorf("the source's log does not say it asked the target again:\n%s", b)
				}
			}()
			if !tc.wantTarget {
				msg := e.mustFail(args...)
				if !strings.Contains(msg, "did not run") {
					t.Errorf("snap migrate with Go lost: %q, want the target's answer that it did not run it", msg)
				}
				e.checkRunsOn(t, id, out)
				if err := r.wait(); err == nil {
					t.Errorf("snap receive that never got Go succeeded")
				}
				for _, l := range lines(r.out) {
					if strings.Contains(l, "count") {
						t.Errorf("the target's program printed %q, want nothing (it never ran there)", l)
					}
				}
				return
			}
			e.must(args...)
			if err := r.wait(); err != nil {
				t.Fatalf("snap receive: %v", err)
			}
			e.checkMigrated(t, r, id, out)
		})
	}
}
