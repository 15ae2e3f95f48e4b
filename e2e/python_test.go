package e2e

import (
	"os"
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
