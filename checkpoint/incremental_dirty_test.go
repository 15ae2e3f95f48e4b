package checkpoint

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
// the counter (the first with --track), each against the previous one,
// reads only the spans written
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
		} else {
			args = append(args, "--track")
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

// storedAnew returns how many bytes of memory (before compression) an
// image stores in chunks its parent does not have, and how many of its
// chunks are patches.
func (e *env) storedAnew(uri, parentURI string) (data uint64, patches int) {
	e.t.Helper()
	ctx := context.Background()
	open := func(u string) *storage.Image {
		img, err := storage.OpenImage(ctx, u, "")
		if err != nil {
			e.t.Fatalf("open %s: %v", u, err)
		}
		return img
	}
	img, parent := open(uri), open(parentURI)
	defer img.Close()
	defer parent.Close()
	had := map[[32]byte]bool{}
	for _, c := range parent.Chunks() {
		had[c.Sum] = true
	}
	for _, c := range img.Chunks() {
		if c.IsPatch() {
			patches++
		}
		if !had[c.Sum] {
			data += uint64(c.RawLen)
		}
	}
	return data, patches
}

// TestIncrementalScatteredPages: scatterwrite writes one byte in each of
// 100 pages spread over 64 MiB between --leave-running saves; each save
// against the one before stores about those pages (patches over the
// parent's chunks), not their 1 MiB spans, and the last of the chain
// holds the same memory, byte for byte, as a full save of the stopped
// program (but for the vDSO clock page) and restores, eagerly and lazily,
// to a program whose every page checks.
func TestIncrementalScatteredPages(t *testing.T) {
	e := newEnv(t)
	const pages = 100
	id, out := e.runDetached("", program(t, "scatterwrite"), "64", fmt.Sprint(pages))
	waitLines(t, out, 1)
	base := lastLine(e.must("save", id, "--leave-running", "--track", "--to", "scat0"))
	uris := []string{base}
	for i := 1; i <= 2; i++ {
		e.must("kill", id, "USR1")
		waitLines(t, out, 1+i)
		if i == 2 {
			e.must("kill", id, "STOP")
		}
		uris = append(uris, lastLine(e.must("save", id, "--leave-running", "--to", fmt.Sprintf("scat%d", i), "--parent", fmt.Sprintf("scat%d", i-1))))
		data, patches := e.storedAnew(uris[i], uris[i-1])
		t.Logf("scat%d: %d bytes of memory stored anew, %d patches", i, data, patches)
		// The pages written, once more each for the pages round 1 wrote
		// (a span keeps one patch), and a few the program and the sentry
		// write besides (stack, stdio buffer, vDSO clock): far below the
		// 64 MiB of spans the written pages lie in.
		if min, max := uint64(pages*4096), uint64(4*pages*4096); data < min || data > max {
			t.Errorf("scat%d stores %d bytes of memory anew, want %d to %d (the %d pages written)", i, data, min, max, pages)
		}
		if patches < 60 {
			t.Errorf("scat%d has %d patches, want one per written span (64)", i, patches)
		}
	}
	full := lastLine(e.must("save", id, "--leave-running", "--to", "scatfull"))
	a, b := e.imageMemory(uris[2]), e.imageMemory(full)
	if len(a) != len(b) {
		t.Fatalf("memory of scat2 %d bytes, of the full save %d", len(a), len(b))
	}
	var differ []int
	for off := 0; off < len(a); off += 4096 {
		if !bytes.Equal(a[off:off+4096], b[off:off+4096]) {
			differ = append(differ, off)
		}
	}
	if len(differ) > 1 {
		t.Errorf("scat2 and the full save differ in %d pages (at %#x...), want at most the vDSO clock page", len(differ), differ[0])
	}
	e.must("kill", id, "KILL")
	// Restored eagerly and lazily (a chunk and its patch load as one).
	for _, extra := range [][]string{nil, {"--lazy"}} {
		rid, rout := e.restoreDetached(uris[2], "", extra...)
		e.must("kill", rid, "CONT")
		e.must("kill", rid, "USR2")
		if l := waitLines(t, rout, 1); l[0] != "check 2 OK" {
			t.Errorf("scat2 restored %v printed %q, want check 2 OK", extra, l)
		}
		e.must("kill", rid, "KILL")
	}
}

// TestTrackingStopsAfterLiveSave: a --leave-running save without --track
// or --parent stops dirty tracking once it has read the memory; a later
// save against it reads all memory, reuses none of its chunks as they are
// and says so in one line on stderr. --track without --leave-running is
// refused before anything stops.
func TestTrackingStopsAfterLiveSave(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	waitLines(t, out, 2)
	msg := e.mustFail("save", id, "--track", "--to", "never")
	if !strings.Contains(msg, "--track needs --leave-running") {
		t.Errorf("save --track without --leave-running: %q", msg)
	}
	e.must("save", id, "--leave-running", "--to", "alone")
	r := e.snap("save", id, "--leave-running", "--to", "after", "--parent", "alone")
	if r.code != 0 {
		t.Fatalf("save --parent alone = exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "no written pages were tracked") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("save --parent alone: stderr %q, want one line saying no pages were tracked", r.stderr)
	}
	log := string(e.sentryLog(id))
	if n := strings.Count(log, ", 0 chunks of the parent reused"); n != 2 {
		t.Errorf("sentry.log has %d live saves that reused no parent chunk, want 2:\n%s", n, log)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "data", "snap", "images", "never")); err == nil {
		t.Errorf("the refused save left an image")
	}
	checkClean(t, "counter", waitLines(t, out, len(lines(out))+1))
}
