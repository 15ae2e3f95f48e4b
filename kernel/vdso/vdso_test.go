package vdso_test

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
	"snapshotter/kernel/vdso"
)

// TestImageMatchesSources checks that the committed vdso.so was built from
// the committed sources: their SHA-256s are the ones gen.sh recorded in
// vdso.so.sum, and, with the gcc version recorded there, gen.sh builds the
// same bytes again.
func TestImageMatchesSources(t *testing.T) {
	sum, err := os.ReadFile("vdso.so.sum")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sum)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "gcc ") {
		t.Fatalf("vdso.so.sum = %q, want a gcc line and source sums", sum)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("vdso.so.sum line %q: want SUM FILE", l)
		}
		b, err := os.ReadFile(f[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != f[0] {
			t.Errorf("%s changed since vdso.so was built: run go generate ./kernel/vdso (make generate)", f[1])
		}
	}

	gcc := prereq.Binary(t, "gcc")
	ver, err := exec.Command(gcc, "-dumpfullversion").Output()
	if err != nil {
		t.Fatalf("gcc -dumpfullversion: %v", err)
	}
	if want := strings.TrimPrefix(lines[0], "gcc "); strings.TrimSpace(string(ver)) != want {
		// The sources are checked above; a rebuild would differ for the
		// compiler's sake alone.
		t.Logf("gcc %s here, vdso.so was built with gcc %s: not rebuilt", strings.TrimSpace(string(ver)), want)
		return
	}
	out := filepath.Join(t.TempDir(), "vdso.so")
	if b, err := exec.Command("./gen.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	rebuilt, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt, vdso.Image) {
		t.Errorf("gen.sh builds a vdso.so (%d bytes) that differs from the committed one (%d bytes): run go generate ./kernel/vdso", len(rebuilt), len(vdso.Image))
	}
}

// TestImageShape checks what the kernel and the C libraries rely on: a
// shared object linked at 0, one R+X PT_LOAD whose file offsets are its
// addresses, within one page-rounded image, no relocations, the soname
// ldd shows, and each symbol defined with version LINUX_2.6.
func TestImageShape(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(vdso.Image))
	if err != nil {
		t.Fatalf("parse vdso.so: %v", err)
	}
	if f.Type != elf.ET_DYN || f.Machine != elf.EM_X86_64 {
		t.Errorf("type, machine = %v, %v, want ET_DYN, EM_X86_64", f.Type, f.Machine)
	}
	var loads int
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		loads++
		if p.Vaddr != 0 || p.Off != 0 || p.Flags != elf.PF_R|elf.PF_X || p.Memsz != p.Filesz || p.Filesz > uint64(len(vdso.Image)) {
			t.Errorf("PT_LOAD vaddr %#x off %#x flags %v filesz %#x memsz %#x, want 0, 0, R+X, whole file", p.Vaddr, p.Off, p.Flags, p.Filesz, p.Memsz)
		}
	}
	if loads != 1 {
		t.Errorf("%d PT_LOAD segments, want 1", loads)
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_RELA || s.Type == elf.SHT_REL {
			t.Errorf("section %s holds relocations; the image is mapped as is", s.Name)
		}
	}
	if names, err := f.DynString(elf.DT_SONAME); err != nil || len(names) != 1 || names[0] != "linux-vdso.so.1" {
		t.Errorf("DT_SONAME = %q, %v, want linux-vdso.so.1", names, err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatalf("dynamic symbols: %v", err)
	}
	for _, want := range vdso.Symbols {
		found := false
		for _, s := range syms {
			if s.Name == want {
				found = true
				if s.Version != vdso.SymbolVersion || s.Section == elf.SHN_UNDEF || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
					t.Errorf("symbol %s: version %q, section %v, type %v, want %s, defined, FUNC", want, s.Version, s.Section, elf.ST_TYPE(s.Info), vdso.SymbolVersion)
				}
			}
		}
		if !found {
			t.Errorf("symbol %s missing", want)
		}
	}
}
