package kernel

import "testing"

func TestExitStatus(t *testing.T) {
	tests := []struct {
		st       ExitStatus
		shell    int
		str      string
		waitWord uint32
	}{
		{ExitStatus{}, 0, "exit status 0", 0},
		{ExitStatus{Code: 42}, 42, "exit status 42", 42 << 8},
		{ExitStatus{Code: 300}, 44, "exit status 300", 44 << 8},
		{ExitStatus{Signal: 9}, 137, "killed by signal 9", 9},
		{ExitStatus{Signal: 11}, 139, "killed by signal 11", 11},
	}
	for _, tc := range tests {
		if got := tc.st.ShellCode(); got != tc.shell {
			t.Errorf("%+v.ShellCode() = %d, want %d", tc.st, got, tc.shell)
		}
		if got := tc.st.String(); got != tc.str {
			t.Errorf("%+v.String() = %q, want %q", tc.st, got, tc.str)
		}
		if got := waitStatus(tc.st); got != tc.waitWord {
			t.Errorf("waitStatus(%+v) = %#x, want %#x", tc.st, got, tc.waitWord)
		}
	}
}
