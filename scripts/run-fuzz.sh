#!/bin/sh
# Runs each libFuzzer target for FUZZ_SECONDS on a scratch copy of its seed
# corpus (tests/fuzz/corpus/<target>, when present) and ends with
# "N passed, N failed": a target passes when it ran out its time without a
# crash, leak or sanitizer report.
set -u
seconds=${FUZZ_SECONDS:-30}
passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "$@"; do
  name=$(basename "$t")
  mkdir -p "$work/$name"
  if [ -d "tests/fuzz/corpus/$name" ]; then cp -R "tests/fuzz/corpus/$name/." "$work/$name/"; fi
  if "$t" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=0 \
      -artifact_prefix="$work/" "$work/$name" >"$work/$name.log" 2>&1; then
    echo "fuzz $name: ok ($(grep -o 'Done [0-9]* runs' "$work/$name.log" | tail -1))"
    passed=$((passed + 1))
  else
    tail -40 "$work/$name.log"
    for a in "$work"/crash-* "$work"/leak-* "$work"/oom-* "$work"/timeout-*; do
      [ -e "$a" ] && echo "artifact: $(basename "$a") $(od -An -tx1 "$a" | head -4 | tr -d '\n')"
    done
    echo "fuzz $name: FAILED"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
