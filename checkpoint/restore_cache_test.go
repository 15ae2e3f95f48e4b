package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"snapshotter/kernel"
	"snapshotter/runner"
)

// restoreStdin runs snap restore in the foreground with stdin as its
// standard input and extra environment entries.
func (e *env) restoreStdin(stdin string, env []string, args ...string) result {
	e.t.Helper()
	return e.snapWith(strings.NewReader(stdin), env, append([]string{"restore"}, args...)...)
}

// cacheFiles returns the names in the state directory's restore cache.
func (e *env) cacheFiles() []string {
	ents, _ := os.ReadDir(filepath.Join(e.dir, "state", ".restore-cache"))
	var out []string
	for _, ent := range ents {
		out = append(out, ent.Name())
	}
	return out
}

// countPrefix counts the names in names that begin with prefix.
func countPrefix(names []string, prefix string) int {
	n := 0
	for _, s := range names {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// steps returns how often each step appears in restore --timings output.
func steps(text string) map[string]int {
	seen := map[string]int{}
	for _, l := range strings.Split(text, "\n") {
		if m := timingRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			seen[m[1]]++
		}
	}
	return seen
}

// TestRestoreCache: the first foreground restore of poolmember's image
// loads its memory and keeps a copy in the state directory; the later
// ones run over that copy (no memory load) and see the same memory, each
// its own writes only, the second recording the chunks it wrote for the
// third, which copies them while it decodes. --no-cache loads. A damaged image still fails as corrupt and
// leaves nothing in the cache; a signed image restores from the copy with
// --verify, and an unsigned one is refused even though its copy is there.
// The cache keeps within SNAP_RESTORE_CACHE by dropping the copy used
// least recently; snap prune removes the copies.
func TestRestoreCache(t *testing.T) {
	e := newEnv(t)
	e.fifo("img.in")
	id, out := e.runDetached(filepath.Join(e.dir, "img.in"), program(t, "poolmember"))
	uri, _ := e.saveAfter(id, out, 1, "--to", "img")
	const in = "check\nset b\ncheck\n"
	want := "pages hold a\npages hold b\nbye after 3 commands\n"
	for i, tc := range []struct {
		name      string
		args      []string
		cached    bool // restored over the copy
		bases     int  // copies in the cache after it
		writeFile bool // the chunks written first recorded after it
	}{
		{"first restore", nil, false, 1, false},
		{"second restore", nil, true, 1, true},
		{"third restore", nil, true, 1, true},
		{"no cache", []string{"--no-cache"}, false, 1, true},
	} {
		r := e.restoreStdin(in, nil, append([]string{uri, "--timings"}, tc.args...)...)
		if r.code != 0 || r.stdout != want {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q; want exit 0 and %q", tc.name, r.code, r.stdout, r.stderr, want)
		}
		s := steps(r.stderr)
		if got := s[runner.StepOpenCache] == 1 && s[kernel.StepMemory] == 0; got != tc.cached {
			t.Errorf("%s (%d): restored over the cached copy = %v (steps %v), want %v", tc.name, i, got, s, tc.cached)
		}
		if got := strings.Contains(r.stderr, "restore over a copy: "); got != tc.cached {
			t.Errorf("%s: --timings says how the copy's chunks were copied: %v, want %v (stderr %q)", tc.name, got, tc.cached, r.stderr)
		}
		// The third copies what the second wrote first as it decodes.
		if got, want := s[kernel.StepCopyBase] == 1, tc.name == "third restore"; got != want {
			t.Errorf("%s: step %s reported %d times, want it %v", tc.name, kernel.StepCopyBase, s[kernel.StepCopyBase], want)
		}
		if got, want := s[runner.StepFillCache], !tc.cached && tc.args == nil; (got == 1) != want {
			t.Errorf("%s: step %s reported %d times, want it %v", tc.name, runner.StepFillCache, got, want)
		}
		files := e.cacheFiles()
		if got := countPrefix(files, "base-"); got != tc.bases {
			t.Errorf("%s: cache holds %v, want %d copies", tc.name, files, tc.bases)
		}
		if got := countPrefix(files, "writes-") == 1; got != tc.writeFile {
			t.Errorf("%s: cache holds %v, want a writes file %v", tc.name, files, tc.writeFile)
		}
		if n := countPrefix(files, "."); n != 0 {
			t.Errorf("%s: cache holds temporary files: %v", tc.name, files)
		}
	}

	// A damaged copy of the image (another manifest: no copy of its own).
	bad := e.copyImage("img", "bad")
	repointChunk(t, bad, func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
	if r := e.restoreStdin(in, nil, "bad"); r.code == 0 || !strings.Contains(r.stderr, "corrupt") {
		t.Errorf("restore of a damaged image: exit %d, stderr %q; want a failure saying corrupt", r.code, r.stderr)
	}
	if files := e.cacheFiles(); countPrefix(files, "base-") != 1 || countPrefix(files, ".") != 0 {
		t.Errorf("after the damaged image's restore the cache holds %v, want the one copy", files)
	}

	// Signatures.
	keys := filepath.Join(e.dir, "keys")
	e.must("keygen", keys+".priv", keys+".pub")
	e.fifo("signed.in")
	id, out = e.runDetached(filepath.Join(e.dir, "signed.in"), program(t, "poolmember"))
	signed, _ := e.saveAfter(id, out, 1, "--to", "signed", "--sign", keys+".priv")
	for _, name := range []string{"first", "second"} {
		r := e.restoreStdin(in, nil, signed, "--verify", keys+".pub", "--timings")
		if r.code != 0 || r.stdout != want {
			t.Fatalf("%s verified restore: exit %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
		}
		if got := steps(r.stderr)[runner.StepOpenCache]; (got == 1) != (name == "second") {
			t.Errorf("%s verified restore: over the cached copy %v, want %v", name, got == 1, name == "second")
		}
	}
	if r := e.restoreStdin(in, nil, uri, "--verify", keys+".pub"); r.code == 0 || !strings.Contains(r.stderr, "not signed") {
		t.Errorf("restore --verify of the unsigned, cached image: exit %d, stderr %q; want not signed", r.code, r.stderr)
	}

	// The bound: two copies of 4 MiB of data do not fit in 6 MiB; the
	// signed image's (used last) goes when img's is made again.
	if files := e.cacheFiles(); countPrefix(files, "base-") != 2 {
		t.Fatalf("cache holds %v, want two copies", files)
	}
	small := []string{"SNAP_RESTORE_CACHE=6M"}
	e.must("prune", "--older-than", "0s")
	if files := e.cacheFiles(); len(files) != 0 {
		t.Fatalf("after prune --older-than 0s the cache holds %v, want nothing", files)
	}

	// Two first restores at once both make the copy: one stays.
	var wg sync.WaitGroup
	rs := make([]result, 2)
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = e.restoreStdin(in, nil, uri)
		}()
	}
	wg.Wait()
	for i, r := range rs {
		if r.code != 0 || r.stdout != want {
			t.Errorf("concurrent first restore %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	if files := e.cacheFiles(); countPrefix(files, "base-") != 1 || countPrefix(files, ".") != 0 {
		t.Errorf("after two first restores at once the cache holds %v, want one copy", files)
	}
	e.must("prune", "--older-than", "0s")
	for _, image := range []string{signed, uri} {
		if r := e.restoreStdin(in, small, image); r.code != 0 || r.stdout != want {
			t.Fatalf("restore %s with a 6M cache: exit %d, stdout %q, stderr %q", image, r.code, r.stdout, r.stderr)
		}
	}
	files := e.cacheFiles()
	if countPrefix(files, "base-") != 1 {
		t.Errorf("a 6M cache after two images of 4 MiB holds %v, want one copy", files)
	}
	if r := e.restoreStdin(in, small, uri, "--timings"); steps(r.stderr)[runner.StepOpenCache] != 1 {
		t.Errorf("restore of the image cached last: stderr %q, want it over the copy", r.stderr)
	}
	if r := e.restoreStdin(in, []string{"SNAP_RESTORE_CACHE=1M"}, signed, "--timings"); r.code != 0 || steps(r.stderr)[runner.StepFillCache] != 0 {
		t.Errorf("restore with a cache smaller than the image: exit %d, stderr %q; want no copy made", r.code, r.stderr)
	}
	if r := e.restoreStdin(in, []string{"SNAP_RESTORE_CACHE=lots"}, uri); r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, "SNAP_RESTORE_CACHE") {
		t.Errorf("restore with SNAP_RESTORE_CACHE=lots: exit %d, stderr %q; want one line naming it", r.code, r.stderr)
	}
}

// TestRestoreCacheDetached: restore -d uses the restore cache as a
// foreground restore does: the first makes the copy, the second runs over
// it and sees the same memory, and --no-cache does neither.
func TestRestoreCacheDetached(t *testing.T) {
	e := newEnv(t)
	e.fifo("img.in")
	id, out := e.runDetached(filepath.Join(e.dir, "img.in"), program(t, "poolmember"))
	uri, _ := e.saveAfter(id, out, 1, "--to", "img")
	in := filepath.Join(e.dir, "commands")
	if err := os.WriteFile(in, []byte("check\nset b\ncheck\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Its stdout and stderr, in one file.
	want := []string{"pages hold a", "pages hold b", "stderr: 3 commands", "bye after 3 commands"}
	for _, tc := range []struct {
		name   string
		args   []string
		cached bool // restored over the copy
		bases  int  // copies in the cache after it
	}{
		{"no cache", []string{"--no-cache"}, false, 0},
		{"first restore", nil, false, 1},
		{"second restore", nil, true, 1},
	} {
		rid, rout := e.restoreDetached(uri, in, tc.args...)
		if got := waitLines(t, rout, len(want)); !slices.Equal(got[:len(want)], want) {
			t.Fatalf("%s: the program printed %q, want %q", tc.name, got, want)
		}
		e.waitGone(rid)
		logb, _ := os.ReadFile(filepath.Join(e.dir, "state", rid, "sentry.log"))
		s := map[string]int{}
		for _, l := range strings.Split(string(logb), "\n") {
			if _, step, ok := strings.Cut(l, "restore step "); ok {
				s[strings.Fields(step)[0]]++
			}
		}
		if got := s[runner.StepOpenCache] == 1 && s[kernel.StepMemory] == 0; got != tc.cached {
			t.Errorf("%s: restored over the cached copy = %v (steps %v), want %v", tc.name, got, s, tc.cached)
		}
		if files := e.cacheFiles(); countPrefix(files, "base-") != tc.bases || countPrefix(files, ".base-") != 0 {
			t.Errorf("%s: cache holds %v, want %d copies and no partial one", tc.name, files, tc.bases)
		}
	}

	// A sandbox restored over the copy saves what it sees: the copy's
	// pages and its own writes.
	live := e.fifo("live.in")
	rid, rout := e.restoreDetached(uri, filepath.Join(e.dir, "live.in"))
	live.WriteString("set c\ncheck\n")
	again, _ := e.saveAfter(rid, rout, 1, "--to", "again")
	if r := e.restoreStdin("check\n", nil, again); r.code != 0 || r.stdout != "pages hold c\nbye after 3 commands\n" {
		t.Errorf("restore of a save of a sandbox restored over the copy: exit %d, stdout %q, stderr %q; want the pages it set", r.code, r.stdout, r.stderr)
	}
}
