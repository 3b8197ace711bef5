#!/bin/sh
# make soak: the chaos soak (scripts/soak/soak.lua) for SOAK_SECONDS (600)
# on the plain build, then for SOAK_ASAN_SECONDS (120) under
# AddressSanitizer and UndefinedBehaviorSanitizer, which checks for leaks
# and memory errors (no RSS bound there: ASan's quarantine makes RSS
# meaningless). Both runs take SOAK_SEED (random when unset; each prints
# it). The fake gateway always runs the plain build, in its own process.
# Counts as one test: ends with "1 passed, 0 failed" or "0 passed, 1 failed".
set -u
cd "$(dirname "$0")/../.."
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_ASAN_SECONDS=${SOAK_ASAN_SECONDS:-120}
if [ -z "${SOAK_SEED:-}" ]; then
  SOAK_SEED=$(od -An -N3 -tu4 /dev/urandom | tr -d ' ')
fi
export SOAK_SEED GLOAMING_LOG="${GLOAMING_LOG:-error}" SOAK_FAKE=./build/gloaming
status=0

echo "=== chaos soak: plain build, $SOAK_SECONDS s"
SOAK_SECONDS=$SOAK_SECONDS SOAK_BUILD=plain build/gloaming run scripts/soak/soak.lua || status=$?
# 130: interrupted (Ctrl-C), no verdict: stop here rather than go on to the
# sanitizers' run
if [ "$status" = 130 ]; then echo "0 passed, 1 failed (interrupted)"; exit 130; fi
[ "$status" = 0 ] || status=1

if [ "$SOAK_ASAN_SECONDS" != 0 ]; then
  echo "=== chaos soak: AddressSanitizer, $SOAK_ASAN_SECONDS s"
  # core.so preloaded too: Lua unloads it at exit, and what its statics
  # hold for the process's life (136 and 24 bytes) would then show as
  # leaks; resident, LeakSanitizer reports only memory nothing points to
  preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so):$PWD/build-asan/lib/gloaming/core.so"
  # the sanitized build is slower: more slack in every recovery bound
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  LD_PRELOAD="$preload" LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build-asan/lib/?.so;;" \
  SOAK_SECONDS=$SOAK_ASAN_SECONDS SOAK_RSS=0 SOAK_SLACK=${SOAK_ASAN_SLACK:-6} SOAK_BUILD=asan \
    lua5.4 scripts/gloaming run scripts/soak/soak.lua || status=$?
  if [ "$status" = 130 ]; then echo "0 passed, 1 failed (interrupted)"; exit 130; fi
  [ "$status" = 0 ] || status=1
fi

if [ "$status" = 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $status
