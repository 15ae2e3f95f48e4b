package storage

import "errors"

// Sentinel errors. Every error returned by this package that matches one of
// these wraps it (test with errors.Is) and says which image, blob or chunk
// failed.
var (
	// ErrNotFound means the image (its manifest), a blob, the bucket or the
	// store directory does not exist. An image whose manifest is missing does
	// not exist, whatever else is stored under its name.
	ErrNotFound = errors.New("image not found")

	// ErrCorrupt means stored bytes do not match their checksum, are
	// truncated, or do not parse. The message names the blob or chunk.
	ErrCorrupt = errors.New("image corrupt")

	// ErrIncompatibleVersion means the image was written with a format major
	// version other than ours, or a newer minor version than we understand.
	ErrIncompatibleVersion = errors.New("incompatible image format version")

	// ErrWrongArch means the image was saved on another architecture. It is
	// reported before anything past the fixed manifest header is decoded.
	ErrWrongArch = errors.New("image saved for another architecture")

	// ErrAlreadyExists means an image with that name exists and replacing it
	// was not asked for.
	ErrAlreadyExists = errors.New("image already exists")

	// ErrInvalidArgument means a caller passed something this package cannot
	// accept: a malformed URI or image name, a misaligned or out-of-order
	// memory range, a write after Commit.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrSignature means an image was required to be signed by a given key
	// and is not: it is unsigned, signed by another key, or its manifest
	// or a blob was altered after signing.
	ErrSignature = errors.New("image signature check failed")

	// ErrUnavailable means the store cannot be used at all: for an S3
	// store, its helper program snap-s3 is missing, or died.
	ErrUnavailable = errors.New("store unavailable")
)

// ErrParentChanged means the parent an image is saved against (snap save
// --parent) is no longer the image it was: its manifest was replaced or
// altered since the child named it.
var ErrParentChanged = errors.New("parent image changed")

// ErrImageChanged means an image being rewritten in place (Recompress) was
// replaced or deleted meanwhile: the rewrite is dropped, the newer image
// stands.
var ErrImageChanged = errors.New("image changed while being rewritten")
