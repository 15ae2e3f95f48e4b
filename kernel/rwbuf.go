package kernel

import "sync"

// smallRWBuf is the size of the smaller class of pooled read and write
// buffers: most reads and writes of pipes and sockets are no larger.
const smallRWBuf = 64 << 10

// rwBufs hold unused staging buffers of read(2) and write(2), by size
// class: smallRWBuf and rwChunk bytes. A fresh Go buffer per call costs
// an allocation, its zeroing and the garbage collector's time, which a
// stream of 64 KiB transfers pays per call.
var rwBufs = [2]sync.Pool{
	{New: func() any { return new([smallRWBuf]byte) }},
	{New: func() any { return new([rwChunk]byte) }},
}

// getRWBuf returns a buffer of n bytes with undefined contents, from a
// pool if n <= rwChunk; putRWBuf gives it back once nothing refers to it
// (a buffer of another size is left to the garbage collector).
func getRWBuf(n uint64) []byte {
	if n > rwChunk {
		return make([]byte, n)
	}
	if n <= smallRWBuf {
		return rwBufs[0].Get().(*[smallRWBuf]byte)[:n]
	}
	return rwBufs[1].Get().(*[rwChunk]byte)[:n]
}

func putRWBuf(b []byte) {
	switch cap(b) {
	case smallRWBuf:
		rwBufs[0].Put((*[smallRWBuf]byte)(b[:smallRWBuf]))
	case rwChunk:
		rwBufs[1].Put((*[rwChunk]byte)(b[:rwChunk]))
	}
}
