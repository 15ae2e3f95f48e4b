// Command snap runs, checkpoints and restores snapshotter sandboxes.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	// Start-up work for commands that start a sandbox (the platform made
	// in the background); see the package doc.
	_ "snapshotter/cmd/snapshotter/internal/early"
)

// mainStart is when main began: the end of the process's start-up
// (restore --timings reports it).
var mainStart time.Time

func main() {
	mainStart = time.Now()
	os.Exit(run(os.Args[1:]))
}

// run executes the CLI with args and returns the process exit status. User
// errors are printed as one line on stderr.
func run(args []string) int {
	first := ""
	if len(args) > 0 {
		first = args[0]
	}
	root := newRootCmd(first)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ex *exitError
		if errors.As(err, &ex) {
			return ex.code
		}
		fmt.Fprintf(os.Stderr, "snap: %v\n", err)
		return 1
	}
	return 0
}
