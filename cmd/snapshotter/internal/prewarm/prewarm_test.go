package prewarm

import (
	"strings"
	"testing"
)

func TestSandboxPlatform(t *testing.T) {
	tests := []struct {
		args     string
		platform string
		ok       bool
	}{
		{"run -- /bin/true", "ptrace", true},
		{"run /bin/true", "ptrace", true},
		{"run --debug --rootfs /r -- prog a b", "ptrace", true},
		{"run --rootfs=/r --platform=other -- prog", "other", true},
		{"--state-dir /s --store=file:///x run --platform ptrace -- prog", "ptrace", true},
		{"run --store s3://b/p prog", "ptrace", true},
		{"sentry --state-dir /s --id abc --ready-fd 3 --rootfs / --platform ptrace -- prog", "ptrace", true},
		{"run -d -- prog", "", false},
		{"run --detach=true prog", "", false},
		{"sentry --id abc --ready-fd 3 --restore file:///img", "", false},
		{"run", "", false},
		{"run --", "", false},
		{"run --rootfs", "", false},
		{"run --unknown prog", "", false},
		{"version", "", false},
		{"save abc", "", false},
		{"--help", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			platform, ok := SandboxPlatform(strings.Fields(tc.args))
			if platform != tc.platform || ok != tc.ok {
				t.Errorf("SandboxPlatform(%q) = %q, %v, want %q, %v", tc.args, platform, ok, tc.platform, tc.ok)
			}
		})
	}
}
