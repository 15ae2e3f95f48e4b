package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"snapshotter/storage"
)

// TestSaveCompression: a bad --compression or --level is one line on
// stderr and leaves the sandbox running and no image behind; each codec
// the flags select writes an image that restores with every checksum
// intact.
func TestSaveCompression(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	waitLines(t, out, 2)
	images := filepath.Join(e.dir, "data", "snap", "images")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown codec", []string{"--compression", "lz4"}, `compression "lz4"`},
		{"upper case codec", []string{"--compression", "S2"}, `compression "S2"`},
		{"s2 level too high", []string{"--level", "4"}, "s2 level 4 out of range"},
		{"zstd level too high", []string{"--compression", "zstd", "--level", "23"}, "zstd level 23 out of range"},
		{"negative level", []string{"--compression", "zstd", "--level", "-1"}, "zstd level -1 out of range"},
		{"level not a number", []string{"--level", "fast"}, "--level"},
		{"recompress a tracked save", []string{"--leave-running", "--track", "--recompress"}, "--recompress with --sign, --parent or --track"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := "bad-" + strings.ReplaceAll(tc.name, " ", "-")
			n := len(lines(out))
			msg := e.mustFail(append([]string{"save", id, "--to", to}, tc.args...)...)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("snap save %s: stderr %q, want it to say %q", strings.Join(tc.args, " "), msg, tc.want)
			}
			if st := e.meta(id)["status"]; st != "running" {
				t.Fatalf("sandbox status after a bad save = %v, want running", st)
			}
			if _, err := os.Stat(filepath.Join(images, to)); !os.IsNotExist(err) {
				t.Errorf("a bad save left image %s (stat: %v)", to, err)
			}
			checkClean(t, "sandbox", waitLines(t, out, n+2))
		})
	}

	for _, tc := range []struct {
		name string
		args []string
		want storage.Compression
	}{
		// Rewritten in the background after the save (snap recompress):
		// the image is checked and restored once it is zstd.
		{"recompress", []string{"--recompress"}, storage.Compression{Algorithm: storage.CodecZstd, Level: 1}},
		{"default", nil, storage.Compression{Algorithm: storage.CodecS2, Level: storage.S2Better}},
		{"s2-fast", []string{"--compression", "s2", "--level", "1"}, storage.Compression{Algorithm: storage.CodecS2, Level: storage.S2Fast}},
		{"zstd", []string{"--compression", "zstd"}, storage.Compression{Algorithm: storage.CodecZstd, Level: 1}},
		{"zstd-3", []string{"--compression", "zstd", "--level", "3"}, storage.Compression{Algorithm: storage.CodecZstd, Level: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := lines(out)
			e.must(append([]string{"save", id, "--leave-running", "--to", tc.name}, tc.args...)...)
			after := lines(out)
			var m *storage.Manifest
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				b, err := os.ReadFile(filepath.Join(images, tc.name, "manifest"))
				if err != nil {
					t.Fatal(err)
				}
				if m, err = storage.ParseManifest(b); err != nil {
					t.Fatalf("ParseManifest(%s) = %v", tc.name, err)
				}
				if m.Compression == tc.want || time.Now().After(deadline) {
					break
				}
			}
			if m.Compression != tc.want {
				t.Errorf("compression of image %s = %+v, want %+v", tc.name, m.Compression, tc.want)
			}
			rid, rout := e.restoreDetached(tc.name, "")
			rl := waitLines(t, rout, 2)
			checkClean(t, "restored", rl)
			lo, hi := number(t, before[len(before)-1]), number(t, after[len(after)-1])
			if n := number(t, rl[0]); n < lo+1 || n > hi+1 || !strings.HasSuffix(rl[0], "sum OK") {
				t.Errorf("restored first line = %q, want count N sum OK with %d <= N <= %d", rl[0], lo+1, hi+1)
			}
			e.must("kill", rid, "KILL")
		})
	}
}
