package storage_test

import (
	"fmt"
	"os"
	"testing"

	"snapshotter/storage"
	"snapshotter/storage/miniotest"
)

// TestMain builds the S3 helper snap-s3 once and points the S3 stores of
// the tests at it, unless SNAP_S3_HELPER names one already (for example a
// helper built with -race, run with GORACE=halt_on_error=1).
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv(storage.S3HelperEnv) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "snap-storage-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := miniotest.BuildS3Helper(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv(storage.S3HelperEnv, bin)
	return m.Run()
}
