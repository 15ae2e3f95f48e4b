#!/usr/bin/env bash
# make demo: shows what snap can do today on the default local store.
set -euo pipefail
cd "$(dirname "$0")/.."
snap=./bin/snap
echo "\$ snap version"; $snap version
echo
echo "\$ snap --help"; $snap --help
