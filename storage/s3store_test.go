package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"snapshotter/storage"
	"snapshotter/storage/miniotest"
	"snapshotter/storage/storetest"
)

func newS3Store(t *testing.T, srv *miniotest.Server, bucket, prefix string) storage.Store {
	t.Helper()
	s, err := storage.NewS3Store(context.Background(), storage.S3Config{
		Endpoint: srv.Endpoint, AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey,
		Bucket: bucket, Prefix: prefix, PartSize: 5 << 20, Threads: 3, MaxRetries: 2,
	})
	if err != nil {
		t.Fatalf("NewS3Store: %v", err)
	}
	return s
}

// s3Where splits a store URI into bucket and key prefix (with a trailing
// slash, or empty).
func s3Where(s storage.Store) (bucket, prefix string) {
	bucket, prefix, _ = strings.Cut(strings.TrimPrefix(s.URI(), "s3://"), "/")
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix
}

// s3Objects lists every object and every incomplete multipart upload
// ("upload:KEY") under the store's prefix.
func s3Objects(t *testing.T, c *minio.Client, s storage.Store) []string {
	t.Helper()
	bucket, prefix := s3Where(s)
	ctx := context.Background()
	var out []string
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s: %v", bucket, o.Err)
		}
		out = append(out, strings.TrimPrefix(o.Key, prefix))
	}
	// MinIO lists uploads for an empty prefix or an exact key only.
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("list uploads %s: %v", bucket, u.Err)
		}
		if strings.HasPrefix(u.Key, prefix) {
			out = append(out, "upload:"+strings.TrimPrefix(u.Key, prefix))
		}
	}
	sort.Strings(out)
	return out
}

func s3Harness(srv *miniotest.Server, c *minio.Client) storetest.Harness {
	var n atomic.Int32
	key := func(s storage.Store, name, key string) (string, string) {
		bucket, prefix := s3Where(s)
		return bucket, prefix + name + "/" + key
	}
	return storetest.Harness{
		New: func(t *testing.T) storage.Store {
			bucket := fmt.Sprintf("suite-%d", n.Add(1))
			srv.MakeBucket(t, bucket)
			return newS3Store(t, srv, bucket, "some/prefix")
		},
		Objects: func(t *testing.T, s storage.Store) []string { return s3Objects(t, c, s) },
		Rewrite: func(t *testing.T, s storage.Store, name, k string, f func([]byte) []byte) {
			bucket, obj := key(s, name, k)
			o, err := c.GetObject(context.Background(), bucket, obj, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(o)
			o.Close()
			if err != nil {
				t.Fatalf("get %s: %v", obj, err)
			}
			b = f(b)
			if _, err := c.PutObject(context.Background(), bucket, obj, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		Chunk: func(sum string) (string, string) { return ".chunks", sum },
		Remove: func(t *testing.T, s storage.Store, name, k string) {
			bucket, obj := key(s, name, k)
			if err := c.RemoveObject(context.Background(), bucket, obj, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		SparseSize: 2 << 30,
	}
}

func TestS3Store(t *testing.T) {
	srv := miniotest.Start(t)
	storetest.Run(t, s3Harness(srv, srv.Client(t)))
}

// TestS3MissingBucket: a store whose bucket does not exist reports
// ErrNotFound, not an empty list.
func TestS3MissingBucket(t *testing.T) {
	srv := miniotest.Start(t)
	s := newS3Store(t, srv, "no-such-bucket", "")
	ctx := context.Background()
	if _, err := s.List(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("List(missing bucket) = %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(missing bucket) = %v, want ErrNotFound", err)
	}
}

// TestS3ServerKilledMidWrite kills MinIO in the middle of an upload: the
// writer must fail, no image may appear, and after a restart Prune leaves
// nothing behind and the next write succeeds.
func TestS3ServerKilledMidWrite(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "fault")
	c := srv.Client(t)
	s := newS3Store(t, srv, "fault", "p")
	ctx := context.Background()
	goroutines := runtime.NumGoroutine()

	w, err := s.Create(ctx, "victim", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	if _, err := w.StateWriter().Write(bytes.Repeat([]byte("state"), 1000)); err != nil {
		t.Fatalf("state write = %v", err)
	}
	// Incompressible memory, so the upload is in progress when the server
	// dies; the server is killed once 24 MiB have been handed over.
	buf := make([]byte, 1<<20)
	var werr error
	for i := uint64(0); i < 512 && werr == nil; i++ {
		for p := 0; p < len(buf); p += storage.PageSize {
			storetest.FillPage(buf[p:p+storage.PageSize], storetest.KindRandom, i*256+uint64(p/storage.PageSize))
		}
		if i == 24 {
			srv.Kill()
		}
		werr = w.WriteMemory(i<<20, buf)
	}
	_, cerr := w.Commit()
	if werr == nil && cerr == nil {
		t.Fatalf("write with the server killed: WriteMemory and Commit both succeeded")
	}
	w.Abort() // may fail: the server is down; Prune cleans up below.

	srv.Restart(t)
	if _, err := s.Open(ctx, "victim"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(victim) after failed write = %v, want ErrNotFound", err)
	}
	if ents, err := s.List(ctx); err != nil || len(ents) != 0 {
		t.Errorf("List after failed write = %v, %v; want empty", ents, err)
	}
	if _, err := s.Prune(ctx, 0); err != nil {
		t.Fatalf("Prune = %v", err)
	}
	if objs := s3Objects(t, c, s); len(objs) != 0 {
		t.Errorf("after Prune the store holds %v, want nothing", objs)
	}
	// No goroutine of the failed writer survives.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+5 {
		t.Errorf("%d goroutines after the failed write, %d before", n, goroutines)
	}

	w, err = s.Create(ctx, "victim", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create after restart = %v", err)
	}
	defer w.Abort()
	storetest.FillMixed(buf, 0)
	if err := w.WriteMemory(0, buf); err != nil {
		t.Fatalf("WriteMemory after restart = %v", err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("Commit after restart = %v", err)
	}
	img, err := s.Open(ctx, "victim")
	if err != nil {
		t.Fatalf("Open after restart = %v", err)
	}
	defer img.Close()
	if err := img.Verify(ctx); err != nil {
		t.Errorf("Verify after restart = %v", err)
	}
}

func TestS3ConfigFromEnv(t *testing.T) {
	tests := []struct {
		endpoint, region string
		want             storage.S3Config
		err              error
	}{
		{"", "", storage.S3Config{Endpoint: "s3.amazonaws.com", Secure: true}, nil},
		{"http://127.0.0.1:9000", "", storage.S3Config{Endpoint: "127.0.0.1:9000"}, nil},
		{"https://s3.example.com/", "eu-1", storage.S3Config{Endpoint: "s3.example.com", Secure: true, Region: "eu-1"}, nil},
		{"minio.local:9000", "", storage.S3Config{Endpoint: "minio.local:9000", Secure: true}, nil},
		{"http://host/path", "", storage.S3Config{}, storage.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Setenv("SNAP_S3_ENDPOINT", tc.endpoint)
		t.Setenv("AWS_REGION", tc.region)
		t.Setenv("AWS_DEFAULT_REGION", "")
		got, err := storage.S3ConfigFromEnv()
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || err == nil && got != tc.want {
			t.Errorf("S3ConfigFromEnv(SNAP_S3_ENDPOINT=%q) = %+v, %v; want %+v, %v", tc.endpoint, got, err, tc.want, tc.err)
		}
	}
}

// TestS3URIFromEnv goes through the URI path a user takes: s3:// URIs with
// the endpoint and credentials from the environment.
func TestS3URIFromEnv(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "env")
	t.Setenv("SNAP_S3_ENDPOINT", "http://"+srv.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.SecretKey)
	ctx := context.Background()
	const uri = "s3://env/team/images/app"
	w, err := storage.CreateImage(ctx, uri, "", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("CreateImage(%s) = %v", uri, err)
	}
	defer w.Abort()
	buf := make([]byte, 1<<20)
	storetest.FillMixed(buf, 0)
	if err := w.WriteMemory(0, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if w.URI() != uri {
		t.Errorf("URI() = %s, want %s", w.URI(), uri)
	}
	img, err := storage.OpenImage(ctx, uri, "/ignored")
	if err != nil {
		t.Fatalf("OpenImage(%s) = %v", uri, err)
	}
	defer img.Close()
	got := make([]byte, len(buf))
	if err := img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil }); err != nil {
		t.Fatalf("ReadMemoryTo = %v", err)
	}
	if !bytes.Equal(got, buf) {
		t.Errorf("memory read back through %s differs", uri)
	}
	s, err := storage.Open(ctx, "s3://env/team/images")
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := s.List(ctx); err != nil || len(ents) != 1 || ents[0].URI != uri {
		t.Errorf("List(s3://env/team/images) = %+v, %v; want just %s", ents, err, uri)
	}
}

// TestS3PrivateAndPrune: what a save writes to S3 is not readable without
// credentials (no public ACL or policy is set), and Prune removes an
// incomplete multipart upload and an unreferenced generation once old
// enough, says what it removed, and leaves the published image alone.
func TestS3PrivateAndPrune(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "priv")
	c := srv.Client(t)
	s := newS3Store(t, srv, "priv", "p")
	writeSmallImage(t, s, "img")
	ctx := context.Background()

	for _, path := range []string{"/priv/p/img/manifest", "/priv/", "/priv/?list-type=2"} {
		resp, err := http.Get("http://" + srv.Endpoint + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("anonymous GET %s = %s, want 403 Forbidden", path, resp.Status)
		}
	}
	if p, err := c.GetBucketPolicy(ctx, "priv"); err != nil || p != "" {
		t.Errorf("bucket policy = %q, %v; want none", p, err)
	}

	// What a killed writer leaves: an upload never completed and a
	// generation no manifest names.
	core := minio.Core{Client: c}
	if _, err := core.NewMultipartUpload(ctx, "priv", "p/dead/g-0badc0de/memory.bin", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "priv", "p/dead/g-0badc0de/state.zst", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Prune(ctx, time.Hour); err != nil || len(got) != 0 {
		t.Errorf("Prune(1h) = %q, %v; want nothing removed (all is young)", got, err)
	}
	got, err := s.Prune(ctx, 0)
	want := []string{"s3://priv/p/dead/g-0badc0de/memory.bin (incomplete upload)", "s3://priv/p/dead/g-0badc0de/state.zst"}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Prune(0) = %q, %v; want %q", got, err, want)
	}
	objs := s3Objects(t, c, s)
	if len(objs) != 4 || !strings.HasPrefix(objs[0], ".chunks/") || !strings.HasPrefix(objs[1], "img/") {
		t.Errorf("after Prune the store holds %q, want img's chunk and its 3 objects", objs)
	}
	img, err := s.Open(ctx, "img")
	if err != nil {
		t.Fatalf("Open(img) after Prune = %v", err)
	}
	if err := img.Verify(ctx); err != nil {
		t.Errorf("Verify(img) after Prune = %v", err)
	}
	img.Close()
}

// TestS3StoppedServer: requests to a server that accepts connections but
// answers nothing (SIGSTOP) fail on the store's request deadlines, even
// without a context deadline, instead of waiting forever.
func TestS3StoppedServer(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "stopped")
	s, err := storage.NewS3Store(context.Background(), storage.S3Config{
		Endpoint: srv.Endpoint, AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey,
		Bucket: "stopped", MaxRetries: 1,
		DialTimeout: time.Second, HeaderTimeout: time.Second, IdleTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	writeSmallImage(t, s, "img")
	srv.Pause()
	defer srv.Resume()
	ctx := context.Background()
	within(t, "List", func() {
		if _, err := s.List(ctx); err == nil {
			t.Errorf("List with the server stopped = nil error, want a timeout")
		}
	})
	within(t, "Open", func() {
		if img, err := s.Open(ctx, "img"); err == nil {
			img.Close()
			t.Errorf("Open with the server stopped = nil error, want a timeout")
		}
	})
	within(t, "Create", func() {
		if w, err := s.Create(ctx, "new", storage.CreateOptions{}); err == nil {
			w.Abort()
			t.Errorf("Create with the server stopped = nil error, want a timeout")
		}
	})
}

// TestS3CreatePrunesStale: a new write first aborts the store's
// incomplete uploads older than StaleAge (a day by default), so a killed
// writer's upload does not stay forever, and leaves younger ones alone.
func TestS3CreatePrunesStale(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "stale")
	c := srv.Client(t)
	ctx := context.Background()
	core := minio.Core{Client: c}
	if _, err := core.NewMultipartUpload(ctx, "stale", "p/dead/g-0badc0de/memory.bin", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	uploads := func() int {
		n := 0
		for u := range c.ListIncompleteUploads(ctx, "stale", "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
		}
		return n
	}
	writeSmallImage(t, newS3Store(t, srv, "stale", "p"), "young")
	if n := uploads(); n != 1 {
		t.Errorf("after a write with the default stale age: %d incomplete uploads, want the young one kept", n)
	}
	s, err := storage.NewS3Store(ctx, storage.S3Config{
		Endpoint: srv.Endpoint, AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey,
		Bucket: "stale", Prefix: "p", StaleAge: time.Nanosecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	writeSmallImage(t, s, "next")
	if n := uploads(); n != 0 {
		t.Errorf("after a write with a 1ns stale age: %d incomplete uploads, want none", n)
	}
	for _, name := range []string{"young", "next"} {
		img, err := s.Open(ctx, name)
		if err != nil {
			t.Fatalf("Open(%s) = %v", name, err)
		}
		img.Close()
	}
}
