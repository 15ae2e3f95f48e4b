package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
)

// lddAddress is the load address ldd prints after each object; it differs
// between any two runs.
var lddAddress = regexp.MustCompile(` \(0x[0-9a-f]+\)`)

// TestLddShowsVDSO runs `ldd /bin/true` (Debian's ldd, a bash script that
// runs the dynamic loader in its listing mode) natively and under snap:
// glibc's loader finds the vDSO through AT_SYSINFO_EHDR and lists it as
// linux-vdso.so.1, and both list the same objects once the load addresses
// are left out.
func TestLddShowsVDSO(t *testing.T) {
	for _, p := range []string{"/usr/bin/ldd", "/bin/true", "/bin/bash"} {
		if _, err := os.Stat(p); err != nil {
			prereq.Missing(t, "%s: %v", p, err)
		}
	}
	s := spec{args: []string{"/bin/true"}}
	dir := t.TempDir()
	native := execute(t, []string{"/usr/bin/ldd", "/bin/true"}, s, dir)
	sandboxed := execute(t, []string{snap(t), "run", "--", "/usr/bin/ldd", "/bin/true"}, s, dir)
	for _, o := range []struct {
		name string
		out  outcome
	}{{"native", native}, {"snap", sandboxed}} {
		if o.out.status != 0 || !strings.Contains(o.out.stdout, "\tlinux-vdso.so.1 (0x") {
			t.Errorf("%s ldd /bin/true: status %d, want 0 and a linux-vdso.so.1 line\nstdout:\n%s\nstderr:\n%s",
				o.name, o.out.status, clip(o.out.stdout), clip(o.out.stderr))
		}
	}
	if n, s := lddAddress.ReplaceAllString(native.stdout, ""), lddAddress.ReplaceAllString(sandboxed.stdout, ""); n != s {
		t.Errorf("ldd /bin/true under snap lists\n%s\nnatively\n%s", s, n)
	}
}
