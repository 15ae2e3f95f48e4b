package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"snapshotter/internal/prereq"
	"snapshotter/storage"
	"snapshotter/storage/miniotest"
	"snapshotter/storage/storetest"
)

// The benchmark image: 1 GiB of logical memory, the suite's "mixed" content
// (about 56% zero pages, the rest heap-like pages), produced as 16 copies of
// a 64 MiB pattern so that generating it costs nothing inside the timer.
// Chunks are compressed independently, so the repetition does not help the
// compressor.
const (
	benchLogical = 1 << 30
	benchPattern = 64 << 20
)

var benchPatternBuf []byte

func pattern() []byte {
	if benchPatternBuf == nil {
		benchPatternBuf = make([]byte, benchPattern)
		storetest.FillMixed(benchPatternBuf, 0)
	}
	return benchPatternBuf
}

// BenchmarkBaselineMemcpy copies the 1 GiB image once: the ceiling of any
// restore into memory.
func BenchmarkBaselineMemcpy(b *testing.B) {
	src := pattern()
	dst := make([]byte, benchPattern)
	copy(dst, src)
	b.SetBytes(benchLogical)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for off := 0; off < benchLogical; off += benchPattern {
			copy(dst, src)
		}
	}
}

// BenchmarkBaselineZstdCLI compresses the same 1 GiB stream with the zstd
// command line at level 1, single-threaded and on all cores.
func BenchmarkBaselineZstdCLI(b *testing.B) {
	zstdBin := prereq.Binary(b, "zstd")
	src := pattern()
	for _, threads := range []string{"-T1", "-T0"} {
		b.Run(threads, func(b *testing.B) {
			b.SetBytes(benchLogical)
			b.ReportAllocs()
			var out int64
			for range b.N {
				cmd := exec.Command(zstdBin, "-1", threads, "-q", "-c")
				in, _ := cmd.StdinPipe()
				stdout, _ := cmd.StdoutPipe()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				done := make(chan int64)
				go func() { n, _ := io.Copy(io.Discard, stdout); done <- n }()
				for off := 0; off < benchLogical; off += benchPattern {
					if _, err := in.Write(src); err != nil {
						b.Fatal(err)
					}
				}
				in.Close()
				out = <-done
				if err := cmd.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchLogical)/float64(out), "ratio")
		})
	}
}

// patternAt reads the benchmark image: the pattern repeated.
type patternAt struct{}

func (patternAt) ReadAt(p []byte, off int64) (int, error) {
	src := pattern()
	n := 0
	for n < len(p) {
		o := (off + int64(n)) % benchPattern
		n += copy(p[n:], src[o:])
	}
	return n, nil
}

// writeBenchImage writes the 1 GiB image: with WriteMemory, 64 MiB at a
// time, or (from) with one WriteMemoryFrom call, as `snap save` does.
func writeBenchImage(b *testing.B, s storage.Store, name string, opts storage.CreateOptions, from bool) *storage.Manifest {
	opts.Replace = true
	w, err := s.Create(context.Background(), name, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Abort()
	w.StateWriter().Write(bytes.Repeat([]byte("kernel state "), 1<<16))
	if from {
		if err := w.WriteMemoryFrom(patternAt{}, []storage.Range{{Off: 0, Len: benchLogical}}); err != nil {
			b.Fatal(err)
		}
	} else {
		src := pattern()
		for off := uint64(0); off < benchLogical; off += benchPattern {
			if err := w.WriteMemory(off, src); err != nil {
				b.Fatal(err)
			}
		}
	}
	m, err := w.Commit()
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchWrite(b *testing.B, s storage.Store, opts storage.CreateOptions, from bool) {
	pattern()
	b.SetBytes(benchLogical)
	b.ReportAllocs()
	b.ResetTimer()
	var m *storage.Manifest
	for i := range b.N {
		m = writeBenchImage(b, s, fmt.Sprintf("bench-%d", i), opts, from)
		// Deleting is not writing: keep the disk use bounded off the clock.
		b.StopTimer()
		if err := s.Delete(context.Background(), fmt.Sprintf("bench-%d", i)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(benchLogical)/float64(m.StoredSize()), "ratio")
	b.ReportMetric(float64(m.Chunks), "chunks")
}

func benchRead(b *testing.B, s storage.Store, opts storage.CreateOptions) {
	writeBenchImage(b, s, "bench-read", opts, false)
	ctx := context.Background()
	img, err := s.Open(ctx, "bench-read")
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	dst := make([]byte, benchLogical)
	clear(dst) // fault the destination in before timing
	b.SetBytes(benchLogical)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return dst[off : off+uint64(n)], nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !bytes.Equal(dst[:benchPattern], pattern()) {
		b.Fatal("restored memory differs from what was written")
	}
}

func benchFileStore(b *testing.B) storage.Store {
	s, err := storage.NewFileStore(filepath.Join(b.TempDir(), "images"))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchS3Store(b *testing.B) storage.Store {
	srv := miniotest.Start(b)
	srv.MakeBucket(b, "bench")
	s, err := storage.NewS3Store(context.Background(), storage.S3Config{
		Endpoint: srv.Endpoint, AccessKey: miniotest.AccessKey, SecretKey: miniotest.SecretKey, Bucket: "bench",
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// Codec settings of the benchmarks: the default (S2 at S2Better), S2 at
// S2Fast, and zstd at level 1.
var (
	optsDefault = storage.CreateOptions{}
	optsS2Fast  = storage.CreateOptions{Codec: storage.CodecS2, Level: storage.S2Fast}
	optsZstd    = storage.CreateOptions{Codec: storage.CodecZstd, Level: 1}
)

// BenchmarkWrite writes the 1 GiB mixed image (throughput is logical bytes;
// "ratio" is logical size over stored size). "-from" reads it through an
// io.ReaderAt in one WriteMemoryFrom call, as a save reads the memory file.
func BenchmarkWrite(b *testing.B) {
	b.Run("file-default", func(b *testing.B) { benchWrite(b, benchFileStore(b), optsDefault, false) })
	b.Run("file-default-from", func(b *testing.B) { benchWrite(b, benchFileStore(b), optsDefault, true) })
	b.Run("file-s2fast", func(b *testing.B) { benchWrite(b, benchFileStore(b), optsS2Fast, false) })
	b.Run("file-zstd", func(b *testing.B) { benchWrite(b, benchFileStore(b), optsZstd, false) })
	b.Run("s3-default", func(b *testing.B) { benchWrite(b, benchS3Store(b), optsDefault, false) })
}

// BenchmarkRead restores the 1 GiB mixed image into memory.
func BenchmarkRead(b *testing.B) {
	b.Run("file-default", func(b *testing.B) { benchRead(b, benchFileStore(b), optsDefault) })
	b.Run("file-zstd", func(b *testing.B) { benchRead(b, benchFileStore(b), optsZstd) })
	b.Run("s3-default", func(b *testing.B) { benchRead(b, benchS3Store(b), optsDefault) })
}
