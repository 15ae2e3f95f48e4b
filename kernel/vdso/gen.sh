#!/bin/sh
# Builds vdso.so, the sandbox's vDSO, from src/vdso.c and src/vdso.lds with
# gcc, and
# records the gcc version and the sources' SHA-256 in vdso.so.sum. Run by
# `go generate ./kernel/vdso` (make generate); the result is committed, so
# building snap needs no C compiler. TestImageMatchesSources checks both.
#
# gen.sh [OUT]: write to OUT (default vdso.so) and its .sum next to it.
set -eu
cd "$(dirname "$0")"
out=${1:-vdso.so}
CC=${CC:-gcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CC" -std=gnu11 -Wall -Wextra -Werror -O2 -fPIC -fno-stack-protector \
	-fcf-protection=none -fno-common -fno-builtin -ffreestanding \
	-fasynchronous-unwind-tables -mno-red-zone -fno-plt \
	-ffile-prefix-map="$(pwd)"=. \
	-nostdlib -shared -Wl,-T,src/vdso.lds -Wl,-soname=linux-vdso.so.1 \
	-Wl,--hash-style=both -Wl,--eh-frame-hdr -Wl,-Bsymbolic \
	-Wl,--no-undefined -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack \
	-Wl,--build-id=sha1 \
	-o "$tmp/vdso.so.dbg" src/vdso.c
objcopy --strip-all --remove-section=.comment "$tmp/vdso.so.dbg" "$tmp/vdso.so"
cp "$tmp/vdso.so" "$out"
{
	echo "gcc $("$CC" -dumpfullversion)"
	sha256sum src/vdso.c src/vdso.lds gen.sh
} >"$out.sum"
