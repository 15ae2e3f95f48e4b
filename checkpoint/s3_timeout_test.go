package checkpoint

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// TestS3SaveTimeout: a save to an S3 server that stops answering (SIGSTOP:
// it still accepts connections) fails after --timeout with one line
// saying so, whether the server stopped before the save (it fails while
// creating the image) or in the middle of the upload (the sandbox is
// paused then, and snap ps says it is saving); the sandbox resumes and
// goes on, no image is published,
// and once the server answers again its multipart uploads are gone.
func TestS3SaveTimeout(t *testing.T) {
	e := newEnv(t)
	srv := e.useMinIO("snaps")
	c := srv.Client(t)
	// 96 MiB that do not compress: the upload takes a while.
	id, out := e.runDetached("", program(t, "randmem"), "96")
	waitLines(t, out, 2)

	checkResumed := func(when string) {
		t.Helper()
		if m := e.meta(id); m["status"] != "running" || m["saving"] != nil {
			t.Fatalf("metadata after %s: status %v, saving %v; want running, not saving", when, m["status"], m["saving"])
		}
		n := len(lines(out))
		checkClean(t, "sandbox after "+when, waitLines(t, out, n+2))
	}

	// Stopped before the save.
	srv.Pause()
	msg := e.mustFail("save", id, "--to", "s3://snaps/p/before", "--timeout", "2s")
	srv.Resume()
	t.Logf("save to a stopped server: %s", msg)
	if !strings.Contains(msg, "save timed out after 2s") {
		t.Errorf("save to a stopped server: %q, want it to say it timed out after 2s", msg)
	}
	checkResumed("a save to a stopped server")

	// Stopped while the memory uploads: as soon as a multipart upload
	// exists.
	done := make(chan result, 1)
	go func() { done <- e.snap("save", id, "--to", "s3://snaps/p/during", "--timeout", "4s") }()
	ctx := context.Background()
	var r result
	for stopped := false; !stopped; {
		for u := range c.ListIncompleteUploads(ctx, "snaps", "", true) {
			if u.Err == nil {
				srv.Pause()
				stopped = true
				break
			}
		}
		if stopped {
			break
		}
		select {
		case r = <-done:
			t.Fatalf("save finished (exit %d, %q) before an upload could be seen; want a longer upload", r.code, r.stderr)
		case <-time.After(2 * time.Millisecond):
		}
	}
	// ps says what holds the sandbox.
	if ps := e.must("ps"); !strings.Contains(ps, "saving") {
		t.Errorf("snap ps during the stalled save = %q, want the sandbox shown saving", ps)
	}
	r = <-done
	srv.Resume()
	t.Logf("save stopped midway: %s", r.stderr)
	if msg := strings.TrimSpace(r.stderr); r.code == 0 || !strings.Contains(msg, "save timed out after 4s") || strings.Contains(msg, "\n") {
		t.Errorf("save with the server stopped midway: exit %d, stderr %q; want one line saying it timed out after 4s", r.code, r.stderr)
	}
	checkResumed("a save stopped midway")

	// Nothing published; the aborted upload is removed once the server
	// answers (the abort's requests were waiting for it). Chunks the save
	// stored before its deadline are content-addressed and may be shared,
	// so a failed S3 save leaves them to prune, which sweeps every chunk no
	// image references.
	if got := e.must("images", "--store", "s3://snaps/p"); strings.Contains(got, "before") || strings.Contains(got, "during") {
		t.Errorf("snap images after the failed saves = %q, want neither image", got)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var left []string
		for u := range c.ListIncompleteUploads(ctx, "snaps", "", true) {
			left = append(left, u.Key)
		}
		for o := range c.ListObjects(ctx, "snaps", minio.ListObjectsOptions{Prefix: "p/", Recursive: true}) {
			if !strings.HasPrefix(o.Key, "p/.chunks/") {
				left = append(left, o.Key)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the aborted save the bucket still holds %q", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.must("prune", "--store", "s3://snaps/p", "--older-than", "0s")
	var chunks []string
	for o := range c.ListObjects(ctx, "snaps", minio.ListObjectsOptions{Prefix: "p/", Recursive: true}) {
		chunks = append(chunks, o.Key)
	}
	if len(chunks) != 0 {
		t.Errorf("after snap prune the bucket still holds %q, want nothing: no image references them", chunks)
	}
	// The server answers again: a save works.
	e.must("save", id, "--to", "s3://snaps/p/after", "--leave-running")
}
