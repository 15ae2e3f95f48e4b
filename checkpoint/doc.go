// Package checkpoint holds the end-to-end checkpoint/restore tests, in
// CRIU's zdtm style: a real static C program (testdata/c) sets up state and
// checks it itself; the tests run it detached under the snap binary, save
// it, restore it (also several times at once) and read its output to see
// that its state survived. Bad images and bad requests must fail with one
// line on stderr, a non-zero status, no panic, and leave a running sandbox
// untouched.
//
// The package has no code of its own; see checkpoint_test.go.
package checkpoint
