// Command snap-s3 is the S3 helper of snap: it holds the S3 client
// (minio-go) so that the snap binary does not link it. Package storage
// starts it with pipes on its stdin and stdout and speaks the protocol of
// storage/s3wire; it is not meant to be run by hand.
//
// It exits when its input ends (snap closed it or exited) and is killed
// with its parent (PR_SET_PDEATHSIG, set by snap when it starts it, and
// again here in case snap did not).
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"snapshotter/storage/s3"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "snap-s3: the S3 helper of snap takes no arguments; snap starts it when it uses an s3:// store")
		os.Exit(2)
	}
	parent := os.Getppid()
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if os.Getppid() != parent {
		os.Exit(1) // the parent died before the prctl
	}
	if err := s3.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "snap-s3:", err)
		os.Exit(1)
	}
}
