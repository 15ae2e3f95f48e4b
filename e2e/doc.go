// Package e2e holds the end-to-end tests and benchmarks of snap: real static
// programs (C sources in testdata/c, compiled at test time with gcc and
// musl-gcc, and Debian's busybox-static applets) run natively and under
// `snap run`, and each case requires the same stdout, stderr and exit status
// from both; the C programs also run saved and restored mid-run (the zdtm
// mode, zdtm_test.go) with the same result. docs/TESTING.md explains how the
// suite works and how to add a program.
package e2e
