package storage_test

import (
	"fmt"
	"os"
	"testing"

	"snapshotter/storage"
	"snapshotter/storage/miniotest"
)

// TestMain builds the S3 helper snap-s3 once and points the S3 stores of
// the tests at it.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
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
