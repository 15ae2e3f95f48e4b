package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"snapshotter/storage"
)

// Content-addressed chunks live at PREFIX/.chunks/SUM (see storage's
// chunks.go). Image names cannot start with '.', so neither List nor the
// generation sweep of Prune sees them.
const chunkDir = ".chunks"

func (b *Backend) chunkKey(sum string) (string, error) {
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return "", fmt.Errorf("chunk address %q: %w", sum, storage.ErrInvalidArgument)
	}
	return b.obj(chunkDir, sum), nil
}

// PutChunk stores data as chunk sum unless it is stored. A stored chunk's
// age is refreshed by copying it onto itself with new metadata, a
// server-side copy that moves no data, so that a sweep does not take it
// for garbage while the writer that found it lives.
func (b *Backend) PutChunk(ctx context.Context, sum string, data []byte) (bool, error) {
	key, err := b.chunkKey(sum)
	if err != nil {
		return false, err
	}
	_, err = b.c.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err == nil {
		_, err = b.c.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: b.cfg.Bucket, Object: key, ReplaceMetadata: true,
				UserMetadata: map[string]string{"Refreshed": strconv.FormatInt(time.Now().UnixNano(), 10)}},
			minio.CopySrcOptions{Bucket: b.cfg.Bucket, Object: key})
		if err = mapS3Err(err); !errors.Is(err, storage.ErrNotFound) {
			return true, err
		}
		// Gone meanwhile (swept, or being rewritten by another writer):
		// store it.
	} else if err = mapS3Err(err); !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	_, err = b.c.PutObject(ctx, b.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	return false, mapS3Err(err)
}

// Chunk returns a reader of chunk sum. It does no I/O.
func (b *Backend) Chunk(sum string) *Blob {
	key, err := b.chunkKey(sum)
	if err != nil {
		key = b.obj(chunkDir, "invalid")
	}
	return &Blob{b: b, key: key}
}

// ListChunks returns every chunk as "SUM UNIXNANO" (last modified).
func (b *Backend) ListChunks(ctx context.Context) ([]string, error) {
	prefix := b.obj(chunkDir) + "/"
	var out []string
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, mapS3Err(o.Err)
		}
		out = append(out, strings.TrimPrefix(o.Key, prefix)+" "+strconv.FormatInt(o.LastModified.UnixNano(), 10))
	}
	return out, nil
}

// RemoveChunk deletes chunk sum if it was last modified more than
// olderThan ago, checked just before.
func (b *Backend) RemoveChunk(ctx context.Context, sum string, olderThan time.Duration) (bool, error) {
	key, err := b.chunkKey(sum)
	if err != nil {
		return false, err
	}
	info, err := b.c.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err = mapS3Err(err); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if time.Since(info.LastModified) < olderThan {
		return false, nil
	}
	if err := b.c.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return false, mapS3Err(err)
	}
	return true, nil
}
