package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"snapshotter/storage"
)

// testWorkingSet: an image has no working set until one is put; it reads
// back as put, replaced atomically; ReadChunkRuns loads exactly the
// chunks asked for; a replacing save leaves the old one unused; damage is
// ErrCorrupt; Delete removes it with the image.
func testWorkingSet(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	im := makeImage(8<<20, []storage.Range{{Off: 0, Len: 8 << 20}}, MixedKind, 10)
	mustWrite(t, s, "ws", im, storage.CreateOptions{})
	img, err := s.Open(ctx, "ws")
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if idx, ok, err := img.WorkingSet(ctx); ok || err != nil || idx != nil {
		t.Fatalf("WorkingSet(new image) = %v, %v, %v; want none", idx, ok, err)
	}
	n := len(img.Chunks())
	for _, want := range [][]int{{0, 2, n - 1}, {1}, {}} {
		if err := img.PutWorkingSet(ctx, want); err != nil {
			t.Fatalf("PutWorkingSet(%v) = %v", want, err)
		}
		got, ok, err := img.WorkingSet(ctx)
		if !ok || err != nil || !slices.Equal(got, want) {
			t.Errorf("WorkingSet() = %v, %v, %v; want %v", got, ok, err, want)
		}
	}
	for _, bad := range [][]int{{n}, {2, 1}, {-1}, {1, 1}} {
		if err := img.PutWorkingSet(ctx, bad); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Errorf("PutWorkingSet(%v) = %v, want ErrInvalidArgument", bad, err)
		}
	}

	// The runs of the chunks asked for, and only those.
	want := []int{1, 2, n - 1}
	var (
		mu  sync.Mutex
		got []int
	)
	err = img.ReadChunkRuns(ctx, want, func(i int, runs []storage.PageRun) error {
		c := img.Chunks()[i]
		for _, r := range runs {
			if r.Off < c.Offset || r.Off+uint64(len(r.Data)) > c.Offset+uint64(c.Span) || string(r.Data) != string(im.mem[r.Off:r.Off+uint64(len(r.Data))]) {
				t.Errorf("chunk %d: run at %#x of %d bytes is not the image's", i, r.Off, len(r.Data))
			}
		}
		mu.Lock()
		got = append(got, i)
		mu.Unlock()
		return nil
	})
	slices.Sort(got)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ReadChunkRuns(%v) = %v, chunks %v", want, err, got)
	}
	if err := img.ReadChunkRuns(ctx, []int{2, 1}, func(int, []storage.PageRun) error { return nil }); !errors.Is(err, storage.ErrInvalidArgument) {
		t.Errorf("ReadChunkRuns(out of order) = %v, want ErrInvalidArgument", err)
	}

	// Damage: every byte flipped in turn is refused (or, in the digest,
	// makes it another image's), never misread.
	if err := img.PutWorkingSet(ctx, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	h.Rewrite(t, s, "ws", storage.WorkingSetKey, func(b []byte) []byte { raw = slices.Clone(b); return b })
	for i := range raw {
		h.Rewrite(t, s, "ws", storage.WorkingSetKey, func([]byte) []byte {
			b := slices.Clone(raw)
			b[i] ^= 0x41
			return b
		})
		idx, ok, err := img.WorkingSet(ctx)
		if ok || (err == nil && idx != nil) || (err != nil && !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, storage.ErrIncompatibleVersion)) {
			t.Errorf("working set with byte %d flipped: %v, %v, %v; want refused", i, idx, ok, err)
		}
	}
	h.Rewrite(t, s, "ws", storage.WorkingSetKey, func([]byte) []byte { return raw })

	// A save replacing the image: the old working set is not its.
	mustWrite(t, s, "ws", im, storage.CreateOptions{Replace: true, Metadata: map[string]string{"gen": "2"}})
	img2, err := s.Open(ctx, "ws")
	if err != nil {
		t.Fatal(err)
	}
	defer img2.Close()
	if idx, ok, err := img2.WorkingSet(ctx); ok || err != nil {
		t.Errorf("WorkingSet(replaced image) = %v, %v, %v; want none", idx, ok, err)
	}
	if err := s.Delete(ctx, "ws"); err != nil {
		t.Fatal(err)
	}
	for _, o := range h.Objects(t, s) {
		if strings.HasPrefix(o, "ws/") {
			t.Errorf("Delete(ws) left %s", o)
		}
	}
}
