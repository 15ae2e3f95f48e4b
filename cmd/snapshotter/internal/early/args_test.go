package early

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
		{"run --pids 20 --memory=1G -- prog", "ptrace", true},
		{"run --tmpfs /scratch --tmpfs=/t:size=1M -- prog", "ptrace", true},
		{"--state-dir /s --store=file:///x run --platform ptrace -- prog", "ptrace", true},
		{"run --store s3://b/p prog", "ptrace", true},
		{"sentry --state-dir /s --id abc --ready-fd 3 --rootfs / --platform ptrace -- prog", "ptrace", true},
		{"run -d -- prog", "", false},
		{"run --detach=true prog", "", false},
		{"sentry --id abc --ready-fd 3 --launched-at 17 -- prog", "ptrace", true},
		{"sentry --id abc --ready-fd 3 --restore file:///img", "ptrace", true},
		{"sentry --id abc --ready-fd 3 --pool p --platform other --restore file:///img", "other", true},
		{"sentry --id abc --ready-fd 3 --launched-at=17 --restore=img --platform other --verify k.pem", "other", true},
		{"restore file:///img", "ptrace", true},
		{"restore img --timings --platform=other", "other", true},
		{"restore img --no-cache", "ptrace", true},
		{"--store /s restore --verify k.pem --rootfs / img --pids 5", "ptrace", true},
		{"restore img -d", "", false},
		{"restore -d --stdout o img", "", false},
		{"restore", "", false},
		{"restore img other", "", false},
		{"restore -- img", "", false},
		{"restore img --unknown", "", false},
		{"run --restore img -- prog", "", false},
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
