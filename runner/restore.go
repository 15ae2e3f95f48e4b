package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// populateMinRun is the shortest run of present pages populated with its
// own madvise; shorter runs take first-touch faults, which cost less than a
// system call each.
const populateMinRun = 8

// populatePresent populates, in bulk, the pages of b (the destination of the
// chunk at off) that the chunk stores: all of a dense chunk, the runs of
// present pages of a sparse one. Absent pages stay holes, as they were in
// the saved sandbox, instead of becoming allocated zero pages.
func populatePresent(img *storage.Image, off uint64, b []byte) {
	i, ok := img.FindChunk(off)
	if !ok {
		kernel.PopulateForWrite(b)
		return
	}
	c := &img.Chunks()[i]
	if c.Dense() || c.Offset != off {
		kernel.PopulateForWrite(b)
		return
	}
	pages := len(b) / storage.PageSize
	present := func(p int) bool { return c.Present[p/8]&(1<<(p%8)) != 0 }
	for p := 0; p < pages; {
		if !present(p) {
			p++
			continue
		}
		q := p + 1
		for q < pages && present(q) {
			q++
		}
		if q-p >= populateMinRun {
			kernel.PopulateForWrite(b[p*storage.PageSize : q*storage.PageSize])
		}
		p = q
	}
}

// RestoreKernel restores the image at uri (a bare name is looked up in
// store) into a new kernel with o's platform and stdio, and resumes it.
func RestoreKernel(ctx context.Context, o KernelOptions, uri, store string) (*KernelSandbox, *storage.Manifest, error) {
	t0 := time.Now()
	var memStart, memEnd time.Time
	img, err := storage.OpenImage(ctx, uri, store)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	defer img.Close()
	state, err := img.State(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	defer state.Close()
	k, err := kernel.Restore(ctx, state, kernel.RestoreOptions{
		Config: kernel.Config{Platform: o.Platform, Root: o.Rootfs, Debug: o.Debug, Log: o.Log,
			Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr},
		LoadMemory: func(dst func(off uint64, n int) ([]byte, error)) error {
			memStart = time.Now()
			defer func() { memEnd = time.Now() }()
			return img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) {
				b, err := dst(off, n)
				if err == nil {
					populatePresent(img, off, b)
				}
				return b, err
			})
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("restore %s: %w", uri, err)
	}
	m := img.Manifest()
	if o.Argv == nil {
		json.Unmarshal([]byte(m.Metadata[MetaArgv]), &o.Argv)
	}
	k.Resume()
	if o.Diag != nil {
		o.Diag.Printf("restored %s: %d bytes of memory; open+state %v, memory %v, platform and address spaces %v",
			uri, m.MemorySize, memStart.Sub(t0), memEnd.Sub(memStart), time.Since(memEnd))
	}
	return &KernelSandbox{k: k, opts: o}, m, nil
}
