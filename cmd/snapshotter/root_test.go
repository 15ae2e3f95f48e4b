package main

import (
	"bytes"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// TestCommandNames checks that each command is registered under the name
// cobra gives it, so that newRootCmd(name) builds the command the command
// line names.
func TestCommandNames(t *testing.T) {
	for name, add := range commands {
		if got := add(&globalFlags{}).Name(); got != name {
			t.Errorf("commands[%q] makes command %q, want %q", name, got, name)
		}
	}
}

// TestRootCmdTrees checks which commands newRootCmd builds: the one named
// first alone, or the whole tree (with cobra's help and completion) for
// anything else.
func TestRootCmdTrees(t *testing.T) {
	var all []string
	for name := range commands {
		all = append(all, name)
	}
	all = append(all, "completion", "help")
	sort.Strings(all)
	tests := []struct {
		first string
		want  []string
	}{
		{"version", []string{"help", "version"}},
		{"run", []string{"help", "run"}},
		{"pool", []string{"help", "pool"}},
		{"images", []string{"help", "images"}},
		{"", all},
		{"help", all},
		{"--state-dir", all},
		{"nosuchcommand", all},
	}
	for _, tc := range tests {
		t.Run(tc.first, func(t *testing.T) {
			root := newRootCmd(tc.first)
			root.InitDefaultHelpCmd()
			root.InitDefaultCompletionCmd()
			var got []string
			for _, c := range root.Commands() {
				got = append(got, c.Name())
			}
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("newRootCmd(%q) commands = %v, want %v", tc.first, got, tc.want)
			}
		})
	}
}

func TestVersionAlone(t *testing.T) {
	root := newRootCmd("version")
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatalf("snap version: %v", err)
	}
	if want := "snap " + version + " "; !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("snap version = %q, want %q... with %s", out.String(), want, runtime.Version())
	}
}
