package storage

import (
	"context"
	"strconv"
	"strings"
	"time"

	"snapshotter/storage/s3wire"
)

// The S3 store's content-addressed chunks are objects PREFIX/.chunks/SUM,
// handled by the helper (storage/s3/chunks.go).

func (b *s3Backend) chunkURI(sum string) string { return b.storeURI() + "/.chunks/" + sum }

// chunkTimeSlack covers S3's Last-Modified, which has a resolution of one
// second.
func (b *s3Backend) chunkTimeSlack() time.Duration { return 2 * time.Second }

func (b *s3Backend) putChunk(ctx context.Context, sum string, data []byte) (bool, error) {
	c, bid, err := b.attach(ctx)
	if err != nil {
		return false, err
	}
	resp, _, err := c.call(ctx, &s3wire.Msg{Op: s3wire.OpPutChunk, Obj: bid, Key: sum}, data, nil)
	if err != nil {
		return false, err
	}
	return resp.Flag, nil
}

// syncChunks has nothing to do: a PUT is durable when it returns.
func (b *s3Backend) syncChunks(context.Context) error { return nil }

func (b *s3Backend) chunkReader(context.Context) (chunkOpener, error) { return s3Chunks{b}, nil }

// s3Chunks opens chunks through the store's current helper.
type s3Chunks struct{ b *s3Backend }

func (c s3Chunks) chunk(ctx context.Context, sum string) (blobReader, error) {
	return c.b.chunk(ctx, sum)
}

func (s3Chunks) close() error { return nil }

func (b *s3Backend) chunk(ctx context.Context, sum string) (blobReader, error) {
	c, bid, err := b.attach(ctx)
	if err != nil {
		return nil, err
	}
	rid := c.newID()
	if _, _, err := c.call(ctx, &s3wire.Msg{Op: s3wire.OpChunk, Obj: bid, Key: sum, New: rid}, nil, nil); err != nil {
		return nil, err
	}
	return &s3Blob{c: c, id: rid}, nil
}

func (b *s3Backend) listChunks(ctx context.Context) ([]chunkInfo, error) {
	resp, _, err := b.do(ctx, &s3wire.Msg{Op: s3wire.OpListChunks})
	if err != nil {
		return nil, err
	}
	var out []chunkInfo
	for _, n := range resp.Names {
		sum, ts, _ := strings.Cut(n, " ")
		ns, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || !validSum(sum) {
			continue // not a chunk of ours
		}
		out = append(out, chunkInfo{sum: sum, modTime: time.Unix(0, ns)})
	}
	return out, nil
}

func (b *s3Backend) removeChunk(ctx context.Context, sum string, olderThan time.Duration) (bool, error) {
	resp, _, err := b.do(ctx, &s3wire.Msg{Op: s3wire.OpRemoveChunk, Key: sum, N: int64(olderThan)})
	if err != nil {
		return false, err
	}
	return resp.Flag, nil
}
