// Package storage keeps snapshot images: the image format (manifest, state
// blob, memory chunks and their index, checksums, S2 and zstd compression) and the
// stores that hold images, a local directory (file://, the default) and S3
// (s3://, through minio-go in the helper process snap-s3, see storage/s3 and
// storage/s3wire, so that snap does not link it). It takes and gives bytes
// and knows nothing of the kernel. docs/IMAGE_FORMAT.md describes the format in full.
//
// # Vocabulary
//
// A store holds images by name. An image is a manifest plus two blobs,
// the state blob (the stateify stream, zstd-compressed) and the memory
// index (one fixed-size record per chunk), and the memory chunks it
// references, which the store keeps once each under the hash of their
// stored bytes (BLAKE3 from format 1.5, SHA-256 before: the manifest's
// chunkHash) and shares between images (format 1.2, chunks.go; images
// of 1.0 and 1.1 have a memory blob with their chunks back to back). A chunk covers up to ChunkSpan (1 MiB) of the memory file; its
// non-zero pages are compressed together as one S2 block (the default) or
// one zstd frame (CreateOptions.Codec), with a CRC-32C of the stored bytes.
// Zero pages are never stored, except in a patch (format 1.3): a chunk
// whose pages replace those of the chunk before it in the index, which an
// incremental save writes for the pages written since its parent
// (Writer.WritePatchFrom). The manifest is written last: an image exists
// exactly when its manifest does.
//
//	manifest   "SNAPMAN\n" | major u16 | minor u16 | arch [8] | len u32 | JSON body | SHA-256
//	state.zst  zstd stream of the state          (SHA-256 and sizes in the manifest)
//	memory.idx "SNAPIDX\n" | major | minor | recsize | count | count × 104-byte records
//	           (SHA-256 in the manifest; each record holds its chunk's address)
//	.chunks/   one object per distinct chunk payload, named by its address
//	           (CRC-32C of each in its record too)
//	.packs/    file store (1.4): the new chunks of a large write, one pack
//	           per writer (ID.pack payloads, ID.idx address -> offset,
//	           length; filestore_packs.go), where one file each would cost
//	           more than their compression
//
// # Naming images
//
// URIs (ParseURI, Locate): file:///abs/dir/NAME, a bare path containing a
// slash (/dir/NAME, ./NAME), s3://bucket/prefix/NAME, or a bare NAME, which
// is an image in the default store ($XDG_DATA_HOME/snap/images, else
// ~/.local/share/snap/images) or in the store given by --store / SNAP_STORE.
// So `snap save ID --to NAME` writes NAME into the configured store, and
// `--to /dir/NAME` or `--to s3://bucket/NAME` writes elsewhere.
//
// # Saving (for the checkpoint code)
//
//	w, err := storage.CreateImage(ctx, uri, storeURI, storage.CreateOptions{
//		Metadata: map[string]string{"program": argv0}, SnapVersion: version})
//	defer w.Abort()                           // no-op after a successful Commit
//	saveKernelState(w.StateWriter())          // the stateify stream, compressed while written
//	w.WriteMemoryFrom(memfd, allocatedRanges) // or WriteMemory(off, mappedBytes)
//	m, err := w.Commit()                      // publishes; m.Memory.Size etc.
//
// The state writer and the memory sink may be fed from two goroutines at
// once. Memory ranges are page aligned and increasing; zero pages are
// dropped by the writer (hand it whole allocated ranges). The calling
// goroutine only cuts the ranges into ChunkSpan-aligned spans: one worker
// per core takes the next span, reads it into its own buffer (pread through
// WriteMemoryFrom, so holes of a memory file cost no allocation; WriteMemory
// reads the caller's slice in place), drops zero pages (the first word,
// then the whole page), gathers the present pages (no copy when they are
// contiguous), compresses and checksums them; a drain goroutine stores the
// chunks in order. WriteMemoryFrom returns once every byte has been read,
// so a save may resume its sandbox before Commit. At most 2×workers+2 spans
// are in flight, so memory is bounded whatever the image size.
//
// # Codec choice
//
// The default memory codec is S2 at S2Better (s2.EncodeBetter where it pays,
// below); zstd stays
// available (CreateOptions{Codec: CodecZstd, Level: N}) and the state
// stream is always zstd. Measured here (klauspost/compress v1.20.3, one
// core, 512 KiB of non-zero pages): on the checkpoint workload's pages
// (p[pg*512+i] = pg<<32 | i&7) zstd at its fastest (no entropy coding)
// does 450 MB/s at ratio 12-26, s2.Encode 1.2 GB/s but ratio 2.0, and
// s2.EncodeBetter 3.4 GB/s at ratio 102; on storetest's mixed pages zstd
// does 360-430 MB/s at ratio 7.3, s2.Encode 1.09 GB/s at 4.3 and
// s2.EncodeBetter 880 MB/s at 4.6. zstd therefore cannot write 2 GB/s of
// logical memory on two cores, and s2.Encode misses the repeats of
// page-structured memory. BenchmarkWrite (1 GiB mixed image, file store):
// default 2.0-2.2 GB/s at ratio 10.4, zstd 1.75 GB/s at 16.5. S2Fast and
// S2Best are there for data where they pay; a reader needs only the codec
// name, as all S2 levels write plain S2 blocks.
//
// On pages whose repeats are short and near (the reference workload
// memtouch: groups of 8 words sharing one random value) s2.EncodeBetter
// finds what s2.Encode finds (ratio 3.21 against 3.19) at 2.3 times the
// CPU (485 against 1118 MB/s per core). So S2Better compresses the first 8
// KiB of each chunk both ways and keeps EncodeBetter for the chunk only
// where it saves 5% there; an 8 KiB probe chose right on every chunk of
// memtouch's, the checkpoint workload's and storetest's mixed pages, for
// about 5% more CPU.
//
// # Restoring
//
//	img, err := storage.OpenImage(ctx, uri, storeURI) // manifest + index verified
//	defer img.Close()
//	r, err := img.State(ctx)                          // checksum verified before the first byte
//	err = img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) {
//		return mapping[off : off+uint64(n)], nil       // e.g. an mmap'ed fresh memfd
//	})
//
// ReadMemoryTo fetches chunks with parallel ranged reads (batches of at most
// 16 chunks and 8 MiB, so that a very compressible image still spreads over
// every worker), verifies each chunk's CRC before decompressing it, and
// decompresses dense chunks straight into the slice dst returns (no extra
// copy); sparse chunks are decompressed to a scratch buffer and their pages
// copied. Absent pages are not written, so the destination must be zero
// there. ReadMemoryAt does the same into an io.WriterAt. ReadMemoryRuns,
// what snap restore uses, hands out each chunk's runs of present pages
// instead, so that the caller can have the host kernel write them into a
// memfd (pwrite, process_vm_writev) rather than fault them in through a
// mapping. For lazy restore, FindChunk maps a faulting offset to a chunk and
// ReadChunk fills one chunk's span (absent pages zeroed).
//
// # Checks and signatures
//
// OpenImageWith (Image.Check) adds to Open what a caller requires beyond
// the image's consistency: a largest memory size (the restoring kernel's)
// and, with OpenOptions.VerifyKey, an ed25519 signature. CreateOptions.SignKey
// signs an image: the memory blob's SHA-256 is computed while it is
// written, and the manifest, which holds every blob's SHA-256, gets a
// signature block before it is published (format 1.1). Keys are PEM files
// in OpenSSL's formats (keys.go).
//
// # Errors
//
// Errors wrap the sentinels of errors.go: ErrNotFound (no manifest),
// ErrCorrupt (a checksum, a length or a parse failed, or a file-store entry
// is not a regular file or directory; the message names the blob, chunk or
// entry), ErrIncompatibleVersion (other major, or newer minor),
// ErrWrongArch (checked from the fixed header, before the body is decoded),
// ErrAlreadyExists, ErrInvalidArgument, ErrSignature (--verify failed),
// ErrUnavailable (the S3 helper).
//
// # Stores
//
// Both stores implement Store and pass storage/storetest. The file store
// writes into a staging directory, fsyncs blobs, manifest and directories,
// then publishes with renameat2(RENAME_NOREPLACE), or RENAME_EXCHANGE when
// replacing. It creates directories 0700 and files 0600 (an image holds
// the sandbox's memory), and reads through openat2 with
// RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH, O_NONBLOCK, regular files only, so
// that a planted link or FIFO is refused rather than followed or waited
// on. The S3 store streams each blob as a multipart upload with
// parallel parts (minio-go aborts the upload if it fails), keeps each write's
// blobs under a fresh generation prefix, and publishes the manifest with
// If-None-Match: * unless replacing; reads are parallel ranged GETs, retried
// with backoff, under request deadlines (S3Config: dial, response headers,
// idle connection). Prune removes what killed writers left (staging
// directories, unreferenced generations, incomplete uploads).
//
// The S3 client runs in snap-s3, one helper process per snap process
// (started at the first use of an S3 store; see s3helper.go for why one and
// when another). A missing helper, or one that dies, fails the operations
// on it with ErrUnavailable; the next operation starts a new helper.
package storage
