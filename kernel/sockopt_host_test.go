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
// the sentry's address space), SO_BINDTOIFINDEX and those Linux allows
// only with CAP_NET_ADMIN or CAP_NET_RAW must fail as for a process
// without them, and SO_ZEROCOPY as for a socket that cannot send without
// copying, while ordinary options still reach the host socket. Run
// by root (as CI runs it), they reached the host before they were
// refused: the netfilter ones failed with EINVAL from netfilter's own
// checks (of the 16 bytes the sentry passes on), the others succeeded.
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
				"mark: EPERM (1)",
				"rcvbufforce: EPERM (1)",
				"priority-7: EPERM (1)",
				"debug: EACCES (13)",
				"ip-transparent: EPERM (1)",
				"ipv6-transparent: EPERM (1)",
				"tcp-repair: EPERM (1)",
				"zerocopy: EOPNOTSUPP (95)",
				"reuseaddr: ok",
				"priority-3: ok",
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
