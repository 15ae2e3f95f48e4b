#!/usr/bin/env bash
# The checkpoint demo (make demo calls it): start a counting program
# detached, save it to the default local store, show that it is gone,
# restore it and show it continue from the next count.
# Usage: scripts/demo_checkpoint.sh [SNAP_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
snap=${1:-./bin/snap}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SNAP_STATE_DIR="$work/state"

show() { echo "\$ $*"; "$@"; }

cc=$(command -v musl-gcc || command -v gcc)
"$cc" -static -O2 -o "$work/counter" testdata/c/counter.c
echo "# counter: a static C program keeping a count and 256 MiB of checksummed pages"

id=$($snap run -d --stdout "$work/out" -- "$work/counter")
echo "\$ snap run -d --stdout out -- counter"
echo "$id"
until [ "$(grep -c . "$work/out" 2>/dev/null)" -ge 3 ]; do sleep 0.1; done
show $snap ps
echo "\$ cat out"; cat "$work/out"

echo "\$ snap save $id"
uri=$($snap save "$id" | tail -n1)
echo "$uri"
echo "# the sandbox is gone (status saved) and prints nothing more:"
show $snap ps
last=$(tail -n1 "$work/out")
echo "last line before the save: $last"

echo "\$ snap inspect $uri"
$snap inspect "$uri" 2>/dev/null || echo "(snap inspect not available)"

rid=$($snap restore -d --stdout "$work/restored" "$uri")
echo "\$ snap restore -d --stdout restored $uri"
echo "$rid"
until [ "$(grep -c . "$work/restored" 2>/dev/null)" -ge 3 ]; do sleep 0.1; done
show $snap ps
echo "\$ cat restored"; cat "$work/restored"
echo "# the first line after the restore follows \"$last\""

show $snap kill "$rid"
$snap wait "$rid" || echo "(exit status $?)"
$snap rm "$uri" 2>/dev/null || true
