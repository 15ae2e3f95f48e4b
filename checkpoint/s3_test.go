package checkpoint

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/storage/miniotest"
)

// useMinIO starts a real MinIO for the test with the given bucket and
// points the environment's snap at it.
func (e *env) useMinIO(bucket string) *miniotest.Server {
	srv := miniotest.Start(e.t)
	srv.MakeBucket(e.t, bucket)
	e.extra = []string{
		"SNAP_S3_ENDPOINT=http://" + srv.Endpoint,
		"AWS_ACCESS_KEY_ID=" + miniotest.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey,
	}
	return srv
}

// TestS3RoundTrip saves a running sandbox to a real MinIO and restores it
// from there twice, once with the image URI and once from the store
// (--store s3://bucket/prefix with a bare name).
func TestS3RoundTrip(t *testing.T) {
	e := newEnv(t)
	e.useMinIO("snaps")
	id, out := e.runDetached("", program(t, "sleeper"))
	uri, last := e.saveAfter(id, out, 2, "--to", "s3://snaps/pool/sleeper")
	if uri != "s3://snaps/pool/sleeper" {
		t.Errorf("snap save --to s3://snaps/pool/sleeper printed %q", uri)
	}
	want := fmt.Sprintf("slept %d", number(t, last)+1)
	for i, args := range [][]string{
		{"restore", uri},
		{"--store", "s3://snaps/pool", "restore", "sleeper"},
	} {
		rout := filepath.Join(e.dir, fmt.Sprintf("restored-%d", i))
		id := strings.TrimSpace(e.must(append(args, "-d", "--stdout", rout)...))
		ls := waitLines(t, rout, 2)
		checkClean(t, "restored from S3", ls)
		if ls[0] != want {
			t.Errorf("snap %s: first line %q, want %q", strings.Join(args, " "), ls[0], want)
		}
		e.must("kill", id, "KILL")
	}
	if msg := e.mustFail("save", "nosuch", "--to", "s3://snaps/pool/x"); !strings.Contains(msg, "no such sandbox") {
		t.Errorf("save of an unknown ID to S3: %q", msg)
	}
}
