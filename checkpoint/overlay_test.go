package checkpoint

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"snapshotter/internal/prereq"
)

// TestOverlayAcrossRestore: a shell in the overlay root removes a lower
// file (a whiteout), appends to another (a copy-up), then runs tmpfshold,
// which fills a new directory next to them with files and checks every
// byte of them each tick; it is saved and restored twice and keeps
// finding them all. After it, the shell lists the directory (the removed
// file still hidden) and prints the copied-up file. The host directory is
// what it was.
func TestOverlayAcrossRestore(t *testing.T) {
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		prereq.Missing(t, "%s (Debian package busybox-static): %v", busybox, err)
	}
	e := newEnv(t)
	lower := filepath.Join(e.dir, "lower")
	for name, content := range map[string]string{"hidden.txt": "hidden\n", "lower.txt": "lower\n", "sub/x": "x\n"} {
		if err := os.MkdirAll(filepath.Join(lower, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lower, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := treeOf(t, lower)
	script := strings.Join([]string{
		"rm " + lower + "/hidden.txt && rm -r " + lower + "/sub && echo changed >> " + lower + "/lower.txt || exit 1",
		program(t, "tmpfshold") + " " + lower + "/files 30",
		"echo listing $(ls " + lower + ")",
		"echo lower.txt $(cat " + lower + "/lower.txt)",
		"echo done",
	}, "\n")
	out := filepath.Join(e.dir, "out")
	id := lastLine(e.must("run", "-d", "--stdout", out, "--stderr", out, "--", busybox, "sh", "-c", script))
	out = e.ticksAcrossTwoRestores(t, id, out, "ok", nil)
	ls := waitDoneTwice(t, out)
	checkClean(t, "restored twice", ls)
	for _, want := range []string{"listing files lower.txt", "lower.txt lower changed"} {
		if !slices.Contains(ls, want) {
			t.Errorf("output lacks %q:\n%s", want, strings.Join(ls, "\n"))
		}
	}
	if after := treeOf(t, lower); !maps.Equal(before, after) {
		t.Errorf("the host directory changed: before %v, after %v", before, after)
	}
}

// waitDoneTwice waits for the second "done" line of path (tmpfshold's,
// then the script's).
func waitDoneTwice(t *testing.T, path string) []string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ls := lines(path)
		n := 0
		for _, l := range ls {
			if l == "done" {
				n++
			}
		}
		if n >= 2 {
			return ls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no second done line in %q", path, ls)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// treeOf maps every path under dir to its contents.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		v := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		m[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSqliteInOverlayAcrossRestore: a shell inserts rows into an sqlite3
// database under /tmp (the overlay root's: the host's /tmp is not empty),
// one transaction a tick; it is saved mid-run and the image restored
// twice, side by side: both copies go on to the end on their own copy of
// the database, whose integrity check passes with every row there.
func TestSqliteInOverlayAcrossRestore(t *testing.T) {
	const busybox, sqlite = "/bin/busybox", "/usr/bin/sqlite3"
	for _, p := range []string{busybox, sqlite} {
		if _, err := os.Stat(p); err != nil {
			prereq.Missing(t, "%s (Debian packages busybox-static, sqlite3): %v", p, err)
		}
	}
	e := newEnv(t)
	db := filepath.Join(e.dir, "test.db")
	const ticks = 20
	script := strings.Join([]string{
		sqlite + " " + db + " 'create table t(a integer primary key, b text)' || exit 1",
		"i=1",
		fmt.Sprintf("while [ $i -le %d ]; do", ticks),
		"  " + sqlite + " " + db + ` "begin; insert into t(b) values ('a$i'),('b$i'),('c$i'); commit;" || echo "tick $i CORRUPT insert"`,
		`  echo "tick $i ok"; i=$((i+1)); sleep 0.05`,
		"done",
		"echo rows $(" + sqlite + " " + db + " 'pragma integrity_check; select count(*) from t')",
		"echo done",
	}, "\n")
	out := filepath.Join(e.dir, "out")
	id := lastLine(e.must("run", "-d", "--stdout", out, "--stderr", out, "--", busybox, "sh", "-c", script))
	uri, _ := e.saveAfter(id, out, 3)
	var outs []string
	for range 2 {
		_, o := e.restoreDetached(uri, "")
		outs = append(outs, o)
	}
	want := fmt.Sprintf("rows ok %d", 3*ticks)
	for i, o := range outs {
		ls := waitDone(t, o)
		checkClean(t, fmt.Sprintf("copy %d", i), ls)
		if !slices.Contains(ls, want) {
			t.Errorf("copy %d: output lacks %q:\n%s", i, want, strings.Join(ls, "\n"))
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("host %s: %v, want it absent (the database is in the overlay)", db, err)
	}
}

// TestVolumeAcrossRestore: a shell appends a line a tick to a file of a
// volume (-v) and writes its overlay root and the volume; it is saved,
// restored (the volume's lines are the host's, so they go on from the
// host file), saved again and restored with the volume's host directory
// moved: without -v that fails in one line naming the directory, with
// -v NEW:PATH it goes on in the new directory.
func TestVolumeAcrossRestore(t *testing.T) {
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		prereq.Missing(t, "%s (Debian package busybox-static): %v", busybox, err)
	}
	e := newEnv(t)
	vol := filepath.Join(e.dir, "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"echo in-overlay > " + e.dir + "/overlay.txt",
		"i=1",
		"while [ $i -le 30 ]; do",
		`  echo $i >> /vol/log; echo "tick $i ok"; i=$((i+1)); sleep 0.05`,
		"done",
		"echo overlay $(cat " + e.dir + "/overlay.txt)",
		"echo done",
	}, "\n")
	out := filepath.Join(e.dir, "out")
	id := lastLine(e.must("run", "-d", "-v", vol+":/vol", "--stdout", out, "--stderr", out, "--", busybox, "sh", "-c", script))
	uri, _ := e.saveAfter(id, out, 3)
	id, out = e.restoreDetached(uri, "")
	waitLines(t, out, 2)
	uri, _ = e.saveAfter(id, out, 4)
	moved := vol + ".moved"
	if err := os.Rename(vol, moved); err != nil {
		t.Fatal(err)
	}
	if msg := e.mustFail("restore", uri); !strings.Contains(msg, vol) {
		t.Errorf("restore without the volume's directory: %q, want it named", msg)
	}
	_, out = e.restoreDetached(uri, "", "-v", moved+":/vol")
	ls := waitDone(t, out)
	checkClean(t, "restored", ls)
	if !slices.Contains(ls, "overlay in-overlay") {
		t.Errorf("output lacks the overlay file:\n%s", strings.Join(ls, "\n"))
	}
	b, err := os.ReadFile(filepath.Join(moved, "log"))
	var want strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if err != nil || string(b) != want.String() {
		t.Errorf("host volume log = %q, %v; want 1 to 30, one a line", b, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "overlay.txt")); !os.IsNotExist(err) {
		t.Errorf("the overlay's file reached the host: %v", err)
	}
}

// TestCopyUpAcrossRestore: copyuphold holds read-only descriptors of
// three lower files of the overlay root, one copied up before the save,
// one appended to every tick and one copied up only after both restores;
// it is saved and restored twice, and every tick each descriptor still
// reads and fstats what the file holds now (Linux's overlayfs behaviour
// since 4.19: a description opened before a copy-up follows the copy).
// The host directory is what it was.
func TestCopyUpAcrossRestore(t *testing.T) {
	e := newEnv(t)
	lower := filepath.Join(e.dir, "lower")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(lower, name+".txt"), []byte("lower "+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := treeOf(t, lower)
	id, out := e.runDetached("", program(t, "copyuphold"), lower, "30")
	e.restoreTicksTwice(t, id, out, nil)
	if after := treeOf(t, lower); !maps.Equal(before, after) {
		t.Errorf("the host directory changed: before %v, after %v", before, after)
	}
}
