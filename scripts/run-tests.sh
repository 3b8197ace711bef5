#!/bin/sh
# Runs luacheck, the C unit tests given as arguments, then the busted specs,
# and ends with one line that counts them all: "N passed, N failed". Exits
# non-zero when anything failed. BUILD names the build folder; SAN=1 runs
# under ASan/UBSan.
set -u
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
LUACHECK=${LUACHECK:-luacheck}
passed=0
failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

if [ "${SAN:-}" = 1 ]; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
fi

# Lint (.luacheckrc): one test, failed by any warning. scripts/gloaming is
# Lua without the .lua that luacheck looks for in a folder.
if "$LUACHECK" --codes --formatter plain lua scripts scripts/gloaming spec >"$log/luacheck" 2>&1; then
  echo "luacheck: 0 warnings"
  passed=$((passed + 1))
else
  cat "$log/luacheck"
  echo "luacheck: failed"
  failed=$((failed + 1))
fi

# A unit test that hangs fails (after UNIT_TIMEOUT seconds) instead of
# holding CI until its own limit.
for t in "$@"; do
  name=$(basename "$t")
  if timeout "${UNIT_TIMEOUT:-300}" "$t" >"$log/$name" 2>&1; then rc=0; else rc=$?; fi
  if [ "$rc" = 124 ]; then echo "unit $name: timed out after ${UNIT_TIMEOUT:-300} s" >>"$log/$name"; fi
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log/$name" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log/$name" | tail -1)
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi   # crashed or sanitizer report
  if [ "$f" != 0 ]; then cat "$log/$name"; fi
  echo "unit $name: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
done

# Specs: lua5.4 runs busted itself, so sanitizer runtimes preload into the
# interpreter only (the specs strip LD_PRELOAD from peer processes).
specs_out="$log/busted"
# what the specs provoke on purpose would flood the output below errors
export GLOAMING_LOG=${GLOAMING_LOG:-error}
if [ "${SAN:-}" = 1 ]; then
  # Lua's own state is freed by the interpreter; the specs' children are not
  # ours to leak-check, so leak checking stays with the C unit tests.
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" LD_PRELOAD="$preload" \
    GM_SANITIZED=1 "$LUA" /usr/bin/busted -o utfTerminal \
    --lpath="./lua/?.lua;./lua/?/init.lua" --cpath="./$BUILD/lib/?.so" \
    ${BUSTED_ARGS:-} spec >"$specs_out" 2>&1
  rc=$?
else
  "$LUA" /usr/bin/busted -o utfTerminal \
    --lpath="./lua/?.lua;./lua/?/init.lua" --cpath="./$BUILD/lib/?.so" \
    ${BUSTED_ARGS:-} spec >"$specs_out" 2>&1
  rc=$?
fi
cat "$specs_out"
summary=$(grep -E '^[0-9]+ successe?s? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$specs_out" | tail -1)
if [ -n "$summary" ]; then
  s=$(echo "$summary" | sed -E 's#^([0-9]+) success.*#\1#')
  f=$(echo "$summary" | sed -E 's#^[0-9]+ successe?s? / ([0-9]+) failure.*#\1#')
  e=$(echo "$summary" | sed -E 's#.* / ([0-9]+) errors? / .*#\1#')
  passed=$((passed + s))
  failed=$((failed + f + e))
  if [ "$rc" != 0 ] && [ $((f + e)) = 0 ]; then failed=$((failed + 1)); fi
else
  echo "busted did not finish (exit $rc)"
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
