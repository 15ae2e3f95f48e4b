package runner

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"snapshotter/storage"
)

// cacheManifest returns a parsed manifest (so with a digest) of a
// content-addressed image of memory bytes, data of them not zero.
func cacheManifest(t *testing.T, memory, data uint64) *storage.Manifest {
	t.Helper()
	sum := strings.Repeat("ab", 32)
	b, err := storage.MarshalManifest(&storage.Manifest{Arch: storage.Arch(), Created: time.Now(),
		PageSize: storage.PageSize, ChunkSpan: 1 << 20, MemorySize: memory, MemoryData: data, ContentAddressed: true,
		Compression: storage.Compression{Algorithm: storage.CodecS2},
		State:       storage.Blob{Key: "state", SHA256: sum}, Memory: storage.Blob{Key: "chunks"},
		Index: storage.Blob{Key: "index", SHA256: sum, Size: 24}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := storage.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// cacheNames returns the names in dir, sorted.
func cacheNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestCacheFill: a fill's runs land at their offsets of the copy, the rest
// holes reading as zero, and the copy appears under its name only at
// commit; an aborted fill leaves nothing.
func TestCacheFill(t *testing.T) {
	const page = storage.PageSize
	m := cacheManifest(t, 16*page, 2*page)
	for _, commit := range []bool{true, false} {
		c := RestoreCache{Dir: filepath.Join(t.TempDir(), "cache"), Max: 1 << 30}
		if !c.cacheable(m) {
			t.Fatalf("cacheable(%+v) = false", m)
		}
		f, err := c.startFill(m)
		if err != nil {
			t.Fatalf("startFill = %v", err)
		}
		a, b := bytes.Repeat([]byte{'a'}, page), bytes.Repeat([]byte{'b'}, page)
		f.write([]storage.PageRun{{Off: 3 * page, Data: a}})
		f.write([]storage.PageRun{{Off: 9 * page, Data: b}})
		if _, err := c.open(m); err == nil {
			t.Fatalf("open before commit found the copy")
		}
		if !commit {
			f.abort()
			if names := cacheNames(t, c.Dir); len(names) != 0 {
				t.Errorf("after abort the cache holds %v, want nothing", names)
			}
			continue
		}
		if err := f.commit(); err != nil {
			t.Fatalf("commit = %v", err)
		}
		got, err := c.open(m)
		if err != nil {
			t.Fatalf("open after commit = %v", err)
		}
		want := make([]byte, 16*page)
		copy(want[3*page:], a)
		copy(want[9*page:], b)
		all := make([]byte, 16*page)
		if _, err := got.ReadAt(all, 0); err != nil || !bytes.Equal(all, want) {
			t.Errorf("the copy reads %v, equal to the runs written %v", err, bytes.Equal(all, want))
		}
		got.Close()
		if names := cacheNames(t, c.Dir); !slices.Equal(names, []string{basePrefix + m.Digest()}) {
			t.Errorf("after commit the cache holds %v, want the copy alone", names)
		}
	}
}

// TestCacheBounds: what the cache takes, and which copies making room
// for another removes (the least recently used first).
func TestCacheBounds(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		max  uint64
		need uint64
		// sizes of the copies there, in MiB, the first used longest ago
		have []int
		kept []int // indices of have left
	}{
		{"room for all", 16 * mib, 2 * mib, []int{2, 3}, []int{0, 1}},
		{"oldest goes", 6 * mib, 2 * mib, []int{2, 3}, []int{1}},
		{"both go", 4 * mib, 3 * mib, []int{2, 3}, nil},
		{"exactly full", 7 * mib, 2 * mib, []int{2, 3}, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := RestoreCache{Dir: t.TempDir(), Max: tc.max}
			var want []string
			for i, n := range tc.have {
				name := basePrefix + string(rune('a'+i))
				p := filepath.Join(c.Dir, name)
				if err := os.WriteFile(p, bytes.Repeat([]byte{1}, n*mib), 0o600); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(c.Dir, writesPrefix+string(rune('a'+i))), []byte("[1]"), 0o600)
				used := time.Now().Add(time.Duration(i-len(tc.have)) * time.Hour)
				os.Chtimes(p, used, used)
				if slices.Contains(tc.kept, i) {
					want = append(want, name, writesPrefix+string(rune('a'+i)))
				}
			}
			c.evict(tc.need)
			got := cacheNames(t, c.Dir)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("evict(%d MiB) of %v MiB within %d MiB left %v, want %v", tc.need/mib, tc.have, tc.max/mib, got, want)
			}
		})
	}

	m := cacheManifest(t, 64<<20, 8<<20)
	for _, tc := range []struct {
		c    RestoreCache
		want bool
	}{
		{RestoreCache{Dir: "/d", Max: 8 << 20}, true},
		{RestoreCache{Dir: "/d", Max: 8<<20 - 1}, false},
		{RestoreCache{Dir: "/d"}, false},
		{RestoreCache{Max: 1 << 30}, false},
	} {
		if got := tc.c.cacheable(m); got != tc.want {
			t.Errorf("%+v.cacheable(8 MiB of data) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

// TestCachePrune: prune removes the copies (with their writes files) and
// the temporary files older than its age, and nothing else.
func TestCachePrune(t *testing.T) {
	c := RestoreCache{Dir: t.TempDir()}
	old := time.Now().Add(-2 * time.Hour)
	files := []struct {
		name string
		old  bool
		gone bool
	}{
		{basePrefix + "a", true, true},
		{writesPrefix + "a", false, true}, // goes with its copy
		{basePrefix + "b", false, false},
		{writesPrefix + "b", true, false}, // stays with its copy
		{".base-1.tmp", true, true},
		{".base-2.tmp", false, false},
		{".writes-3.tmp", true, true},
		{"other", true, false},
	}
	for _, f := range files {
		p := filepath.Join(c.Dir, f.name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if f.old {
			os.Chtimes(p, old, old)
		}
	}
	removed, err := c.Prune(time.Hour)
	if err != nil {
		t.Fatalf("Prune = %v", err)
	}
	var want, left []string
	for _, f := range files {
		if f.gone {
			want = append(want, filepath.Join(c.Dir, f.name))
		} else {
			left = append(left, f.name)
		}
	}
	slices.Sort(removed)
	slices.Sort(want)
	slices.Sort(left)
	if !slices.Equal(removed, want) {
		t.Errorf("Prune(1h) removed %v, want %v", removed, want)
	}
	if got := cacheNames(t, c.Dir); !slices.Equal(got, left) {
		t.Errorf("after Prune(1h) the cache holds %v, want %v", got, left)
	}
	if got, err := (RestoreCache{Dir: filepath.Join(c.Dir, "none")}).Prune(0); err != nil || len(got) != 0 {
		t.Errorf("Prune of a cache never made = %v, %v; want nothing", got, err)
	}
}

// TestRoomFor: a copy that does not fit in its filesystem's free space is
// refused.
func TestRoomFor(t *testing.T) {
	dir := t.TempDir()
	if err := roomFor(dir, 1<<62); err == nil {
		t.Errorf("roomFor(%s, 4 EiB) = nil, want an error", dir)
	}
	if err := roomFor(filepath.Join(dir, "none"), 0); err == nil {
		t.Errorf("roomFor of a missing directory = nil, want an error")
	}
}

// TestCacheAdmit: an image with up to cacheFirstUse bytes of memory data
// is copied at its first restore; a larger one at its second, the first
// recording that it was restored, which Prune removes once old.
func TestCacheAdmit(t *testing.T) {
	c := RestoreCache{Dir: filepath.Join(t.TempDir(), "cache"), Max: 4 << 30}
	small := cacheManifest(t, 256<<20, cacheFirstUse)
	if !c.admit(small) {
		t.Errorf("first restore of an image of %d bytes of data: not admitted, want admitted", uint64(cacheFirstUse))
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cache directory after admitting a small image: %v, want none made", err)
	}
	large := cacheManifest(t, 1<<30, cacheFirstUse+1)
	for i, want := range []bool{false, true, true} {
		if got := c.admit(large); got != want {
			t.Errorf("restore %d of an image of %d bytes of data: admitted %v, want %v", i+1, uint64(cacheFirstUse+1), got, want)
		}
	}
	seen := []string{seenPrefix + large.Digest()}
	if names := cacheNames(t, c.Dir); !slices.Equal(names, seen) {
		t.Errorf("cache after restores of a large image holds %v, want %v", names, seen)
	}
	if removed, err := c.Prune(time.Hour); err != nil || len(removed) != 0 {
		t.Errorf("Prune(1h) of a new record = %v, %v, want nothing removed", removed, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(c.Dir, seen[0]), old, old)
	if removed, err := c.Prune(time.Hour); err != nil || len(removed) != 1 {
		t.Errorf("Prune(1h) of a record 2h old = %v, %v, want it removed", removed, err)
	}
	if c.admit(large) {
		t.Error("restore of a large image whose record was pruned: admitted, want not")
	}
}
