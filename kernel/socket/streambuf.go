package socket

import "sync"

// streamBufSize is the size of the buffers that hold a stream send's data
// while it is queued: a send of at most this many bytes takes one from
// streamBufs instead of allocating (and zeroing) a slice, and a reader
// that consumes the whole message gives it back. Larger sends allocate as
// before, so message boundaries, and with them the buffer accounting, do
// not depend on the pool.
const streamBufSize = 64 << 10

// streamBufs holds unused stream buffers. Pointers to arrays, so that Put
// does not allocate.
var streamBufs = sync.Pool{New: func() any { return new([streamBufSize]byte) }}

// newStreamData returns a buffer of n bytes for a stream message. Its
// contents are undefined: the caller fills all of it.
func newStreamData(n int) []byte {
	if n > streamBufSize {
		return make([]byte, n)
	}
	return streamBufs.Get().(*[streamBufSize]byte)[:n]
}

// freeStreamData gives a consumed message's data back to streamBufs if it
// has the pool's size. The caller drops every reference to data.
// (Data of another origin, such as a restored message, may have that
// capacity too; it is a buffer of its own all the same.)
func freeStreamData(data []byte) {
	if cap(data) == streamBufSize {
		streamBufs.Put((*[streamBufSize]byte)(data[:streamBufSize]))
	}
}
