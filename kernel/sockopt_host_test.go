package kernel_test

import (
	"strings"
	"testing"

	"snapshotter/internal/ctest"
	"snapshotter/kernel"
)

// TestHostSocketOptionsConfined runs testdata/c/sockoptpriv under
// --network host: the socket options that reach netfilter (the host's
// firewall, through structures whose pointers the host kernel follows in
// the sentry's address space) and SO_BINDTOIFINDEX must be EPERM, as for
// a process without CAP_NET_ADMIN, while ordinary options still reach the
// host socket. Run by root (as CI runs it), the options reached the host's
// netfilter before they were refused: EINVAL from its check of the zeroed
// structures.
func TestHostSocketOptionsConfined(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			bin := ctest.Program(t, lc, "sockoptpriv")
			out, st := runConfig(t, kernel.Config{Network: kernel.NetworkHost}, []string{bin}, nil, nil)
			if st != (kernel.ExitStatus{}) {
				t.Fatalf("sockoptpriv: status %v; output:\n%s", st, out)
			}
			want := []string{
				"ipt-replace: EPERM (1)",
				"ipt-add-counters: EPERM (1)",
				"arpt-replace: EPERM (1)",
				"ebt-entries: EPERM (1)",
				"ip6t-replace: EPERM (1)",
				"bindtoifindex: EPERM (1)",
				"reuseaddr: ok",
				"ip-tos: ok",
				"ipv6-tclass: ok",
				"done",
			}
			if got := strings.TrimSpace(out); got != strings.Join(want, "\n") {
				t.Errorf("sockoptpriv output:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
		})
	}
}
