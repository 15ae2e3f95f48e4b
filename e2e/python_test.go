package e2e

import (
	"os"
	"os/exec"
	"testing"

	"snapshotter/internal/prereq"
)

// pythonPath is CPython, from Debian's python3 package.
const pythonPath = "/usr/bin/python3"

// pythonCreds runs children with other credentials through subprocess
// (setgroups, setregid and setreuid between fork and exec), then drops
// its own.
const pythonCreds = `import os, subprocess
r = subprocess.run(["/bin/busybox", "id"], user=1000, group=100, extra_groups=[5, 7], capture_output=True, text=True)
print("id:", r.returncode, r.stdout.strip())
r = subprocess.run(["/bin/busybox", "grep", "-E", "^(Uid|Gid|Groups|CapEff)", "/proc/self/status"], user=1000, group=100, capture_output=True, text=True)
print("status:", r.returncode, r.stdout.replace("\t", " ").replace("\n", "; "))
os.setgroups([1]); os.setresgid(2, 2, 2); os.setresuid(3, 3, 3)
try:
    os.setuid(0)
except PermissionError as e:
    print("setuid(0):", e)
print("now:", os.getresuid(), os.getresgid(), os.getgroups())
`

// TestPythonCreds: CPython's subprocess with user, group and extra_groups,
// and os.setresuid, behave under snap as natively (run as root, as CI is).
func TestPythonCreds(t *testing.T) {
	for _, p := range []string{pythonPath, busyboxPath} {
		if _, err := os.Stat(p); err != nil {
			prereq.Missing(t, "%s: %v", p, err)
		}
	}
	if os.Geteuid() != 0 {
		prereq.Missing(t, "this test runs as root")
	}
	compare(t, "python/creds", []string{pythonPath, "-c", pythonCreds}, spec{want: []string{
		"status: 0 Uid: 1000 1000 1000 1000; Gid: 100 100 100 100; Groups:  ; CapEff: 0000000000000000; ",
		"setuid(0): [Errno 1] Operation not permitted",
		"now: (3, 3, 3) (2, 2, 2) [1]",
	}})
}

// pythonSqlite runs SQLite through CPython's sqlite3 in a new directory
// under argv[1], once per journal mode: a second process (a new
// interpreter, which takes its own locks) finds the database locked while
// the first holds a write lock, then writes 2000 rows the first then
// reads; both map the database (PRAGMA mmap_size), which SQLite grows with
// mremap; an index, a delete, VACUUM, an integrity check, a backup and a
// dump follow, and the files each mode leaves.
const pythonSqlite = `import os, sqlite3, subprocess, sys, tempfile

CHILD = """
import sqlite3, sys
b = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    b.execute("begin immediate")
    print("child: wrote while the parent held the lock")
except sqlite3.OperationalError as e:
    print("child:", e)
sys.stdout.flush()
sys.stdin.readline()
b.execute("pragma mmap_size=1048576")
print("child sees", b.execute("select count(*) from t").fetchone()[0])
b.execute("begin immediate")
b.executemany("insert into t values (?, ?)", ((i, "child %d" % i) for i in range(2000)))
b.execute("commit")
b.close()
"""

with tempfile.TemporaryDirectory(dir=sys.argv[1]) as d:
    for mode in ("delete", "truncate", "persist", "memory", "wal", "off"):
        fn = os.path.join(d, mode + ".db")
        a = sqlite3.connect(fn, timeout=0, isolation_level=None)
        print(mode, a.execute("pragma journal_mode=" + mode).fetchone()[0])
        a.execute("pragma mmap_size=1048576")
        a.execute("create table t(x integer, y text)")
        a.execute("begin immediate")
        a.execute("insert into t values (-1, 'parent')")
        sys.stdout.flush()
        p = subprocess.Popen([sys.executable, "-c", CHILD, fn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        print(p.stdout.readline().strip())
        a.execute("commit")
        out, _ = p.communicate("go\n")
        print(out.strip(), "exit", p.returncode)
        print("parent sees", a.execute("select count(*), sum(x), max(y) from t").fetchone())
        a.execute("create index i on t(y)")
        a.execute("delete from t where x % 3 = 0")
        a.execute("vacuum")
        print("integrity", a.execute("pragma integrity_check").fetchone()[0])
        m = sqlite3.connect(":memory:")
        a.backup(m)
        print("backup", m.execute("select count(*), sum(x) from t").fetchone(), len(list(m.iterdump())))
        print("files", sorted(f for f in os.listdir(d) if f.startswith(mode)))
        a.close()
        print("closed", sorted(f for f in os.listdir(d) if f.startswith(mode)))
`

// TestPythonSqlite runs pythonSqlite natively and under snap, in the
// overlay root and in a tmpfs: the same output. (CPython's own
// test_sqlite3 is not in Debian's libpython3.11-testsuite.)
func TestPythonSqlite(t *testing.T) {
	if _, err := os.Stat(pythonPath); err != nil {
		prereq.Missing(t, "%s: %v", pythonPath, err)
	}
	if out, err := exec.Command(pythonPath, "-c", "import sqlite3").CombinedOutput(); err != nil {
		prereq.Missing(t, "%s with sqlite3: %v: %s", pythonPath, err, out)
	}
	tmpfsDir := t.TempDir()
	for _, tc := range []struct {
		name, dir string
		flags     []string
		zdtm      zdtmSpec
	}{
		// Saved at its start and at a random point.
		{name: "overlay", dir: "."},
		{name: "tmpfs", dir: tmpfsDir, flags: []string{"--tmpfs", tmpfsDir}, zdtm: zdtmSpec{skip: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compare(t, "python/sqlite/"+tc.name, []string{pythonPath, "-c", pythonSqlite, tc.dir}, spec{
				env:       []string{"PYTHONDONTWRITEBYTECODE=1"},
				snapFlags: tc.flags,
				zdtm:      tc.zdtm,
				want: []string{
					"wal wal", "child: database is locked", "child sees 1 exit 0",
					"parent sees (2001, 1998999, 'parent')", "integrity ok", "backup (1334, 1332666) 1338",
					"files ['wal.db', 'wal.db-shm', 'wal.db-wal']", "closed ['wal.db']",
				},
			})
		})
	}
}
