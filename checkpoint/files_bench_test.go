package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"snapshotter/internal/ctest"
)

// filesWorkload writes N MiB of files into DIR, 16 files of N/16 MiB each,
// with memtouch's pattern (odd pages zero, even pages groups of 8 words
// sharing one xorshift64 value), through one 1 MiB buffer so that its own
// memory stays small; then prints "ready" and "alive K" every 10 ms.
const filesWorkload = `#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	size_t size = strtoul(argv[1], 0, 10) << 20, per = size / 16, chunk = 1 << 20;
	uint64_t s = 0x9e3779b97f4a7c15ULL, *buf = malloc(chunk);
	size_t pg = 0;
	for (int f = 0; f < 16; f++) {
		char name[4096];
		snprintf(name, sizeof name, "%s/file%02d", argv[2], f);
		int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) { perror(name); return 2; }
		for (size_t off = 0; off < per; off += chunk) {
			for (size_t p = 0; p < chunk / 4096; p++, pg++) {
				uint64_t *w = buf + p * 512;
				if (pg % 2 == 1) { memset(w, 0, 4096); continue; }
				for (size_t g = 0; g < 512; g += 8) {
					uint64_t x = s;
					x ^= x << 13; x ^= x >> 7; x ^= x << 17; s = x;
					for (size_t i = 0; i < 8; i++) w[g + i] = i % 2 ? x : x & 0x0000ffff0000ffffULL;
				}
			}
			if (write(fd, buf, chunk) != (ssize_t)chunk) { perror("write"); return 2; }
		}
		close(fd);
	}
	free(buf);
	printf("ready\n"); fflush(stdout);
	struct timespec ts = {0, 10000000};
	for (unsigned long k = 1;; k++) {
		nanosleep(&ts, 0);
		printf("alive %lu\n", k); fflush(stdout);
	}
}`

// filesSaveMiB is how much the files-save benchmark keeps in memory and in
// files.
const filesSaveMiB = 512

// BenchmarkCheckpointFiles compares, in each iteration, the save of a
// sandbox holding 512 MiB of written memory (memtouch) with that of one
// that wrote 512 MiB of files of the same pattern into /tmp (the overlay
// root's upper layer or a tmpfs, both in the memory file): save-ms
// (client wall time of snap save), paused-ms (from the sentry's log) and
// image-MiB of each, and the ratios files/memory of the three. The goal
// is a files/memory-save ratio of at most 1.
func BenchmarkCheckpointFiles(b *testing.B) {
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	memtouch := program(b, "memtouch")
	files := ctest.Source(b, "gcc", "filesload", filesWorkload, "-static", "-O2")
	b.ReportAllocs()
	type sums struct {
		save, paused time.Duration
		bytes        int64
	}
	var mem, fil sums
	// Each save goes to a store of its own: the memory's and the files'
	// chunks hold the same bytes, which one store would keep once.
	measure := func(s *sums, tag string, argv ...string) {
		e := &env{dir: b.TempDir()}
		defer e.killAll()
		id, out := e.benchRun(b, argv...)
		waitLinesB(b, out, 2)
		start := time.Now()
		e.benchSnap(b, "save", id, "--to", tag, "--timeout", "10m")
		s.save += time.Since(start)
		logb, _ := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
		if m := pausedRE.FindSubmatch(logb); m != nil {
			d, _ := time.ParseDuration(string(m[1]))
			s.paused += d
		}
		s.bytes += treeSize(filepath.Join(e.dir, "data"))
		killAllIn(filepath.Join(e.dir, "state"))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tmp, err := os.MkdirTemp("/tmp", "snap-files-")
		if err != nil {
			b.Fatal(err)
		}
		measure(&mem, fmt.Sprintf("mem%d", i), memtouch, fmt.Sprint(filesSaveMiB), "/dev/stdout")
		measure(&fil, fmt.Sprintf("files%d", i), files, fmt.Sprint(filesSaveMiB), tmp)
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			b.Fatalf("the files reached the host's %s: %v", tmp, entries)
		}
		os.RemoveAll(tmp)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	mib := func(v int64) float64 { return float64(v) / n / (1 << 20) }
	b.ReportMetric(ms(mem.save), "memory-save-ms")
	b.ReportMetric(ms(mem.paused), "memory-paused-ms")
	b.ReportMetric(mib(mem.bytes), "memory-image-MiB")
	b.ReportMetric(ms(fil.save), "files-save-ms")
	b.ReportMetric(ms(fil.paused), "files-paused-ms")
	b.ReportMetric(mib(fil.bytes), "files-image-MiB")
	ratio := func(f, m float64) float64 {
		if m == 0 {
			return 0
		}
		return f / m
	}
	b.ReportMetric(ratio(ms(fil.save), ms(mem.save)), "files/memory-save")
	b.ReportMetric(ratio(ms(fil.paused), ms(mem.paused)), "files/memory-paused")
	b.ReportMetric(ratio(mib(fil.bytes), mib(mem.bytes)), "files/memory-image")
}
