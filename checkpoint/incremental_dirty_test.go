package checkpoint

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"snapshotter/storage"
)

// sliceAt is an io.WriterAt over a byte slice.
type sliceAt []byte

func (s sliceAt) WriteAt(p []byte, off int64) (int, error) { return copy(s[off:], p), nil }

// imageMemory reads an image's whole memory.
func (e *env) imageMemory(uri string) []byte {
	e.t.Helper()
	ctx := context.Background()
	img, err := storage.OpenImage(ctx, uri, "")
	if err != nil {
		e.t.Fatalf("open %s: %v", uri, err)
	}
	defer img.Close()
	mem := make(sliceAt, img.Manifest().MemorySize)
	if err := img.ReadMemoryAt(ctx, mem); err != nil {
		e.t.Fatalf("read memory of %s: %v", uri, err)
	}
	return mem
}

// TestIncrementalByDirtyPages: a chain of three --leave-running saves of
// the counter, each against the previous one, reads only the spans written
// since its parent (the dirty pages the kernel tracked) and takes the
// parent's chunks for the rest. With the program stopped (SIGSTOP), the
// last of the chain holds the same memory, byte for byte, as a full save
// made right after it (but for the vDSO's clock page, which the sentry
// updates every second), and it restores to a program whose every page
// checks.
func TestIncrementalByDirtyPages(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	waitLines(t, out, 2)
	parent := ""
	var uris []string
	for i := 0; i < 3; i++ {
		if i > 0 {
			e.must("kill", id, "CONT")
			waitLines(t, out, len(lines(out))+2)
		}
		e.must("kill", id, "STOP")
		args := []string{"save", id, "--leave-running", "--to", fmt.Sprintf("inc%d", i)}
		if parent != "" {
			args = append(args, "--parent", parent)
		}
		uris = append(uris, lastLine(e.must(args...)))
		parent = fmt.Sprintf("inc%d", i)
	}
	full := lastLine(e.must("save", id, "--leave-running", "--to", "full"))
	log := e.sentryLog(id)
	if n := bytes.Count(log, []byte("chunks of the parent reused")); n != 4 {
		t.Fatalf("sentry.log has %d live saves, want 4", n)
	}
	// The two saves after the first read only what changed.
	if n := bytes.Count(log, []byte(", 0 chunks of the parent reused")); n != 2 {
		t.Errorf("sentry.log has %d saves that reused no parent chunk, want 2 (the first and the full one):\n%s", n, log)
	}
	for i, uri := range uris[1:] {
		if r := e.inspect(uri); r.Parent == nil || r.Parent.SharedChunks < 8*r.Parent.NewChunks {
			t.Errorf("inc%d: %+v, want most chunks shared with its parent", i+1, r.Parent)
		}
	}
	a, b := e.imageMemory(uris[2]), e.imageMemory(full)
	if len(a) != len(b) {
		t.Fatalf("memory of inc2 %d bytes, of the full save %d", len(a), len(b))
	}
	var differ []int
	for off := 0; off < len(a); off += 4096 {
		if !bytes.Equal(a[off:off+4096], b[off:off+4096]) {
			differ = append(differ, off)
		}
	}
	if len(differ) > 1 {
		t.Errorf("inc2 and the full save differ in %d pages (at %#x...), want at most the vDSO clock page", len(differ), differ[0])
	}
	e.must("kill", id, "KILL")
	rid, rout := e.restoreDetached(uris[2], "")
	e.must("kill", rid, "CONT")
	checkClean(t, "restored inc2", waitLines(t, rout, 2))
}

// sentryLog reads a sandbox's sentry.log.
func (e *env) sentryLog(id string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}
