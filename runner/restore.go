package runner

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// OpenImage opens the image at uri (a bare name is looked up in store)
// and checks everything that can be checked before its state is decoded:
// the manifest, the index and the blob sizes, a memory size this kernel
// can hold, and with verifyKey the image's signature and the SHA-256 of
// its memory blob. It is what snap restore and snap inspect both use.
func OpenImage(ctx context.Context, uri, store string, verifyKey ed25519.PublicKey) (*storage.Image, error) {
	return storage.OpenImageWith(ctx, uri, store, storage.OpenOptions{
		MaxMemorySize: kernel.MaxMemorySize, VerifyKey: verifyKey,
	})
}

// RestoreKernel restores the image at uri (a bare name is looked up in
// store) into a new kernel with o's platform and stdio, and resumes it.
// With o.VerifyKey, an image that is not signed by that key, or that was
// altered since, is refused before anything is decoded.
func RestoreKernel(ctx context.Context, o KernelOptions, uri, store string) (*KernelSandbox, *storage.Manifest, error) {
	t0 := time.Now()
	var memStart, memEnd time.Time
	img, err := OpenImage(ctx, uri, store, o.VerifyKey)
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
			Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Limits: o.Limits},
		MemorySize: img.Manifest().MemorySize,
		LoadMemory: func(w *kernel.MemoryLoader) error {
			memStart = time.Now()
			defer func() { memEnd = time.Now() }()
			return img.ReadMemoryRuns(ctx, func(runs []storage.PageRun) error {
				return w.WriteRuns(func(yield func(uint64, []byte) bool) {
					for _, r := range runs {
						if !yield(r.Off, r.Data) {
							return
						}
					}
				})
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
		// The memory loads while the state decodes and the platform and
		// address spaces are made.
		o.Diag.Printf("restored %s: %d bytes of memory; open %v, memory %v, total %v",
			uri, m.MemorySize, memStart.Sub(t0), memEnd.Sub(memStart), time.Since(t0))
	}
	return &KernelSandbox{k: k, opts: o}, m, nil
}
