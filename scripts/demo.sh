#!/usr/bin/env bash
# make demo: the main job on the default local store: run a counting program
# detached, save it, show it is gone, restore it and watch it continue.
set -euo pipefail
cd "$(dirname "$0")/.."
snap=./bin/snap
echo "\$ snap version"; $snap version
echo
echo "# a static busybox applet runs in the sentry like on the host:"
if command -v busybox >/dev/null; then
  echo "\$ snap run -- busybox uname -s -m"; $snap run -- "$(command -v busybox)" uname -s -m
  echo
fi
./scripts/demo_checkpoint.sh "$snap"
