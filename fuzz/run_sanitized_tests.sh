#!/usr/bin/env bash
# Runs pytest files against the ASan+UBSan build of xmc._core made by
# fuzz/build_sanitized.sh. Python itself is not sanitized, so the ASan runtime
# is preloaded; leak checking is off because CPython keeps memory until exit.
# Usage: fuzz/run_sanitized_tests.sh [OUT] [pytest args...]
#   default: /tmp/xmc-asan and every test file that drives native code (parsers, tree, beam search,
#   linear trainer, label-attention kernel)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-/tmp/xmc-asan}"
shift || true
[ "$#" -gt 0 ] || set -- tests/test_fuzz_parsers.py tests/test_data_xc.py tests/test_tree.py tests/test_search.py \
  tests/test_linear.py tests/test_ops_label_attention.py tests/test_stream.py
PY="${PYTHON:-python}"
CXX_BIN="$(grep -m1 '^CMAKE_CXX_COMPILER:' "$OUT/cmake/CMakeCache.txt" | cut -d= -f2)"
ASAN_LIB="$("$CXX_BIN" -print-file-name=libasan.so)"
UBSAN_LIB="$("$CXX_BIN" -print-file-name=libubsan.so)"
cd "$ROOT"
# `python -m pytest` would put the working tree (and its unsanitized module)
# first on sys.path, so import pytest's entry point and set the path explicitly.
LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
PYTHONPATH="$OUT/ext" XMC_EXPECT_CORE="$OUT/ext/xmc" \
  "$PY" -c 'import os, sys
sys.path[:0] = [os.environ["PYTHONPATH"]]
import xmc._core
assert xmc._core.__file__.startswith(os.environ["XMC_EXPECT_CORE"]), xmc._core.__file__
print("sanitized module:", xmc._core.__file__)
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))' "$@"
