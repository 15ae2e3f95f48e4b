package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"snapshotter/internal/ctest"
	"snapshotter/internal/prereq"
)

// testELF builds a minimal x86-64 executable: a header, the program
// headers phdrs at offset 64 and code at offset 0x1000.
func testELF(typ uint16, entry uint64, phdrs []progHeader, code []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0x1000+len(code))
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], typ)
	le.PutUint16(b[18:], emX86_64)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], entry)
	le.PutUint64(b[32:], elfHeaderSize)
	le.PutUint16(b[52:], elfHeaderSize)
	le.PutUint16(b[54:], elfPhdrSize)
	le.PutUint16(b[56:], uint16(len(phdrs)))
	for i, p := range phdrs {
		o := b[elfHeaderSize+i*elfPhdrSize:]
		le.PutUint32(o[0:], p.Type)
		le.PutUint32(o[4:], p.Flags)
		le.PutUint64(o[8:], p.Offset)
		le.PutUint64(o[16:], p.Vaddr)
		le.PutUint64(o[24:], p.Vaddr)
		le.PutUint64(o[32:], p.Filesz)
		le.PutUint64(o[40:], p.Memsz)
		le.PutUint64(o[48:], p.Align)
	}
	copy(b[0x1000:], code)
	return b
}

var testCode = []byte{0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05} // mov $60,%eax; xor %edi,%edi; syscall

func validPhdrs() []progHeader {
	return []progHeader{
		{Type: ptLoad, Flags: pfR, Offset: 0, Vaddr: 0x400000, Filesz: 0x200, Memsz: 0x200, Align: 0x1000},
		{Type: ptLoad, Flags: pfR | pfX, Offset: 0x1000, Vaddr: 0x401000, Filesz: uint64(len(testCode)), Memsz: uint64(len(testCode)), Align: 0x1000},
		{Type: ptLoad, Flags: pfR | pfW, Offset: 0x1000, Vaddr: 0x402000, Filesz: 4, Memsz: 0x3000, Align: 0x1000},
	}
}

func TestParseELFRejects(t *testing.T) {
	good := testELF(etExec, 0x401000, validPhdrs(), testCode)
	if _, err := parseELF(bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatalf("parseELF(valid) = %v", err)
	}
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	le := binary.LittleEndian
	phdr := func(i, field int) int { return elfHeaderSize + i*elfPhdrSize + field }
	tests := []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"short", good[:40]},
		{"bad magic", mutate(func(b []byte) { b[1] = 'X' })},
		{"32-bit", mutate(func(b []byte) { b[4] = 1 })},
		{"big endian", mutate(func(b []byte) { b[5] = 2 })},
		{"arm64", mutate(func(b []byte) { le.PutUint16(b[18:], 183) })},
		{"relocatable", mutate(func(b []byte) { le.PutUint16(b[16:], 1) })},
		{"phentsize", mutate(func(b []byte) { le.PutUint16(b[54:], 32) })},
		{"no phdrs", mutate(func(b []byte) { le.PutUint16(b[56:], 0) })},
		{"too many phdrs", mutate(func(b []byte) { le.PutUint16(b[56:], 0xffff) })},
		{"phoff beyond file", mutate(func(b []byte) { le.PutUint64(b[32:], 1<<62) })},
		{"phoff wraps", mutate(func(b []byte) { le.PutUint64(b[32:], ^uint64(0)-10) })},
		{"filesz > memsz", mutate(func(b []byte) { le.PutUint64(b[phdr(1, 32):], 0x5000) })},
		{"segment beyond file", mutate(func(b []byte) { le.PutUint64(b[phdr(1, 8):], 0x100000) })},
		{"vaddr wraps", mutate(func(b []byte) { le.PutUint64(b[phdr(2, 16):], ^uint64(0)-0xfff) })},
		{"misaligned", mutate(func(b []byte) { le.PutUint64(b[phdr(1, 16):], 0x401010) })},
		{"no loads", mutate(func(b []byte) {
			for i := range 3 {
				le.PutUint32(b[phdr(i, 0):], ptGNUStack)
			}
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if f, err := parseELF(bytes.NewReader(tc.file), int64(len(tc.file))); !errors.Is(err, ErrNoExec) {
				t.Errorf("parseELF(%s) = %+v, %v, want ErrNoExec", tc.name, f, err)
			}
		})
	}
}

func TestLoadELFSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name     string
		typ      uint16
		wantBias uint64
	}{
		{"static", etExec, 0},
		{"static-pie", etDyn, pieLoadBase - 0x400000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mm, as := newTestMM(t)
			file := testELF(tc.typ, 0x401000, validPhdrs(), testCode)
			f, err := parseELF(bytes.NewReader(file), int64(len(file)))
			if err != nil {
				t.Fatal(err)
			}
			l, err := loadELF(mm, f, bytes.NewReader(file), "/prog", pieLoadBase)
			if err != nil {
				t.Fatalf("loadELF: %v", err)
			}
			if l.Bias != tc.wantBias || l.Entry != 0x401000+tc.wantBias {
				t.Errorf("loadELF bias, entry = %#x, %#x, want %#x, %#x", l.Bias, l.Entry, tc.wantBias, 0x401000+tc.wantBias)
			}
			if l.Phdr != 0x400000+elfHeaderSize+tc.wantBias || l.Phnum != 3 {
				t.Errorf("loadELF phdr, phnum = %#x, %d, want %#x, 3", l.Phdr, l.Phnum, 0x400000+elfHeaderSize+tc.wantBias)
			}
			if l.End != 0x405000+tc.wantBias {
				t.Errorf("loadELF end = %#x, want %#x", l.End, 0x405000+tc.wantBias)
			}
			code := make([]byte, len(testCode))
			if err := mm.CopyIn(l.Entry, code); err != nil || !bytes.Equal(code, testCode) {
				t.Errorf("code at entry = %x, %v, want %x", code, err, testCode)
			}
			// The data segment holds its 4 file bytes then zeros (bss),
			// not the rest of the file page.
			data := make([]byte, 8)
			if err := mm.CopyIn(0x402000+tc.wantBias, data); err != nil || !bytes.Equal(data, append(testCode[:4:4], 0, 0, 0, 0)) {
				t.Errorf("data segment = %x, %v, want %x then zeros", data, err, testCode[:4])
			}
			want := []string{"r--", "r-x", "rw-"}
			maps := mm.Mappings()
			if len(maps) != 3 {
				t.Fatalf("mappings = %+v, want 3", maps)
			}
			for i, m := range maps {
				if m.Perms != want[i] || m.Name != "/prog" {
					t.Errorf("mapping %d = %+v, want perms %s name /prog", i, m, want[i])
				}
			}
			checkMirror(t, mm, as)
		})
	}
}

func TestParseELFInterp(t *testing.T) {
	ph := append(validPhdrs(), progHeader{Type: ptInterp, Offset: 0x1000, Filesz: uint64(len(testCode))})
	tests := []struct {
		name string
		code []byte
		want string
		err  error
	}{
		{"path", []byte("/lib/ld.so\x00abc"), "/lib/ld.so", ErrNoExec}, // NUL before the end
		{"exact", []byte("/lib/ld-x.so\x00"), "/lib/ld-x.so", nil},
		{"unterminated", []byte("/lib/ld-x.so!"), "", ErrNoExec},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ph[len(ph)-1].Filesz = uint64(len(tc.code))
			file := testELF(etDyn, 0x401000, ph, tc.code)
			f, err := parseELF(bytes.NewReader(file), int64(len(file)))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("parseELF(interp %q) = %v, want %v", tc.code, err, tc.err)
				}
				return
			}
			if err != nil || f.Interp != tc.want {
				t.Errorf("parseELF(interp %q) = %+v, %v, want interp %q", tc.code, f, err, tc.want)
			}
		})
	}
}

// TestLoadELFRealStatic loads a gcc -static binary and checks that the
// program headers are where AT_PHDR will say.
func TestLoadELFRealStatic(t *testing.T) {
	for _, tc := range []struct{ name, flag string }{{"static", "-static"}, {"static-pie", "-static-pie"}} {
		t.Run(tc.name, func(t *testing.T) {
			bin, err := ctest.TrySource(t, "gcc", tc.name, "int main(void){return 0;}\n", tc.flag, "-O2")
			if err != nil {
				prereq.Missing(t, "gcc %s cannot link: %v", tc.flag, err)
			}
			file, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parseELF(bytes.NewReader(file), int64(len(file)))
			if err != nil {
				t.Fatalf("parseELF(%s) = %v", bin, err)
			}
			mm, _ := newTestMM(t)
			l, err := loadELF(mm, f, bytes.NewReader(file), bin, pieLoadBase)
			if err != nil {
				t.Fatalf("loadELF(%s) = %v", bin, err)
			}
			got := make([]byte, int(l.Phnum)*elfPhdrSize)
			if err := mm.CopyIn(l.Phdr, got); err != nil {
				t.Fatal(err)
			}
			if want := file[f.Phoff : f.Phoff+uint64(len(got))]; !bytes.Equal(got, want) {
				t.Errorf("memory at AT_PHDR %#x differs from the file's program headers", l.Phdr)
			}
		})
	}
}
