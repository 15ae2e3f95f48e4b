// Package vdso holds the sandbox's vDSO: a small ELF shared object, built
// from src/vdso.c and src/vdso.lds by gen.sh with gcc and committed as vdso.so, so
// that building snap needs no C compiler. The kernel maps it into every
// address space above its parameter page (see kernel/vdso_clock.go).
//
// The image exports Linux's x86-64 vDSO symbols, version LINUX_2.6:
// __vdso_clock_gettime, __vdso_gettimeofday, __vdso_time,
// __vdso_clock_getres and __vdso_getcpu (and their plain-named weak
// aliases). It is linked at address 0 as one read-only, executable
// PT_LOAD and has no relocations. It reads the parameter page through the
// symbol vvar_page, placed ParamsPageOffset bytes before the image.
//
// TestImageMatchesSources fails when vdso.so is stale: the sources'
// SHA-256 recorded in vdso.so.sum must match, and, where gcc of the
// recorded version is installed, a rebuild must give the same bytes.
package vdso

//go:generate ./gen.sh

import _ "embed"

// Image is the vDSO ELF image. Callers must not modify it.
//
//go:embed vdso.so
var Image []byte

// ParamsPageOffset is how far below the image the parameter page must be
// mapped (vvar_page in vdso.lds): the page right before it.
const ParamsPageOffset = 4096

// Symbols the image must export, with the version Linux gives them.
var Symbols = []string{
	"__vdso_clock_gettime",
	"__vdso_gettimeofday",
	"__vdso_time",
	"__vdso_clock_getres",
	"__vdso_getcpu",
}

// SymbolVersion is the version of every exported symbol.
const SymbolVersion = "LINUX_2.6"
