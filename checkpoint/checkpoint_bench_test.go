package checkpoint

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"snapshotter/internal/ctest"
	"snapshotter/storage"
)

// memWorkload fills N MiB with interleaved zero pages and compressible data
// pages, prints "ready", then prints "alive K" every 10 ms.
const memWorkload = `#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
int main(int argc, char **argv) {
	unsigned long mib = strtoul(argv[1], 0, 10), size = mib << 20;
	unsigned long *p = mmap(0, size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return 2;
	for (unsigned long pg = 0; pg < size / 4096; pg += 2)
		for (unsigned long i = 0; i < 512; i++)
			p[pg * 512 + i] = (pg << 32) | (i & 7);
	printf("ready\n"); fflush(stdout);
	struct timespec ts = {0, 10000000};
	for (unsigned long k = 1;; k++) {
		nanosleep(&ts, 0);
		printf("alive %lu %lu\n", k, p[(k % (size / 8192)) * 1024]); fflush(stdout);
	}
}`

func buildWorkload(b *testing.B) string {
	b.Helper()
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	return ctest.Source(b, "gcc", "memload", memWorkload, "-static", "-O2")
}

var pausedRE = regexp.MustCompile(`paused ([0-9.]+[a-zµ]+)`)

// benchWorkload is one program BenchmarkCheckpoint saves and restores.
type benchWorkload struct {
	name string
	argv []string
	// save are extra arguments of snap save.
	save []string
	// recompress saves with --recompress (not the --leave-running save):
	// the image is measured, and restored, once rewritten.
	recompress bool
	// fresh also saves a second run of the program into an empty store
	// (fresh-save-ms): a user's first save, which stores every chunk,
	// where the measured save finds them stored by the --leave-running
	// save before it.
	fresh bool
}

// checkpointWorkloads are memload at 64, 256 and 1024 MiB, and the peers'
// reference workload memtouch (testdata/c/memtouch.c) at 1 GiB, saved with
// the default codec (S2), with zstd level 1 (no entropy coding: levels up
// to 3), with zstd level 4 (entropy coding), and with S2 then rewritten in
// the background as zstd level 1 with entropy coding (--recompress).
func checkpointWorkloads(b *testing.B) []benchWorkload {
	memload := buildWorkload(b)
	memtouch := program(b, "memtouch")
	var ws []benchWorkload
	for _, mib := range []int{64, 256, 1024} {
		ws = append(ws, benchWorkload{name: fmt.Sprintf("%dMiB", mib), argv: []string{memload, strconv.Itoa(mib)}})
	}
	touch := []string{memtouch, "1024", "/dev/stdout"}
	return append(ws,
		benchWorkload{name: "memtouch-1GiB-s2", argv: touch, fresh: true},
		benchWorkload{name: "memtouch-1GiB-zstd1", argv: touch, save: []string{"--compression", "zstd", "--level", "1"}},
		benchWorkload{name: "memtouch-1GiB-zstd4", argv: touch, save: []string{"--compression", "zstd", "--level", "4"}},
		benchWorkload{name: "memtouch-1GiB-s2-recompress", argv: touch, recompress: true, fresh: true},
	)
}

// BenchmarkCheckpoint measures, for each of checkpointWorkloads: the time
// of `snap save` (client wall time), how long the sandbox was paused (also
// for a save with --leave-running, which resumes the sandbox once its
// memory is read, before the image is committed), the time from `snap
// restore -d` until the program prints again, and the image size; next to
// a same-run memcpy of the same size. With recompress, recompressed-ms is
// from the start of the save until the rewritten image is published, and
// image-MiB is the rewritten image's. With fresh, fresh-save-ms is the
// time of `snap save` of another run of the program into an empty store.
func BenchmarkCheckpoint(b *testing.B) {
	for _, w := range checkpointWorkloads(b) {
		mib, _ := strconv.Atoi(w.argv[1])
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			e := &env{dir: b.TempDir()}
			b.Cleanup(e.killAll)
			var saveT, pauseT, pauseLR, restoreT, memcpyT, recompressT, freshT time.Duration
			var imageBytes int64
			src := make([]byte, mib<<20)
			dst := make([]byte, mib<<20)
			for i := range src {
				src[i] = byte(i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id, out := e.benchRun(b, w.argv...)
				waitLinesB(b, out, 2)

				// First a save that leaves it running, then the real one.
				e.benchSnap(b, append([]string{"save", id, "--leave-running", "--to", fmt.Sprintf("lr%d", i)}, w.save...)...)
				logb, _ := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
				if m := pausedRE.FindSubmatch(logb); m != nil {
					d, _ := time.ParseDuration(string(m[1]))
					pauseLR += d
				}
				os.WriteFile(filepath.Join(e.dir, "state", id, "sentry.log"), nil, 0o600)

				start := time.Now()
				args := append([]string{"save", id, "--to", fmt.Sprintf("img%d", i)}, w.save...)
				if w.recompress {
					args = append(args, "--recompress")
				}
				uri := strings.TrimSpace(e.benchSnap(b, args...))
				saveT += time.Since(start)
				if w.recompress {
					waitRecompressed(b, filepath.Join(e.dir, "data", "snap", "images", fmt.Sprintf("img%d", i)))
					recompressT += time.Since(start)
				}
				logb, _ = os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
				if m := pausedRE.FindSubmatch(logb); m != nil {
					d, _ := time.ParseDuration(string(m[1]))
					pauseT += d
				}
				imageBytes += imageSize(b, filepath.Join(e.dir, "data", "snap", "images", fmt.Sprintf("img%d", i)))

				rout := filepath.Join(e.dir, fmt.Sprintf("r%d", i))
				start = time.Now()
				rid := strings.TrimSpace(e.benchSnap(b, "restore", uri, "-d", "--stdout", rout))
				waitLinesB(b, rout, 1)
				restoreT += time.Since(start)
				e.benchSnap(b, "kill", rid, "KILL")
				killAllIn(filepath.Join(e.dir, "state"))
				if ls := lines(rout); strings.Contains(ls[0], "BAD") {
					b.Fatalf("%s: restored program printed %q", w.name, ls[0])
				}

				if w.fresh {
					freshT += e.freshSave(b, w, i)
				}

				start = time.Now()
				copy(dst, src)
				memcpyT += time.Since(start)
			}
			n := float64(b.N)
			b.ReportMetric(float64(saveT.Milliseconds())/n, "save-ms")
			b.ReportMetric(float64(pauseT.Milliseconds())/n, "paused-ms")
			b.ReportMetric(float64(pauseLR.Milliseconds())/n, "paused-leave-running-ms")
			b.ReportMetric(float64(restoreT.Milliseconds())/n, "restore-ms")
			b.ReportMetric(float64(imageBytes)/n/(1<<20), "image-MiB")
			b.ReportMetric(float64(memcpyT.Microseconds())/n/1000, "memcpy-ms")
			if w.recompress {
				b.ReportMetric(float64(recompressT.Milliseconds())/n, "recompressed-ms")
			}
			if w.fresh {
				b.ReportMetric(float64(freshT.Milliseconds())/n, "fresh-save-ms")
			}
		})
	}
}

// freshSave runs w's program again and saves it (paused, as the measured
// save) into a store of its own, empty: it returns the time of `snap
// save`. With recompress, it waits for the rewrite before it returns,
// off the clock, so that the rewrite does not load what is measured next.
func (e *env) freshSave(b *testing.B, w benchWorkload, i int) time.Duration {
	id, out := e.benchRun(b, w.argv...)
	waitLinesB(b, out, 2)
	store := filepath.Join(e.dir, fmt.Sprintf("fresh%d", i))
	args := append([]string{"save", id, "--store", store, "--to", "img"}, w.save...)
	if w.recompress {
		args = append(args, "--recompress")
	}
	start := time.Now()
	e.benchSnap(b, args...)
	d := time.Since(start)
	if w.recompress {
		waitRecompressed(b, filepath.Join(store, "img"))
	}
	if err := os.RemoveAll(store); err != nil {
		b.Fatal(err)
	}
	return d
}

func (e *env) benchRun(b *testing.B, argv ...string) (string, string) {
	out := filepath.Join(e.dir, fmt.Sprintf("out-%d", time.Now().UnixNano()))
	id := strings.TrimSpace(e.benchSnap(b, append([]string{"run", "-d", "--stdout", out, "--"}, argv...)...))
	return id, out
}

func (e *env) benchSnap(b *testing.B, args ...string) string {
	b.Helper()
	cmd := exec.Command(snapBin, args...)
	cmd.Env = append(e.environ(), e.extra...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		b.Fatalf("snap %v: %v: %s", args, err, stderr)
	}
	return string(out)
}

func waitLinesB(b *testing.B, path string, n int) {
	b.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for len(lines(path)) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%s: fewer than %d lines", path, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRecompressed waits until the image in dir is zstd (snap save
// --recompress rewrote it).
func waitRecompressed(b *testing.B, dir string) {
	b.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		if mb, err := os.ReadFile(filepath.Join(dir, "manifest")); err == nil {
			if m, err := storage.ParseManifest(mb); err == nil && m.Compression.Algorithm == storage.CodecZstd {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not recompressed after 120 s", dir)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// imageSize returns the bytes the image in dir needs: its manifest, its
// state blob and index, and the stored bytes of every chunk it references
// (which the store keeps outside the image's directory, under .chunks).
func imageSize(b *testing.B, dir string) int64 {
	b.Helper()
	mb, err := os.ReadFile(filepath.Join(dir, "manifest"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := storage.ParseManifest(mb)
	if err != nil {
		b.Fatalf("%s: %v", dir, err)
	}
	return int64(len(mb)) + m.StoredSize()
}
