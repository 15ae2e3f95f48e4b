// Command stategen generates stateify serializers.
//
// For each package matched by its arguments (default "."), it finds the
// types whose doc comment holds the line `+stateify savable` and writes
// <pkg>_state_autogen.go next to them with StateTypeName, StateFields,
// StateTypeInfo, StateSave and StateLoad methods and an init function that
// registers each type with stateify. Packages without annotated types get no
// file (a stale one is removed).
//
// A type is saved under PKG.Type, PKG given by the package's one
// `+stateify package=PKG` line, or under the full name of its annotation's
// option (`+stateify savable name=PKG.Type`), never under its Go import
// path, so that a type can move between packages without breaking images.
// Two types with one saved name that can meet in one program are an error.
//
// Usage:
//
//	stategen [-check] [packages]
//
// With -check nothing is written: stategen lists every generated file that
// is missing, stale or superfluous and exits with status 1 if there is one.
// A field that cannot be saved is reported as file:line and exits 1.
//
// Each package holds `//go:generate go run snapshotter/tools/stategen`, so
// `go generate ./...` regenerates everything. See docs/ANNOTATING.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	check := flag.Bool("check", false, "report stale generated files instead of writing them; exit 1 if any")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: stategen [-check] [packages]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"."}
	}
	os.Exit(run(patterns, *check, os.Stderr))
}

// run generates (or with check, verifies) the packages matched by patterns
// and returns the process exit status.
func run(patterns []string, check bool, stderr io.Writer) int {
	outs, err := Generate(".", patterns)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	status := 0
	for _, o := range outs {
		if o.NoDirective && check {
			fmt.Fprintf(stderr, "stategen: %s: package has +stateify savable types but no %q line\n", rel(filepath.Dir(o.Path)), directive)
			status = 1
		}
		stale, err := o.Stale()
		if err != nil {
			fmt.Fprintf(stderr, "stategen: %v\n", err)
			return 1
		}
		if !stale {
			continue
		}
		if check {
			switch {
			case o.Content == nil:
				fmt.Fprintf(stderr, "stategen: %s: no annotated types left; remove it (run go generate)\n", rel(o.Path))
			default:
				fmt.Fprintf(stderr, "stategen: %s is stale or missing; run go generate ./...\n", rel(o.Path))
			}
			status = 1
			continue
		}
		if err := o.Write(); err != nil {
			fmt.Fprintf(stderr, "stategen: %v\n", err)
			return 1
		}
	}
	return status
}
