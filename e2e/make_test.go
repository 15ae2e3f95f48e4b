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
// make, parallel jobs and a failing recipe.
const makefile = `NAME := world
FILES := $(shell echo one two three)
.PHONY: all hello list count fail sub par pa pb pc chain step1 step2
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
par: pa pb pc
	@echo all done
pa pb pc:
	@sleep 0.05
chain: step2
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) hello NAME=chain
step2: step1
	@echo step2
step1:
	@echo step1
`

// A makeCase runs make with the arguments after "-f Makefile". Its
// knownBroken key is "make/<name>".
type makeCase struct {
	name string
	spec spec
}

var makeCases = []makeCase{
	{"all", spec{want: []string{"hello, world", "file three", "count 3 42", "hello, submake"}}},
	// Parallel jobs print nothing until all three are done, so that the output
	// does not depend on their order; the third waits for a jobserver token
	// while make also waits for SIGCHLD (pselect with a signal mask).
	{"jobs", spec{args: []string{"-j2", "par"}, want: []string{"all done"}}},
	{"jobs-chain", spec{args: []string{"-j2", "chain"}, want: []string{"step1", "step2", "hello, chain"}}},
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
