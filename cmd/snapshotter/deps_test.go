package main

import (
	"os/exec"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
)

// TestNoMinioInSnap keeps minio-go (and with it net/http and crypto/tls)
// out of the snap binary: S3 stores reach it through the snap-s3 helper,
// and every snap process would otherwise pay its start-up.
func TestNoMinioInSnap(t *testing.T) {
	gobin := prereq.Binary(t, "go")
	out, err := exec.Command(gobin, "list", "-deps", "snapshotter/cmd/snapshotter").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps snapshotter/cmd/snapshotter = %d packages, want the dependency list", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/minio/") {
			t.Errorf("snap imports %s; S3 code belongs in storage/s3 (the snap-s3 helper)", p)
		}
	}
}
