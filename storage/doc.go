// Package storage keeps snapshot images: the image format (manifest, state
// blob, memory chunks and their index, checksums, zstd compression) and the
// stores that hold images, a local directory (file://, the default) and S3
// (s3://, through minio-go). It takes and gives bytes and knows nothing of
// the kernel. See docs/IMAGE_FORMAT.md for the format.
package storage
