package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestInetOutside: the sandbox's network reaches nothing outside it:
// connecting or sending to an address that is not the loopback is
// ENETUNREACH (only under snap: natively it would leave the host).
func TestInetOutside(t *testing.T) {
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(snap(t), "run", "--", program(t, lc, "inet"), "outside").CombinedOutput()
			if err != nil {
				t.Fatalf("snap run inet outside: %v\n%s", err, out)
			}
			want := "connect 192.0.2.1: ENETUNREACH\nudp sendto 192.0.2.1: ENETUNREACH\nconnect [2001:db8::1]: ENETUNREACH\n"
			if got := string(out); got != want {
				t.Errorf("snap run inet outside printed\n%s\nwant\n%s", got, strings.TrimSpace(want))
			}
		})
	}
}
