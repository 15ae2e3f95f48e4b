package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// inspectSizes is what the incremental tests read of snap inspect --json.
type inspectSizes struct {
	MemoryStored int64 `json:"memoryStored"`
	StoredSize   int64 `json:"storedSize"`
	Parent       *struct {
		URI          string `json:"uri"`
		Status       string `json:"status"`
		SharedChunks uint64 `json:"sharedChunks"`
		NewChunks    uint64 `json:"newChunks"`
		NewBytes     uint64 `json:"newBytes"`
	} `json:"parent"`
}

func (e *env) inspect(uri string) inspectSizes {
	e.t.Helper()
	var r inspectSizes
	out := e.must("inspect", uri, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("snap inspect --json %s: %v (%q)", uri, err, out)
	}
	return r
}

// chunkBytes is the size of every chunk file and pack of the default
// store.
func (e *env) chunkBytes() int64 {
	e.t.Helper()
	var n int64
	for _, dir := range []string{".chunks", ".packs"} {
		root := filepath.Join(e.dir, "data", "snap", "images", dir)
		filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
	}
	return n
}

// TestIncrementalChain: three saves of one running counter, each against
// the previous one (--leave-running, the program rewriting a page per line
// in between). Each child stores only the chunks that changed, a small
// fraction of the full image; each restores like a full save, the counter
// checking every page of its 256 MiB against its own record.
func TestIncrementalChain(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	waitLines(t, out, 2)
	full := lastLine(e.must("save", id, "--leave-running", "--to", "gen0"))
	uris := []string{full}
	for i := 1; i <= 2; i++ {
		waitLines(t, out, len(lines(out))+2)
		args := []string{"save", id, "--to", fmt.Sprintf("gen%d", i), "--parent", fmt.Sprintf("gen%d", i-1)}
		if i < 2 {
			args = append(args, "--leave-running")
		}
		uris = append(uris, lastLine(e.must(args...)))
	}
	e.waitGone(id)
	last := lines(out)
	checkClean(t, "original", last)

	fullSize := e.inspect(full)
	if fullSize.Parent != nil {
		t.Errorf("inspect gen0: parent %+v, want none", fullSize.Parent)
	}
	for i, uri := range uris[1:] {
		r := e.inspect(uri)
		switch {
		case r.Parent == nil:
			t.Fatalf("inspect gen%d: no parent", i+1)
		case r.Parent.URI != uris[i] || r.Parent.Status != "ok":
			t.Errorf("inspect gen%d: parent %s (%s), want %s (ok)", i+1, r.Parent.URI, r.Parent.Status, uris[i])
		case r.Parent.NewBytes*8 > uint64(fullSize.MemoryStored) || r.Parent.SharedChunks < 8*r.Parent.NewChunks:
			t.Errorf("inspect gen%d: %d new chunks (%d bytes), %d shared; want under 1/8 of the full image's %d bytes",
				i+1, r.Parent.NewChunks, r.Parent.NewBytes, r.Parent.SharedChunks, fullSize.MemoryStored)
		}
		t.Logf("gen%d: %d chunks new (%d bytes), %d shared; full image memory %d bytes", i+1, r.Parent.NewChunks, r.Parent.NewBytes, r.Parent.SharedChunks, fullSize.MemoryStored)
	}
	// The store holds the three images in little more than one.
	if got := e.chunkBytes(); got > fullSize.MemoryStored*5/4 {
		t.Errorf("chunks of three chained images take %d bytes, want at most 5/4 of one full image (%d)", got, fullSize.MemoryStored)
	}

	// The last child restores as a full save would: the next count, every
	// page checked by the program.
	_, rout := e.restoreDetached(uris[2], "")
	after := waitLines(t, rout, 2)
	checkClean(t, "restored gen2", after)
	want := number(t, last[len(last)-1]) + 1
	if after[0] != fmt.Sprintf("count %d sum OK", want) {
		t.Errorf("gen2 restored: first line %q, want count %d sum OK", after[0], want)
	}
	// So does the middle one, whose parent and child are both there.
	_, rout1 := e.restoreDetached(uris[1], "")
	checkClean(t, "restored gen1", waitLines(t, rout1, 2))
}

// TestSaveParentErrors: a parent that does not exist, that was altered, or
// that is another sandbox's save fails the save with one line, and the
// sandbox runs on.
func TestSaveParentErrors(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"))
	other, oout := e.runDetached("", program(t, "sleeper"))
	waitLines(t, out, 1)
	waitLines(t, oout, 1)
	e.must("save", id, "--leave-running", "--to", "mine")
	e.must("save", other, "--leave-running", "--to", "theirs")
	e.must("save", id, "--leave-running", "--to", "altered")
	manifest := filepath.Join(e.dir, "data", "snap", "images", "altered", "manifest")
	edit(t, manifest, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	for _, tc := range []struct {
		name, parent, want string
	}{
		{"missing", "nothere", "not found"},
		{"altered", "altered", "corrupt"},
		{"other-sandbox", "theirs", "a save of sandbox"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := e.mustFail("save", id, "--leave-running", "--to", "child-"+tc.name, "--parent", tc.parent)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("save --parent %s: %q, want it to say %q", tc.parent, msg, tc.want)
			}
			if st := e.meta(id)["status"]; st != "running" {
				t.Errorf("status after a refused save = %v, want running", st)
			}
		})
	}
	// The child of a good parent is saved.
	e.must("save", id, "--leave-running", "--to", "child", "--parent", "mine")
	if r := e.snap("rm", "mine"); r.code == 0 || !strings.Contains(r.stderr, "parent of child") {
		t.Errorf("snap rm mine = exit %d, %q; want a refusal naming child", r.code, r.stderr)
	}
}

// TestDedupAcrossRestores: two restores of one image, each saved again
// in full (no --parent, two sandboxes): the store keeps the chunks they
// share once, so its chunks take far less than the two images' memory.
func TestDedupAcrossRestores(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	base, _ := e.saveAfter(id, out, 2, "--to", "base")
	var sum int64
	for i := 0; i < 2; i++ {
		rid, rout := e.restoreDetached(base, "")
		uri, _ := e.saveAfter(rid, rout, 2, "--to", fmt.Sprintf("again%d", i))
		r := e.inspect(uri)
		if r.Parent != nil {
			t.Errorf("inspect %s: parent %+v, want none", uri, r.Parent)
		}
		sum += r.MemoryStored
	}
	baseSize := e.inspect(base).MemoryStored
	got := e.chunkBytes()
	if got*2 > sum+baseSize {
		t.Errorf("chunks of base and two re-saves take %d bytes, want well under the sum of their memory (%d + %d)", got, baseSize, sum)
	}
	t.Logf("base %d bytes, re-saves %d bytes together, chunks on disk %d bytes", baseSize, sum, got)
	// Deleting one re-save and pruning keeps every chunk the others use.
	e.must("rm", "again0")
	e.must("prune", "--older-than", "0s")
	_, rout := e.restoreDetached("again1", "")
	checkClean(t, "restored again1 after rm and prune", waitLines(t, rout, 2))
	_, rout = e.restoreDetached("base", "")
	checkClean(t, "restored base after rm and prune", waitLines(t, rout, 2))
}

// TestRestoreBadChunk: an image some of whose chunks were overwritten by
// other chunks' bytes in their pack, then whose pack index was removed
// (its chunks cannot be found), fails to restore with one line saying
// it is corrupt.
func TestRestoreBadChunk(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	e.saveAfter(id, out, 1, "--to", "img")
	packs, _ := filepath.Glob(filepath.Join(e.dir, "data", "snap", "images", ".packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("packs of the store = %v, want one", packs)
	}
	for _, tc := range []struct {
		name  string
		spoil func(pack string)
	}{
		{"replaced", func(p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			copy(b[len(b)/2:], b[16:16+64<<10])
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed", func(p string) { os.Remove(strings.TrimSuffix(p, ".pack") + ".idx") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spoil(packs[0])
			msg := e.mustFail("restore", "img", "-d")
			if !strings.Contains(msg, "corrupt") || !strings.Contains(msg, "chunk") {
				t.Errorf("restore with a %s chunk: %q, want it to say the chunk is corrupt", tc.name, msg)
			}
		})
	}
}

// TestS3IncrementalChain: the chain on a real MinIO. A child saved against
// its parent in an S3 store shares its chunks, restores from there with
// every page checked, and a parent in another store is one line.
func TestS3IncrementalChain(t *testing.T) {
	e := newEnv(t)
	e.useMinIO("incr")
	id, out := e.runDetached("", program(t, "counter"))
	waitLines(t, out, 2)
	// Stopped in between, so that the child differs from the base by the
	// pages of a few lines only (one per line), however slow the saves.
	e.must("kill", id, "STOP")
	base := lastLine(e.must("save", id, "--leave-running", "--to", "s3://incr/pool/base"))
	e.must("save", id, "--leave-running", "--to", "local")
	msg := e.mustFail("save", id, "--leave-running", "--to", "s3://incr/pool/bad", "--parent", "local")
	if !strings.Contains(msg, "not in store") {
		t.Errorf("save to S3 with a local parent: %q, want it refused as another store", msg)
	}
	e.must("kill", id, "CONT")
	waitLines(t, out, len(lines(out))+2)
	child := lastLine(e.must("save", id, "--to", "s3://incr/pool/child", "--parent", base))
	e.waitGone(id)
	last := lines(out)
	full, r := e.inspect(base), e.inspect(child)
	if r.Parent == nil || r.Parent.URI != base || r.Parent.NewBytes*8 > uint64(full.MemoryStored) {
		t.Errorf("inspect %s: parent %+v, want %s with under 1/8 of the full image's %d bytes new", child, r.Parent, base, full.MemoryStored)
	}
	_, rout := e.restoreDetached(child, "")
	after := waitLines(t, rout, 2)
	checkClean(t, "restored from S3", after)
	if want := number(t, last[len(last)-1]) + 1; after[0] != fmt.Sprintf("count %d sum OK", want) {
		t.Errorf("child restored from S3: first line %q, want count %d sum OK", after[0], want)
	}
}
