#!/bin/sh
# Builds take_linux_amd64.syso, snap's entry code (csrc/take.c), with gcc,
# checks that the object has no relocations and no undefined symbols (Go's
# internal linker would not apply them: see csrc/take.c), and records the
# gcc version and the sources' SHA-256 in take_linux_amd64.syso.sum. Run by
# `go generate ./cmd/snapshotter/internal/fasttake` (make generate); the
# result is committed, so building snap needs no C compiler.
# TestEntryObject checks both.
#
# gen.sh [OUT]: write to OUT (default take_linux_amd64.syso) and its .sum
# next to it.
set -eu
cd "$(dirname "$0")"
out=${1:-take_linux_amd64.syso}
CC=${CC:-gcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CC" -std=gnu11 -Wall -Wextra -Werror -Os -c \
	-ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie \
	-fno-stack-protector -fno-stack-clash-protection -fcf-protection=none \
	-fno-asynchronous-unwind-tables -fno-unwind-tables \
	-fno-jump-tables -fno-tree-switch-conversion \
	-fno-tree-loop-distribute-patterns -fno-reorder-functions \
	-fno-reorder-blocks-and-partition -fno-common -mgeneral-regs-only \
	-fno-ident -ffile-prefix-map="$(pwd)"=. \
	-o "$tmp/take.o" csrc/take.c
objcopy --remove-section=.comment "$tmp/take.o" "$tmp/take.syso"
if readelf -r "$tmp/take.syso" | grep -q 'Relocation section'; then
	readelf -r "$tmp/take.syso" >&2
	echo "gen.sh: csrc/take.c compiles to relocations (Go's internal linker drops them)" >&2
	exit 1
fi
if [ -n "$(nm -u "$tmp/take.syso")" ]; then
	nm -u "$tmp/take.syso" >&2
	echo "gen.sh: csrc/take.c calls functions it does not define" >&2
	exit 1
fi
globals=$(nm -g --defined-only "$tmp/take.syso" | awk '{print $3}')
if [ "$globals" != snap_fast_take ]; then
	echo "gen.sh: take.syso defines $globals; want snap_fast_take only" >&2
	exit 1
fi
cp "$tmp/take.syso" "$out"
{
	echo "gcc $("$CC" -dumpfullversion)"
	sha256sum csrc/take.c gen.sh
} >"$out.sum"
