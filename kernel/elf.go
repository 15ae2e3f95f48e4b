package kernel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// ELF constants (elf.h) the loader needs.
const (
	elfHeaderSize  = 64
	elfPhdrSize    = 56
	elfMaxPhdrs    = 512
	etExec         = 2
	etDyn          = 3
	emX86_64       = 62
	ptLoad         = 1
	ptInterp       = 3
	ptPhdr         = 6
	ptGNUStack     = 0x6474e551
	pfX            = 1
	pfW            = 2
	pfR            = 4
	elfMaxSegments = 64
)

// progHeader is one ELF64 program header.
type progHeader struct {
	Type, Flags                  uint32
	Offset, Vaddr, Filesz, Memsz uint64
	Align                        uint64
}

// elfFile is the part of an ELF executable the loader uses.
type elfFile struct {
	Type  uint16
	Entry uint64
	Phoff uint64
	Phnum uint16
	Phdrs []progHeader
	// Interp is the PT_INTERP path (the dynamic loader), "" for a static
	// executable.
	Interp string
}

// perms returns the segment's memory permissions.
func (p *progHeader) perms() perms {
	var r perms
	if p.Flags&pfR != 0 {
		r |= permRead
	}
	if p.Flags&pfW != 0 {
		r |= permWrite
	}
	if p.Flags&pfX != 0 {
		r |= permExec
	}
	return r
}

// parseELF reads and validates the headers of the x86-64 executable r of
// size bytes. Every error wraps ErrNoExec. It never trusts a length or
// offset before checking it against size.
func parseELF(r io.ReaderAt, size int64) (*elfFile, error) {
	var hdr [elfHeaderSize]byte
	if size < elfHeaderSize {
		return nil, fmt.Errorf("file of %d bytes is too short for an ELF header: %w", size, ErrNoExec)
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("read ELF header: %v: %w", err, ErrNoExec)
	}
	if string(hdr[:4]) != "\x7fELF" {
		return nil, fmt.Errorf("not an ELF file: %w", ErrNoExec)
	}
	if hdr[4] != 2 || hdr[5] != 1 || hdr[6] != 1 {
		return nil, fmt.Errorf("not a 64-bit little-endian ELF version 1 (class %d, data %d, version %d): %w", hdr[4], hdr[5], hdr[6], ErrNoExec)
	}
	le := binary.LittleEndian
	f := &elfFile{
		Type:  le.Uint16(hdr[16:]),
		Entry: le.Uint64(hdr[24:]),
		Phoff: le.Uint64(hdr[32:]),
		Phnum: le.Uint16(hdr[56:]),
	}
	if m := le.Uint16(hdr[18:]); m != emX86_64 {
		return nil, fmt.Errorf("ELF machine %d is not x86-64: %w", m, ErrNoExec)
	}
	if f.Type != etExec && f.Type != etDyn {
		return nil, fmt.Errorf("ELF type %d is not an executable: %w", f.Type, ErrNoExec)
	}
	if es := le.Uint16(hdr[54:]); es != elfPhdrSize {
		return nil, fmt.Errorf("ELF program header size %d, want %d: %w", es, elfPhdrSize, ErrNoExec)
	}
	if f.Phnum == 0 || f.Phnum > elfMaxPhdrs {
		return nil, fmt.Errorf("ELF has %d program headers (1 to %d allowed): %w", f.Phnum, elfMaxPhdrs, ErrNoExec)
	}
	tableSize := uint64(f.Phnum) * elfPhdrSize
	if f.Phoff > uint64(size) || tableSize > uint64(size)-f.Phoff {
		return nil, fmt.Errorf("ELF program headers [%d, +%d) beyond file size %d: %w", f.Phoff, tableSize, size, ErrNoExec)
	}
	table := make([]byte, tableSize)
	if _, err := r.ReadAt(table, int64(f.Phoff)); err != nil {
		return nil, fmt.Errorf("read ELF program headers: %v: %w", err, ErrNoExec)
	}
	loads := 0
	for i := range int(f.Phnum) {
		b := table[i*elfPhdrSize:]
		p := progHeader{
			Type:   le.Uint32(b[0:]),
			Flags:  le.Uint32(b[4:]),
			Offset: le.Uint64(b[8:]),
			Vaddr:  le.Uint64(b[16:]),
			Filesz: le.Uint64(b[32:]),
			Memsz:  le.Uint64(b[40:]),
			Align:  le.Uint64(b[48:]),
		}
		switch p.Type {
		case ptInterp:
			if p.Filesz < 2 || p.Filesz > pathMax || p.Offset > uint64(size) || p.Filesz > uint64(size)-p.Offset {
				return nil, fmt.Errorf("PT_INTERP of %d bytes at %#x is invalid: %w", p.Filesz, p.Offset, ErrNoExec)
			}
			b := make([]byte, p.Filesz)
			if _, err := r.ReadAt(b, int64(p.Offset)); err != nil {
				return nil, fmt.Errorf("read PT_INTERP: %v: %w", err, ErrNoExec)
			}
			if b[len(b)-1] != 0 || bytes.IndexByte(b[:len(b)-1], 0) >= 0 {
				return nil, fmt.Errorf("PT_INTERP is not a NUL-terminated path: %w", ErrNoExec)
			}
			f.Interp = string(b[:len(b)-1])
		case ptLoad:
			loads++
			if loads > elfMaxSegments {
				return nil, fmt.Errorf("more than %d PT_LOAD segments: %w", elfMaxSegments, ErrNoExec)
			}
			if p.Filesz > p.Memsz {
				return nil, fmt.Errorf("segment %d: file size %#x exceeds memory size %#x: %w", i, p.Filesz, p.Memsz, ErrNoExec)
			}
			if p.Offset > uint64(size) || p.Filesz > uint64(size)-p.Offset {
				return nil, fmt.Errorf("segment %d: file range [%#x, +%#x) beyond file size %d: %w", i, p.Offset, p.Filesz, size, ErrNoExec)
			}
			if end := p.Vaddr + p.Memsz; end < p.Vaddr || end > 1<<47 {
				return nil, fmt.Errorf("segment %d: address range [%#x, +%#x) outside user space: %w", i, p.Vaddr, p.Memsz, ErrNoExec)
			}
			if (p.Vaddr-p.Offset)&pageMask != 0 {
				return nil, fmt.Errorf("segment %d: address %#x and offset %#x differ modulo the page size: %w", i, p.Vaddr, p.Offset, ErrNoExec)
			}
		}
		f.Phdrs = append(f.Phdrs, p)
	}
	if loads == 0 {
		return nil, fmt.Errorf("no PT_LOAD segment: %w", ErrNoExec)
	}
	return f, nil
}

// loadedELF is where an executable landed in an address space.
type loadedELF struct {
	Bias  uint64 // added to every p_vaddr
	Entry uint64
	Phdr  uint64 // address of the program header table, 0 if not mapped
	Phnum uint16
	End   uint64 // end of the highest segment: where the heap starts
}

// loadELF maps the segments of the parsed executable f, read from r, into
// mm. ET_EXEC files load at their addresses; ET_DYN files (PIE programs,
// the dynamic loader) at base, or at a free place if base is 0.
func loadELF(mm *MM, f *elfFile, r io.ReaderAt, name string, base uint64) (*loadedELF, error) {
	lo, hi := ^uint64(0), uint64(0)
	for _, p := range f.Phdrs {
		if p.Type == ptLoad {
			lo = min(lo, pageRoundDown(p.Vaddr))
			hi = max(hi, p.Vaddr+p.Memsz)
		}
	}
	var bias uint64
	if f.Type == etDyn {
		if base == 0 {
			span, ok := pageRoundUp(hi - lo)
			if !ok {
				return nil, fmt.Errorf("%s: segments span %#x bytes: %w", name, hi-lo, ErrNoExec)
			}
			mm.mu.Lock()
			b, err := mm.findGapLocked(span)
			mm.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("%s: no room for %#x bytes: %w", name, span, ErrNoMemory)
			}
			base = b
		}
		bias = base - lo
	}
	if lo+bias < mm.minAddr || hi+bias > mm.maxAddr || hi+bias < lo+bias {
		return nil, fmt.Errorf("%s: segments [%#x, %#x) outside the user address range: %w", name, lo+bias, hi+bias, ErrNoExec)
	}
	out := &loadedELF{Bias: bias, Entry: f.Entry + bias, Phnum: f.Phnum}
	// Segments of a host file are mapped from it (sharing its pages with
	// every other process that maps it); others are copied.
	var src cacheableContents
	mapped := false
	if m, ok := r.(mappableReader); ok {
		src = m.mapContents()
		_, mapped = src.cacheKey()
		mapped = mapped && segmentsMappable(f)
	}
	var mappedEnd uint64
	for i, p := range f.Phdrs {
		switch p.Type {
		case ptPhdr:
			out.Phdr = p.Vaddr + bias
			continue
		case ptLoad:
		default:
			continue
		}
		if p.Memsz == 0 {
			continue
		}
		var err error
		if mapped {
			err = mapSegment(mm, &p, src, bias, name)
		} else {
			err = copySegment(mm, &p, r, bias, name, mappedEnd)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: segment %d: %w", name, i, err)
		}
		end, _ := pageRoundUp(p.Vaddr + bias + p.Memsz)
		mappedEnd = max(mappedEnd, end)
		if out.Phdr == 0 && f.Phoff >= p.Offset && f.Phoff < p.Offset+p.Filesz {
			out.Phdr = p.Vaddr + bias + (f.Phoff - p.Offset)
		}
		out.End = max(out.End, p.Vaddr+bias+p.Memsz)
	}
	return out, nil
}

// mappableReader is an executable whose segments may be mapped from the
// file instead of copied.
type mappableReader interface {
	mapContents() cacheableContents
}

// segmentsMappable reports whether f's PT_LOAD segments can be mapped from
// the file as Linux maps them: each at a file offset congruent to its
// address modulo the page size, and no two in one page (old linkers packed
// segments into shared pages; those are copied instead).
func segmentsMappable(f *elfFile) bool {
	var prevEnd uint64
	for _, p := range f.Phdrs {
		if p.Type != ptLoad || p.Memsz == 0 {
			continue
		}
		if p.Vaddr&pageMask != p.Offset&pageMask || pageRoundDown(p.Vaddr) < prevEnd {
			return false
		}
		end, ok := pageRoundUp(p.Vaddr + p.Memsz)
		if !ok {
			return false
		}
		prevEnd = end
	}
	return true
}

// mapSegment maps segment p of a cacheable file: its file pages from the
// file (shared through the file cache), the rest of its last file page
// zeroed if the segment has more memory than file bytes, and the pages
// after that as anonymous memory (the bss), as Linux's ELF loader does.
func mapSegment(mm *MM, p *progHeader, src cacheableContents, bias uint64, name string) error {
	start := pageRoundDown(p.Vaddr + bias)
	end, _ := pageRoundUp(p.Vaddr + bias + p.Memsz)
	fileEnd, _ := pageRoundUp(p.Vaddr + bias + p.Filesz)
	if p.Filesz > 0 {
		o := MMapOpts{Addr: start, Length: fileEnd - start, Perms: p.perms(), Private: true, NoReplace: true,
			File: src, Offset: pageRoundDown(p.Offset), Name: name}
		if _, err := mm.MMap(o); err != nil {
			return fmt.Errorf("map [%#x, %#x) from the file: %w", start, fileEnd, err)
		}
	} else {
		fileEnd = start
	}
	if zero := p.Vaddr + bias + p.Filesz; p.Memsz > p.Filesz && zero < fileEnd {
		if err := mm.writeForce(zero, make([]byte, fileEnd-zero)); err != nil {
			return fmt.Errorf("zero [%#x, %#x): %w", zero, fileEnd, err)
		}
	}
	if end > fileEnd {
		o := MMapOpts{Addr: fileEnd, Length: end - fileEnd, Perms: p.perms(), Private: true, NoReplace: true}
		if _, err := mm.MMap(o); err != nil {
			return fmt.Errorf("map [%#x, %#x): %w", fileEnd, end, err)
		}
	}
	return nil
}

// copySegment maps segment p as anonymous memory and copies its file bytes
// into it. Segments may share a page (the end of one and the start of the
// next): only what is not mapped yet (below mappedEnd) is mapped, and both
// write the shared page.
func copySegment(mm *MM, p *progHeader, r io.ReaderAt, bias uint64, name string, mappedEnd uint64) error {
	start := pageRoundDown(p.Vaddr + bias)
	end, _ := pageRoundUp(p.Vaddr + bias + p.Memsz)
	if mapStart := max(start, mappedEnd); mapStart < end {
		_, err := mm.MMap(MMapOpts{Addr: mapStart, Length: end - mapStart, Perms: p.perms(), Private: true, NoReplace: true, Name: name})
		if err != nil {
			return fmt.Errorf("map [%#x, %#x): %w", mapStart, end, err)
		}
	}
	// Copy from the start of the page, as a file mapping would: the first
	// segment's page holds the ELF header and program headers.
	fileStart := pageRoundDown(p.Offset)
	n := p.Offset + p.Filesz - fileStart
	if n == 0 {
		return nil
	}
	// Read straight into the memory file, no staging copy.
	off := int64(fileStart)
	err := mm.fillForce(start, n, func(b []byte) error {
		_, err := r.ReadAt(b, off)
		off += int64(len(b))
		if err == io.EOF {
			err = nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}
