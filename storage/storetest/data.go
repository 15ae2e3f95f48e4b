package storetest

import (
	"encoding/binary"

	"snapshotter/storage"
)

// splitmix64 is a tiny deterministic hash, so content is a pure function of
// its offset and never has to be kept in memory.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var words = []string{
	"task", "signal", "futex", "mmap", "vma", "inode", "dentry", "socket",
	"pipe", "epoll", "timer", "clock", "thread", "group", "session", "tty",
	"read", "write", "open", "close", "stat", "fcntl", "ioctl", "clone",
}

// Page kinds of the generated content.
const (
	KindZero = iota
	KindHeap
	KindRandom
)

// FillPage fills one page with content of the given kind, a pure function
// of (kind, pageNo):
//
//   - KindZero: zeros;
//   - KindHeap: a heap-like page of 64-byte records (a pointer with shared
//     high bits, a small counter, a word from a small vocabulary, zero
//     padding), which zstd -1 compresses several times;
//   - KindRandom: incompressible bytes.
func FillPage(page []byte, kind int, pageNo uint64) {
	switch kind {
	case KindZero:
		clear(page)
	case KindRandom:
		x := splitmix64(pageNo)
		for i := 0; i+8 <= len(page); i += 8 {
			x = splitmix64(x)
			binary.LittleEndian.PutUint64(page[i:], x)
		}
	default:
		x := splitmix64(pageNo ^ 0x5eed)
		for i := 0; i+64 <= len(page); i += 64 {
			x = splitmix64(x)
			r := page[i : i+64]
			clear(r)
			binary.LittleEndian.PutUint64(r[0:], 0x00007f3a_00000000|(x&0xfff)<<4)
			binary.LittleEndian.PutUint64(r[8:], uint64(i/64)+pageNo%7)
			copy(r[16:32], words[(x>>16)%uint64(len(words))])
			r[32] = byte(x >> 24 & 3)
			if x>>40&7 == 0 {
				binary.LittleEndian.PutUint64(r[40:], x>>20)
			}
		}
	}
}

// MixedKind is the page kind at page number pageNo of the "mixed" memory
// image used by the suite and the benchmarks: half zero pages and half heap
// pages, interleaved in runs of one to four pages.
func MixedKind(pageNo uint64) int {
	run := pageNo / 4
	if splitmix64(run)&1 == 0 {
		return KindZero
	}
	if splitmix64(pageNo)%4 == 0 && splitmix64(run)&2 == 0 {
		return KindZero
	}
	return KindHeap
}

// FillMixed fills buf, which starts at memory offset off (both page aligned),
// with the mixed image's content.
func FillMixed(buf []byte, off uint64) {
	for p := 0; p+storage.PageSize <= len(buf); p += storage.PageSize {
		n := (off + uint64(p)) / storage.PageSize
		FillPage(buf[p:p+storage.PageSize], MixedKind(n), n)
	}
}
