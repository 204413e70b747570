#!/usr/bin/env bash
# The CI's sanitizer step (issue 7): build csrc/ with ASan+UBSan, run the parser
# tests against that build, then a short fuzz run of the native XC reader.
# A sanitizer report, a crash or a failed test fails the step.
# Usage: fuzz/ci_sanitized.sh [OUT] [RUNS]   (defaults /tmp/xmc-asan-ci, 200000 inputs)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-/tmp/xmc-asan-ci}"
RUNS="${2:-200000}"
PY="${PYTHON:-python}"

# Always from scratch: a build folder left by another checkout would hold its CMake cache.
rm -rf "$OUT"
# The build reads pybind11's CMake files from the running Python (pip's isolated build env is gone).
"$PY" -c 'import pybind11' 2>/dev/null || "$PY" -m pip install -q pybind11
"$ROOT/fuzz/build_sanitized.sh" "$OUT"
"$ROOT/fuzz/run_sanitized_tests.sh" "$OUT"

SEEDS="$OUT/seeds"
rm -rf "$SEEDS" && "$PY" "$ROOT/fuzz/make_seeds.py" "$SEEDS"
# The help text is captured first: `grep -q` closing the pipe early would SIGPIPE the target, and with
# pipefail the test would then fail and a libFuzzer build would run its seeds without mutating them.
HELP="$("$OUT/xc_reader_fuzz" -help=1 2>&1 || true)"
if grep -q libFuzzer <<< "$HELP"; then
  CORPUS="$OUT/corpus" && rm -rf "$CORPUS" && mkdir -p "$CORPUS"
  (cd "$OUT" && ./xc_reader_fuzz -runs="$RUNS" -max_len=2048 -seed=1 -dict="$ROOT/fuzz/xc.dict" \
      -print_final_stats=1 "$CORPUS" "$SEEDS")
else
  "$OUT/xc_reader_fuzz" -runs="$RUNS" "$SEEDS"/*
fi
echo "sanitizer step: build, parser tests and $RUNS fuzz inputs passed"
