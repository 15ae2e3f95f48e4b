package kernel

import (
	"errors"
	"strings"
	"testing"
)

// TestParseShebang checks "#!" line parsing against the rules of Linux's
// load_script (fs/binfmt_script.c).
func TestParseShebang(t *testing.T) {
	long := "#!/bin/sh " + strings.Repeat("a", 300) + "\n"
	longPath := "#!/" + strings.Repeat("p", 300) + " x\n"
	tests := []struct {
		name   string
		in     string
		want   shebang
		script bool
		noExec bool
	}{
		{name: "elf", in: "\x7fELF\x02\x01\x01"},
		{name: "empty", in: ""},
		{name: "one byte", in: "#"},
		{name: "plain", in: "#!/bin/sh\necho hi\n", script: true, want: shebang{interp: "/bin/sh"}},
		{name: "no newline", in: "#!/bin/sh", script: true, want: shebang{interp: "/bin/sh"}},
		{name: "arg", in: "#!/bin/busybox sh\n", script: true, want: shebang{interp: "/bin/busybox", arg: "sh", hasArg: true}},
		{name: "blanks around", in: "#! \t/usr/bin/env  python3 -u \t\nx", script: true,
			want: shebang{interp: "/usr/bin/env", arg: "python3 -u", hasArg: true}},
		{name: "trailing blanks only", in: "#!/bin/sh   \n", script: true, want: shebang{interp: "/bin/sh"}},
		{name: "crlf", in: "#!/bin/sh\r\n", script: true, want: shebang{interp: "/bin/sh\r"}},
		{name: "nul ends name", in: "#!/bin/sh\x00 -x\n", script: true, want: shebang{interp: "/bin/sh"}},
		{name: "nul in arg", in: "#!/bin/sh -x\x00y\n", script: true, want: shebang{interp: "/bin/sh", arg: "-x", hasArg: true}},
		{name: "no interpreter", in: "#!\n", script: true, noExec: true},
		{name: "nul interpreter", in: "#!\x00 x\n", script: true, want: shebang{}},
		{name: "bare", in: "#!", script: true, want: shebang{}},
		{name: "blank interpreter", in: "#!  \t \n", script: true, noExec: true},
		{name: "only blanks, no newline", in: "#!" + strings.Repeat(" ", 254), script: true, noExec: true},
		{name: "long arg cut", in: long, script: true,
			want: shebang{interp: "/bin/sh", arg: strings.Repeat("a", binprmBufSize-1-len("#!/bin/sh ")), hasArg: true}},
		{name: "long path refused", in: longPath, script: true, noExec: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if len(in) > binprmBufSize {
				in = in[:binprmBufSize]
			}
			got, ok, err := parseShebang(in)
			if ok != tc.script {
				t.Fatalf("parseShebang(%q) script = %v, want %v", tc.in, ok, tc.script)
			}
			if tc.noExec {
				if !errors.Is(err, ErrNoExec) {
					t.Fatalf("parseShebang(%q) = %+v, %v, want ErrNoExec", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("parseShebang(%q) = %+v, %v, want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseShebang: no input panics, and a recognised interpreter holds no
// blank, NUL or newline.
func FuzzParseShebang(f *testing.F) {
	for _, s := range []string{"#!/bin/sh\n", "#! a b c\n", "#!", "#!\x00", "#!" + strings.Repeat("x", 260)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > binprmBufSize {
			in = in[:binprmBufSize]
		}
		s, ok, err := parseShebang(in)
		if !ok || err != nil {
			return
		}
		if strings.ContainsAny(s.interp, " \t\x00\n") {
			t.Fatalf("parseShebang(%q) interpreter = %q", in, s.interp)
		}
	})
}
