package stateify_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"snapshotter/stateify"
	"snapshotter/stateify/internal/benchdata"
)

// The benchmark graph: 10,000 tasks in thread groups of 10, each with an FD
// table of 8 entries pointing at 64 shared files. Run with
//
//	go test -run '^$' -bench . -benchmem ./stateify/
//
// Each codec encodes and decodes the same data; gob and msgpack duplicate
// shared objects (they have no pointer identity), stateify does not.
const (
	benchTasks    = 10000
	benchPerGroup = 10
	benchFDs      = 8
)

// codec encodes into buf (reset by the caller, so that the sink's growth is
// not measured) and returns the encoded bytes.
type codec struct {
	name   string
	encode func(buf *bytes.Buffer, k *benchdata.Kernel) ([]byte, error)
	decode func([]byte) (*benchdata.Kernel, error)
}

var codecs = []codec{
	{"stateify",
		func(buf *bytes.Buffer, k *benchdata.Kernel) ([]byte, error) {
			err := stateify.Save(context.Background(), buf, k)
			return buf.Bytes(), err
		},
		func(b []byte) (*benchdata.Kernel, error) {
			var k benchdata.Kernel
			return &k, stateify.Load(context.Background(), bytes.NewReader(b), &k)
		}},
	{"stateify-cold",
		func(buf *bytes.Buffer, k *benchdata.Kernel) ([]byte, error) {
			err := stateify.SaveCold(context.Background(), buf, k)
			return buf.Bytes(), err
		},
		func(b []byte) (*benchdata.Kernel, error) {
			var k benchdata.Kernel
			return &k, stateify.Load(context.Background(), bytes.NewReader(b), &k)
		}},
	{"gob",
		func(buf *bytes.Buffer, k *benchdata.Kernel) ([]byte, error) {
			err := gob.NewEncoder(buf).Encode(k)
			return buf.Bytes(), err
		},
		func(b []byte) (*benchdata.Kernel, error) {
			var k benchdata.Kernel
			return &k, gob.NewDecoder(bytes.NewReader(b)).Decode(&k)
		}},
	{"msgpack",
		func(_ *bytes.Buffer, k *benchdata.Kernel) ([]byte, error) { return msgpack.Marshal(k) },
		func(b []byte) (*benchdata.Kernel, error) {
			var k benchdata.Kernel
			return &k, msgpack.Unmarshal(b, &k)
		}},
}

// benchGraphs are the graphs measured: "shared" has thread groups of 10
// tasks (gob and msgpack write each group once per task), "unshared" has
// one task per thread group, so the reflection codecs duplicate only the
// small shared File objects.
var benchGraphs = []struct {
	name     string
	perGroup int
}{
	{"shared", benchPerGroup},
	{"unshared", 1},
}

func BenchmarkEncode(b *testing.B) {
	for _, g := range benchGraphs {
		k := benchdata.New(benchTasks, g.perGroup, benchFDs)
		for _, c := range codecs {
			b.Run(g.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				var size int
				var buf bytes.Buffer
				cpu := cpuTime()
				for b.Loop() {
					buf.Reset()
					out, err := c.encode(&buf, k)
					if err != nil {
						b.Fatal(err)
					}
					size = len(out)
				}
				reportCPU(b, cpu)
				b.ReportMetric(float64(size), "stream-bytes")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, g := range benchGraphs {
		k := benchdata.New(benchTasks, g.perGroup, benchFDs)
		for _, c := range codecs {
			if c.name == "stateify-cold" {
				continue // decoding has no pooled state
			}
			data, err := c.encode(&bytes.Buffer{}, k)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(g.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					got, err := c.decode(data)
					if err != nil {
						b.Fatal(err)
					}
					if len(got.Tasks) != benchTasks {
						b.Fatalf("decoded %d tasks, want %d", len(got.Tasks), benchTasks)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}

// cpuTime returns the CPU time (user and system, all threads, so GC work is
// included) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per operation since start: on a shared,
// loaded machine it is steadier than wall time.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// TestBenchCodecsAgree checks that the benchmark compares like with like:
// every codec round-trips the benchmark graph to equal task data.
func TestBenchCodecsAgree(t *testing.T) {
	k := benchdata.New(50, 10, 4)
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			data, err := c.encode(&bytes.Buffer{}, k)
			if err != nil {
				t.Fatalf("encode = %v", err)
			}
			got, err := c.decode(data)
			if err != nil {
				t.Fatalf("decode = %v", err)
			}
			if len(got.Tasks) != len(k.Tasks) {
				t.Fatalf("decoded %d tasks, want %d", len(got.Tasks), len(k.Tasks))
			}
			for i, task := range got.Tasks {
				w := k.Tasks[i]
				if task.TID != w.TID || task.Name != w.Name || task.Regs != w.Regs || task.TG.TGID != w.TG.TGID ||
					len(task.FDs) != len(w.FDs) || task.FDs[2].File.Path != w.FDs[2].File.Path {
					t.Fatalf("task %d = %+v, want %+v", i, task, w)
				}
			}
		})
	}
}

// TestLoadChunkedReader loads a stream larger than the preallocation through
// a reader that returns a few bytes at a time and hides its length, which
// exercises the doubling read path.
func TestLoadChunkedReader(t *testing.T) {
	k := benchdata.New(3000, 10, 8)
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, k); err != nil {
		t.Fatal(err)
	}
	if buf.Len() < 1<<20 {
		t.Fatalf("stream is %d bytes, want > 1 MiB to exercise growth", buf.Len())
	}
	var got benchdata.Kernel
	if err := stateify.Load(context.Background(), iotest.HalfReader(&buf), &got); err != nil {
		t.Fatalf("Load(HalfReader) = %v", err)
	}
	if len(got.Tasks) != 3000 || got.Tasks[2999].Name != k.Tasks[2999].Name {
		t.Errorf("Load(HalfReader) gave %d tasks, want 3000", len(got.Tasks))
	}
}
