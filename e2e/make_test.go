package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"snapshotter/internal/prereq"
)

// makePath is GNU make, from Debian's make package.
const makePath = "/usr/bin/make"

// makefile is what TestMake runs: recipes that only print (the host root is
// read-only to the sandbox), through make's /bin/sh, $(shell), a recursive
// make and a failing recipe.
const makefile = `NAME := world
FILES := $(shell echo one two three)
.PHONY: all hello list count fail sub
all: hello list count sub
hello:
	@echo "hello, $(NAME)"
list:
	@for f in $(FILES); do echo "file $$f"; done
count: list
	@echo "count $(words $(FILES)) $$((6*7))"
sub:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) hello NAME=submake
fail:
	@echo before failure
	@exit 3
	@echo not reached
`

// A makeCase runs make with the arguments after "-f Makefile". Its
// knownBroken key is "make/<name>".
type makeCase struct {
	name string
	spec spec
}

var makeCases = []makeCase{
	{"all", spec{want: []string{"hello, world", "file three", "count 3 42", "hello, submake"}}},
	{"jobs", spec{args: []string{"-j2"}, want: []string{"hello, world", "count 3 42", "hello, submake"}}},
	{"dry-run", spec{args: []string{"-n"}, want: []string{`echo "hello, world"`}}},
	{"fail", spec{args: []string{"fail"}, status: 2, want: []string{"before failure"}}},
	{"keep-going", spec{args: []string{"-k", "fail", "hello"}, status: 2, want: []string{"before failure", "hello, world"}}},
}

// TestMake runs GNU make on a Makefile in a directory the test makes,
// natively and under snap, and requires the same output and status.
func TestMake(t *testing.T) {
	if _, err := os.Stat(makePath); err != nil {
		prereq.Missing(t, "make (%s): %v", makePath, err)
	}
	mf := writeFile(t, filepath.Join(t.TempDir(), "src"), "Makefile", makefile)
	for _, c := range makeCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			compare(t, "make/"+c.name, append([]string{makePath, "-f", mf}, c.spec.args...), c.spec)
		})
	}
}
