#!/bin/sh
# make bench: runs scripts/bench.lua (on core 0 when taskset exists; the
# fake gateway it starts runs on core 1).
set -eu
cd "$(dirname "$0")/.."
if command -v taskset >/dev/null 2>&1; then
  exec taskset -c 0 ./build/gloaming run scripts/bench.lua "$@"
fi
exec ./build/gloaming run scripts/bench.lua "$@"
