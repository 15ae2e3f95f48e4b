package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
)

// sqlitePath is where Debian's sqlite3 package installs the shell.
const sqlitePath = "/usr/bin/sqlite3"

// TestSqliteInTmpfs: sqlite3 creates a database in a tmpfs (--tmpfs) and
// runs committed and rolled-back transactions, an index, VACUUM, an
// integrity check and a switch to WAL (its index in a shared mapping of
// the -shm file); the output is the native run's.
func TestSqliteInTmpfs(t *testing.T) {
	if _, err := os.Stat(sqlitePath); err != nil {
		prereq.Missing(t, "%s (Debian package sqlite3): %v", sqlitePath, err)
	}
	dir := t.TempDir()
	sql := "create table t(a integer primary key, b text);" +
		"begin; insert into t(b) values ('x'),('y'),('z'); update t set b = b || a; commit;" +
		"begin; insert into t(b) values ('rolled back'); rollback;" +
		"create index i on t(b); vacuum; pragma integrity_check;" +
		"select count(*), group_concat(b) from t;" +
		"pragma journal_mode=wal; insert into t(b) values ('wal');" +
		"select count(*) from t;"
	s := spec{
		args:      []string{filepath.Join(dir, "test.db"), sql},
		want:      []string{"ok", "3|x1,y2,z3", "wal", "4"},
		snapFlags: []string{"--tmpfs", dir},
		zdtm:      zdtmSpec{fast: true},
	}
	compare(t, "sqlite", append([]string{sqlitePath}, s.args...), s)
}

// hashTree returns a digest of every name, type, mode, size and content
// under dir.
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00" + info.Mode().String() + "\x00" + info.ModTime().String() + "\x00"))
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestTmpfsLeavesHostAlone: a shell script writes, renames and removes
// files in a tmpfs mounted over a host directory, fills /run until
// ENOSPC, tries to write next to the mount on the host, and the host
// directory tree is byte for byte what it was; the sandbox goes on after
// the full filesystem.
func TestTmpfsLeavesHostAlone(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		prereq.Missing(t, "%s (Debian package busybox-static): %v", busyboxPath, err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "host.txt", "host file\n")
	writeFile(t, filepath.Join(dir, "sub"), "hidden.txt", "under the mount\n")
	before := hashTree(t, dir)
	sub := filepath.Join(dir, "sub")
	script := strings.Join([]string{
		"cd " + sub,
		"ls -A; echo listed",
		"echo one > a && mkdir d && mv a d/b && ln d/b c && ln -s d/b s && cat s",
		"rm -r d c s && ls -A && echo emptied",
		"echo nope > ../host.txt || echo host.txt read-only",
		"rm ../host.txt || echo host.txt stays",
		"dd if=/dev/zero of=/run/fill bs=1M count=3 2>/dev/null || echo /run full",
		"echo more > /run/more || echo still full",
		"rm /run/fill && echo small > /run/more && cat /run/more",
		"cat " + filepath.Join(dir, "host.txt"),
	}, "\n")
	o := execute(t, []string{snap(t), "run", "--read-only", "--tmpfs", sub, "--tmpfs", "/run:size=2M", "--", busyboxPath, "sh", "-c", script}, spec{}, dir)
	want := "listed\none\nemptied\nhost.txt read-only\nhost.txt stays\n/run full\nstill full\nsmall\nhost file\n"
	if o.status != 0 || o.stdout != want {
		t.Errorf("script: status %d, stdout %q, stderr %q; want status 0, stdout %q", o.status, o.stdout, o.stderr, want)
	}
	if after := hashTree(t, dir); after != before {
		t.Errorf("host tree under %s changed: digest %s before, %s after", dir, before, after)
	}
}
