package e2e

import (
	"os"
	"testing"

	"snapshotter/internal/prereq"
)

// setprivPath is util-linux's setpriv, which changes IDs, groups,
// capability sets, the bounding set and no_new_privs before it executes
// its program.
const setprivPath = "/usr/bin/setpriv"

var setprivCases = []struct {
	name string
	spec spec
}{
	{"dump", spec{args: []string{"--dump"}, want: []string{"uid: 0", "Securebits: [none]"}}},
	{"user", spec{args: []string{"--nnp", "--reuid=1000", "--regid=1000", "--groups=5,6", setprivPath, "--dump"},
		want: []string{"uid: 1000", "egid: 1000", "Supplementary groups: 5,6", "no_new_privs: 1"}}},
	{"ambient", spec{args: []string{"--inh-caps=+net_raw", "--ambient-caps=+net_raw", setprivPath, "--dump"},
		want: []string{"Inheritable capabilities: net_raw", "Ambient capabilities: net_raw"}}},
	{"bounding", spec{args: []string{"--bounding-set=-net_raw", setprivPath, "--dump"}}},
}

// TestSetpriv runs setpriv as root (as CI does), natively and under snap:
// the credentials it sets up are those its child program reports.
func TestSetpriv(t *testing.T) {
	if _, err := os.Stat(setprivPath); err != nil {
		prereq.Missing(t, "util-linux setpriv (%s): %v", setprivPath, err)
	}
	if os.Geteuid() != 0 {
		prereq.Missing(t, "this test runs as root")
	}
	for _, c := range setprivCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			compare(t, "setpriv/"+c.name, append([]string{setprivPath}, c.spec.args...), c.spec)
		})
	}
}
