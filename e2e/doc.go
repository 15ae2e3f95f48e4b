// Package e2e holds the end-to-end tests and benchmarks of snap: real static
// programs (C sources in testdata/c, compiled at test time with gcc and
// musl-gcc, and Debian's busybox-static applets) run natively and under
// `snap run`, and each case requires the same stdout, stderr and exit status
// from both. docs/TESTING.md explains how the suite works and how to add a
// program.
package e2e
